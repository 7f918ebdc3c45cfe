"""A minimal raw WebSocket client over a plain socket, for sending frames no well-behaved client library would send.

The HTTP upgrade is done by hand, so the raw status line of a refused handshake can be checked too.
"""
import base64
import hashlib
import json
import os
import socket
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def mask_payload(payload, mask):
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length=None, mask_key=None):
    """One client frame. `length` overrides the declared payload length (to lie about it); `rsv` is 0-7."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | opcode
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return header + payload
    key = mask_key or os.urandom(4)
    return header + key + mask_payload(payload, key)


class HttpResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def upgrade_request(path, port, key=None, extra_headers=(), version="13"):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
        *extra_headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), key


class RawWebSocket:
    """A socket after (or refused at) the upgrade. Reads are bounded by `timeout`."""

    def __init__(self, sock, buffered=b""):
        self.sock = sock
        self.buf = bytearray(buffered)

    @classmethod
    def open_http(cls, port, path, timeout=10.0, extra_headers=(), version="13", rcvbuf=None):
        """Send the upgrade request; returns (RawWebSocket, HttpResponse). The body is read only for non-101 answers.

        `rcvbuf` shrinks the receive buffer, for a client that is to fall behind quickly."""
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        request, key = upgrade_request(path, port, extra_headers=extra_headers, version=version)
        sock.sendall(request)
        raw = cls(sock)
        head = raw._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        status = int(status)
        if status == 101:
            expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            assert headers.get("sec-websocket-accept") == expected, headers
        elif "content-length" in headers:
            body = raw._read_exact(int(headers["content-length"]))
        return raw, HttpResponse(status, reason[0] if reason else "", headers, body)

    @classmethod
    def connect(cls, port, path, timeout=10.0, rcvbuf=None):
        raw, response = cls.open_http(port, path, timeout, rcvbuf=rcvbuf)
        assert response.status == 101, (response.status, response.body)
        return raw

    # ---- reading ---------------------------------------------------------------------------

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv_frame(self):
        """(fin, opcode, payload) of the next server frame; server frames must be unmasked."""
        b0, b1 = self._read_exact(2)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._read_exact(n)

    def recv_event(self):
        """The next text frame, as JSON (skipping pings and pongs)."""
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode in (OP_PING, OP_PONG):
                continue
            assert fin and opcode == OP_TEXT, (fin, opcode, payload)
            return json.loads(payload)

    def recv_type(self, *types):
        while True:
            event = self.recv_event()
            if event["type"] in types:
                return event
            assert event["type"] == "presence", f"expected {types}, got {event}"

    def handshake(self):
        return self.recv_type("welcome"), self.recv_type("history")

    def recv_close(self):
        """Skip to the server's close frame; returns (code, reason)."""
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return code, payload[2:].decode("utf-8")

    def finish_close(self, code=1000):
        """Answer the server's close frame, as a client must; True when the server then ends the TCP connection."""
        try:
            self.send_frame(OP_CLOSE, code.to_bytes(2, "big"))
        except OSError:
            pass  # the server may have closed its side completely already
        return self.at_eof()

    def frames_until_eof(self):
        """[(opcode, payload)] of every frame until the server ends the TCP connection."""
        frames = []
        while True:
            try:
                _, opcode, payload = self.recv_frame()
            except (EOFError, ConnectionResetError):
                return frames
            frames.append((opcode, payload))

    def at_eof(self):
        """True when the server has closed the TCP connection (after anything still buffered)."""
        try:
            while True:
                self._fill()
        except EOFError:
            return True
        except OSError:
            return True

    # ---- writing ---------------------------------------------------------------------------

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kwargs):
        self.sock.sendall(build_frame(opcode, payload, **kwargs))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def origin(server):
    """The Origin header of a page served by `server` itself (allowed): a browser's handshake."""
    return f"Origin: {server.http_url}"


def terminal_refusal(port, path, **kwargs):
    """(close code, reason) of a handshake without Origin that the server refuses: upgraded, then closed at once
    (docs/protocol.md, Who may connect). Answers the close as a client must."""
    raw, response = RawWebSocket.open_http(port, path, **kwargs)
    try:
        assert response.status == 101, (response.status, response.body)
        code, reason = raw.recv_close()
        raw.finish_close(code)
        return code, reason
    finally:
        raw.sock.close()
