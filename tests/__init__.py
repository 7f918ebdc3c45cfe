"""The test suite (a package, so `tests.support` resolves to these helpers from a fresh clone)."""
