"""The Redis client that accounts, guest holds and sign-in limits share state through; its outages are StoreUnavailable."""
from chat.store import StoreUnavailable


class RedisCalls:
    """A client with `timeout` for connecting and for every answer, replies as text; `call(fn)` runs fn() and raises
    Redis's connection errors as StoreUnavailable."""

    def __init__(self, url, timeout):
        import redis  # only a deployment with redis_url needs it

        self._errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True)

    def call(self, fn):
        try:
            return fn()
        except self._errors as e:
            raise StoreUnavailable(f"redis: {e}") from e
