"""Several processes sharing one chat over Redis: the cluster delivery, the bus and its byte format, the sequencer
that restores id order, and who is online in the other processes. May import chat.messaging, chat.store,
chat.websocket and the shared top-level modules."""
