"""Bots for the tests only, loaded by a test server with --bot-modules tests.support.chatbots: never available otherwise."""
from chat.bots import Bot, register


@register
class Crasher(Bot):
    """Raises on every message that says "boom"; answers "pong: TEXT" to anything else, so a test can see it still runs."""

    name = "crasher"

    def reply(self, user, text, direct):
        if "boom" in text:
            raise RuntimeError(f"crasher was told to crash by {user}")
        return f"pong: {text}"
