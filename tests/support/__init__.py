"""Helpers shared by the tests (a library, not tests); the fixtures are in the fixtures*.py plugin modules."""
