"""gunicorn worker for the chat: gevent, our websocket handler, and an orderly stop (close with 1001, store everything accepted).

    gunicorn -k chat.gunicorn_worker.ChatWebSocketWorker -w 4 --graceful-timeout 15 chat.wsgi:app

Why not gevent-websocket's own `geventwebsocket.gunicorn.workers.GeventWebSocketWorker`: its
handler upgrades every websocket request before the app runs, so our view can no longer refuse a
handshake with an HTTP status, and it never hands us the raw socket (chat/websocket/handler.py). This class
is that worker with our handler, plus what a chat needs when gunicorn stops a worker:

- SIGTERM (gunicorn's graceful stop: the master's SIGTERM, HUP reloads, TTOU): stop accepting at
  once, then the chat service's shutdown: every websocket is closed with 1001 "server shutting
  down" and every accepted message is stored, within min(CHAT_SHUTDOWN_TIMEOUT, graceful timeout
  less MARGIN); then requests still in progress get the rest of that time.
- SIGQUIT / SIGINT (gunicorn's quick stop; Ctrl-C): the same, within QUICK_SHUTDOWN seconds (the
  master kills workers 2 s after a quick stop that follows a graceful one).

gunicorn's stock gevent worker would instead wait only for requests in its pool: a websocket
leaves the pool at the upgrade (its handler greenlet ends; the session lives on in its own
greenlet), so the stock worker exits at once and its sockets are cut without a close frame and
messages not yet committed are lost.
"""
import logging
import os
import sys
import time

import gevent
import gevent.event
from gevent.pool import Pool
from gevent.pywsgi import LoggingLogAdapter
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from gunicorn.errors import AppImportError
from gunicorn.http.wsgi import base_environ
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import VERSION, PyWSGIHandler

from chat import collector
from chat.config import load_settings
from chat.websocket.handler import ChatWebSocketHandler, redact_tokens

log = logging.getLogger("chat.gunicorn")

QUICK_SHUTDOWN = 1.0  # seconds for a quick stop (SIGQUIT/SIGINT): the master may kill us 2 s after it asked
MARGIN = 1.0  # seconds of the graceful timeout kept for killing stuck requests and closing up
NOTIFY_INTERVAL = 1.0  # seconds between heartbeats to the gunicorn master


class GunicornChatHandler(ChatWebSocketHandler, PyWSGIHandler):
    """Our handler (the app decides before the upgrade), with gunicorn's environ keys and access log."""

    def log_request(self):
        if self._upgraded:  # as under run_server.py: a websocket's 101 is not logged
            return
        environ = self.environ
        if "=" in environ.get("QUERY_STRING", ""):  # keep API tokens (?token=, ?%74oken=, ...) out of the access log
            self.environ = dict(
                environ,
                QUERY_STRING=redact_tokens("?" + environ["QUERY_STRING"])[1:],
                RAW_URI=redact_tokens(environ.get("RAW_URI", "")),
            )
        try:
            PyWSGIHandler.log_request(self)  # gunicorn's access log (--access-logfile, --access-logformat)
        finally:
            self.environ = environ


def find_chat_service(wsgi):
    """The ChatService behind the loaded app: the Flask app's, or chat.wsgi's when the app is wrapped in middleware."""
    extensions = getattr(wsgi, "extensions", None)
    if isinstance(extensions, dict) and "chat" in extensions:
        return extensions["chat"]
    module = sys.modules.get("chat.wsgi")
    return getattr(module, "service", None)


