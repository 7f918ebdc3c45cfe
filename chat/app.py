"""The application factory: settings, store, chat service and blueprints."""
import os
import secrets
import socket

from flask import Flask

from chat.bots.runner import BotRunner
from chat.config import Settings, load_settings
from chat.messaging.service import ChatService
from chat.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def create_app(settings=None, **overrides):
    """Build the app; call after gevent's monkey-patching (the database pool depends on it)."""
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = Settings(**{**vars(settings), **overrides}).validate()
    app = Flask(__name__, template_folder=os.path.join(ROOT, "templates"), static_folder=os.path.join(ROOT, "static"))
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_body  # every body; POST /files sets its own larger limit
    store = Store(settings.database_url, pool_size=settings.db_pool_size, connect_timeout=settings.db_connect_timeout)
    # Names this process among several (Redis keys, /healthz); unique even if a pid is reused.
    instance_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    service = ChatService(settings, store, instance_id)
    service.start()
    BotRunner.start(service)
    app.extensions["chat"] = service

    from chat.accounts import routes as accounts
    from chat.uploads import routes as uploads
    from chat import pages as views
    from chat.messaging import routes as ws

    app.register_blueprint(views.bp)
    app.register_blueprint(ws.bp)
    accounts.init_app(app, settings, store)  # accounts, sessions, tokens, CSRF, security headers
    uploads.init_app(app, settings, store)  # POST /files, GET /files/<id>: attachments (after accounts: uses its CSRF)
    if settings.echo_endpoint:
        ws.register_echo(app)
    return app
