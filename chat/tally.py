"""Plain-int counts kept where the work happens and read at scrape time (chat/metrics): no I/O, no prometheus."""
from bisect import bisect_left


class Buckets:
    """A histogram in plain numbers: how many observations fell at or under each bound (and over the last), and their sum.

    `counts[i]` counts the observations in (bounds[i-1], bounds[i]]; `counts[-1]` those above every bound."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value):
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value


class Counts:
    """One process's counts that no single collaborator owns: acknowledgements sent, messages refused by the rate limit,
    websocket handshakes refused (by a reason from a fixed set: never a name or an address)."""

    __slots__ = ("acks", "rate_limited", "handshake_refusals")

    def __init__(self):
        self.acks = 0
        self.rate_limited = 0
        self.handshake_refusals = {}  # reason -> count

    def refused_handshake(self, reason):
        self.handshake_refusals[reason] = self.handshake_refusals.get(reason, 0) + 1
