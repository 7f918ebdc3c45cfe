"""Why the server could not start, as one line that names the setting to fix (run_server.py prints it and exits 2)."""
import errno

from chat.store import StoreUnavailable
from chat.store.dialects import dialect_for

# MySQL/MariaDB client and server error codes (the first argument of a PyMySQL error)
_ACCESS_DENIED = (1044, 1045, 1698)
_UNKNOWN_DATABASE = 1049
_CANNOT_CONNECT = (2002, 2003, 2005, 2006, 2013)

DATABASE = "--database (CHAT_DATABASE_URL)"


class StartupError(Exception):
    """A start that failed for a reason the operator can fix: `str()` says what and which setting."""


def explain(error, settings):
    """One line for a failure at start, or None when it is not one we know (then the traceback is the explanation)."""
    if isinstance(error, OSError) and getattr(error, "filename", None) is None and error.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
        return _listening(error, settings)
    if isinstance(error, StoreUnavailable):
        return _database(error, settings)
    if isinstance(error, ValueError) and "database URL" in str(error):
        return f"bad {DATABASE}: {error}"
    return None


def _listening(error, settings):
    where = f"{settings.host}:{settings.port}"
    if error.errno == errno.EADDRINUSE:
        return f"port {settings.port} on {settings.host} is in use (another server?): stop it, or pick another with --port (CHAT_PORT)"
    if error.errno == errno.EACCES:
        return f"not allowed to listen on {where} (ports below 1024 need privileges): pick another with --port (CHAT_PORT)"
    return f"cannot listen on {settings.host}: no such address on this machine; fix --host (CHAT_HOST)"


def _database(error, settings):
    cause = error.__cause__
    code = cause.args[0] if cause is not None and cause.args and isinstance(cause.args[0], int) else None
    try:
        dialect = dialect_for(settings.database_url)
    except ValueError:
        return f"the database does not answer: {error}; check {DATABASE}"
    if dialect.name == "sqlite":
        return (
            f"cannot open the SQLite database {dialect.path!r} ({error}): its directory must exist and be writable; "
            f"fix {DATABASE}"
        )
    server = f"{dialect.host}:{dialect.port}"
    if code in _ACCESS_DENIED:
        return (
            f"MySQL at {server} refused user {dialect.user!r} (wrong password, or the user may not use database "
            f"{dialect.database!r}): fix the user and password in {DATABASE}, or GRANT the user access"
        )
    if code == _UNKNOWN_DATABASE:
        return (
            f"MySQL at {server} has no database {dialect.database!r}: create it (CREATE DATABASE `{dialect.database}` "
            f"CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) or fix {DATABASE}"
        )
    if code in _CANNOT_CONNECT:
        return f"cannot reach MySQL at {server} (is it running? a firewall?): start it or fix the host and port in {DATABASE}"
    return f"the database at {server} does not answer: {error}; check {DATABASE}"
