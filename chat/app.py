"""The composition root: builds every collaborator once, picks the local or cluster delivery, and wires the Flask app."""
import os
import secrets
import socket
from functools import partial
from typing import NamedTuple

from flask import Flask

from chat import pages
from chat.accounts import routes as account_routes
from chat.accounts.credentials import AuthService
from chat.accounts.holds import ServiceFloors, make_holds
from chat.accounts.live import LiveSockets
from chat.accounts.serverbans import ServerBans
from chat.bots import load_bots, reserved_names
from chat.bots.runner import BotRunner
from chat.config import Settings, load_settings
from chat.messaging import routes as chat_routes
from chat.messaging.delivery import LocalDelivery
from chat.messaging.hub import Hub
from chat.messaging.known import KnownUsers
from chat.messaging.presence import PresenceAnnouncer
from chat.messaging.recent import RecentGeneral
from chat.messaging.stream import RecentStream
from chat.messaging.resends import Resends
from chat.messaging.rooms import RoomDirectory
from chat.messaging.roomservice import RoomService
from chat.messaging.search import SearchService
from chat.messaging.service import ChatService
from chat.metrics import routes as metrics_routes
from chat.metrics.exposition import Exporter
from chat.metrics.readings import Sources
from chat.store import Store
from chat.store.accounts import AccountQueries
from chat.store.lifecycle import LifecycleQueries
from chat.store.search import SearchIndexer, SearchQueries
from chat.store.retention import Purger
from chat.uploads import routes as upload_routes
from chat.uploads.routes import Uploads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Chat(NamedTuple):
    """One process's chat, built and started: what the routes and the entry points use."""

    service: ChatService
    auth: AuthService
    bots: BotRunner
    purger: Purger


def build_chat(settings, store=None, instance_id=None):
    """Build and start the chat of this process; call after gevent's monkey-patching (the database pool depends on it)."""
    if store is None:
        store = Store(
            settings.database_url, pool_size=settings.db_pool_size, connect_timeout=settings.db_connect_timeout,
            max_mentions=settings.max_mentions_per_message,
        )
    hub = Hub()
    directory = RoomDirectory()  # every named room's state, folded from the stream by the delivery
    # Guest holds; with one process they also remember what they confirmed, which a kick of the name forgets.
    holds = make_holds(settings, AccountQueries(store))
    live = LiveSockets(on_kick=getattr(holds, "forget", None))  # the sockets admitted here, which a kick closes
    if settings.redis_url:
        # Only here is Redis code imported: one process alone never loads it.
        from chat.cluster.delivery import ClusterDelivery
        from chat.cluster.presence import ClusterPresence

        # Names this process among several (Redis keys, /healthz); unique even if a pid is reused.
        instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        everyone = ClusterPresence(hub)
        presence = PresenceAnnouncer(hub, settings.presence_batch_delay, everyone.is_online, settings.presence_sends_per_second)
        delivery = ClusterDelivery(settings, store, hub, live.close, directory, instance_id, everyone, presence.may_have_changed)
        recent = stream = None
    else:
        presence = PresenceAnnouncer(hub, settings.presence_batch_delay, hub.is_online, settings.presence_sends_per_second)
        # One process delivers every record itself, with its text: general's newest are kept in memory for connects.
        recent = RecentGeneral(settings.history_on_connect)
        stream = RecentStream(settings.recent_records) if settings.recent_records > 0 else None
        delivery = LocalDelivery(settings, store, hub, live.close, directory, recent, stream)
    bots = load_bots(settings)
    # One process alone moves last_seen: it keeps it, and writes names and leaves behind, in batches.
    known = KnownUsers(store, delivery, write_behind=not settings.redis_url, write_interval=settings.users_write_interval)
    rooms = RoomService(settings, directory, delivery, known.is_known)
    bans = ServerBans(AccountQueries(store), delivery.kick)
    if store.dialect.name == "sqlite":  # MariaDB's FULLTEXT index is kept by InnoDB
        SearchIndexer(store, settings.search_index_interval, delivery.settled_below).start()
    search = SearchService(
        settings, SearchQueries(store, delivery.settled_below), rooms, known.is_known, LifecycleQueries(store).current, store.messages_with_ids
    )
    # One process delivers before the commit: a client_id it may not remember is looked up first (chat/messaging/resends.py).
    resends = Resends(settings, store, check_store=not settings.redis_url)
    service = ChatService(
        settings, store, hub, delivery, presence, rooms, known, bans, resends, search=search,
        reserved_names=reserved_names() | {bot.name for bot in bots}, recent=recent, stream=stream,
    )
    service.start()
    runner = BotRunner(service, bots)
    runner.start()
    floors = ServiceFloors(store, delivery, forget=rooms.forget)
    auth = AuthService(settings, store, floors=floors, live=live, kick=delivery.kick, holds=holds)
    auth.start_purging()
    auth.start_holding()
    # Deletes what is older than message_retention_days / upload_retention_days (nothing when both are 0); every
    # process may run it, their batches take turns.
    purger = Purger(settings, store, on_purged=None if recent is None else partial(_purged, recent, stream))
    purger.start()
    return Chat(service, auth, runner, purger)


def _purged(recent, stream, mark):
    """The retention purge deleted the messages below `mark`: what is kept in memory drops them too."""
    recent.purged_below(mark)
    if stream is not None:
        stream.purged_below(mark)


def create_app(settings=None, **overrides):
    """Build the app; call after gevent's monkey-patching (the database pool depends on it)."""
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = Settings(**{**vars(settings), **overrides}).validate()
    app = Flask(__name__, template_folder=os.path.join(ROOT, "templates"), static_folder=os.path.join(ROOT, "static"))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_body  # every body; POST /files sets its own larger limit
    chat = build_chat(settings)
    store = chat.service.store
    app.extensions["chat"] = chat.service
    app.register_blueprint(pages.bp)
    app.register_blueprint(chat_routes.bp)
    account_routes.init_app(app, settings, chat.auth)  # accounts, sessions, tokens, CSRF, security headers
    # POST /files, GET /files/<id>: attachments (after accounts: uses its CSRF)
    uploads = Uploads(settings, store, chat.service)
    upload_routes.init_app(app, settings, store, uploads)
    if settings.metrics:  # GET /metrics; off, the path is not there (404)
        exporter = Exporter(Sources(chat.service, uploads), settings.metrics_dir or None, settings.metrics_flush_interval)
        metrics_routes.init_app(app, exporter)
    if settings.echo_endpoint:
        chat_routes.register_echo(app)
    return app
