"""Bots: chat users answered by code. The Bot interface, the registry of bot classes, and choosing which bots run.

The bots package may import chat.messaging, chat.store, chat.websocket and the shared top-level modules."""
import importlib

from chat.names import normalize_name

# Bots that ship with the server, imported only when they are asked for (ELIZA pulls in NLTK).
BUILTIN = {"eliza": "chat.bots.eliza"}

_registry = {}  # name -> Bot subclass, for bots registered with @register


class Bot:
    """One bot. Subclass it, give it a `name`, write `reply`, and decorate the class with @register.

    The runner calls `reply` from the bot's own greenlet, one message at a time, for each direct
    message to the bot and each group message that mentions `@name`. It must not block the
    process (gevent: no CPU-heavy work, no I/O that is not monkey-patched). An exception is
    logged and the bot carries on with the next message.
    """

    name = None  # the bot's user name: a valid, lower-case user name

    def reply(self, user, text, direct):
        """The answer to `text` from `user` (direct: one-to-one, else in the group), or None to stay silent.

        In the group, `text` comes without the `@name` mention, and the answer goes to the group.
        A bot that remembers must keep what it was told in private (`direct`) apart from the group: a private
        conversation is nobody else's, so nothing from it may appear in a group answer.
        """
        raise NotImplementedError

    def forget(self, user):
        """`user` is now someone else (the name changed hands): drop everything remembered about them."""


def register(cls):
    """Class decorator: make a Bot subclass available under its `name`."""
    name = cls.name
    if not isinstance(name, str) or normalize_name(name, 64) != name:
        raise ValueError(f"bot name {name!r} is not a valid lower-case user name")
    if name in _registry and _registry[name] is not cls:
        raise ValueError(f"two bots are named {name!r}")
    _registry[name] = cls
    return cls


def split_names(raw):
    """'eliza, Helper,' -> ['eliza', 'helper']: a comma-separated setting as a list, blanks dropped."""
    return [part.strip().lower() for part in (raw or "").split(",") if part.strip()]


def import_modules(names):
    """Import the modules that register bots (the bot_modules setting)."""
    for module in split_names(names):
        importlib.import_module(module)


def reserved_names():
    """Every name a bot has, running or not: nobody may register or connect as one of these."""
    return frozenset(BUILTIN) | frozenset(_registry)


def bot_class(name):
    """The Bot subclass called `name`; ValueError when there is none."""
    if name not in _registry and name in BUILTIN:
        importlib.import_module(BUILTIN[name])  # registers the bot
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(reserved_names())) or "none"
        raise ValueError(f"unknown bot {name!r} (known bots: {known})") from None


def load_bots(settings):
    """New instances of the bots the settings ask for (`bots`, after importing `bot_modules`)."""
    import_modules(settings.bot_modules)
    names = split_names(settings.bots)
    if len(set(names)) != len(names):
        raise ValueError(f"a bot is named twice in bots={settings.bots!r}")
    for name in names:
        if normalize_name(name, settings.max_name_length) != name:
            raise ValueError(f"bot name {name!r} is longer than max_name_length ({settings.max_name_length})")
    return [bot_class(name)() for name in names]
