"""The Redis side of several processes: one pub/sub channel for batches, and per-instance heartbeats and user lists.

Keys (under the configured prefix, default "chat:"):
  bus               the channel every instance publishes its batches to and subscribes to
  instances         set of instance ids that have announced themselves
  alive:<instance>  the instance's presence version, expiring presence_timeout after its last heartbeat
  users:<instance>  set of the users online in that instance

Redis keeps no chat data: messages are in the database, so a Redis restart loses nothing; each
instance rewrites its own keys when it reconnects.
"""
import logging
import time
from collections import deque

import gevent
import redis
from gevent.event import Event
from redis.backoff import NoBackoff
from redis.retry import Retry

from chat.cluster.busformat import BusFormatError, BusPresence, decode_batch, encode_batch

log = logging.getLogger("chat.bus")

RECONNECT_FIRST = 0.1
RECONNECT_MAX = 2.0  # well under presence_timeout's default, so a Redis restart does not make users flicker offline
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class RedisBus:
    """Publishes this instance's batches and presence; hands what the others publish to `listener`.

    `listener` has on_batch(origin, entries), on_instance(instance, users or None when gone),
    on_connected() and on_disconnected(); every call comes from this object's greenlets.
    """

    def __init__(self, url, prefix, instance_id, listener, heartbeat, timeout, connect_timeout=2.0):
        self.instance_id = instance_id
        self.listener = listener
        self.heartbeat_interval = heartbeat
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=connect_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),  # we reconnect ourselves, with backoff, and resynchronise after
        )
        self.channel = prefix + "bus"
        self._instances_key = prefix + "instances"
        self._alive_prefix = prefix + "alive:"
        self._users_prefix = prefix + "users:"
        self._outbox = deque()
        self._user_ops = {}  # user -> online, not yet written to users:<self>
        self._wake = Event()
        self._stopping = False
        self.connected = False
        self._down_since = None
        self._version = 0
        self._local_users = set()
        self._rewrite_self = True
        self._seen = {}  # other instance -> the presence version its list was last read at
        self._connected_at = time.monotonic()
        self._greenlets = []

    # ---- what the service calls ----------------------------------------------------------------

    def start(self):
        self._greenlets = [gevent.spawn(self._subscribe_loop), gevent.spawn(self._publish_loop), gevent.spawn(self._heartbeat_loop)]

    def publish(self, entries):
        """Queue entries for the next batch; dropped while Redis is away (the database and resync cover them)."""
        if self.connected:
            self._outbox.extend(entries)
            self._wake.set()

    def user_online(self, user, online):
        """This instance's user came online (first connection here) or went offline (last one closed)."""
        if online:
            self._local_users.add(user)
        else:
            self._local_users.discard(user)
        self._version += 1
        if self.connected:
            self._user_ops[user] = online
            self._outbox.append(BusPresence(user, online))
            self._wake.set()

    def stop(self):
        """Leave the cluster: the other instances see this one's users go offline at once."""
        self._stopping = True
        entries = list(self._outbox) if self.connected else []  # what shutdown's final commits published
        entries += [BusPresence(u, False) for u in sorted(self._local_users)]
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.srem(self._instances_key, self.instance_id)
            pipe.delete(self._alive_prefix + self.instance_id, self._users_prefix + self.instance_id)
            pipe.publish(self.channel, encode_batch(self.instance_id, entries))
            pipe.execute()
        except REDIS_ERRORS as e:
            log.warning("could not leave the Redis bus cleanly: %s", e)
        # Wait for them to end before closing the client: killed mid-read, redis-py's reader still touches its buffer,
        # and a closed one turns the GreenletExit into "ValueError: I/O operation on closed file" (a traceback per stop).
        gevent.killall(self._greenlets, block=True, timeout=1)
        self._redis.close()

    # ---- connection state ----------------------------------------------------------------------

    def _up(self):
        if self.connected:
            return
        self.connected = True
        self._rewrite_self = True
        self._connected_at = time.monotonic()
        self._seen = dict.fromkeys(self._seen, b"")  # re-read every list
        if self._down_since is not None:
            log.warning("Redis bus is back after %.1f s; resynchronising", time.monotonic() - self._down_since)
            self._down_since = None
        else:
            log.info("Redis bus connected (instance %s)", self.instance_id)
        self.listener.on_connected()

    def _down(self, error):
        self._outbox.clear()
        self._user_ops.clear()
        if not self.connected and self._down_since is not None:
            return
        self.connected = False
        self._down_since = time.monotonic()
        log.warning("Redis bus unavailable (%s): serving this process's users, relaying through the database, reconnecting", error)
        self.listener.on_disconnected()

    # ---- greenlets -----------------------------------------------------------------------------

    def _subscribe_loop(self):
        delay = RECONNECT_FIRST
        while not self._stopping:
            pubsub = self._redis.pubsub()
            try:
                pubsub.subscribe(self.channel)
                # Only once Redis confirms is every later publication sure to reach us; the catch-up
                # that on_connected starts covers what was committed before.
                confirmation = pubsub.get_message(timeout=self._connect_timeout)
                if confirmation is None or confirmation["type"] != "subscribe":
                    raise redis.exceptions.TimeoutError(f"no subscription confirmation from Redis: {confirmation!r}")
                self._up()
                self._heartbeat()
                delay = RECONNECT_FIRST
                while not self._stopping:
                    message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._received(message["data"])
            except REDIS_ERRORS as e:
                self._down(e)
            finally:
                try:
                    pubsub.reset()
                except Exception:  # already broken; nothing to release
                    pass
            gevent.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)

    def _received(self, data):
        try:
            origin, entries = decode_batch(data)
        except BusFormatError as e:
            log.error("ignoring an unreadable bus batch (%d bytes): %s", len(data), e)
            return
        if origin != self.instance_id:
            self.listener.on_batch(origin, entries)

    def _publish_loop(self):
        outbox = self._outbox
        while True:
            self._wake.wait()
            self._wake.clear()
            if not outbox or not self.connected:
                continue
            entries = list(outbox)
            outbox.clear()
            ops, self._user_ops = self._user_ops, {}
            try:
                pipe = self._redis.pipeline(transaction=False)
                users_key = self._users_prefix + self.instance_id
                for user, online in ops.items():
                    (pipe.sadd if online else pipe.srem)(users_key, user)
                if ops:
                    pipe.set(self._alive_prefix + self.instance_id, self._version, px=int(self.timeout * 1000))
                pipe.publish(self.channel, encode_batch(self.instance_id, entries))
                pipe.execute()
            except REDIS_ERRORS as e:
                self._down(e)

    def _heartbeat_loop(self):
        while True:
            gevent.sleep(self.heartbeat_interval)
            if not self.connected:
                continue
            try:
                self._heartbeat()
            except REDIS_ERRORS as e:
                self._down(e)

    def _heartbeat(self):
        """Say this instance is alive (rewriting its list after a reconnect), then read the others' liveness and lists."""
        r = self._redis
        me = self.instance_id
        pipe = r.pipeline(transaction=False)
        if self._rewrite_self:
            users_key = self._users_prefix + me
            pipe.delete(users_key)
            if self._local_users:
                pipe.sadd(users_key, *self._local_users)
            self._rewrite_self = False
        pipe.set(self._alive_prefix + me, self._version, px=int(self.timeout * 1000))
        pipe.sadd(self._instances_key, me)
        pipe.smembers(self._instances_key)
        instances = sorted(i.decode() for i in pipe.execute()[-1] if i.decode() != me)
        versions = r.mget([self._alive_prefix + i for i in instances]) if instances else []
        alive = set()
        for instance, version in zip(instances, versions):
            if version is None:
                continue
            alive.add(instance)
            if self._seen.get(instance) != version:
                users = {u.decode() for u in r.smembers(self._users_prefix + instance)}
                self.listener.on_instance(instance, users)
                self._seen[instance] = version
        # An instance whose heartbeat key expired is dead, except just after we (re)connected: after a Redis
        # restart the others need a moment to write their keys again.
        if time.monotonic() - self._connected_at < self.timeout:
            return
        for instance in (set(self._seen) | set(instances)) - alive:
            if self._seen.pop(instance, None) is not None:
                if instance in instances:  # still listed: it did not leave (stop() unlists), it died
                    log.warning("instance %s stopped sending heartbeats: its users are offline", instance)
                else:
                    log.info("instance %s left", instance)
            self.listener.on_instance(instance, None)
            pipe = r.pipeline(transaction=False)
            pipe.srem(self._instances_key, instance)
            pipe.delete(self._users_prefix + instance)
            pipe.execute()
