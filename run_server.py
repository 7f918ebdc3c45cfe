"""Run the chat server: gevent's WSGIServer with our gevent-websocket handler, pages and /ws/<name> on one port."""
from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import LoggingLogAdapter, WSGIServer  # noqa: E402

from chat import create_app  # noqa: E402
from chat.config import load_settings  # noqa: E402
from chat.handler import ChatWebSocketHandler  # noqa: E402

log = logging.getLogger("chat.server")


def main(argv=None):
    settings = load_settings(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    service = app.extensions["chat"]
    server = WSGIServer(
        (settings.host, settings.port),
        app,
        handler_class=ChatWebSocketHandler,
        backlog=settings.backlog,
        log=LoggingLogAdapter(logging.getLogger("chat.access"), logging.DEBUG),
        error_log=LoggingLogAdapter(logging.getLogger("chat.http"), logging.ERROR),
    )
    server.start()
    host, port = server.address[:2]
    log.info("store: %s", service.store.describe())
    # Tests and scripts wait for this line; it carries the real port when --port 0 was asked for.
    print(f"chat server listening on http://{host}:{port}/ (websocket ws://{host}:{port}/ws/NAME)", flush=True)

    stopping = gevent.event.Event()

    def request_stop(signum):
        if not stopping.is_set():
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, request_stop, signum)
    stopping.wait()
    server.close()  # stop accepting
    flushed = service.shutdown(settings.shutdown_timeout)
    server.stop(timeout=1)
    service.store.close()
    if not flushed:
        log.error("shutdown timed out with %d messages not stored", len(service.writer))
        return 1
    log.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
