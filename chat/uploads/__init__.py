"""Files in messages: what a file is, picture re-encoding, upload limits, and the POST /files and GET /files routes.
May import chat.messaging, chat.accounts, chat.store and the shared top-level modules."""
