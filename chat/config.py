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
    recent_records: int = _setting(
        20000, "one process: the newest records of all conversations kept in memory, from which ?since= replays and a "
        "connect's missed directs are answered without the database (0: always from the database)"
    )
    users_write_interval: float = _setting(
        0.5, "one process: seconds between the batched writes of new user names and of the last message each saw"
    )
    gc_young_threshold: int = _setting(
        7000, "container objects allocated between two young collections of Python's cyclic garbage collector (Python's "
        "own default: 700); what exists once the server is up is frozen out of the collections (chat/collector.py)"
    )
    # Conversations (chat/messaging/conversations.py)
    max_unread_count: int = _setting(999, "unread messages counted per conversation at most: the count stops there")
    max_conversations: int = _setting(200, "one-to-one conversations listed per user (the newest); general is always listed")
    # Rooms (chat/messaging/roomservice.py)
    max_rooms: int = _setting(10000, "named rooms the server holds at most; creating more is refused (too_many_rooms)")
    max_rooms_per_user: int = _setting(200, "named rooms one user may be in at once; joining or creating more is refused")
    rooms_created_per_address: int = _setting(
        20, "rooms one client address may create per hour (per server process); more are refused (too_many_rooms)"
    )
    max_topic_length: int = _setting(300, "longest room topic in characters (one line)")
    max_rooms_listed: int = _setting(500, "rooms one rooms event lists at most (general, then the user's, then by name)")
    max_members_listed: int = _setting(1000, "members one members event lists at most (owners and moderators first)")
    max_online_listed: int = _setting(
        100, "names a welcome or who event lists at most (in name order, with the count of everyone online; who pages on with after)"
    )
    # Message lifecycle (chat/messaging/lifecycle.py)
    max_edits: int = _setting(10, "times one message may be edited (by its author); more edits are refused (forbidden)")
    max_reaction_keys: int = _setting(
        20, "different reaction emoji one message may carry; a new one past it is refused (forbidden), adding to one it has is not"
    )
    # Search (chat/messaging/search.py, chat/store/search.py)
    search_max_query_length: int = _setting(200, "longest search text in characters; longer is refused (bad_field)")
    search_max_terms: int = _setting(8, "most different words one search may hold; more is refused (bad_field)")
    search_page: int = _setting(20, "results one search answers with when it names no limit")
    search_max_page: int = _setting(50, "most results one search answers with (a larger limit is lowered to it)")
    search_timeout: float = _setting(
        2.0, "seconds one search may run in the database; a longer one is stopped and refused (search_timeout)"
    )
    search_index_interval: float = _setting(
        1.0, "SQLite: seconds between the batches that add new messages to the search index (a search adds them first too)"
    )
    search_concurrency: int = _setting(
        2, "searches one process runs in the database at once; another waits up to search_timeout, then is refused (search_busy)"
    )
    # Mentions (chat/store/mentions.py)
    max_mentions_per_message: int = _setting(
        20, "distinct @names one message's text is counted as mentioning at most (the first ones written); the rest are not"
    )
    typing_ttl: int = _setting(6, "seconds a client shows a typing notice unless it is repeated (sent as the notice's ttl)")
    typing_interval: float = _setting(
        2.0, "seconds between typing notices one connection may have forwarded per conversation; more are dropped silently"
    )
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
    # Hardening (transport)
    max_connections_per_address: int = _setting(
        64, "websockets one client address may have open at once (the forwarded address with trust_proxy); more get HTTP 429"
    )
    send_queue_total_bytes: int = _setting(
        128 * 1024 * 1024,
        "outbound bytes held for backed-up sockets across all connections; past it the most backed-up are dropped (TCP closed: a close frame behind their backlog would never arrive)",
    )
    max_fragments: int = _setting(1024, "most frames one inbound message may be split into; more are closed with 1009")
    max_request_body: int = _setting(64 * 1024, "largest HTTP request body in bytes outside uploads; larger ones get HTTP 413")
    http_header_timeout: float = _setting(
        10.0, "seconds a client has to send a request line and headers (also how long an idle keep-alive connection stays)"
    )
    http_body_timeout: float = _setting(120.0, "seconds a client has to send a request body once its headers are in")
    presence_batch_delay: float = _setting(0.05, "seconds presence changes are gathered into one event, at least")
    presence_sends_per_second: int = _setting(
        10000, "presence events sent per second to all connections together, at most: with more connections online "
        "than this times presence_batch_delay, changes are gathered longer (10,000 online: one event a second)"
    )
    write_buffer: int = _setting(20000, "messages waiting to be stored before new ones are refused")
    write_batch: int = _setting(500, "most messages stored in one commit")
    # Exactly-once sends (chat/messaging/resends.py, chat/store/sent.py)
    client_id_window: float = _setting(
        86400.0,
        "seconds a message's client_id is remembered: sent again within it (on any connection or process), the message "
        "is answered with its first ack and stored and delivered once",
    )
    client_id_memory: int = _setting(
        20000, "client_ids of stored messages each process keeps in memory at most (the database keeps the rest)"
    )
    # Hardening (parser)
    write_refusal_retries: int = _setting(
        3, "times a batch the database fails while it still answers pings is retried before it is split to find the "
        "message it refuses, which is refused to its sender with not_stored (the others are stored)"
    )
    writer_restart_delay: float = _setting(1.0, "seconds before a message writer that stopped is restarted (/healthz says degraded meanwhile)")
    db_pool_size: int = _setting(8, "database connections in the pool")
    db_connect_timeout: float = _setting(3.0, "seconds to wait for a database connection")
    shutdown_timeout: float = _setting(10.0, "seconds a SIGTERM/SIGINT shutdown may take to flush and close")
    bots: str = _setting("eliza", "bots to run, comma-separated (an empty value turns bots off); bot names are reserved")
    bot_modules: str = _setting("", "modules to import for the bots they register (comma-separated), e.g. mybots")
    bot_inbox: int = _setting(100, "messages waiting for a bot's answer before the oldest are dropped")
    echo_endpoint: bool = _setting(False, "mount /echo, a raw echo socket on the chat's websocket layer (tests only)")
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    # Accounts and security (chat/accounts/, chat/security.py)
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
    # Hardening (names)
    guest_hold: float = _setting(
        3600.0,
        "seconds a guest keeps its name after its last socket closed: meanwhile only its resume token opens the name; "
        "after it, the next guest takes the name and sees none of the earlier guest's direct messages",
    )
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
    login_max_failures: int = _setting(
        5, "failed sign-ins for one name from one address within login_failure_window before that address may not try it"
    )
    login_max_failures_per_address: int = _setting(
        20, "failed sign-ins from one address within login_failure_window before its sign-ins are refused"
    )
    login_failure_window: float = _setting(300.0, "seconds a failed sign-in counts against its name and address")
    # Hardening (signin)
    login_max_failures_per_name: int = _setting(
        50, "failed sign-ins for one name from all addresses within login_failure_window before that name's sign-ins are "
        "refused, except from addresses that signed in to it successfully within login_known_address_lifetime"
    )
    login_known_address_lifetime: float = _setting(
        30 * 86400.0, "seconds an address that signed in successfully stays exempt from its name's login_max_failures_per_name"
    )
    login_rate_per_address: int = _setting(
        20, "sign-ins, token requests and registrations (right or wrong) one address may make in any 60 seconds"
    )
    password_hash_concurrency: int = _setting(
        1, "password hashes (scrypt, ~0.1 s of CPU each) one process computes at once; the chat keeps the other cores"
    )
    password_hash_queue: int = _setting(
        16, "sign-ins waiting for a password hash before further ones are refused with 503 and Retry-After"
    )
    # Several processes (chat/messaging/delivery.py, chat/cluster/bus.py); these apply only with redis_url
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
    # Attachments (chat/uploads/routes.py, chat/uploads/filetypes.py, chat/uploads/images.py): keep this block together
    max_upload_size: int = _setting(5 * 1024 * 1024, "largest file one upload may carry, in bytes; larger ones get HTTP 413")
    upload_types: str = _setting(
        "png,jpeg,gif,webp,pdf,text,zip",
        "kinds of file accepted, judged by content, comma-separated, from: png, jpeg, gif, webp (pictures), pdf, text, zip",
    )
    thumbnail_size: int = _setting(320, "longest side of the thumbnail stored beside each picture, in pixels")
    max_image_pixels: int = _setting(
        40_000_000,
        "most pixels a picture may decode to (all frames of an animation together); each decode takes up to 12 bytes a pixel",
    )
    upload_commit_timeout: float = _setting(10.0, "seconds an upload waits for its chat message to be committed before answering 503")
    # Hardening (uploads)
    image_decode_concurrency: int = _setting(
        1, "pictures decoded at once; memory for decoding stays under this x max_image_pixels x 12 bytes (480 MB by default)"
    )
    image_decode_wait: float = _setting(
        10.0, "seconds an upload waits for a free decode slot before it is answered 503 with Retry-After"
    )
    upload_rate: float = _setting(12.0, "uploads per minute one user may make (token bucket refill rate); more get HTTP 429")
    upload_burst: int = _setting(5, "uploads one user may make at once before upload_rate applies")
    upload_quota_per_day: int = _setting(
        100 * 1024 * 1024, "bytes one user may upload per day (UTC, counted in the database across processes); more get HTTP 413"
    )
    upload_total_bytes: int = _setting(
        10 * 1024 * 1024 * 1024, "bytes of files the server stores in all, for everyone; past it uploads get HTTP 507"
    )
    public_url: str = _setting(
        "", "the chat's public address (https://chat.example.com) for the links it writes into messages; empty: "
        "server-relative links (/files/27), never built from a request's Host header"
    )
    # Metrics (chat/metrics/)
    metrics: bool = _setting(True, "serve GET /metrics (Prometheus text format); --no-metrics: 404")
    metrics_token: str = _setting(
        "", "bearer token that lets clients other than loopback read /metrics; empty: loopback only"
    )
    metrics_dir: str = _setting(
        "", "directory where each worker process writes its metrics for /metrics to sum; run_server.py --workers makes a "
        "private one when empty; gunicorn with several workers needs one (an empty directory, emptied at each start)"
    )
    metrics_flush_interval: float = _setting(
        1.0, "seconds between a worker's writes of its metrics to metrics_dir (what another worker's scrape sees)"
    )
    # Retention (chat/store/retention.py): keep this block together
    message_retention_days: float = _setting(
        0.0, "days a message is kept; older ones are purged with their edits, reactions and files (room membership and "
        "topic events never are); 0 keeps messages forever"
    )
    upload_retention_days: float = _setting(
        0.0, "days an uploaded file is kept; older files are deleted (GET answers 410, their message stays as text); 0 keeps files forever"
    )
    retention_interval: float = _setting(3600.0, "seconds between purges (the first runs at start) when a retention setting is not 0")
    retention_batch: int = _setting(
        500, "messages or files one purge transaction deletes at most; a purge runs batch after batch until it is done"
    )
    retention_pause: float = _setting(0.05, "seconds a purge waits between two batches, so a big purge never starves the chat")

    def validate(self):
        if not 1 <= self.max_name_length <= 64:
            raise ValueError("max_name_length must be between 1 and 64")
        for name in ("max_message_size", "send_queue_messages", "send_queue_bytes", "write_buffer", "write_batch", "db_pool_size", "bot_inbox",
                     "client_id_memory"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "rate_burst", "rate_limit_strikes", "max_connections_per_user", "login_max_failures", "login_max_failures_per_address",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("rate_limit", "session_lifetime", "token_lifetime", "login_failure_window", "client_id_window"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        for name in ("workers", "bus_catch_up_limit"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("presence_heartbeat", "presence_timeout", "bus_gap_wait", "metrics_flush_interval", "search_index_interval",
                     "users_write_interval", "ping_interval", "ping_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        if self.metrics_token != self.metrics_token.strip() or any(c.isspace() for c in self.metrics_token):
            raise ValueError("metrics_token must not contain spaces: it is sent as Authorization: Bearer TOKEN")
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
        self._validate_signin()
        self._validate_names()
        self._validate_parser()
        self._validate_transport()
        self._validate_history()
        self._validate_conversations()
        self._validate_retention()
        return self

    def _validate_conversations(self):
        for name in (
            "max_unread_count", "max_conversations", "typing_ttl", "max_rooms", "max_rooms_per_user", "max_topic_length", "rooms_created_per_address",
            "max_rooms_listed", "max_members_listed", "max_online_listed",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.typing_interval >= 0:
            raise ValueError("typing_interval must be at least 0")
        if self.max_edits < 0:
            raise ValueError("max_edits must be at least 0")
        if self.max_reaction_keys < 1:
            raise ValueError("max_reaction_keys must be at least 1")
        for name in ("search_max_query_length", "search_max_terms", "search_page", "search_max_page", "search_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.search_page > self.search_max_page:
            raise ValueError("search_page must be at most search_max_page")
        if not 0 < self.search_timeout <= 600:
            raise ValueError("search_timeout must be more than 0 and at most 600 seconds")
        if not 0 <= self.max_mentions_per_message <= 1000:
            raise ValueError("max_mentions_per_message must be between 0 and 1000")

    def _validate_signin(self):
        for name in ("login_max_failures_per_name", "login_rate_per_address", "password_hash_concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.password_hash_queue < 0:
            raise ValueError("password_hash_queue must be at least 0")
        if not self.login_known_address_lifetime > 0:
            raise ValueError("login_known_address_lifetime must be more than 0")

    def _validate_names(self):
        if not 1.0 <= self.guest_hold <= 30 * 86400:
            raise ValueError("guest_hold must be between 1 second and 30 days")

    def _validate_transport(self):
        for name in ("max_connections_per_address", "send_queue_total_bytes", "max_fragments", "max_request_body"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("http_header_timeout", "http_body_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        if self.send_queue_total_bytes < self.send_queue_bytes:
            raise ValueError("send_queue_total_bytes must be at least send_queue_bytes")

    def _validate_uploads(self):
        from chat.uploads.filetypes import KINDS  # pure module, no import cycle

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
        for name in ("image_decode_concurrency", "upload_burst", "upload_quota_per_day", "upload_total_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("image_decode_wait", "upload_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        self.public_url = self.public_url.strip().rstrip("/")
        if self.public_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
                raise ValueError(f"public_url must be http(s)://host[:port][/path], e.g. https://chat.example.com; got {self.public_url!r}")

    def _validate_retention(self):
        for name in ("message_retention_days", "upload_retention_days", "retention_pause"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be at least 0 (0 keeps everything)" if "days" in name else f"{name} must be at least 0")
        if not self.retention_interval > 0:
            raise ValueError("retention_interval must be more than 0")
        if self.retention_batch < 1:
            raise ValueError("retention_batch must be at least 1")

    def _validate_parser(self):
        if self.write_refusal_retries < 0:
            raise ValueError("write_refusal_retries must be at least 0")
        if not self.writer_restart_delay > 0:
            raise ValueError("writer_restart_delay must be more than 0")


    def _validate_history(self):
        from chat.messaging.history import largest_history_event  # no import cycle: it needs only protocol

        for name in ("history_on_connect", "max_history_page", "max_replay"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.recent_records <= 10_000_000:
            raise ValueError("recent_records must be between 0 and 10000000")
        if self.presence_sends_per_second < 1:
            raise ValueError("presence_sends_per_second must be at least 1")
        if not 100 <= self.gc_young_threshold <= 1_000_000:
            raise ValueError("gc_young_threshold must be between 100 and 1000000")
        if self.history_frame_bytes < 1024:
            raise ValueError("history_frame_bytes must be at least 1024")
        # A history event is queued only once the queue is empty (chat/messaging/history.py): it must fit in it alone.
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
