"""What an operator sees when the server cannot start: one line naming the setting to fix, exit status 2, the traceback
only with --log-level DEBUG; and the listening line, which says how to stop the server and, with --workers, comes once
every worker accepts."""
import os
import socket
import subprocess
import sys
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.databases import MYSQL_ADMIN_URL, mysql_params
from tests.support.servers import free_port
from tests.support.webusers import REDIS_URL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "run_server.py", "--port", str(free_port()), "--db-connect-timeout", "2", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def mysql_url(user=None, password=None, port=None, database=None):
    """The test server's URL with some of its parts replaced."""
    p = mysql_params(MYSQL_ADMIN_URL)
    user = user or p["user"]
    password = p["password"] if password is None else password
    auth = user + (":" + password if password else "")
    path = urlsplit(MYSQL_ADMIN_URL).path if database is None else "/" + database
    return urlunsplit(("mysql", f"{auth}@{p['host']}:{port or p['port']}", path, "", ""))


def one_line_refusal(result, *expected):
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("run_server.py: error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert "listening on" not in result.stdout
    return lines[0]


CASES = {
    "access denied": (lambda: mysql_url(user="nobody_here", password="wrong"), ["refused user 'nobody_here'", "--database", "CHAT_DATABASE_URL"]),
    "unknown database": (lambda: mysql_url(database="chat_no_such_db_x"), ["no database 'chat_no_such_db_x'", "CREATE DATABASE", "--database"]),
    "unreachable": (lambda: mysql_url(port=1), ["cannot reach MySQL", ":1", "--database"]),
    "sqlite path": (lambda: "sqlite:////nonexistent-dir/sub/chat.db", ["cannot open the SQLite database '/nonexistent-dir/sub/chat.db'", "--database"]),
    "bad url": (lambda: "postgres://x/y", ["unsupported database URL scheme 'postgres'", "--database"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_database_that_cannot_be_used_is_one_line_naming_the_setting(case):
    url, expected = CASES[case]
    one_line_refusal(start("--database", url()), *expected)


@pytest.mark.parametrize("case", ["access denied", "sqlite path"])
def test_with_several_workers_the_parent_says_it_the_same_way(case):
    url, expected = CASES[case]
    one_line_refusal(start("--database", url(), "--workers", "2", "--redis", REDIS_URL), *expected)


def test_a_port_in_use_is_one_line_naming_the_setting(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "run_server.py", "--port", str(port), "--database", f"sqlite:///{tmp_path / 'c.db'}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    finally:
        taken.close()
    one_line_refusal(result, f"port {port} on 127.0.0.1 is in use", "--port", "CHAT_PORT")


def test_the_traceback_is_there_with_debug_logging():
    result = start("--database", mysql_url(database="chat_no_such_db_x"), "--log-level", "DEBUG")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("run_server.py: error: MySQL at")


def test_the_listening_line_says_how_to_stop_and_comes_once_every_worker_accepts(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "run_server.py", "--port", str(port), "--database", f"sqlite:///{tmp_path / 'c.db'}",
         "--workers", "3", "--redis", REDIS_URL, "--redis-prefix", f"startup{port}:", "--bots", ""],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"chat server listening on http://127.0.0.1:{port}/"), line
        assert "Ctrl-C or SIGTERM stops it" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "listening on" not in out, "announced twice"
    assert proc.returncode == 0, err[-2000:]
    # Every worker logs its store once it serves, before it tells the parent; the parent said "all accept" after all three.
    lines = err.splitlines()
    serving = [i for i, text in enumerate(lines) if "chat.server [" in text and ": store: " in text]
    (accepting,) = [i for i, text in enumerate(lines) if "all 3 workers accept connections" in text]
    assert len(serving) == 3 and max(serving) < accepting, err


@pytest.mark.parametrize(
    "setting, value",
    [("ping_timeout", 0), ("ping_interval", -1), ("users_write_interval", 0), ("recent_records", -1), ("recent_records", 10**8),
     ("gc_young_threshold", 99), ("gc_young_threshold", 10**7), ("presence_sends_per_second", 0)],
)
def test_a_setting_out_of_its_range_is_refused_by_name(setting, value):
    from chat.config import Settings

    with pytest.raises(ValueError, match=setting):
        Settings(**{setting: value}).validate()
