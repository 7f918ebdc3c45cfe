"""Who is online in the other processes, as last heard over Redis; with the hub's own users it makes the chat's list."""


class ClusterPresence:
    """The other instances' users, counted into the hub's sorted names (`hub.names`, chat/messaging/onlinenames.py),
    which the hub keeps for its own: so those names are everyone online in the cluster, each once."""

    def __init__(self, hub):
        self.hub = hub
        self.names = hub.names
        self._by_instance = {}  # instance id -> set of its users
        self._count = {}  # user -> how many other instances have the user online

    def is_online(self, user):
        return self.hub.is_online(user) or user in self._count

    def online(self):
        return self.names.names()

    def instances(self):
        return set(self._by_instance)

    def set_user(self, instance, user, online):
        """Record one change another instance announced; True if its list changed."""
        users = self._by_instance.setdefault(instance, set())
        if online == (user in users):
            return False
        if online:
            users.add(user)
            self._count[user] = self._count.get(user, 0) + 1
            self.names.add(user)
        else:
            users.discard(user)
            self._uncount(user)
        return True

    def replace(self, instance, users):
        """Set an instance's whole list (read from Redis); returns the users whose entry changed."""
        old = self._by_instance.get(instance, set())
        new = set(users)
        for user in new - old:
            self._count[user] = self._count.get(user, 0) + 1
            self.names.add(user)
        for user in old - new:
            self._uncount(user)
        self._by_instance[instance] = new
        return (new - old) | (old - new)

    def drop(self, instance):
        """Forget an instance that stopped or died; returns its users."""
        users = self._by_instance.pop(instance, set())
        for user in users:
            self._uncount(user)
        return users

    def _uncount(self, user):
        self.names.discard(user)
        n = self._count.get(user, 0) - 1
        if n > 0:
            self._count[user] = n
        else:
            self._count.pop(user, None)
