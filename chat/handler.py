"""gevent-websocket's handler, changed so the Flask view decides before the upgrade and then owns the raw socket."""
import base64
import binascii
import io
import re

from gevent.pywsgi import WSGIHandler
from geventwebsocket.handler import WebSocketHandler

from .wire import Connection

ACCEPT_KEY = "chat.accept_websocket"


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
        # websocket lives on in a shallow greenlet (see ws.py).
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
        # API tokens may come as ?token=..., guests' resume tokens as ?resume=...: keep them out of the access log.
        return _TOKEN_IN_QUERY.sub(r"\1\2=REDACTED", super().format_request())


_NO_MORE_INPUT = io.BytesIO(b"")
_TOKEN_IN_QUERY = re.compile(r"([?&])(token|resume)=[^&\s\"]*")


def _discard(data):
    return None
