"""The names online, kept sorted as they come and go, so that a count is O(1) and a page of names after a given one
is O(log n + page): what `welcome` and `who` send instead of everyone (at 5,000 users online, listing everyone in every
welcome cost O(n) per connect and O(n²) bytes for n connects)."""
from bisect import bisect_right, insort


class OnlineNames:
    """A multiset of names by reference count (a user online in several places counts once), in sorted order."""

    def __init__(self):
        self._refs = {}
        self._sorted = []

    def add(self, name):
        """One more place has `name` online; True when it was not online before."""
        refs = self._refs.get(name, 0)
        self._refs[name] = refs + 1
        if refs:
            return False
        insort(self._sorted, name)
        return True

    def discard(self, name):
        """One place less has `name` online; True when it is online nowhere now."""
        refs = self._refs.get(name, 0)
        if refs > 1:
            self._refs[name] = refs - 1
            return False
        if not refs:
            return False
        del self._refs[name]
        del self._sorted[bisect_right(self._sorted, name) - 1]
        return True

    def __contains__(self, name):
        return name in self._refs

    def __len__(self):
        return len(self._sorted)

    def names(self):
        return list(self._sorted)

    def page(self, after, limit):
        """(up to `limit` names after `after` (None: from the first), in order; whether more follow)."""
        start = 0 if after is None else bisect_right(self._sorted, after)
        names = self._sorted[start:start + limit]
        return names, start + limit < len(self._sorted)
