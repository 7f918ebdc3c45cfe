"""Exactly-once sends: a message sent again with the same `client_id` by the same user is answered with the original's
ack (or, saying something else, refused with `client_id_reused`), and is neither stored nor delivered again.

This process remembers the client_ids of the messages posted here (those waiting for their commit, and the committed
ones for `client_id_window`, at most `client_id_memory` of them); the database remembers every process's
(chat/store/sent.py) and decides at commit. With one process (no Redis) a message is delivered before its commit, so a
client_id this process may not remember (one sent before it started, or forgotten for room) is looked up in the
database first; with several (Redis) delivery follows the commit, whose check is enough.
"""
import logging
from collections import OrderedDict

import gevent

from chat.clock import now_ms
from chat.messaging.protocol import ProtocolError
from chat.records import Duplicate, MessageRecord
from chat.store import StoreUnavailable
from chat.store.sent import content_digest

log = logging.getLogger("chat.resends")


def reused(client_id, ref):
    return ProtocolError(
        "client_id_reused",
        f'you already sent a different message with client_id "{client_id}": this one was not sent; '
        "use a new client_id for each message",
        ref,
    )


class _Sent:
    """One client_id's message as this process knows it: waiting for its commit (`id` None) or stored."""

    __slots__ = ("digest", "id", "created_ms", "waiters")

    def __init__(self, digest, message_id=None, created_ms=0):
        self.digest = digest
        self.id = message_id
        self.created_ms = created_ms
        self.waiters = []  # (session, ref, template, digest) of resends that came before the commit


def _answer(session, ref, template, digest, sent):
    """Answer a resend like the original: its ack (the original's id and time), or client_id_reused."""
    if digest == sent.digest:
        session.acknowledge(template._replace(id=sent.id, created_ms=sent.created_ms), ref)
    else:
        error = reused(template.client_id, ref)
        session.send_error(error.code, error.message, ref)


class Resends:
    """`check_store`: look client_ids this process may not remember up in the database before a post (one process, where
    delivery comes before the commit)."""

    def __init__(self, settings, store, check_store):
        self._store = store
        self._window_ms = int(settings.client_id_window * 1000)
        self._capacity = settings.client_id_memory
        self._check_store = check_store
        self._sent = OrderedDict()  # (sender, client_id) -> _Sent, oldest first; those waiting are never dropped
        self._waiting = 0
        self._remembers_since_ms = now_ms()  # every client_id stored from here on, within the window, is in _sent
        self._purger = None
        self.store_lookups = 0  # database look-ups made before a post (for /healthz and the tests)

    def start(self):
        if self._check_store:
            self._load()
        self._purger = gevent.spawn(self._purge_loop)

    def _load(self):
        """One process: what the database remembers from before this start, the newest client_id_memory of it, so that
        only client_ids older than those need a look-up."""
        rows = self._store.recent_sent(now_ms() - self._window_ms, self._capacity + 1)
        if len(rows) > self._capacity:
            self._remembers_since_ms = rows[0][3] + 1  # the newest not loaded
            rows = rows[1:]
        else:
            self._remembers_since_ms = 0
        for sender, client_id, message_id, created_ms, digest in rows:
            self._sent[(sender, client_id)] = _Sent(digest, message_id, created_ms)

    def stop(self):
        if self._purger is not None:
            self._purger.kill(block=False)

    def __len__(self):
        return len(self._sent)

    # ---- before a post ---------------------------------------------------------------------------

    def claim(self, session, template, ref):
        """Called before posting `template` (a MessageRecord with no id, its client_id set) from `session` with `ref`:
        None when it was sent before (it is answered here, now or once the original commits), else the Claim to post
        it under."""
        key = (template.sender, template.client_id)
        digest = content_digest(template)
        sent = self._known(key)
        if sent is None and self._check_store and not self._remembers(now_ms()):
            self.store_lookups += 1
            try:
                row = self._store.sent_message(*key)
            except StoreUnavailable:
                row = None  # the commit's check still keeps it stored once
            sent = self._known(key)  # another post of it may have got in while the database answered
            if sent is None and row is not None:
                sent = _Sent(row[2], row[0], row[1])
        if sent is None:
            sent = _Sent(digest)
            self._sent[key] = sent
            self._waiting += 1
            return Claim(self, key, sent, session, ref, template, digest)
        if sent.id is None:
            # Without its text (the digest has it; the ack does not): a resend waiting costs a few hundred bytes.
            sent.waiters.append((session, ref, template._replace(body=""), digest))
        else:
            _answer(session, ref, template, digest, sent)
        return None

    def _known(self, key):
        self._forget_old()
        return self._sent.get(key)

    def _remembers(self, now):
        """Whether every client_id stored within the window is in memory (else the database may know one more)."""
        return now - self._window_ms >= self._remembers_since_ms

    # ---- memory, bounded -------------------------------------------------------------------------

    def _settled(self, key, sent):
        self._waiting -= 1
        self._sent[key] = sent
        self._sent.move_to_end(key)
        self._forget_old()

    def _dropped(self, key):
        self._waiting -= 1
        self._sent.pop(key, None)

    def _forget_old(self):
        """Drop the stored entries past the window, and the oldest past client_id_memory (the database still has them)."""
        sent = self._sent
        cutoff = now_ms() - self._window_ms
        while sent:
            key, oldest = next(iter(sent.items()))
            if oldest.id is None:
                break  # waiting for its commit (in order: everything before it is stored)
            if oldest.created_ms >= cutoff and len(sent) - self._waiting <= self._capacity:
                break
            del sent[key]
            if oldest.created_ms >= cutoff:
                self._remembers_since_ms = max(self._remembers_since_ms, oldest.created_ms + 1)

    def _purge_loop(self):
        interval = min(max(self._window_ms / 10000, 1.0), 600.0)
        while True:
            gevent.sleep(interval)
            try:
                self._forget_old()
                gone = self._store.purge_sent(now_ms() - self._window_ms)
                if gone:
                    log.debug("forgot %d client_ids past client_id_window", gone)
            except StoreUnavailable as e:
                log.warning("could not purge old client_ids: %s", e)
            except Exception:
                log.exception("purging old client_ids failed; trying again")