class ChatWebSocketWorker(GeventWebSocketWorker):
    """gevent-websocket's gunicorn worker with the chat's handler and an orderly shutdown of the chat service."""

    wsgi_handler = GunicornChatHandler
    chat_service = None
    _quick = False
    _stopping = None

    # ---- loading ----------------------------------------------------------------------------

    def load_wsgi(self):
        """Refuse what cannot work (a preloaded app, several workers without Redis), then import chat.wsgi:app."""
        if self.cfg.preload_app:
            raise AppImportError(
                "chat.gunicorn_worker.ChatWebSocketWorker cannot serve a preloaded app: the chat app must be built in "
                "each worker after gevent's monkey-patching. Run gunicorn without --preload."
            )
        try:
            settings = load_settings()
        except ValueError as e:
            raise AppImportError(f"chat settings (CHAT_* variables): {e}") from None
        if self.cfg.workers > 1 and not settings.redis_url:
            raise AppImportError(
                f"gunicorn -w {self.cfg.workers} needs Redis: the worker processes share the chat over it. Set "
                "CHAT_REDIS_URL=redis://HOST:PORT/0, or run one worker (-w 1)"
            )
        if self.cfg.workers > 1 and settings.metrics and not settings.metrics_dir:
            log.warning(
                "gunicorn -w %d without CHAT_METRICS_DIR: GET /metrics reports only the worker a scrape reaches. Set "
                "CHAT_METRICS_DIR to an empty directory (emptied at each start) for the workers to share", self.cfg.workers,
            )
        # The header and body timeouts of the settings (a class attribute: gunicorn builds one handler per connection).
        self.wsgi_handler = GunicornChatHandler.configured(settings)
        super().load_wsgi()
        self.chat_service = find_chat_service(self.wsgi)
        collector.settle(settings.gc_young_threshold)
        if self.chat_service is None:
            log.warning(
                "no chat service found in the app %r: websockets will not be closed with 1001 nor messages flushed on stop",
                self.wsgi,
            )

    # ---- signals (gunicorn's Worker.init_signals installs these) --------------------------------

    def handle_exit(self, sig, frame):
        """SIGTERM: graceful stop. Runs as a signal handler, perhaps in the hub: only flags and an event here."""
        self.alive = False
        if self._stopping is not None:
            self._stopping.set()

    def handle_quit(self, sig, frame):
        """SIGQUIT/SIGINT: quick stop; still closes the sockets with 1001 and flushes, within QUICK_SHUTDOWN."""
        self._quick = True
        self.alive = False
        gevent.spawn(self.cfg.worker_int, self)  # gunicorn's worker_int hook, out of the signal handler
        if self._stopping is not None:
            self._stopping.set()

    def notify(self):
        # GeventWorker.notify exits the process at once when the master has gone; stop in order instead.
        self.tmp.notify()
        if self.alive and self.ppid != os.getppid():
            log.info("gunicorn master (pid %s) has gone: shutting down worker %s", self.ppid, self.pid)
            self.alive = False

    # ---- the main loop ------------------------------------------------------------------------

    def _make_servers(self):
        """As gunicorn's GeventWorker.run: one pywsgi server per listening socket, with our handler class."""
        ssl_args = {"ssl_context": ssl_context(self.cfg)} if self.cfg.is_ssl else {}
        servers = []
        for s in self.sockets:
            s.setblocking(1)
            environ = base_environ(self.cfg)
            environ.update({"wsgi.multithread": True, "SERVER_SOFTWARE": VERSION})
            server = self.server_class(
                s,
                application=self.wsgi,
                spawn=Pool(self.worker_connections),
                log=self.log,
                error_log=LoggingLogAdapter(self.log, logging.ERROR),
                handler_class=self.wsgi_handler,
                environ=environ,
                **ssl_args,
            )
            server.start()
            servers.append(server)
        return servers

    def run(self):
        self._stopping = gevent.event.Event()
        if not self.alive:  # a signal came while the app was loading
            self._stopping.set()
        servers = self._make_servers()
        while self.alive:
            self.notify()
            self._stopping.wait(NOTIFY_INTERVAL)
        flushed = self._shutdown(servers)
        if not flushed:
            sys.exit(1)

    def _shutdown(self, servers):
        """Stop accepting, shut the chat down in order, then let requests in progress finish; True if all was stored."""
        started = time.monotonic()
        if self._quick:
            budget = min(QUICK_SHUTDOWN, self.cfg.graceful_timeout)
        else:  # gunicorn's master kills the worker graceful_timeout after its SIGTERM; server.stop below may take 1 s
            budget = max(0.5, self.cfg.graceful_timeout - MARGIN)
        for server in servers:
            server.close()  # stop accepting here (on a reload, the master and the new workers keep listening)
        heartbeat = gevent.spawn(self._keep_notifying)  # the master must not take a long flush for a hung worker
        flushed = True
        try:
            service = self.chat_service
            if service is not None:
                timeout = min(service.settings.shutdown_timeout, budget)
                log.info("worker %s: %s stop, closing websockets and storing messages (up to %.1f s)",
                         self.pid, "quick" if self._quick else "graceful", timeout)
                flushed = service.shutdown(timeout)  # 1001 "server shutting down" to every socket; flush the writer
                metrics = getattr(self.wsgi, "extensions", {}).get("chat.metrics")
                if metrics is not None:
                    metrics.flush()  # the other workers' scrapes keep this one's last counts
            # HTTP requests in progress (websockets left the pool at their upgrade) get the rest of the budget.
            deadline = started + budget
            while time.monotonic() < deadline and any(s.pool.free_count() != s.pool.size for s in servers):
                gevent.sleep(0.1)
            for server in servers:
                server.stop(timeout=0)  # kills handlers still running
            if service is not None:
                service.store.close()
                if flushed:
                    log.info("worker %s stopped cleanly in %.2f s", self.pid, time.monotonic() - started)
                else:
                    log.error("worker %s: shutdown timed out with %d messages not stored", self.pid, len(service.writer))
        finally:
            heartbeat.kill(block=False)
        return flushed

    def _keep_notifying(self):
        while True:
            self.tmp.notify()
            gevent.sleep(NOTIFY_INTERVAL)
