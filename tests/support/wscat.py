"""The real `wscat` (npm) driven as a terminal user would: stdin held open, stdout read line by line as JSON events."""
import json
import os
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
