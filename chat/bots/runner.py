"""Running bots: each sits in the hub like one connection of a user, reads a bounded inbox in its own greenlet, and posts like a person."""
import json
import logging
import re
from collections import deque

import gevent
from gevent.event import Event

from chat.websocket import frames
from chat.messaging.protocol import ProtocolError
from chat.store import StoreUnavailable
from chat.ratelimit import TokenBucket
from . import load_bots, reserved_names

log = logging.getLogger("chat.bots")

STOP_TIMEOUT = 1.0  # seconds a bot may take to finish the message in hand at shutdown
MAX_FLOORS_KEPT = 10000  # users whose name floor a bot remembers; a user forgotten here is forgotten by the bot too


def mention_pattern(name):
    """`@name` as a whole word in a message, any case: not inside an address (a@name) nor a longer name (@name-2, @name.x)."""
    return re.compile(r"(?<![\w.-])@" + re.escape(name) + r"(?![\w-])(?!\.\w)", re.IGNORECASE)


def _payload(frame):
    """The text of one outbound websocket text frame (the hub delivers encoded frames)."""
    parsed = frames.FrameParser(len(frame), require_mask=False).feed(bytes(frame))
    return parsed[0] if parsed else ""


class BotClient:
    """One bot's place in the hub: a client with `user` and a `deliver` that never blocks.

    `deliver` keeps the messages that may concern the bot (a direct message to it, or a group
    message that mentions it) in a bounded inbox, dropping the oldest when full; the bot's
    own greenlet answers them in order and posts each reply through ChatService.post, so a
    reply is stored, delivered to every tab and found in history like anyone's message.
    """

    def __init__(self, service, bot, inbox_size):
        self.service = service
        self.bot = bot
        self.user = bot.name
        self._inbox = deque()
        self._inbox_size = inbox_size
        self._wake = Event()
        self._stopping = Event()
        self._bucket = TokenBucket(service.settings.rate_limit, service.settings.rate_burst)  # as for a person's connection
        self._mention = mention_pattern(bot.name)
        self._mention_and_comma = re.compile(self._mention.pattern + r"[,:;]?", re.IGNORECASE)
        # A cheap test on the encoded frame before any decoding: a direct message to the bot holds
        # "name" (as "to"), a mention holds @name; anything else (most group traffic) is skipped here.
        self._may_concern = re.compile(rb'[@"]' + re.escape(bot.name.encode()), re.IGNORECASE).search
        self._greenlet = None
        self.running = False  # in the hub
        self._dropping = False
        self.dropped = 0
        self._floors = {}  # user -> the name's floor when the bot last heard from them

    # ---- the hub's side: never blocks --------------------------------------------------------

    def deliver(self, frame, message_id=None):
        if message_id is None or self._may_concern(frame) is None:
            return  # not a message (presence has no id), or one that cannot concern this bot
        inbox = self._inbox
        if len(inbox) >= self._inbox_size:
            inbox.popleft()
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning("bot %s: inbox full (%d messages), dropping the oldest", self.user, self._inbox_size)
        inbox.append(frame)
        self._wake.set()

    def acknowledge(self, record, ref):
        """ChatService.post acknowledges each message once stored; a bot needs no ack."""

    # ---- the bot's greenlet ------------------------------------------------------------------

    def start(self):
        self.service.hub.add(self, local_only=True)
        self.running = True
        self._greenlet = gevent.spawn(self._run)

    def stop(self):
        """Finish the message in hand (up to STOP_TIMEOUT) and leave the hub."""
        self._stopping.set()
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.join(STOP_TIMEOUT)
            self._greenlet.kill(block=False)
        self.service.hub.remove(self)
        self.running = False

    def _run(self):
        inbox = self._inbox
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            while inbox and not self._stopping.is_set():
                frame = inbox.popleft()
                try:
                    self.handle(_payload(frame))
                except Exception:
                    log.exception("bot %s failed on a message; carrying on", self.user)
            if self._dropping:
                log.warning("bot %s: inbox drained; %d messages dropped so far", self.user, self.dropped)
                self._dropping = False

    def handle(self, text):
        """Answer one delivered event (JSON text) if it is addressed to the bot."""
        request = self.addressed(json.loads(text))
        if request is None:
            return
        user, body, direct = request
        self._forget_earlier_holder(user)
        answer = self.bot.reply(user, body, direct)
        if answer is None or not answer.strip():
            return
        if not direct:
            answer = f"@{user} {answer}"
        while True:
            wait = self._bucket.take()
            if not wait:
                break
            if self._stopping.wait(wait):
                return
        try:
            self.service.post(self, answer, user if direct else None)
        except ProtocolError as e:
            log.warning("bot %s could not answer %s: %s", self.user, user, e.message)

    def _forget_earlier_holder(self, user):
        """A name that changed hands since the bot last heard from it (its floor rose: chat/accounts/holds.py) is someone else now."""
        try:
            floor = self.service.store.name_floor(user)[0]
        except StoreUnavailable:
            return
        known = self._floors.pop(user, None)
        if known is not None and known != floor:
            self.bot.forget(user)
        self._floors[user] = floor  # least recently heard from first
        if len(self._floors) > MAX_FLOORS_KEPT:
            forgotten = next(iter(self._floors))
            del self._floors[forgotten]
            self.bot.forget(forgotten)

    def addressed(self, event):
        """(user, text, direct) when `event` is a message to this bot, else None. Bots do not answer bots."""
        sender = event.get("user")
        if sender == self.user or sender in self.service.bots.names:
            return None
        kind = event.get("type")
        if kind == "direct" and event.get("to") == self.user:
            return sender, event["msg"], True
        if kind == "message" and self._mention.search(event.get("msg", "")):
            return sender, " ".join(self._mention_and_comma.sub(" ", event["msg"]).split()), False
        return None


class BotRunner:
    """The bots of one server: reserved names, starting them in the hub, stopping them at shutdown."""

    def __init__(self, service, bots):
        self.clients = [BotClient(service, bot, service.settings.bot_inbox) for bot in bots]
        self.names = frozenset(client.user for client in self.clients)
        self.reserved = reserved_names() | self.names

    @classmethod
    def start(cls, service):
        """Load the bots the settings name and put them in the hub, online from now on."""
        runner = service.bots = cls(service, load_bots(service.settings))
        for client in runner.clients:
            client.start()
        if runner.clients:
            log.info("bots online: %s", ", ".join(sorted(runner.names)))
        return runner

    @property
    def in_hub(self):
        """How many of the hub's clients are bots (they are not connections)."""
        return sum(1 for client in self.clients if client.running)

    def is_reserved(self, name):
        return name in self.reserved

    def stop(self):
        for client in self.clients:
            client.stop()
