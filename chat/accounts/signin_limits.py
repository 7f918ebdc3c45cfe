"""Sign-in throttles that an attacker cannot turn into a lockout of the owner, kept in this process or in Redis, and the
gate that bounds how many password hashes (scrypt, ~0.1 s of CPU each) run at once."""
import time
import uuid
from collections import OrderedDict

import gevent
from gevent.lock import BoundedSemaphore

from chat.ratelimit import FailureThrottle

ATTEMPT_WINDOW = 60.0  # login_rate_per_address counts attempts per minute
KNOWN_ADDRESSES_PER_NAME = 8
MAX_NAMES_REMEMBERED = 100_000


class Throttled(Exception):
    """Too many sign-ins (or failed sign-ins) for this name, from this address, or in total."""

    def __init__(self, retry_after, message="too many failed sign-ins"):
        super().__init__(f"{message}; try again in {retry_after:.0f} s")
        self.retry_after = retry_after
        self.message = message


class Busy(Exception):
    """Too many password hashes already waiting: the server sheds the request instead of queueing it."""

    retry_after = 1


# ---- counters: sliding windows per key ---------------------------------------------------------


class MemoryWindows:
    """`limit` events per key in any `window` seconds, in this process (see FailureThrottle)."""

    def __init__(self, limit, window):
        self._throttle = FailureThrottle(limit, window)

    def retry_after(self, key):
        return self._throttle.retry_after(key)

    def record(self, key):
        self._throttle.failed(key)

    def clear(self, key):
        self._throttle.clear(key)


class RedisWindows:
    """The same counter shared by every process: a sorted set of event times per key, trimmed to the last `limit`."""

    def __init__(self, redis_call, key_prefix, limit, window):
        self._call = redis_call  # (fn(client)) -> result, raising StoreUnavailable when Redis is away
        self._prefix = key_prefix
        self.limit = limit
        self.window = window

    def retry_after(self, key):
        key, now = self._prefix + key, time.time()

        def run(r):
            pipe = r.pipeline(transaction=False)
            pipe.zremrangebyscore(key, "-inf", now - self.window)
            pipe.zcard(key)
            pipe.zrange(key, -self.limit, -self.limit, withscores=True)
            return pipe.execute()[1:]

        count, oldest_counted = self._call(run)
        if count < self.limit or not oldest_counted:
            return 0.0
        return max(0.0, oldest_counted[0][1] + self.window - now)

    def record(self, key):
        key, now = self._prefix + key, time.time()

        def run(r):
            pipe = r.pipeline(transaction=True)
            pipe.zadd(key, {uuid.uuid4().hex[:12]: now})
            pipe.zremrangebyrank(key, 0, -self.limit - 1)  # older ones no longer decide anything
            pipe.pexpire(key, int(self.window * 1000) + 1000)
            pipe.execute()

        self._call(run)

    def clear(self, key):
        self._call(lambda r: r.delete(self._prefix + key))


# ---- addresses an account has signed in from -----------------------------------------------------


class MemoryKnownAddresses:
    """For each name, the last few addresses that signed in to it successfully, and when."""

    def __init__(self, lifetime):
        self.lifetime = lifetime
        self._names = OrderedDict()  # name -> OrderedDict(address -> time), least recently used first

    def add(self, name, address):
        addresses = self._names.pop(name, None) or OrderedDict()
        addresses.pop(address, None)
        addresses[address] = time.time()
        while len(addresses) > KNOWN_ADDRESSES_PER_NAME:
            addresses.popitem(last=False)
        self._names[name] = addresses
        while len(self._names) > MAX_NAMES_REMEMBERED:
            self._names.popitem(last=False)

    def contains(self, name, address):
        seen = self._names.get(name, {}).get(address)
        return seen is not None and seen > time.time() - self.lifetime


class RedisKnownAddresses:
    """The same in Redis: PREFIX known:NAME is a sorted set of addresses scored by their last sign-in."""

    def __init__(self, redis_call, key_prefix, lifetime):
        self._call = redis_call
        self._prefix = key_prefix
        self.lifetime = lifetime

    def add(self, name, address):
        key, now = self._prefix + name, time.time()

        def run(r):
            pipe = r.pipeline(transaction=True)
            pipe.zadd(key, {address: now})
            pipe.zremrangebyrank(key, 0, -KNOWN_ADDRESSES_PER_NAME - 1)
            pipe.pexpire(key, int(self.lifetime * 1000))
            pipe.execute()

        self._call(run)

    def contains(self, name, address):
        seen = self._call(lambda r: r.zscore(self._prefix + name, address))
        return seen is not None and seen > time.time() - self.lifetime


# ---- the policy -------------------------------------------------------------------------------------


class SigninLimits:
    """Which sign-in attempts may go ahead.

    - attempts (right or wrong, and registrations) per address per minute: a flood of correct sign-ins from one
      address cannot keep the password hasher busy;
    - failures per (name, address) and per address: one address cannot guess on, nor lock anyone else out;
    - failures per name from all addresses (a slower limit): a distributed guesser is stopped too, but only at
      addresses that have not signed in to that name successfully within `login_known_address_lifetime`, so the
      owner, from where they usually sign in, still gets in.
    """

    def __init__(self, settings, redis_call=None):
        s = settings
        if redis_call is None:
            def windows(label, limit, window):
                return MemoryWindows(limit, window)

            self.known = MemoryKnownAddresses(s.login_known_address_lifetime)
        else:
            prefix = s.redis_prefix + "signin:"

            def windows(label, limit, window):
                return RedisWindows(redis_call, f"{prefix}{label}:", limit, window)

            self.known = RedisKnownAddresses(redis_call, prefix + "known:", s.login_known_address_lifetime)
        self.attempts = windows("attempts", s.login_rate_per_address, ATTEMPT_WINDOW)
        self.pair_failures = windows("pair", s.login_max_failures, s.login_failure_window)
        self.address_failures = windows("address", s.login_max_failures_per_address, s.login_failure_window)
        self.name_failures = windows("name", s.login_max_failures_per_name, s.login_failure_window)

    def check_attempt(self, address):
        """Raise Throttled when `address` has used up its sign-ins for this minute; else count this one."""
        wait = self.attempts.retry_after(address)
        if wait:
            raise Throttled(wait, "too many sign-ins from this address")
        self.attempts.record(address)

    def check_failures(self, name, address):
        """Raise Throttled when earlier failures bar this (name, address) from trying now."""
        wait = max(self.pair_failures.retry_after(f"{name}|{address}"), self.address_failures.retry_after(address))
        if not wait:
            wait = self.name_failures.retry_after(name)
            if wait and self.known.contains(name, address):
                wait = 0.0
        if wait:
            raise Throttled(wait)

    def failed(self, name, address):
        self.pair_failures.record(f"{name}|{address}")
        self.address_failures.record(address)
        self.name_failures.record(name)

    def succeeded(self, name, address):
        self.pair_failures.clear(f"{name}|{address}")
        self.known.add(name, address)


class HashGate:
    """At most `concurrency` password hashes at once in this process, and at most `queue` waiting for a turn."""

    def __init__(self, concurrency, queue):
        self._slots = BoundedSemaphore(concurrency)
        self._queue = queue
        self._waiting = 0

    def run(self, fn, *args):
        """fn(*args) in gevent's thread pool (hashlib's scrypt releases the GIL, so the chat keeps running)."""
        if self._slots.locked() and self._waiting >= self._queue:
            raise Busy()
        self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return gevent.get_hub().threadpool.apply(fn, args)
        finally:
            self._slots.release()


__all__ = ["Busy", "HashGate", "SigninLimits", "Throttled"]
