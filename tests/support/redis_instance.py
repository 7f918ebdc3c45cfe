"""A throwaway Redis server on its own port, for tests that stop and restart Redis under running chat servers."""
import os
import shutil
import subprocess

from tests.support.servers import free_port


def redis_binary():
    found = shutil.which("redis-server")
    return found or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


class ThrowawayRedis:
    def __init__(self, log_path, port=None):
        self.port = port or free_port()
        self.log_path = log_path
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        """Start it and return once it says it accepts connections."""
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "notice"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        with open(self.log_path, "ab") as log:
            for line in self.proc.stdout:  # blocks until Redis prints it, or exits
                log.write(line)
                if b"Ready to accept connections" in line:
                    break
            else:
                raise RuntimeError(f"redis-server did not start (exit {self.proc.wait()}); see {self.log_path}")
        return self

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()

