"""Running bots: each is online in the hub, takes the messages posted in its process into a bounded inbox, answers them in
its own greenlet, and posts like a person."""
import logging
import re
from collections import deque

import gevent
from gevent.event import Event

from chat.messaging.protocol import ProtocolError
from chat.ratelimit import TokenBucket
from chat.store import StoreUnavailable

log = logging.getLogger("chat.bots")

STOP_TIMEOUT = 1.0  # seconds a bot may take to finish the message in hand at shutdown
MAX_FLOORS_KEPT = 10000  # users whose name floor a bot remembers; a user forgotten here is forgotten by the bot too


def mention_pattern(name):
    """`@name` as a whole word in a message, any case: not inside an address (a@name) nor a longer name (@name-2, @name.x)."""
    return re.compile(r"(?<![\w.-])@" + re.escape(name) + r"(?![\w-])(?!\.\w)", re.IGNORECASE)


class BotClient:
    """One bot in the hub: online under its name, with a `take(record)` that never blocks.

    `take` keeps the messages that may concern the bot (a direct message to it, or a group
    message that mentions it) in a bounded inbox, dropping the oldest when full; the bot's
    own greenlet answers them in order and posts each reply through ChatService.post, so a
    reply is stored, delivered to every tab and found in history like anyone's message.
    `bot_names`: every running bot's name (bots do not answer bots).
    """

    def __init__(self, service, bot, inbox_size, bot_names):
        self.service = service
        self.bot = bot
        self.user = bot.name
        self._bot_names = bot_names
        self._inbox = deque()
        self._inbox_size = inbox_size
        self._wake = Event()
        self._stopping = Event()
        self._bucket = TokenBucket(service.settings.rate_limit, service.settings.rate_burst)  # as for a person's connection
        self._mention = mention_pattern(bot.name)
        self._mention_and_comma = re.compile(self._mention.pattern + r"[,:;]?", re.IGNORECASE)
        self._greenlet = None
        self._dropping = False
        self.dropped = 0
        self._floors = {}  # user -> the name's floor when the bot last heard from them

    # ---- the hub's side: never blocks --------------------------------------------------------

    def take(self, record):
        if self.addressed(record) is None:
            return
        inbox = self._inbox
        if len(inbox) >= self._inbox_size:
            inbox.popleft()
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning("bot %s: inbox full (%d messages), dropping the oldest", self.user, self._inbox_size)
        inbox.append(record)
        self._wake.set()

    def acknowledge(self, record, ref):
        """ChatService.post acknowledges each message once stored; a bot needs no ack."""

    # ---- the bot's greenlet ------------------------------------------------------------------

    def start(self):
        self.service.hub.add_bot(self)
        self._greenlet = gevent.spawn(self._run)

    def stop(self):
        """Finish the message in hand (up to STOP_TIMEOUT) and leave the hub."""
        self._stopping.set()
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.join(STOP_TIMEOUT)
            self._greenlet.kill(block=False)
        self.service.hub.remove_bot(self)

    def _run(self):
        inbox = self._inbox
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            while inbox and not self._stopping.is_set():
                record = inbox.popleft()
                try:
                    self.handle(record)
                except Exception:
                    log.exception("bot %s failed on a message; carrying on", self.user)
            if self._dropping:
                log.warning("bot %s: inbox drained; %d messages dropped so far", self.user, self.dropped)
                self._dropping = False

    def handle(self, record):
        """Answer one message (a MessageRecord) if it is addressed to the bot."""
        request = self.addressed(record)
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

    def addressed(self, record):
        """(user, text, direct) when `record` is a message to this bot, else None. Bots do not answer bots."""
        sender = record.sender
        if sender == self.user or sender in self._bot_names:
            return None
        if record.recipient == self.user:
            return sender, record.body, True
        if record.recipient is None and "@" in record.body and self._mention.search(record.body):
            return sender, " ".join(self._mention_and_comma.sub(" ", record.body).split()), False
        return None


class BotRunner:
    """The bots of one server (chat.bots.load_bots): putting them in the hub, online from start() on."""

    def __init__(self, service, bots):
        self.names = frozenset(bot.name for bot in bots)
        self.clients = [BotClient(service, bot, service.settings.bot_inbox, self.names) for bot in bots]

    def start(self):
        for client in self.clients:
            client.start()
        if self.clients:
            log.info("bots online: %s", ", ".join(sorted(self.names)))
