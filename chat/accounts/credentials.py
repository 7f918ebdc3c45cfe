"""Accounts, sign-in sessions and API tokens: salted password hashes, revocable credentials (database or Redis), and the
live sockets each credential opened, so that signing out, revoking a token or removing an account closes them (4001)."""
import hashlib
import json
import logging
import secrets
import time

import gevent
from werkzeug.security import check_password_hash, generate_password_hash

from chat.accounts.holds import StoreFloors, make_holds
from chat.accounts.live import CLOSE_CREDENTIALS_ENDED, LiveSockets
from chat.names import normalize_name
from chat.records import Kick
from chat.accounts.expiry import ExpirySweeper
from chat.accounts.passwords import MAX_PASSWORD_LENGTH, password_problem
from chat.accounts.redis_calls import RedisCalls
from chat.accounts.signin_limits import Busy, HashGate, SigninLimits, Throttled
from chat.security import parse_allowed_origins
from chat.store import StoreUnavailable
from chat.clock import now_ms
from chat.store.accounts import AccountQueries, NameTaken

log = logging.getLogger("chat.auth")

# Why a socket's right to the name ended (closed with CLOSE_CREDENTIALS_ENDED, 4001): clients should not reconnect as before.
REASON_SIGNED_OUT = "signed out"
REASON_TOKEN_REVOKED = "token revoked"
REASON_ACCOUNT_REMOVED = "account removed"
REASON_NAME_REGISTERED = "name registered by another user"
REASON_TOKEN_EXPIRED = "token expired"
REASON_SESSION_EXPIRED = "session expired"

SESSION, TOKEN = "session", "token"
TOKEN_PREFIX = "chat_"
MAX_SECRET_LENGTH = 256  # longer presented secrets are refused unread
PASSWORD_METHOD = "scrypt"  # werkzeug.security: scrypt, n=2**15, r=8, p=1, 16-byte salt
PURGE_INTERVAL = 600.0

__all__ = ["AuthService", "Busy", "Credential", "NameHeld", "NameTaken", "Throttled", "WeakPassword", "CLOSE_CREDENTIALS_ENDED"]


class NameHeld(Exception):
    """Another guest holds the name (online, or within guest_hold of leaving) and this request has not its resume token."""


class WeakPassword(ValueError):
    """A new password that chat/accounts/passwords.py refuses; the message says why, for the user."""


class Credential(tuple):
    """(name, digest) of a live session or token; also its `kind` and when it `expires` (seconds since the epoch)."""

    def __new__(cls, name, digest, kind, expires):
        credential = tuple.__new__(cls, (name, digest))
        credential.kind = kind
        credential.expires = expires
        return credential


