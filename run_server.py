"""Run the chat server: gevent's WSGIServer with our gevent-websocket handler, pages and /ws/<name> on one port.

With --workers N (and --redis), N pre-forked processes share the listening socket and the chat.
"""
from gevent import monkey

monkey.patch_all()

import dataclasses  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent import socket  # noqa: E402
from gevent.pywsgi import LoggingLogAdapter, WSGIServer  # noqa: E402

from chat import collector, create_app  # noqa: E402
from chat.config import load_settings  # noqa: E402
from chat.startup import explain  # noqa: E402
from chat.websocket.handler import ChatWebSocketHandler  # noqa: E402
from chat.store import Store  # noqa: E402

log = logging.getLogger("chat.server")

RESPAWN_DELAY = 1.0  # seconds before a worker that died is replaced
CHILD_POLL = 0.2  # seconds between checks for workers that exited


def listening_socket(settings):
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(settings.backlog)
    return sock


def announce(listener):
    host, port = listener.getsockname()[:2]
    # Tests and scripts wait for this line; it carries the real port when --port 0 was asked for.
    print(
        f"chat server listening on http://{host}:{port}/ (websocket ws://{host}:{port}/ws/NAME); "
        "Ctrl-C or SIGTERM stops it",
        flush=True,
    )


def stop_event():
    """An event set by the first SIGTERM or SIGINT; and the handlers, to cancel in a forked worker."""
    stopping = gevent.event.Event()

    def request_stop(signum):
        if not stopping.is_set():
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            stopping.set()

    handlers = [gevent.signal_handler(signum, request_stop, signum) for signum in (signal.SIGTERM, signal.SIGINT)]
    return stopping, handlers


def serve(settings, listener, announce_ready=True, ready=None):
    """One server process on `listener` until SIGTERM/SIGINT; the exit status. `ready()` is called once it accepts."""
    app = create_app(settings)
    service = app.extensions["chat"]
    server = WSGIServer(
        listener,
        app,
        handler_class=ChatWebSocketHandler.configured(settings),
        log=LoggingLogAdapter(logging.getLogger("chat.access"), logging.DEBUG),
        error_log=LoggingLogAdapter(logging.getLogger("chat.http"), logging.ERROR),
    )
    stopping, _ = stop_event()
    collector.settle(settings.gc_young_threshold)
    server.start()
    log.info("store: %s", service.store.describe())
    if announce_ready:
        announce(listener)
    if ready is not None:
        ready()
    stopping.wait()
    server.close()  # stop accepting
    flushed = service.shutdown(settings.shutdown_timeout)
    metrics = app.extensions.get("chat.metrics")
    if metrics is not None:
        metrics.flush()  # the other workers' scrapes keep this one's last counts
    server.stop(timeout=1)
    service.store.close()
    if not flushed:
        log.error("shutdown timed out with %d messages not stored", len(service.writer))
        return 1
    log.info("stopped cleanly")
    return 0


def prefork(settings, listener):
    """The parent of --workers N: start them, replace any that dies, pass SIGTERM/SIGINT on and wait for them."""
    # The schema once, here, so the workers do not all race to create (or migrate) it.
    store = Store(settings.database_url, pool_size=1, connect_timeout=settings.db_connect_timeout)
    try:
        store.ensure_schema()
    finally:
        store.close()
    settings, made = shared_metrics_dir(settings)
    try:
        return _run_workers(settings, listener)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


def shared_metrics_dir(settings):
    """The workers' settings with a metrics_dir for /metrics to sum them (a private temporary one unless given: the
    files of an earlier run are removed either way), and the directory made here (removed at the end), or None."""
    if not settings.metrics:
        return settings, None
    if settings.metrics_dir:
        for path in glob.glob(os.path.join(settings.metrics_dir, "*.db")):
            os.remove(path)
        return settings, None
    made = tempfile.mkdtemp(prefix="chat-metrics-")
    return dataclasses.replace(settings, metrics_dir=made), made


def _run_workers(settings, listener):
    stopping, handlers = stop_event()
    workers = {}  # pid -> worker number
    ready_read, ready_write = os.pipe()  # each worker writes one byte once it accepts

    def spawn(number):
        pid = os.fork()  # gevent's fork: the child gets a fresh event loop
        if pid == 0:
            for handler in handlers:
                handler.cancel()
            os.close(ready_read)
            code = 1
            try:
                code = serve(settings, listener, announce_ready=False, ready=lambda: os.write(ready_write, b"r"))
            except BaseException:
                log.exception("worker %d failed", number)
            finally:
                logging.shutdown()
                os._exit(code)
        workers[pid] = number
        log.info("worker %d started (pid %d)", number, pid)

    for number in range(1, settings.workers + 1):
        spawn(number)
    _announce_when_ready(listener, ready_read, settings.workers, stopping)
    worst = 0
    deadline = None  # set when the workers are told to stop
    while workers:
        if stopping.wait(CHILD_POLL) and deadline is None:
            deadline = time.monotonic() + settings.shutdown_timeout + 5
            for pid in workers:
                os.kill(pid, signal.SIGTERM)
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if deadline is not None and time.monotonic() > deadline:
                for pid in workers:
                    log.error("worker pid %d did not stop in time: killing it", pid)
                    os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            continue
        number = workers.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        worst = max(worst, abs(code))
        if not stopping.is_set():
            log.error("worker %d (pid %d) exited with %d: starting another in %.0f s", number, pid, code, RESPAWN_DELAY)
            gevent.sleep(RESPAWN_DELAY)
            if not stopping.is_set():
                spawn(number)
    listener.close()
    log.info("all workers stopped")
    return 0 if worst == 0 else 1


def _announce_when_ready(listener, ready_read, count, stopping):
    """Announce once `count` workers said they accept (a respawned worker is not announced again)."""

    def wait_for_workers():
        seen = 0
        while seen < count:
            gevent.socket.wait_read(ready_read)
            data = os.read(ready_read, count - seen)
            if not data:
                return
            seen += len(data)
        log.info("all %d workers accept connections", count)
        announce(listener)

    gevent.spawn(wait_for_workers)


def main(argv=None):
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
    except ValueError as e:
        print(f"run_server.py: error: {e}", file=sys.stderr)
        return 2
    process = " [%(process)d]" if settings.workers > 1 else ""
    logging.basicConfig(level=settings.log_level.upper(), format=f"%(asctime)s %(levelname)s %(name)s{process}: %(message)s")
    try:
        listener = listening_socket(settings)
        if settings.workers == 1:
            return serve(settings, listener)
        return prefork(settings, listener)
    except Exception as e:
        reason = explain(e, settings)
        if reason is None:
            raise
        if settings.log_level.upper() == "DEBUG":
            log.exception("could not start")
        print(f"run_server.py: error: {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
