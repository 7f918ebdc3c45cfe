"""One process's chat: the protocol, a client's session, the hub of connections, the service, the group-commit writer,
message ids, history, the local delivery and the /ws/<name> routes. May import chat.websocket, chat.store,
chat.accounts and the shared top-level modules; never chat.cluster (Redis), chat.uploads or chat.bots."""
