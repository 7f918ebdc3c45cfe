"""Every setting and limit in one place, with its safe default, its CHAT_* variable and its flag."""
import argparse
import dataclasses
import os
from dataclasses import dataclass, field


def _setting(default, help, flag=None):
    return field(default=default, metadata={"help": help, "flag": flag})


@dataclass
class Settings:
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(5000, "TCP port to listen on")
    database_url: str = _setting(
        "sqlite:///chat.db", "sqlite:///PATH (embedded default) or mysql://user:password@host:port/db", flag="--database"
    )
    backlog: int = _setting(2048, "listen backlog: how many connects may wait to be accepted")
    max_message_size: int = _setting(65536, "largest inbound message in bytes; larger ones are closed with 1009")
    max_name_length: int = _setting(32, "longest user name (at most 64)")
    history_on_connect: int = _setting(50, "group messages sent in the history event on connect")
    max_history_page: int = _setting(200, "most messages one history request returns")
    max_replay: int = _setting(10000, "most messages a ?since= reconnect replays")
    # Hardening (history)
    history_frame_bytes: int = _setting(
        256 * 1024,
        "most encoded bytes in one history event: longer histories come as several events (one message larger than this "
        "goes alone); messages are read from the store about this much at a time",
    )
    send_queue_messages: int = _setting(1000, "outbound frames queued per connection before it is closed as too slow")
    send_queue_bytes: int = _setting(4 * 1024 * 1024, "outbound bytes queued per connection before it is closed as too slow")
    ping_interval: float = _setting(20.0, "seconds between server pings")
    ping_timeout: float = _setting(20.0, "seconds a peer may stay silent after a ping before it is closed")
    close_timeout: float = _setting(3.0, "seconds to wait for the peer's close frame")
    presence_batch_delay: float = _setting(0.05, "seconds presence changes are gathered into one event")
    write_buffer: int = _setting(20000, "messages waiting to be stored before new ones are refused")
    write_batch: int = _setting(500, "most messages stored in one commit")
    db_pool_size: int = _setting(8, "database connections in the pool")
    db_connect_timeout: float = _setting(3.0, "seconds to wait for a database connection")
    shutdown_timeout: float = _setting(10.0, "seconds a SIGTERM/SIGINT shutdown may take to flush and close")
    bots: str = _setting("eliza", "bots to run, comma-separated (an empty value turns bots off); bot names are reserved")
    bot_modules: str = _setting("", "modules to import for the bots they register (comma-separated), e.g. mybots")
    bot_inbox: int = _setting(100, "messages waiting for a bot's answer before the oldest are dropped")
    echo_endpoint: bool = _setting(False, "mount /echo, a raw echo socket on the chat's websocket layer (tests only)")
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    # Accounts and security (chat/auth.py, chat/security.py, chat/guard.py)
    secret_key: str = _setting(
        "", "key that signs session cookies and CSRF tokens; empty: generated once and kept in INSTANCE_DIR/secret_key (mode 0600)"
    )
    instance_dir: str = _setting("instance", "directory for files the server creates itself (the generated secret key)")
    redis_url: str = _setting(
        "",
        "redis://host:port/db: run as one of several processes sharing the chat over Redis pub/sub, with sign-in sessions "
        "and API tokens kept in Redis; empty: this process alone, credentials in the database",
        flag=("--redis", "--redis-url"),
    )
    redis_prefix: str = _setting("chat:", "prefix of every Redis key the server writes")
    allow_guests: bool = _setting(True, "let anyone chat under a name nobody has registered (--no-allow-guests: accounts only)")
    allowed_origins: str = _setting(
        "", "comma-separated origins (https://host[:port]) besides the server's own whose pages may open websockets; * allows any"
    )
    trust_proxy: bool = _setting(False, "trust X-Forwarded-For/-Proto/-Host from one reverse proxy (client address, https, Secure cookies)")
    session_lifetime: float = _setting(14 * 86400.0, "seconds a browser sign-in lasts")
    token_lifetime: float = _setting(86400.0, "seconds an API token from POST /api/token stays valid")
    min_password_length: int = _setting(8, "shortest password accepted at registration")
    rate_limit: float = _setting(20.0, "messages per second one connection may send (token bucket refill rate)")
    rate_burst: int = _setting(40, "messages one connection may send at once before rate_limit applies")
    rate_limit_strikes: int = _setting(
        20, "messages refused as rate_limited before the connection is closed with 1008 (one strike is forgiven per second)"
    )
    max_connections_per_user: int = _setting(10, "websockets one user name may have open at once")
    login_max_failures: int = _setting(5, "failed sign-ins for one name within login_failure_window before its sign-ins are refused")
    login_max_failures_per_address: int = _setting(
        20, "failed sign-ins from one address within login_failure_window before its sign-ins are refused"
    )
    login_failure_window: float = _setting(300.0, "seconds a failed sign-in counts against its name and address")
    # Several processes (chat/delivery.py, chat/bus.py); these apply only with redis_url
    workers: int = _setting(1, "processes to pre-fork, sharing the listening socket (more than 1 needs redis_url)")
    presence_heartbeat: float = _setting(1.0, "seconds between a process's heartbeats in Redis")
    presence_timeout: float = _setting(
        5.0, "seconds without a heartbeat after which a process counts as dead and its users as offline"
    )
    bus_gap_wait: float = _setting(
        0.5, "seconds a message waits for an earlier one the bus has not brought before it is read from the database; "
        "also how often the database is read while Redis is away"
    )
    bus_catch_up_limit: int = _setting(10000, "most missed messages a process delivers live after Redis comes back")
    # Attachments (chat/uploads.py, chat/filetypes.py, chat/images.py): keep this block together
    max_upload_size: int = _setting(5 * 1024 * 1024, "largest file one upload may carry, in bytes; larger ones get HTTP 413")
    upload_types: str = _setting(
        "png,jpeg,gif,webp,pdf,text,zip",
        "kinds of file accepted, judged by content, comma-separated, from: png, jpeg, gif, webp (pictures), pdf, text, zip",
    )
    thumbnail_size: int = _setting(320, "longest side of the thumbnail stored beside each picture, in pixels")
    max_image_pixels: int = _setting(50_000_000, "most pixels a picture may decode to (all frames of an animation together)")
    upload_commit_timeout: float = _setting(10.0, "seconds an upload waits for its chat message to be committed before answering 503")

    def validate(self):
        if not 1 <= self.max_name_length <= 64:
            raise ValueError("max_name_length must be between 1 and 64")
        for name in ("max_message_size", "send_queue_messages", "send_queue_bytes", "write_buffer", "write_batch", "db_pool_size", "bot_inbox"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "rate_burst", "rate_limit_strikes", "max_connections_per_user", "login_max_failures", "login_max_failures_per_address",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("rate_limit", "session_lifetime", "token_lifetime", "login_failure_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        for name in ("workers", "bus_catch_up_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("presence_heartbeat", "presence_timeout", "bus_gap_wait"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        if self.presence_timeout <= 2 * self.presence_heartbeat:
            raise ValueError("presence_timeout must be more than twice presence_heartbeat")
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                f"--workers {self.workers} needs Redis: the processes share the chat over it. Set --redis redis://HOST:PORT/0 "
                "(or CHAT_REDIS_URL), or run one worker"
            )
        if not 1 <= self.min_password_length <= 1024:
            raise ValueError("min_password_length must be between 1 and 1024")
        self._validate_uploads()
        self._validate_history()
        return self

    def _validate_uploads(self):
        from .filetypes import KINDS  # pure module, no import cycle

        if self.max_upload_size < 1:
            raise ValueError("max_upload_size must be at least 1")
        kinds = [k.strip().lower() for k in self.upload_types.split(",") if k.strip()]
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"upload_types: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        if not 16 <= self.thumbnail_size <= 2048:
            raise ValueError("thumbnail_size must be between 16 and 2048")
        if self.max_image_pixels < 1:
            raise ValueError("max_image_pixels must be at least 1")
        if not self.upload_commit_timeout > 0:
            raise ValueError("upload_commit_timeout must be more than 0")


    def _validate_history(self):
        from .history import largest_history_event  # no import cycle: it needs only protocol

        for name in ("history_on_connect", "max_history_page", "max_replay"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.history_frame_bytes < 1024:
            raise ValueError("history_frame_bytes must be at least 1024")
        # A history event is queued only once the queue is empty (chat/history.py): it must fit in it alone.
        needed = largest_history_event(self.history_frame_bytes, self.max_message_size)
        if self.send_queue_bytes < needed:
            raise ValueError(
                f"send_queue_bytes must be at least {needed} with history_frame_bytes {self.history_frame_bytes} and "
                f"max_message_size {self.max_message_size}: one history event must fit (it holds at least one message, "
                "whose text can take 6 times its size: JSON escapes a control character in 6 bytes)"
            )


def env_name(name):
    return "CHAT_" + name.upper()


def flag_names(f):
    """The setting's flags: its own (e.g. --redis, --redis-url) or --the-field-name."""
    flag = f.metadata["flag"]
    if flag is None:
        return ("--" + f.name.replace("_", "-"),)
    return (flag,) if isinstance(flag, str) else tuple(flag)


def _convert(f, raw):
    if f.type in (bool, "bool"):
        return str(raw).strip().lower() in ("1", "true", "yes", "on")
    if f.type in (int, "int"):
        return int(raw)
    if f.type in (float, "float"):
        return float(raw)
    return raw


def load_settings(argv=None, environ=None, **overrides):
    """Defaults, then CHAT_* variables, then flags, then keyword overrides."""
    environ = os.environ if environ is None else environ
    values = {}
    for f in dataclasses.fields(Settings):
        if env_name(f.name) in environ:
            values[f.name] = _convert(f, environ[env_name(f.name)])
    if argv is not None:
        for name, value in vars(build_parser().parse_args(argv)).items():
            if value is not None:
                values[name] = value
    values.update(overrides)
    return Settings(**values).validate()


def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_server.py",
        description="Real-time chat server: group chat and one-to-one messages over WebSocket.",
        epilog="Every flag can also be set with the CHAT_* environment variable shown; flags win.",
    )
    for f in dataclasses.fields(Settings):
        help_text = f"{f.metadata['help']} (env {env_name(f.name)}, default {f.default!r})"
        if f.type in (bool, "bool"):
            # --flag / --no-flag, so a setting that is on by default can be turned off from the command line too
            parser.add_argument(*flag_names(f), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            parser.add_argument(*flag_names(f), dest=f.name, type=kind, default=None, help=help_text)
    return parser
