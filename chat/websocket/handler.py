"""gevent-websocket's handler, changed so the Flask view decides before the upgrade and then owns the raw socket."""
import base64
import binascii
import io
import time
from urllib.parse import unquote_plus

import gevent
from gevent.pywsgi import Input, WSGIHandler
from geventwebsocket.handler import WebSocketHandler
from werkzeug.exceptions import RequestTimeout

from chat.websocket.connection import Connection

ACCEPT_KEY = "chat.accept_websocket"

# Every websocket's session is a greenlet for the connection's whole life; by default gevent has each greenlet keep
# records of the ten frames that spawned it and its spawner (~0.6 KB), used only by its debugging dumps.
gevent.config.track_greenlet_tree = False


class HandshakeError(Exception):
    """The upgrade request itself is malformed (HTTP 400/426)."""

    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


def is_websocket_request(environ):
    return (
        environ.get("REQUEST_METHOD") == "GET"
        and environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        and "upgrade" in environ.get("HTTP_CONNECTION", "").lower()
    )


class ChatWebSocketHandler(WebSocketHandler):
    """Runs the WSGI app first for upgrade requests; the view calls `environ[ACCEPT_KEY](settings)` to upgrade.

    gevent-websocket upgrades before the application runs, so it cannot refuse a bad name or
    origin with an HTTP error; and its error bodies are `str`, which gevent rejects.
    """

    _upgraded = False
    # Defaults of http_header_timeout and http_body_timeout; `configured(settings)` gives a class with the settings'.
    header_timeout = 10.0
    body_timeout = 120.0
    _header_timer = None

    @classmethod
    def configured(cls, settings):
        """This handler class with the timeouts from `settings`."""
        timeouts = {"header_timeout": settings.http_header_timeout, "body_timeout": settings.http_body_timeout}
        return type(cls.__name__, (cls,), timeouts)

    def handle_one_request(self):
        # The request line and headers (and, on a kept-alive connection, the wait for them) get header_timeout
        # in all; get_environ() stops the clock once they are in. A client that is late is cut off, not answered.
        timer = self._header_timer = gevent.Timeout(self.header_timeout)
        timer.start()
        try:
            return super().handle_one_request()
        except gevent.Timeout as e:
            if e is not timer:
                raise
            self.close_connection = True
            return None  # handle() closes the socket
        finally:
            timer.close()
            self._header_timer = None

    def get_environ(self):
        if self._header_timer is not None:
            self._header_timer.cancel()
        environ = super().get_environ()
        plain = self.wsgi_input
        if environ["wsgi.input"] is plain:  # not an upgrade: a body may follow, within body_timeout
            self.wsgi_input = environ["wsgi.input"] = DeadlineInput(
                plain.rfile, plain.content_length, plain.socket, plain.chunked_input, time.monotonic() + self.body_timeout
            )
        return environ

    def handle_one_response(self):
        super().handle_one_response()
        body = self.wsgi_input
        if isinstance(body, DeadlineInput) and body.unfinished:
            self.close_connection = True  # the rest of the body is still on its way: the next request cannot be found

    def run_application(self):
        if not is_websocket_request(self.environ):
            return WSGIHandler.run_application(self)
        self._upgraded = False
        self.environ[ACCEPT_KEY] = self._accept
        return WSGIHandler.run_application(self)

    def _accept(self, settings):
        """Validate the handshake, send 101 and return our Connection, which owns a duplicate of the socket."""
        if self.request_version != "HTTP/1.1":
            raise HandshakeError(400, "WebSocket upgrade needs HTTP/1.1")
        version = self.environ.get("HTTP_SEC_WEBSOCKET_VERSION", "")
        if version != "13":
            raise HandshakeError(426, "unsupported Sec-WebSocket-Version; use 13", [("Sec-WebSocket-Version", "13")])
        key = self.environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            raise HandshakeError(400, "missing or invalid Sec-WebSocket-Key")
        self.upgrade_connection()  # gevent-websocket: Sec-WebSocket-Accept and the 101 status
        # We read and write the socket ourselves; stop gevent-websocket's object from ever touching it.
        self.websocket.closed = True
        self.write(b"")  # sends the 101 headers now
        self._upgraded = True
        leftover = self._buffered_bytes()
        # The connection outlives this HTTP handler: it gets its own descriptor, and the handler lets go of
        # the socket, so its greenlet, the WSGI environ and Flask's request context are freed while the
        # websocket lives on in a shallow greenlet (see chat/messaging/routes.py).
        sock = self.socket.dup()
        self.socket = None
        return Connection(sock, settings, leftover)

    def _buffered_bytes(self):
        """Bytes the HTTP reader already took off the socket after the request (a client that did not wait for 101)."""
        self.socket.settimeout(0.0)
        try:
            ready = self.rfile.peek()  # with a zero timeout this never waits
        except OSError:
            ready = b""
        finally:
            self.socket.settimeout(None)
        leftover = self.rfile.read(len(ready)) if ready else b""
        # Nothing reads the HTTP reader after an upgrade; dropping it frees its 8 KiB buffer per connection.
        self.rfile = self.wsgi_input.rfile = self.environ["wsgi.input"] = _NO_MORE_INPUT
        self.websocket.stream = self.websocket.raw_read = self.websocket.raw_write = None
        return leftover

    def start_response(self, status, headers, exc_info=None):
        if self._upgraded:  # the view's dummy response after the socket closed
            return _discard
        return super().start_response(status, headers, exc_info)

    def process_result(self):
        if self._upgraded:
            return
        return super().process_result()

    def log_request(self):
        if not self._upgraded:
            super().log_request()

    def format_request(self):
        # API tokens may come as ?token=..., guests' resume tokens as ?resume=... (or any spelling Werkzeug decodes
        # to either): keep them out of the access log.
        return redact_tokens(super().format_request())


