"""Server-wide bans: an admin bans a name from the whole server (/serverban NAME, python3 -m chat.admin ban NAME). The
name's sockets close with 4001 in every process and no handshake as the name succeeds until it is unbanned
(chat/accounts/admission.py reads the ban in the query that reads the account)."""
from chat.records import Kick

MAX_BAN_REASON = 300  # characters: the column's width


class BanRefused(Exception):
    """Why a ban or an unban was not done: `code` is an error event's code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class ServerBans:
    """`accounts` is chat.store.accounts.AccountQueries; `kick` closes a name's sockets in every process (the delivery's
    kick, which goes over Redis when there are several processes)."""

    def __init__(self, accounts, kick):
        self._accounts = accounts
        self._kick = kick

    def ban(self, admin, name, reason=""):
        """Ban `name` on behalf of `admin` (who must be a server admin); returns how many of its sockets closed here."""
        self._require_admin(admin)
        if name == admin:
            raise BanRefused("bad_field", "you cannot ban yourself")
        if self._accounts.is_admin(name):
            raise BanRefused("forbidden", f"{name} is a server admin: revoke that first (python3 -m chat.admin revoke-admin)")
        reason = " ".join(reason.split())[:MAX_BAN_REASON]
        if not self._accounts.ban(name, admin, reason):
            raise BanRefused("already_banned", f"{name} is banned from this server already")
        return self._kick(Kick(name, closing_reason(reason)))

    def unban(self, admin, name):
        self._require_admin(admin)
        if not self._accounts.unban(name):
            raise BanRefused("not_banned", f"{name} is not banned from this server")

    def _require_admin(self, user):
        if not self._accounts.is_admin(user):
            raise BanRefused("forbidden", "only a server admin may ban from the server")


def closing_reason(reason):
    """The close frame's reason (at most 123 bytes in RFC 6455): what the banned user's client shows."""
    text = "banned from this server" + (f": {reason}" if reason else "")
    encoded = text.encode("utf-8")[:120]
    return encoded.decode("utf-8", "ignore")
