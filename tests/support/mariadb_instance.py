"""A throwaway MariaDB server on its own port and data directory, for tests that stop and restart the database."""
import os
import shutil
import subprocess

import pymysql
import pytest

from tests.support.polling import wait_until
from tests.support.servers import free_port


def mariadb_binaries():
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    server = shutil.which("mariadbd") or ("/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else None)
    return install, server


class ThrowawayMariaDB:
    def __init__(self, base_dir):
        self.base_dir = str(base_dir)
        self.datadir = os.path.join(self.base_dir, "data")
        self.socket = os.path.join(self.base_dir, "mysqld.sock")
        self.port = free_port()
        self.proc = None
        self.install_bin, self.server_bin = mariadb_binaries()

    @property
    def url(self):
        return f"mysql://root@127.0.0.1:{self.port}/chat"

    def install(self):
        subprocess.run(
            [self.install_bin, "--no-defaults", f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
             "--user=root", "--skip-test-db"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )
        self.start()
        conn = self.connect(database=None)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE chat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        conn.close()
        return self

    def start(self):
        self._log = open(os.path.join(self.base_dir, "mariadb.log"), "ab")
        self.proc = subprocess.Popen(
            [self.server_bin, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}", f"--socket={self.socket}",
             "--user=root", "--bind-address=127.0.0.1", "--innodb-buffer-pool-size=32M", "--skip-log-bin"],
            stdout=self._log, stderr=self._log,
        )
        wait_until(self._accepts_queries, timeout=60, interval=0.1, message="the throwaway MariaDB to accept queries")

    def _accepts_queries(self):
        try:
            self.connect(database=None).close()
            return True
        except pymysql.err.OperationalError:
            if self.proc.poll() is not None:
                raise RuntimeError(f"throwaway MariaDB exited ({self.proc.returncode}) before it accepted queries")
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)

    def connect(self, database="chat"):
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=database,
                               charset="utf8mb4", connect_timeout=2)

    def query(self, sql, params=()):
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()


# Tests that stop and start a database of their own (the throwaway_mariadb fixture) need its binaries.
needs_mariadb_binaries = pytest.mark.skipif(
    None in mariadb_binaries(), reason="mariadb-install-db/mariadbd not installed: cannot run a throwaway MariaDB"
)
