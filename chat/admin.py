"""Operator commands: `python3 -m chat.admin remove-user NAME` disables an account, revokes its sessions and tokens,
and has the running server close that user's websockets (4001 "account removed"); `grant-admin NAME` and
`revoke-admin NAME` make an account a server admin (who deletes any message of general and of every room and bans from
the server) or not; `ban NAME [--reason TEXT]` and `unban NAME` ban a name from the whole server (its sockets close with
4001 and no handshake as it succeeds) or lift that, as an admin's /serverban does; `export [--user NAME]` writes the
chat (or what one user may have of it) as JSON lines to stdout; `purge` runs the retention purge once, now
(docs/operations.md)."""
import argparse
import json
import sys
import urllib.error
import urllib.request

from chat.accounts.routes import admin_serializer
from chat.accounts.credentials import AuthService
from chat.accounts.serverbans import MAX_BAN_REASON, closing_reason
from chat.messaging.export import export_lines
from chat.config import load_settings
from chat.names import normalize_name
from chat.security import load_secret_key
from chat.store import Store, StoreUnavailable
from chat.store.accounts import AccountQueries
from chat.store.retention import Purger

USAGE_EPILOG = """\
Pass the same settings as the server (flags or CHAT_* variables) so this reaches the same database, Redis and
secret key: e.g. python3 -m chat.admin remove-user alice --database mysql://chat:pw@db/chat --port 5000.
The running server is told over HTTP (POST /admin/disconnect, signed with the secret key), by default at
http://HOST:PORT from those settings; --server URL overrides it."""