def secret_hash(secret):
    """Only this digest of a session id or token is stored: a copy of the database or Redis yields no usable credential."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


# ---- where credentials live --------------------------------------------------------------------


class DatabaseCredentials:
    """Sessions and tokens in the `auth_credentials` table."""

    kind = "database"

    def __init__(self, queries):
        self._q = queries

    def add(self, digest, kind, name, lifetime):
        self._q.add_credential(digest, kind, name, now_ms() + int(lifetime * 1000))

    def get(self, digest):
        return self._q.get_credential(digest)

    def delete(self, digest):
        return self._q.delete_credential(digest)

    def delete_all(self, name):
        return self._q.delete_credentials_of(name)

    def purge(self):
        return self._q.purge_expired()


class RedisCredentials:
    """Sessions and tokens in Redis: PREFIX cred:DIGEST -> {"name","kind"} with a TTL, and PREFIX user:NAME -> set of digests."""

    kind = "redis"

    def __init__(self, url, prefix, timeout, max_lifetime):
        redis = RedisCalls(url, timeout)
        self._redis = redis.client
        self._call = redis.call
        self._prefix = prefix
        self._max_lifetime_ms = int(max_lifetime * 1000)

    def _key(self, digest):
        return f"{self._prefix}cred:{digest}"

    def _user_key(self, name):
        return f"{self._prefix}user:{name}"

    def run(self, fn):
        """fn(the Redis client), with Redis errors raised as StoreUnavailable (for the sign-in throttles)."""
        return self._call(lambda: fn(self._redis))

    def add(self, digest, kind, name, lifetime):
        def run():
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._key(digest), json.dumps({"name": name, "kind": kind}), px=max(1, int(lifetime * 1000)))
            pipe.sadd(self._user_key(name), digest)
            pipe.pexpire(self._user_key(name), self._max_lifetime_ms)  # every member expires before the set
            pipe.execute()

        self._call(run)

    def get(self, digest):
        """(name, kind, expires_ms) or None."""

        def run():
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self._key(digest))
            pipe.pttl(self._key(digest))
            return pipe.execute()

        raw, ttl_ms = self._call(run)
        if raw is None or ttl_ms is None or ttl_ms < 0:
            return None
        value = json.loads(raw)
        return value["name"], value["kind"], now_ms() + ttl_ms

    def delete(self, digest):
        found = self.get(digest)
        if found is None:
            return None
        name = found[0]

        def run():
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._key(digest))
            pipe.srem(self._user_key(name), digest)
            return pipe.execute()[0]

        return name if self._call(run) else None

    def delete_all(self, name):
        def run():
            digests = self._redis.smembers(self._user_key(name))
            pipe = self._redis.pipeline(transaction=True)
            for digest in digests:
                pipe.delete(self._key(digest))
            pipe.delete(self._user_key(name))
            return sum(pipe.execute()[:-1])

        return self._call(run)

    def purge(self):
        return 0  # keys expire by themselves

    def close(self):
        self._redis.close()


def make_credentials(settings, queries):
    if settings.redis_url:
        return RedisCredentials(
            settings.redis_url,
            settings.redis_prefix,
            settings.db_connect_timeout,
            max(settings.session_lifetime, settings.token_lifetime),
        )
    return DatabaseCredentials(queries)


# ---- live sockets per credential ------------------------------------------------------------------


class Admission:
    """One websocket allowed in by the handshake: counts against its name's connection cap until released."""

    __slots__ = ("auth", "name", "digest", "resume", "admin", "session", "_pending_close", "expiry")

    def __init__(self, auth, name, digest, resume=None, admin=False):
        self.auth = auth
        self.name = name
        self.admin = admin  # a server admin at the handshake (said in its welcome, so the page offers what admins may do)
        self.digest = digest  # of the session or token it came with; None for a guest
        self.resume = resume  # a guest's resume token (sent in its welcome); None for an account
        self.session = None
        self._pending_close = None
        self.expiry = None  # its entry in the AuthService's expiry sweeper, while it has a credential that expires

    def attach(self, session):
        self.session = session
        if self._pending_close is not None:
            session.conn.close(*self._pending_close)

    def close(self, code, reason):
        if self.session is None:
            self._pending_close = (code, reason)  # ended before its session started: closed as soon as it does
        else:
            self.session.conn.close(code, reason)

    def release(self):
        self.session = None  # the session refers to its admission: no cycle left for the garbage collector
        if self.expiry is not None:
            self.auth.expiry.discard(self.expiry)
            self.expiry = None
        if self.auth.live.discard(self) and self.resume is not None:
            self.auth.guest_left(self.name, self.resume)


