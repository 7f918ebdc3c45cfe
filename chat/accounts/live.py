"""The sockets admitted in this process, by name: what the per-user cap counts and what a kick closes."""
import logging

log = logging.getLogger("chat.auth")

# A socket whose right to the name ended: its session signed out, its token was revoked, its account was removed,
# or (a guest) someone registered the name.
CLOSE_CREDENTIALS_ENDED = 4001


class LiveSockets:
    """name -> the Admissions (chat/accounts/credentials.py) of that name's open websockets here."""

    def __init__(self, on_kick=None):
        self._by_name = {}
        self._on_kick = on_kick  # told the name of every kick run here (the remembered guest holds forget it)

    def add(self, admission):
        self._by_name.setdefault(admission.name, set()).add(admission)

    def discard(self, admission):
        """Forget one; True when it was its name's last socket here."""
        live = self._by_name.get(admission.name)
        if live is None or admission not in live:
            return False
        live.discard(admission)
        if live:
            return False
        del self._by_name[admission.name]
        return True

    def count(self, name):
        return len(self._by_name.get(name, ()))

    def by_name(self):
        """(name, admissions) pairs, a copy: safe to iterate while sockets come and go."""
        return [(name, tuple(admissions)) for name, admissions in self._by_name.items()]

    def close(self, kick):
        """Close the sockets here that `kick` (chat.records.Kick) names with 4001; also run for kicks from other
        processes. Returns how many were closed."""
        name, reason, digest, guests_only = kick
        if self._on_kick is not None:
            self._on_kick(name)
        closed = 0
        for admission in tuple(self._by_name.get(name, ())):
            if guests_only and admission.digest is not None:
                continue
            if digest is not None and admission.digest != digest:
                continue
            admission.close(CLOSE_CREDENTIALS_ENDED, reason)
            closed += 1
        if closed:
            log.info("closed %d connections of %s: %s", closed, name, reason)
        return closed
