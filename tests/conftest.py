"""Pytest set-up: the fixture plugins in tests/support/ (helpers are imported from tests.support, never from test files)."""

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.fixtures_accounts",
    "tests.support.fixtures_browser",
]
