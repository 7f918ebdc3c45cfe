"""A real-time chat server on gevent and gevent-websocket, with history in SQLite or MySQL/MariaDB."""
__all__ = ["create_app"]


def __getattr__(name):
    # Imported on first use, so that importing chat.gunicorn_worker in gunicorn's master (before the workers
    # monkey-patch) does not pull in redis, PyMySQL and Flask: gevent would warn about ssl imported before patching.
    if name == "create_app":
        from chat.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
