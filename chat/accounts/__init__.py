"""Who a user is: the credential service (accounts, sessions, tokens, guest holds), handshake admission, sign-in
limits, the account routes and forms. May import chat.store and the shared top-level modules; never chat.messaging,
chat.cluster, chat.uploads or chat.websocket."""
