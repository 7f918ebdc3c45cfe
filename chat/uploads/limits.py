"""Upload limits kept in memory: each user's upload rate (token buckets) and the slots for decoding pictures."""
import time

from gevent.lock import BoundedSemaphore

from chat.ratelimit import TokenBucket


class UploadRate:
    """Uploads per minute per user name, each a TokenBucket; take(user) is 0.0 or the seconds until the next one.

    At most `max_users` buckets are kept: full ones (users who have not uploaded for a while) are dropped first, and
    a dropped bucket comes back full, which is what it would have been anyway.
    """

    def __init__(self, per_minute, burst, max_users=10_000):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.max_users = max_users
        self._buckets = {}

    def take(self, user, now=None):
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(user)
        if bucket is None:
            if len(self._buckets) >= self.max_users:
                self._forget_full(now)
            bucket = self._buckets[user] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def __len__(self):
        """Users with a bucket kept."""
        return len(self._buckets)

    def _forget_full(self, now):
        refill = self.burst / self.rate  # seconds an empty bucket takes to fill up
        stale = [user for user, bucket in self._buckets.items() if now - bucket.stamp >= refill]
        for user in stale or list(self._buckets)[: max(1, self.max_users // 10)]:
            del self._buckets[user]


class DecodeSlots:
    """At most `count` pictures decoded at once (each may take max_image_pixels x DECODE_BYTES_PER_PIXEL); an upload
    waits up to `wait` seconds for a slot. Use: `if slots.acquire(): try ... finally: slots.release()`."""

    def __init__(self, count, wait):
        self.wait = wait
        self._semaphore = BoundedSemaphore(count)

    def acquire(self):
        return self._semaphore.acquire(timeout=self.wait)

    def release(self):
        self._semaphore.release()
