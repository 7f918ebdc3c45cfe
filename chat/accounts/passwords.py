"""Which new passwords are refused: too short or long, one of the 30,000 most common, or built from the user's own name."""
import functools
import importlib.util
import os
import re

MAX_PASSWORD_LENGTH = 1024
# Digits and symbols people put around a word ("password1!", "2024dragon"): stripped to find the common word inside.
_DECORATION = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_LEET = str.maketrans("4@310$5!7+", "aaeiossitt")

TOO_COMMON = "This is one of the most common passwords: choose one that others do not use."
TOO_COMMON_DECORATED = "This is a common password with digits or symbols added: choose one that others do not use."
HAS_NAME = "The password must not contain your user name (forwards or backwards)."


@functools.lru_cache(maxsize=1)
def common_passwords():
    """The 30,000 most common passwords of zxcvbn's list (from Xato's corpus of 10 million leaked passwords), lower case.

    zxcvbn (MIT licence, PyPI `zxcvbn`) is the password-strength library Dropbox wrote and keeps this list in; only the
    list is used: the refusal must be explainable in one sentence, which a strength score is not.
    """
    # Only the module with the lists is loaded, and let go once the set is built: the package's own __init__ ranks
    # every dictionary it has (English words, names), which would keep ~17 MB per process.
    package = importlib.util.find_spec("zxcvbn")
    path = os.path.join(package.submodule_search_locations[0], "frequency_lists.py")
    spec = importlib.util.spec_from_file_location("chat_zxcvbn_frequency_lists", path)
    lists = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lists)
    return frozenset(p.lower() for p in lists.FREQUENCY_LISTS["passwords"])


def password_problem(password, name, min_length):
    """None when `password` may be used for the account `name` (already normalised), else the reason, for the user."""
    if not min_length <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"Use {min_length} to {MAX_PASSWORD_LENGTH} characters."
    folded = password.casefold()
    variants = {folded, folded.translate(_LEET), folded.replace(" ", "")}
    if name:
        name = name.casefold()
        reversed_name = name[::-1]
        # Names of one or two characters are inside too many honest passwords to refuse them.
        if len(name) >= 3 and any(name in v or reversed_name in v for v in variants):
            return HAS_NAME
        if any(v in name for v in variants):
            return HAS_NAME
    common = common_passwords()
    if variants & common:
        return TOO_COMMON
    cores = {_DECORATION.sub("", v) for v in variants}
    if any(len(core) >= min(min_length, 6) and core in common for core in cores):
        return TOO_COMMON_DECORATED
    return None
