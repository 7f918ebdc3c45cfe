"""The user-name rule: which names are valid, and their canonical (lower-case) form."""
import re

# The first character is a letter or digit, so "." and ".." (which URL normalisation collapses) are not names.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]*")
NAME_RULE = "letters a-z, digits, '_', '.' and '-', starting with a letter or digit"


def normalize_name(raw, max_length):
    """The canonical (lower-case) user name, or None when `raw` is not a valid name."""
    if not isinstance(raw, str):
        return None
    name = raw.strip().lower()
    if not name or len(name) > max_length or not NAME_PATTERN.fullmatch(name):
        return None
    return name