def _server_url(settings, override):
    if override:
        return override.rstrip("/")
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def notify_server(url, secret_key, name, timeout=5.0, reason=None):
    """Ask the running server to close `name`'s sockets: the number closed, or None when no server answered."""
    payload = {"name": name} if reason is None else {"name": name, "reason": reason}
    body = admin_serializer(secret_key).dumps(payload).encode("ascii")
    request = urllib.request.Request(f"{url}/admin/disconnect", data=body, method="POST", headers={"Content-Type": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["closed"]
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError):
        return None


class _StoreDown(Exception):
    """The store did not answer; the message has been printed."""


def _valid_name(settings, raw_name, out):
    """The normalised name, or None after saying why it is not one."""
    name = normalize_name(raw_name, settings.max_name_length)
    if name is None:
        out(f"{raw_name!r} is not a valid user name")
    return name


def _on_store(settings, out, work):
    """work(store) on a one-connection store with the schema in place; raises _StoreDown (said) if it does not answer."""
    store = Store(settings.database_url, pool_size=1, connect_timeout=settings.db_connect_timeout)
    try:
        store.ensure_schema()
        return work(store)
    except StoreUnavailable as e:
        out(f"the store is not answering: {e}")
        raise _StoreDown() from e
    finally:
        store.close()


def _close_on_server(settings, server, name, out, reason=None):
    """Have the running server close `name`'s sockets (POST /admin/disconnect); the exit status."""
    url = _server_url(settings, server)
    try:
        closed = notify_server(url, load_secret_key(settings), name, reason=reason)
    except urllib.error.HTTPError as e:
        out(f"the server at {url} refused the request ({e.code}): does it use the same secret key "
            "(CHAT_SECRET_KEY, or --instance-dir)?")
        return 1
    if closed is None:
        out(f"no server answered at {url}: if one runs elsewhere, pass --server URL, or {name}'s open sockets stay open")
    else:
        out(f"the server at {url} closed {closed} open connection(s) of {name}")
    return 0


def remove_user(settings, raw_name, release=False, server=None, out=print):
    name = _valid_name(settings, raw_name, out)
    if name is None:
        return 2
    try:
        existed = _on_store(settings, out, lambda store: AuthService(settings, store).remove_account(name, release=release))
    except _StoreDown:
        return 1
    if not existed:
        out(f"no account named {name}")
        return 1
    out(f"{'deleted' if release else 'removed'} account {name}; its sessions and tokens are revoked"
        + ("" if release else "; the name stays reserved (--release frees it)"))
    return _close_on_server(settings, server, name, out)


def set_admin(settings, raw_name, grant, out=print):
    """Grant or revoke server admin; takes effect at the user's next delete (the server reads it from the database)."""
    name = _valid_name(settings, raw_name, out)
    if name is None:
        return 2
    try:
        done = _on_store(settings, out, lambda store: (
            AccountQueries(store).grant_admin(name) if grant else AccountQueries(store).revoke_admin(name)))
    except _StoreDown:
        return 1
    if not done:
        out(f"no account named {name}: only registered accounts can be admins" if grant else f"{name} is no admin")
        return 1
    out(f"{name} is {'now' if grant else 'no longer'} a server admin")
    return 0


def set_ban(settings, raw_name, ban, reason="", server=None, out=print):
    """Ban a name from the server (and have the running server close its sockets) or lift the ban."""
    name = _valid_name(settings, raw_name, out)
    if name is None:
        return 2
    try:
        done = _on_store(settings, out, lambda store: (
            AccountQueries(store).ban(name, "operator", " ".join(reason.split())[:MAX_BAN_REASON]) if ban
            else AccountQueries(store).unban(name)))
    except _StoreDown:
        return 1
    if not ban:
        out(f"{name} may connect again" if done else f"{name} is not banned")
        return 0 if done else 1
    out(f"{name} is banned from the server" if done else f"{name} was banned already")
    return _close_on_server(settings, server, name, out, closing_reason(reason))


def export(settings, raw_name=None, out=sys.stdout, err=print):
    """Stream the export to `out`, a line at a time."""
    name = None
    if raw_name is not None:
        name = _valid_name(settings, raw_name, err)
        if name is None:
            return 2

    def write(store):
        for line in export_lines(store, name):
            out.write(line + "\n")
        out.flush()

    try:
        _on_store(settings, err, write)
    except _StoreDown:
        return 1
    return 0


def purge(settings, out=print):
    """Run the retention purge once, to the end, with the server's retention settings."""
    def run(store):
        purger = Purger(settings, store)
        return purger.run() if purger.enabled else None

    try:
        done = _on_store(settings, out, run)
    except _StoreDown:
        return 1
    if done is None:
        out("nothing to purge: message_retention_days and upload_retention_days are both 0 (keep forever)")
    else:
        out(f"purged {done['messages']} messages and {done['files']} files")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m chat.admin", description="Chat server operator commands.", epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    remove = commands.add_parser(
        "remove-user", help="disable an account, revoke its sessions and tokens, close its websockets", epilog=USAGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    remove.add_argument("name")
    remove.add_argument("--release", action="store_true", help="delete the account so the name is free again (default: keep it reserved)")
    remove.add_argument("--server", help="URL of the running server (default: http://HOST:PORT from the settings)")
    for command, grant, text in (("grant-admin", True, "make an account a server admin: it may delete any message of "
                                  "general and of every room"), ("revoke-admin", False, "end an account's server admin rights")):
        sub = commands.add_parser(command, help=text, epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("name")
        sub.set_defaults(grant=grant)
    ban = commands.add_parser("ban", help="ban a name from the whole server and close its websockets", epilog=USAGE_EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    ban.add_argument("name")
    ban.add_argument("--reason", default="", help="shown to the banned user's client in the close frame")
    ban.add_argument("--server", help="URL of the running server (default: http://HOST:PORT from the settings)")
    unban = commands.add_parser("unban", help="lift a server ban", epilog=USAGE_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    unban.add_argument("name")
    dump = commands.add_parser(
        "export", help="write every message (or, with --user, what one user may have) as JSON lines to stdout",
        epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dump.add_argument("--user", help="only this user's data: account, rooms, files, messages sent, directs received")
    commands.add_parser(
        "purge", help="delete now what is older than message_retention_days / upload_retention_days",
        epilog=USAGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    settings = load_settings(rest)
    if args.command in ("grant-admin", "revoke-admin"):
        return set_admin(settings, args.name, args.grant)
    if args.command == "export":
        return export(settings, args.user, err=lambda text: print(text, file=sys.stderr))
    if args.command == "purge":
        return purge(settings)
    if args.command in ("ban", "unban"):
        return set_ban(settings, args.name, args.command == "ban", getattr(args, "reason", ""), getattr(args, "server", None))
    return remove_user(settings, args.name, release=args.release, server=args.server)


if __name__ == "__main__":
    sys.exit(main())
