"""A real-time chat server on gevent and gevent-websocket, with history in SQLite or MySQL/MariaDB."""
from .app import create_app

__all__ = ["create_app"]
