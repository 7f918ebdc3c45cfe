"""Rate limits without I/O: a token bucket (messages per connection) and a failure throttle (sign-ins per name and address)."""
import time
from collections import deque


class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second; each action takes one.

    take() returns 0.0 when the action may go ahead, else the seconds until a token is back.
    """

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate, capacity, now=None):
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = time.monotonic() if now is None else now

    def take(self, now=None):
        now = time.monotonic() if now is None else now
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / self.rate


class FailureThrottle:
    """Counts failures per key (a name, an address) over a sliding window of `window` seconds.

    Once a key has `limit` failures in the window, retry_after(key) says how long until the oldest
    one leaves it. At most `max_keys` keys are remembered: beyond that the stalest are forgotten, so
    a stream of made-up names cannot grow the memory without bound.
    """

    def __init__(self, limit, window, max_keys=100_000):
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures = {}  # key -> deque of monotonic times, oldest first

    def _recent(self, key, now):
        times = self._failures.get(key)
        if times is None:
            return None
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key, now=None):
        """0.0 when `key` may try again now, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[-self.limit] + self.window - now)

    def failed(self, key, now=None):
        now = time.monotonic() if now is None else now
        times = self._recent(key, now)
        if times is None:
            if len(self._failures) >= self.max_keys:
                self._forget_stalest(now)
            times = self._failures[key] = deque()
        times.append(now)
        while len(times) > self.limit:  # older ones no longer decide anything
            times.popleft()

    def clear(self, key):
        self._failures.pop(key, None)

    def _forget_stalest(self, now):
        for key in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]:
            del self._failures[key]
        excess = len(self._failures) - self.max_keys * 9 // 10
        if excess > 0:
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[:excess]:
                del self._failures[key]