class DeadlineInput(Input):
    """gevent's request body reader, with one deadline for the whole body and a bounded discard of what the app left."""

    __slots__ = ("deadline", "unfinished")
    # After the response, gevent reads and drops the rest of the body so the next request can be read; past this
    # many bytes it is cheaper to close the connection than to read (say) 200 MB nobody wants.
    DISCARD_LIMIT = 256 * 1024

    def __init__(self, rfile, content_length, socket, chunked_input, deadline):
        Input.__init__(self, rfile, content_length, socket=socket, chunked_input=chunked_input)
        self.deadline = deadline
        self.unfinished = False

    def _within_deadline(self, read, length, use_readline):
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.unfinished = True
            raise RequestTimeout("the request body did not arrive in time")
        timer = gevent.Timeout(left)
        timer.start()
        try:
            return read(self, length, use_readline)
        except gevent.Timeout as e:
            if e is not timer:
                raise
            self.unfinished = True
            raise RequestTimeout("the request body did not arrive in time") from None
        finally:
            timer.close()

    def _do_read(self, length=None, use_readline=False):
        return self._within_deadline(Input._do_read, length, use_readline)

    def _chunked_read(self, length=None, use_readline=False):
        return self._within_deadline(Input._chunked_read, length, use_readline)

    def _discard(self):
        if self.unfinished:
            return
        if self.content_length is not None and not self.chunked_input:
            if self.content_length - self.position > self.DISCARD_LIMIT:
                self.unfinished = True
                return
        try:
            discarded = 0
            while discarded <= self.DISCARD_LIMIT:
                data = self.read(16384)
                if not data:
                    return
                discarded += len(data)
            self.unfinished = True
        except RequestTimeout:
            pass


SECRET_PARAMETERS = ("token", "resume")


def redact_tokens(text):
    """`text` (a request line, a URL or a query string) with the value of every `token` or `resume` parameter replaced.

    A parameter counts as a secret when its name decodes to "token" or "resume" the way Werkzeug decodes it (percent-escapes,
    "+"), in any case; each `?` or `&` starts a parameter, so the request line's " HTTP/1.1" stays as it was.
    """
    if "=" not in text:
        return text
    head, mark, query = text.partition("?")
    if not mark:
        return text
    query, space, tail = query.partition(" ")
    pairs = []
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and unquote_plus(name, errors="replace").strip().lower() in SECRET_PARAMETERS:
            pair = f"{name}=REDACTED"
        pairs.append(pair)
    return head + mark + "&".join(pairs) + space + tail


_NO_MORE_INPUT = io.BytesIO(b"")


def _discard(data):
    return None
