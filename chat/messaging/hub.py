"""Who is connected, and fan-out: every delivery is one encoded frame put on each recipient's queue."""
from chat.messaging.onlinenames import OnlineNames


class Hub:
    """username -> the set of that user's live clients (tabs, devices), and the bots online here.

    A client is anything with `user` and `deliver(frame, message_id)`; `deliver` must never block.
    A bot is anything with `user` and `take(record)` (a MessageRecord); `take` must never block. Bots are
    online like users but are not connections: they get the messages posted in this process as records,
    not frames, and nothing that other processes relay (a bot runs in every process and answers the
    messages posted in its own, so a message is answered once, not once per process).

    `names` keeps who is online in sorted order (chat/messaging/onlinenames.py): this process's own, or, with several
    processes, the cluster's list (chat/cluster/presence.py), which this hub tells of each local arrival and departure.
    """

    def __init__(self, names=None):
        self._by_user = {}
        self._all = set()
        self._bots = {}  # name -> bot
        self.names = OnlineNames() if names is None else names
        self.opened = 0  # clients ever added
        self.delivered = 0  # message frames handed to clients (counted per fan-out, not per client)

    def add(self, client):
        """Register a client; True when it is the user's first connection (the user came online)."""
        clients = self._by_user.get(client.user)
        first = clients is None
        if first:
            clients = self._by_user[client.user] = set()
            self.names.add(client.user)
        clients.add(client)
        self._all.add(client)
        self.opened += 1
        return first

    def remove(self, client):
        """Unregister a client; True when it was the user's last connection (the user went offline)."""
        self._all.discard(client)
        clients = self._by_user.get(client.user)
        if clients is None or client not in clients:
            return False
        clients.discard(client)
        if clients:
            return False
        del self._by_user[client.user]
        self.names.discard(client.user)
        return True

    def add_bot(self, bot):
        if bot.user not in self._bots:
            self.names.add(bot.user)
        self._bots[bot.user] = bot

    def remove_bot(self, bot):
        if self._bots.pop(bot.user, None) is not None:
            self.names.discard(bot.user)

    def bots(self):
        return tuple(self._bots.values())

    def to_bots(self, record):
        """Hand a message posted in this process to every bot here."""
        for bot in self._bots.values():
            bot.take(record)

    def is_online(self, user):
        return user in self._by_user or user in self._bots

    def online(self):
        return self.names.names()

    def online_page(self, after=None, limit=100):
        """(names online after `after`, at most `limit`, in order; whether more follow) and how many are online."""
        names, more = self.names.page(after, limit)
        return names, more, len(self.names)

    def users(self):
        """The names online in this process, bots included."""
        return self._by_user.keys() | self._bots.keys()

    def connection_count(self):
        """Open client connections (sockets); bots are not connections."""
        return len(self._all)

    def broadcast(self, frame, message_id=None, exclude=None):
        """Deliver to every client but `exclude` (the sending connection).

        No copy of the set: `deliver` never yields or touches the hub, so nothing joins or leaves mid-loop."""
        if message_id is not None:
            self.delivered += len(self._all) - (exclude in self._all)
        for client in self._all:
            if client is not exclude:
                client.deliver(frame, message_id)

    def send_to_user(self, user, frame, message_id=None, exclude=None):
        clients = self._by_user.get(user)
        if clients:
            if message_id is not None:
                self.delivered += len(clients) - (exclude in clients)
            for client in clients:
                if client is not exclude:
                    client.deliver(frame, message_id)

    def notify(self, user, skip_user, frame, exclude=None):
        """A frame that is no message (a read marker, a typing notice): to `user`'s clients, or (user None) to every
        client whose user is not `skip_user`; never to `exclude` nor to bots."""
        if user is not None:
            self.send_to_user(user, frame, None, exclude)
            return
        for client in self._all:
            if client.user != skip_user and client is not exclude:
                client.deliver(frame, None)

    def relay(self, recipient, sender, frame, message_id):
        """Deliver what another process posted: to everyone (recipient None) or to both parties of a direct."""
        if recipient is None:
            self.broadcast(frame, message_id)
            return
        self.send_to_user(recipient, frame, message_id)
        self.send_to_user(sender, frame, message_id)

    def all_clients(self):
        return tuple(self._all)
