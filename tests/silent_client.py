"""A raw-socket websocket client that never answers pings and reads only when told: a slow or dead peer."""
import base64
import os
import socket
import time


class SilentClient:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    @classmethod
    def connect(cls, port, path, rcvbuf=None):
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        client = cls(sock)
        while b"\r\n\r\n" not in client.buffer:
            client.buffer += sock.recv(4096)
        head, client.buffer = client.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        return client

    def _frames(self):
        while len(self.buffer) >= 2:
            b0, b1 = self.buffer[0], self.buffer[1]
            length, offset = b1 & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + length:
                return
            yield b0 & 0x0F, self.buffer[offset:offset + length]
            self.buffer = self.buffer[offset + length:]

    def read_all_frames(self, timeout):
        """Every frame until the server closes the TCP connection: [(opcode, payload)]."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            frames.extend(self._frames())
            if not data:
                return frames
            self.buffer += data

    def read_until_close(self, timeout):
        """Read until a close frame; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        while True:
            for opcode, payload in self._frames():
                if opcode == 0x8:
                    return int.from_bytes(payload[:2], "big"), payload[2:].decode()
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection ended without a close frame")
            self.buffer += data

    def close(self):
        self.sock.close()
