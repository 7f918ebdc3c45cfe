"""Who holds a guest name (a resume token's digest, in the database or Redis) and the floor a name gets when it changes hands."""
import secrets
import time

from chat.accounts.redis_calls import RedisCalls
from chat.clock import now_ms

FLOOR_WAIT = 2.0  # seconds a handshake waits for this process to have delivered every message up to a name's floor

# Redis: extend the hold if it is still this guest's, or take it back if it ended and nobody took the name meanwhile.
_EXTEND_SCRIPT = """
local held = redis.call('get', KEYS[1])
if held == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
if not held then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""


class DatabaseHolds:
    """Holds in the `guest_holds` table (one row per name, primary key on the name)."""

    def __init__(self, queries):
        self._q = queries

    def holder(self, name):
        return self._q.hold_digest(name)

    def hold_of(self, name):
        return self._q.hold_of(name)

    def claim(self, name, digest, hold):
        return self._q.claim_hold(name, digest, now_ms() + int(hold * 1000))

    def extend(self, name, digest, hold):
        return self._q.extend_hold(name, digest, now_ms() + int(hold * 1000))

    def drop(self, name):
        self._q.drop_hold(name)

    def purge(self):
        return self._q.purge_holds()


class RedisHolds:
    """Holds in Redis: PREFIX hold:NAME -> digest, expiring with the hold (SET NX decides between racers)."""

    def __init__(self, url, prefix, timeout):
        redis = RedisCalls(url, timeout)
        self._redis = redis.client
        self._call = redis.call
        self._prefix = prefix
        self._extend = self._redis.register_script(_EXTEND_SCRIPT)

    def _key(self, name):
        return f"{self._prefix}hold:{name}"

    def holder(self, name):
        return self._call(lambda: self._redis.get(self._key(name)))

    def claim(self, name, digest, hold):
        return bool(self._call(lambda: self._redis.set(self._key(name), digest, nx=True, px=max(1, int(hold * 1000)))))

    def extend(self, name, digest, hold):
        return bool(self._call(lambda: self._extend(keys=[self._key(name)], args=[digest, max(1, int(hold * 1000))])))

    def drop(self, name):
        self._call(lambda: self._redis.delete(self._key(name)))

    def purge(self):
        return 0  # keys expire by themselves

    def close(self):
        self._redis.close()


class RememberingHolds:
    """The holds of one process alone (DatabaseHolds), and what it last confirmed of each: which resume token's digest
    held the name and until when at least. While the database is down, `confirmed(name, digest)` says whether a guest
    may come back with its token (chat/accounts/admission.py): the name cannot have changed hands since, for only this
    process gives guest names (a claim needs the hold to have ended) and takes them (a registration, a ban: `forget`).
    Entries past their hold are dropped as new ones come."""

    def __init__(self, holds, hold_seconds, clock=time.monotonic):
        self._holds = holds
        self._hold = hold_seconds
        self._clock = clock
        self._until = {}  # name -> (digest, monotonic time until which the hold runs at least)
        self._sweep_at = 64

    def holder(self, name):
        return self._holds.holder(name)

    def running(self, name, digest, hold):
        """Whether the guest with `digest` holds `name` (read from the store), and the hold is extended if it has less
        than half of `hold` seconds left: a guest coming back (after a restart, everyone at once) usually costs a read,
        not a commit. Online guests' holds are extended every half hold anyway (AuthService.start_holding)."""
        found = self._holds.hold_of(name)
        if found is None or not secrets.compare_digest(found[0], digest):
            return False
        left = (found[1] - now_ms()) / 1000
        if left > hold / 2:
            self._until[name] = (digest, self._clock() + left)
            return True
        return self.extend(name, digest, hold)

    def claim(self, name, digest, hold):
        claimed = self._holds.claim(name, digest, hold)
        if claimed:
            self._remember(name, digest, hold)
        return claimed

    def extend(self, name, digest, hold):
        extended = self._holds.extend(name, digest, hold)
        if extended:
            self._remember(name, digest, hold)
        return extended

    def drop(self, name):
        self.forget(name)
        self._holds.drop(name)

    def purge(self):
        return self._holds.purge()

    def forget(self, name):
        self._until.pop(name, None)

    def confirmed(self, name, digest):
        """Whether this process confirmed, within the hold's time, that the guest with `digest` holds `name`."""
        held = self._until.get(name)
        return held is not None and held[0] == digest and self._clock() < held[1]

    def _remember(self, name, digest, hold):
        until = self._until
        now = self._clock()
        until[name] = (digest, now + hold)
        if len(until) >= self._sweep_at:  # amortised: at most one sweep per doubling
            for old in [n for n, (_, end) in until.items() if end <= now]:
                del until[old]
            self._sweep_at = max(64, 2 * len(until))


def make_holds(settings, queries):
    if settings.redis_url:
        return RedisHolds(settings.redis_url, settings.redis_prefix, settings.db_connect_timeout)
    return RememberingHolds(DatabaseHolds(queries), settings.guest_hold)


class StoreFloors:
    """A name's new floor from the database alone (the admin command: no messages are being posted by it)."""

    def __init__(self, store):
        self._store = store

    def current(self):
        return self._store.max_message_id()

    def floor_of(self, name):
        return self._store.name_floor(name)[0]

    def wait_delivered(self, name):
        """Whether every message up to `name`'s floor has been delivered here (nothing is delivered by the admin command)."""
        return True

    def forget(self, name):
        """The name changed hands: what the running server keeps for it (its rooms) is not the new holder's."""


class ServiceFloors(StoreFloors):
    """A name's new floor in a running server: the last message id assigned so far, in this process or (Redis) any."""

    def __init__(self, store, delivery, forget=None):
        super().__init__(store)
        self._delivery = delivery
        self._forget = forget  # forget(name): leave the rooms the name is in (chat/messaging/roomservice.py)

    def forget(self, name):
        if self._forget is not None:
            self._forget(name)

    def current(self):
        # One process: ids are assigned at post (some not committed yet). Several: at commit, so the database knows the last.
        return max(self._delivery.last_message_id, self._store.max_message_id())

    def wait_delivered(self, name):
        """Wait until this process has delivered every message up to `name`'s floor, so none of them can reach the name's
        new holder live; False if that did not happen within FLOOR_WAIT."""
        return self._delivery.wait_delivered(lambda: self.floor_of(name), FLOOR_WAIT)
