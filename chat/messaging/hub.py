"""Who is connected, and fan-out: every delivery is one encoded frame put on each recipient's queue."""


class Hub:
    """username -> the set of that user's live clients (tabs, devices).

    A client is anything with `user` and `deliver(frame, message_id)`; `deliver` must never block.
    """

    def __init__(self):
        self._by_user = {}
        self._all = set()
        self._local_only = set()  # clients (bots) that only take messages posted in this process

    def add(self, client, local_only=False):
        """Register a client; True when it is the user's first connection (the user came online).

        A `local_only` client is not sent what other processes relay: a bot runs in every process and
        answers the messages posted in its own, so a message is answered once, not once per process."""
        if local_only:
            self._local_only.add(client)
        clients = self._by_user.get(client.user)
        first = clients is None
        if first:
            clients = self._by_user[client.user] = set()
        clients.add(client)
        self._all.add(client)
        return first

    def remove(self, client):
        """Unregister a client; True when it was the user's last connection (the user went offline)."""
        self._all.discard(client)
        self._local_only.discard(client)
        clients = self._by_user.get(client.user)
        if clients is None or client not in clients:
            return False
        clients.discard(client)
        if clients:
            return False
        del self._by_user[client.user]
        return True

    def is_online(self, user):
        return user in self._by_user

    def online(self):
        return sorted(self._by_user)

    def users(self):
        """The names online in this process (a live view)."""
        return self._by_user.keys()

    def connection_count(self):
        return len(self._all)

    def broadcast(self, frame, message_id=None, exclude=None):
        """Deliver to every client but `exclude` (the sending connection).

        No copy of the set: `deliver` never yields or touches the hub, so nothing joins or leaves mid-loop."""
        for client in self._all:
            if client is not exclude:
                client.deliver(frame, message_id)

    def send_to_user(self, user, frame, message_id=None, exclude=None):
        clients = self._by_user.get(user)
        if clients:
            for client in clients:
                if client is not exclude:
                    client.deliver(frame, message_id)

    def relay(self, recipient, sender, frame, message_id):
        """Deliver what another process posted: to everyone (recipient None) or to both parties of a direct."""
        skip = self._local_only
        if recipient is None:
            for client in self._all:
                if client not in skip:
                    client.deliver(frame, message_id)
            return
        for user in (recipient, sender):
            for client in self._by_user.get(user, ()):
                if client not in skip:
                    client.deliver(frame, message_id)

    def all_clients(self):
        return tuple(self._all)