class AuthService:
    """Accounts and credentials for one server process (and, without the live-socket part, for the admin CLI)."""

    def __init__(self, settings, store, credentials=None, floors=None, live=None, kick=None, holds=None):
        """`live`: this process's admitted sockets (LiveSockets); `kick`: closes a user's sockets everywhere (with several
        processes the cluster delivery's, which publishes it); by default only `live`'s, in this process. `holds`: the
        guest holds (chat/accounts/holds.py make_holds), by default made here."""
        self.settings = settings
        self.accounts = AccountQueries(store)
        self.credentials = credentials if credentials is not None else make_credentials(settings, self.accounts)
        redis_run = self.credentials.run if isinstance(self.credentials, RedisCredentials) else None
        self.limits = SigninLimits(settings, redis_run)  # in Redis too when credentials are: shared by every process
        self.hashing = HashGate(settings.password_hash_concurrency, settings.password_hash_queue)
        self.expiry = ExpirySweeper(self._credential_expired)
        self.holds = holds if holds is not None else make_holds(settings, self.accounts)
        self.floors = floors if floors is not None else StoreFloors(store)  # chat.accounts.holds.ServiceFloors in a server
        self.allowed_origins = parse_allowed_origins(settings.allowed_origins)
        self.live = live if live is not None else LiveSockets()
        self._kick = kick if kick is not None else self.live.close
        self._dummy_hash = None
        self._purger = None
        self._holder = None

    def start_purging(self):
        """Expired database credentials are refused anyway; this only keeps the table small."""

        def loop():
            while True:
                gevent.sleep(PURGE_INTERVAL)
                try:
                    purged = self.credentials.purge() + self.holds.purge()
                    if purged:
                        log.debug("purged %d expired credentials", purged)
                except Exception as e:  # a store outage must not end the loop
                    log.warning("could not purge expired credentials: %s", e)

        self._purger = gevent.spawn(loop)

    def start_holding(self):
        """Keep the hold of every guest online here running: extended every guest_hold/2, so it never ends while the
        guest is connected to some process, and ends guest_hold after a crash took every socket away."""
        hold = self.settings.guest_hold

        def loop():
            while True:
                gevent.sleep(hold / 2)
                try:
                    for name, admissions in self.live.by_name():
                        resume = next((a.resume for a in admissions if a.resume is not None), None)
                        if resume is not None:
                            self._extend_hold(name, resume)
                except Exception:  # nothing may end the loop: holds would lapse under online guests
                    log.exception("extending guest holds failed; trying again")

        self._holder = gevent.spawn(loop)

    def normalize(self, raw):
        return normalize_name(raw, self.settings.max_name_length)

    # ---- accounts -----------------------------------------------------------------------

    def account_state(self, name):
        """None (no account: a guest may use the name), "active", or "removed" (reserved, nobody may sign in)."""
        row = self.accounts.get_account(name)
        if row is None:
            return None
        return "active" if row[1] else "removed"

    def handshake_state(self, name):
        """account_state's answer ("admin" for the active account of a server admin), or "banned" when an admin banned
        the name from the server (chat/accounts/serverbans.py)."""
        exists, enabled, banned, admin = self.accounts.name_state(name)
        if banned:
            return "banned"
        if not exists:
            return None
        if not enabled:
            return "removed"
        return "admin" if admin else "active"

    def register(self, name, password, address=None):
        """Create the account (raises NameTaken, WeakPassword, Throttled or Busy) with a new floor: it gets nothing guests
        under the name received. The guest hold ends and guests using the name are disconnected."""
        problem = password_problem(password, name, self.settings.min_password_length)
        if problem is not None:
            raise WeakPassword(problem)
        self.limits.check_attempt(address or "?")
        digest = self.hashing.run(generate_password_hash, password, PASSWORD_METHOD)
        self.floors.forget(name)  # before the floor: what it posts stays below it
        floor = self.floors.current()
        self.accounts.create_account(name, digest, floor)
        self.floors.wait_delivered(floor)
        self.holds.drop(name)
        closed = self.close_sockets(name, REASON_NAME_REGISTERED, guests_only=True)
        log.info("registered %s (closed %d guest connections using the name)", name, closed)

    def authenticate(self, raw_name, password, address):
        """The account's name when the password is right, else None.

        Raises Throttled (too many sign-ins from `address`, or too many failures: see SigninLimits) or Busy (too many
        password hashes waiting) before any password is hashed.
        """
        name = self.normalize(raw_name) if isinstance(raw_name, str) else None
        name_key = name or str(raw_name)[:64].strip().lower()
        address = address or "?"
        self.limits.check_failures(name_key, address)
        self.limits.check_attempt(address)
        row = self.accounts.get_account(name) if name else None
        stored = row[1] if row is not None else None
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            password = ""
        if stored:
            ok = self.hashing.run(check_password_hash, stored, password)
        else:
            self.hashing.run(check_password_hash, self._dummy(), password)  # same cost for unknown names: no timing oracle
            ok = False
        if not ok:
            self.limits.failed(name_key, address)
            log.info("failed sign-in for %r from %s", name_key, address)
            return None
        self.limits.succeeded(name, address)
        return name

    def _dummy(self):
        if self._dummy_hash is None:
            self._dummy_hash = self.hashing.run(generate_password_hash, secrets.token_hex(16), PASSWORD_METHOD)
        return self._dummy_hash

    def remove_account(self, name, release=False):
        """Disable (or with `release` delete) the account and revoke all its credentials. True if it existed.

        Sockets are not touched here: the running server does that (POST /admin/disconnect, see chat/admin.py).
        """
        existed = self.accounts.remove_account(name, release)
        revoked = self.credentials.delete_all(name)
        log.info("removed account %s (existed: %s, release: %s, revoked %d credentials)", name, existed, release, revoked)
        return existed

    # ---- guest names ----------------------------------------------------------------------

    def hold_guest_name(self, name, resume):
        """The resume token of the guest admitted as `name`: `resume` if it is the running hold's, else a new one if no
        hold is running (the name changes hands: it gets a new floor). Raises NameHeld (another guest has it)."""
        hold = self.settings.guest_hold
        if isinstance(resume, str) and 0 < len(resume) <= MAX_SECRET_LENGTH:
            running = getattr(self.holds, "running", None)
            if running is not None:  # one process: a read, and a commit only when the hold is past its half
                if running(name, secret_hash(resume), hold):
                    return resume
            else:
                held = self.holds.holder(name)
                if held is not None and secrets.compare_digest(held, secret_hash(resume)):
                    self.holds.extend(name, held, hold)
                    return resume
        secret = secrets.token_urlsafe(32)
        if not self.holds.claim(name, secret_hash(secret), hold):
            raise NameHeld(name)
        self.floors.forget(name)  # before the floor: what it posts stays below it
        floor = self.floors.current()
        self.accounts.new_holder(name, floor)
        if not self.floors.wait_delivered(floor):
            raise StoreUnavailable("messages up to the name's floor have not arrived over the bus yet")
        log.info("guest name %s has a new holder (floor %d)", name, floor)
        return secret

    def remembers_guest(self, name, resume):
        """Whether this process confirmed, within the hold's time, that `resume` holds the guest name `name` (one process
        only: chat/accounts/holds.py RememberingHolds). What admits a guest coming back while the database is down."""
        confirmed = getattr(self.holds, "confirmed", None)
        if confirmed is None or not isinstance(resume, str) or not 0 < len(resume) <= MAX_SECRET_LENGTH:
            return False
        return confirmed(name, secret_hash(resume))

    def held_by_another(self, name, resume):
        """Whether a guest holds `name` whose resume token is not `resume`."""
        held = self.holds.holder(name)
        if held is None:
            return False
        return not (isinstance(resume, str) and 0 < len(resume) <= MAX_SECRET_LENGTH and secrets.compare_digest(held, secret_hash(resume)))

    def wait_for_floor(self, name):
        """With several processes: until this one has delivered every message up to `name`'s floor (normally at once)."""
        if not self.floors.wait_delivered(name):
            raise StoreUnavailable("messages up to the name's floor have not arrived over the bus yet")

    def guest_left(self, name, resume):
        """The guest's last socket here closed: its hold now ends guest_hold from now (unless a socket elsewhere keeps it)."""

        def extend():
            self._extend_hold(name, resume)

        gevent.spawn(extend)

    def _extend_hold(self, name, resume):
        try:
            self.holds.extend(name, secret_hash(resume), self.settings.guest_hold)
        except StoreUnavailable as e:
            log.warning("could not extend the hold of guest %s: %s", name, e)

    # ---- credentials --------------------------------------------------------------------

    def issue(self, name, kind, lifetime=None):
        """A new secret (session id or API token) for `name`, valid `lifetime` seconds (default: the setting's);
        only its digest is stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32) if kind == TOKEN else secrets.token_urlsafe(32)
        if lifetime is None:
            lifetime = self.settings.token_lifetime if kind == TOKEN else self.settings.session_lifetime
        self.credentials.add(secret_hash(secret), kind, name, lifetime)
        return secret

    def resolve(self, secret, kind):
        """A Credential (name, digest; .expires) for a live credential of `kind`, or None (unknown, expired, revoked or
        the wrong kind)."""
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        digest = secret_hash(secret)
        found = self.credentials.get(digest)
        if found is None or found[1] != kind:
            return None
        return Credential(found[0], digest, kind, found[2] / 1000)

    def revoke(self, secret, reason):
        """Revoke one credential and close the sockets it opened; the name it belonged to, or None."""
        if not isinstance(secret, str) or not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        digest = secret_hash(secret)
        name = self.credentials.delete(digest)
        if name is not None:
            self.close_sockets(name, reason, digest=digest)
        return name

    # ---- live sockets -------------------------------------------------------------------

    def connections_of(self, name):
        return self.live.count(name)

    def admit(self, name, digest, credential=None, resume=None, admin=False):
        """Count a new socket against `name`; with the Credential it came with, it is closed with 4001 when that expires.
        `resume` is a guest's resume token, given back in its welcome; `admin`: the name is a server admin's."""
        admission = Admission(self, name, digest, resume, admin)
        self.live.add(admission)
        if credential is not None:
            reason = REASON_SESSION_EXPIRED if credential.kind == SESSION else REASON_TOKEN_EXPIRED
            admission.expiry = self.expiry.watch(credential.expires, (admission, reason))
        return admission

    def _credential_expired(self, expired):
        admission, reason = expired
        admission.expiry = None
        log.info("closing a connection of %s: %s", admission.name, reason)
        admission.close(CLOSE_CREDENTIALS_ENDED, reason)

    def close_sockets(self, name, reason, digest=None, guests_only=False):
        """Close `name`'s websockets (only those opened with `digest`, or only guests') with 4001 and `reason`, in
        every process when there are several; returns how many were closed in this one."""
        return self._kick(Kick(name, reason, digest, guests_only))


def expires_at(lifetime):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
