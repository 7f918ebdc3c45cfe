"""Pytest plugin (registered in tests/conftest.py): the fixtures most tests use, from databases to running servers."""
import os
import shutil

import pytest

from tests.support.databases import MYSQL_ADMIN_URL, MySQLDatabases, fresh_database_url, mysql_reachable
from tests.support.mariadb_instance import ThrowawayMariaDB
from tests.support.redis_instance import ThrowawayRedis, redis_binary
from tests.support.polling import wait_until
from tests.support.servers import ROOT, Chat, ServerProcess, health

WSCAT = os.path.join(ROOT, "node_modules", ".bin", "wscat")


def pytest_report_header(config):
    reachable = mysql_reachable()
    return [f"MySQL/MariaDB for store tests: {MYSQL_ADMIN_URL} -> {'reachable' if reachable is True else reachable}"]


@pytest.fixture(scope="session")
def mysql_databases():
    reachable = mysql_reachable()
    if reachable is not True:
        if os.environ.get("CI"):
            pytest.fail(f"MySQL/MariaDB is required in CI but not reachable at {MYSQL_ADMIN_URL}: {reachable}")
        pytest.skip(f"MySQL/MariaDB not reachable at {MYSQL_ADMIN_URL} ({reachable}); set CHAT_TEST_MYSQL_URL to run these")
    dbs = MySQLDatabases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    return fresh_database_url(request, request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'chat.db'}"


@pytest.fixture
def start_server(tmp_path):
    """start_server(database_url, **settings) -> a running ServerProcess, stopped after the test."""
    servers = []
    resume_tokens = {}  # shared: a guest may reconnect to another of the test's processes

    def start(database_url, **settings):
        server = ServerProcess(database_url, tmp_path / f"server{len(servers)}.log", **settings)
        server.resume_tokens = resume_tokens
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server, database_url):
    """A running server on a fresh database of each kind."""
    return start_server(database_url)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def shared_server(request, tmp_path_factory):
    """One running server per store for the whole module (fresh database)."""
    directory = tmp_path_factory.mktemp("shared")
    server = ServerProcess(fresh_database_url(request, request.param, directory), directory / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def clients():
    """Opens ChatClients and closes them after the test: clients(server, name, query='')."""
    opened = []

    def connect(server, name, query="", handshake=True):
        client = server.connect(name, query)
        opened.append(client)
        if handshake:
            client.handshake()
        return client

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def chat(shared_server, clients):
    """Names unique to this test on the module's shared server (see tests.support.servers.Chat)."""
    return Chat(shared_server, clients)


@pytest.fixture
def redis_server(tmp_path):
    """A throwaway redis-server of this test's own, killed after it."""
    if redis_binary() is None:
        reason = "redis-server is not installed (apt-get install redis-server); the multi-process tests start their own"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = ThrowawayRedis(tmp_path / "redis.log").start()
    yield server
    server.kill()


@pytest.fixture
def pair(start_server, database_url, redis_server):
    """Two server processes on one database and one (throwaway) Redis, each counting the other."""
    a, b = (start_server(database_url, redis_url=redis_server.url, bots="") for _ in range(2))
    wait_until(lambda: health(a)["instances"] == 2 and health(b)["instances"] == 2, timeout=10,
               message="both processes to see each other")
    return a, b


@pytest.fixture
def wscat_path():
    """The npm-installed `wscat`, or a skip saying how to get it."""
    if not os.path.exists(WSCAT):
        pytest.skip(f"wscat is not installed at {WSCAT}: run `npm install` in {ROOT} (needs npm)")
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: wscat cannot run")
    return WSCAT


@pytest.fixture
def throwaway_mariadb(tmp_path):
    """A MariaDB server of the test's own, which the test may stop and start (needs_mariadb_binaries)."""
    db = ThrowawayMariaDB(tmp_path / "mariadb").install()
    yield db
    db.stop()
