"""chat/names.py, the user-name rule, on its own: which names are valid and how they are normalised."""
import pytest

from chat.names import normalize_name


@pytest.mark.parametrize("raw,name", [("alice", "alice"), ("Alice", "alice"), ("a.b-c_d", "a.b-c_d"), ("x" * 32, "x" * 32), ("007", "007")])
def test_valid_names(raw, name):
    assert normalize_name(raw, 32) == name


@pytest.mark.parametrize("raw", ["", " ", "a b", "<script>", "../x", "a/b", "x" * 33, "é", ".", "..", "-", "_x", None, 5])
def test_invalid_names(raw):
    assert normalize_name(raw, 32) is None