class Claim:
    """A client_id's first post in this process: what it settles to (stored, a duplicate the database knew, refused)
    answers the resends that came meanwhile. Handed to the delivery's post as `sent`, instead of the session's own
    acknowledge and refuse."""

    __slots__ = ("_resends", "_key", "_sent", "session", "_ref", "_digest", "_open")

    def __init__(self, resends, key, sent, session, ref, template, digest):
        self._resends = resends
        self._key = key
        self._sent = sent
        self.session = session
        self._ref = ref
        self._digest = digest
        self._open = True  # counted among the waiting until it settles once

    def _close(self, stored):
        if self._open:
            self._open = False
            if stored:
                self._resends._settled(self._key, self._sent)
            else:
                self._resends._dropped(self._key)

    def stored(self, outcome):
        """After the commit: the stored record, or a Duplicate (another process, or one forgotten here, had it first)."""
        sent = self._sent
        if type(outcome) is Duplicate:
            log.debug("%s sent client_id %r again: the database has it as message %d", outcome.record.sender,
                      outcome.record.client_id, outcome.original_id)
            sent.id, sent.created_ms, sent.digest = outcome.original_id, outcome.original_ms, outcome.original_digest
            _answer(self.session, self._ref, outcome.record, self._digest, sent)
        else:
            sent.id, sent.created_ms = outcome.id, outcome.created_ms
            self.session.acknowledge(outcome, self._ref)
        self._close(True)
        self._answer_waiters()

    def refused(self, record=None):
        """The database refused it: nothing is stored under its client_id."""
        self._close(False)
        refuse = getattr(self.session, "refuse", None)
        if refuse is not None:
            refuse(record, self._ref)
        for session, ref, _, _ in self._take_waiters():
            refuse = getattr(session, "refuse", None)
            if refuse is not None:
                refuse(record, ref)

    def failed(self, error):
        """The post was refused before it was accepted (ProtocolError): resends that waited get the same answer."""
        self._close(False)
        for session, ref, _, _ in self._take_waiters():
            session.send_error(error.code, error.message, ref)

    def _take_waiters(self):
        waiters, self._sent.waiters = self._sent.waiters, []
        return waiters

    def _answer_waiters(self):
        for session, ref, template, digest in self._take_waiters():
            try:
                _answer(session, ref, template, digest, self._sent)
            except Exception:
                log.exception("answering a resend failed")



def template(sender, client_id, body, recipient=None, room=None, reply_to=None):
    """The MessageRecord (no id yet) a message with a client_id would be: for its digest, and its ack to a resend."""
    return MessageRecord(None, sender, recipient, body, 0, None, room, None, None, reply_to, None, client_id)
