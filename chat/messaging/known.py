"""Which user names ever connected: remembered here once seen, else asked of the store (and of presence)."""


class KnownUsers:
    """`store` keeps the users table; `delivery.is_online(name)` says who is online in any process."""

    def __init__(self, store, delivery):
        self.store = store
        self.delivery = delivery
        self._known = set()

    def register(self, name):
        """Remember a user on connect; returns the id of the last message they were present for."""
        user = self.store.get_user(name)
        if user is None:
            self.store.add_user(name)
            user = (name, 0)
        self._known.add(name)
        return user[1]

    def is_known(self, name):
        if name in self._known or self.delivery.is_online(name):
            return True
        if self.store.get_user(name) is not None:
            self._known.add(name)
            return True
        return False
