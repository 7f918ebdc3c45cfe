"""Pytest plugin (registered in tests/conftest.py): account backends and the servers the account and access-control tests share."""
import pytest

from tests.support.servers import ServerProcess
from tests.support.webusers import BACKENDS, make_backend


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """Each place sessions and tokens can live: SQLite, MariaDB, Redis (beside SQLite). Fresh per test."""
    b = make_backend(request, request.param, tmp_path)
    yield b
    b.cleanup()


class _SharedServers:
    """At most one running server per backend for the whole session, started when first asked for."""

    def __init__(self, request, tmp_path_factory):
        self.request = request
        self.tmp_path_factory = tmp_path_factory
        self.servers = {}

    def get(self, kind):
        if kind not in self.servers:
            directory = self.tmp_path_factory.mktemp(f"auth-{kind}")
            b = make_backend(self.request, kind, directory)
            server = ServerProcess(b.database_url, directory / "server.log", **b.settings).start()
            server.backend = b
            self.servers[kind] = server
        return self.servers[kind]

    def close(self):
        for server in self.servers.values():
            server.stop()
            server.backend.cleanup()


@pytest.fixture(scope="session")
def _shared_auth_servers(request, tmp_path_factory):
    servers = _SharedServers(request, tmp_path_factory)
    yield servers
    servers.close()


@pytest.fixture(params=BACKENDS)
def shared_auth_server(request, _shared_auth_servers):
    """A server on each backend, shared by the account and access-control tests (they use unique() names, so they stay
    independent). Narrow it with @pytest.mark.parametrize("shared_auth_server", [...], indirect=True).

    It keeps the default failed-sign-in throttle (20 failures per address in 5 minutes, all from 127.0.0.1 here):
    the tests on it fail only a few sign-ins each. Throttle tests use servers of their own."""
    return _shared_auth_servers.get(request.param)


@pytest.fixture
def start_auth_server(start_server, backend):
    """start_auth_server(**settings): a server on this test's backend."""

    def start(**settings):
        server = start_server(backend.database_url, **backend.settings, **settings)
        server.backend = backend
        return server

    return start
