"""The real `wscat` (npm) driven as a terminal user would: stdin held open, stdout read line by line as JSON events."""
import json
import os
import pty
import re
import select
import queue
import subprocess
import threading
import time

WAIT = 10.0


class Wscat:
    """`wscat -c URL` with stdin held open by us (wscat quits when its stdin closes) and stdout read line by line."""

    def __init__(self, path, url):
        self.proc = subprocess.Popen(
            [path, "-c", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, NO_COLOR="1", FORCE_COLOR="0"),
        )
        self.lines = queue.Queue()
        self.output = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in iter(self.proc.stdout.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def send_line(self, text):
        self.proc.stdin.write(text.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def expect(self, predicate, timeout=WAIT):
        """The first JSON event wscat prints that satisfies `predicate` (non-JSON output and other events are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"wscat did not print the expected event within {timeout}s; output: {''.join(self.output)!r}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"wscat exited ({self.proc.poll()}); output: {''.join(self.output)!r}")
            self.output.append(line)
            start = line.find("{")  # wscat may put its "> " prompt in front
            if start < 0:
                continue
            try:
                event = json.loads(line[start:])
            except ValueError:
                continue
            if predicate(event):
                return event

    def quit(self):
        try:
            self.proc.stdin.close()  # wscat quits when its stdin closes
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wscat_on_a_terminal(wscat_path, url, timeout=20):
    """What wscat shows on a terminal (a pseudo-terminal here) until the server disconnects it, colours removed."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([wscat_path, "-c", url], stdin=terminal, stdout=terminal, stderr=terminal, env=dict(os.environ, NO_COLOR="1"))
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while b"Disconnected" not in shown or not shown.rstrip().endswith(b">"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([controller], [], [], remaining)[0]:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: wscat exited
                break
            if not chunk:
                break
            shown += chunk
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.close(controller)
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", shown.decode("utf-8", "replace"))
