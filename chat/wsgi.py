"""WSGI entry point for gunicorn: `chat.wsgi:app` with -k chat.gunicorn_worker.ChatWebSocketWorker; settings from CHAT_* variables."""
# The app is built when this module is imported. gunicorn imports it in each worker after the gevent
# worker has monkey-patched (init_process patches, then loads the app), which is what the database
# pool needs: built before patching, DBUtils' pool does not enforce its size. With --preload gunicorn
# would import it in the master, unpatched, before forking (one pool, one Redis connection and one
# writer shared by every worker): that is refused below with an explanation. See docs/deploy.md.
import logging
import os

from gevent import monkey

PRELOAD_REFUSED = (
    "chat.wsgi was imported before gevent monkey-patched this process. The chat app must be built "
    "in each worker after patching: run gunicorn without --preload (preload_app = False) and with "
    "-k chat.gunicorn_worker.ChatWebSocketWorker (see docs/deploy.md). Outside gunicorn, call "
    "gevent.monkey.patch_all() before importing chat.wsgi."
)

if not monkey.is_module_patched("socket"):
    raise RuntimeError(PRELOAD_REFUSED)

from chat.app import create_app  # noqa: E402
from chat.config import load_settings  # noqa: E402


def _configure_logging(settings):
    """The chat's own loggers (chat.*) to stderr at CHAT_LOG_LEVEL, unless gunicorn's --log-config set up the root logger."""
    root = logging.getLogger()
    if root.handlers:
        return
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
    )


settings = load_settings(environ=os.environ)  # CHAT_* variables only: gunicorn's argv is not ours
_configure_logging(settings)
app = create_app(settings)
service = app.extensions["chat"]
logging.getLogger("chat.server").info("store: %s (gunicorn worker pid %d)", service.store.describe(), os.getpid())
