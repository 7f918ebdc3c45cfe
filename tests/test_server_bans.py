"""Server-wide bans (issue 15): a server admin bans a name from the whole server (/serverban, or the operator's
`python3 -m chat.admin ban`); its sockets close with 4001 in every process, no handshake as it succeeds until it is
unbanned, and nobody else may ban. Over real sockets on each store and across two processes."""
import subprocess
import sys
import uuid

import pytest

from tests.support.clients import online_everywhere, post
from tests.support.servers import ROOT
from tests.support.webusers import account, refused, token_socket

CLOSE_CREDENTIALS_ENDED = 4001


def admin_command(server, *args):
    """`python3 -m chat.admin ...` pointed at `server`'s database (and its port, for the commands that tell it)."""
    done = subprocess.run([sys.executable, "-m", "chat.admin", *args, "--database", server.database_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


def ban(client, name, reason=None, kind="server_ban"):
    """Send a server_ban (or server_unban) with a fresh ref: its answer, or the error it was refused with."""
    ref = uuid.uuid4().hex[:8]
    payload = {"type": kind, "user": name, "ref": ref}
    if reason is not None:
        payload["reason"] = reason
    client.send(payload)
    while True:
        event = client.recv()
        if event["type"] in (kind, "error") and event.get("ref") == ref:
            return event


def test_an_admin_bans_a_guest_everywhere_and_a_bystander_keeps_chatting(chat):
    server = chat.server
    _, root, token = account(server, "root")
    assert admin_command(server, "grant-admin", root)[0] == 0
    troll, bystander = chat.connect("troll"), chat.connect("bystander")
    second_tab = chat.connect("troll")
    with token_socket(server, root, token) as admin:
        answer = ban(admin, troll.name, "  spam,\n  spam  and spam ")
        assert answer == {"type": "server_ban", "user": troll.name, "ref": answer["ref"]}
        for socket in (troll, second_tab):
            code, reason = socket.recv_close()
            assert (code, reason) == (CLOSE_CREDENTIALS_ENDED, "banned from this server: spam, spam and spam")
        status, why = refused(server, f"/ws/{troll.name}")
        assert (status, why) == (403, f"{troll.name} is banned from this server")
        assert ban(admin, troll.name)["code"] == "already_banned"
        sent = post(bystander, "still here")
        assert sent["type"] == "ack"
        assert ban(admin, troll.name, kind="server_unban")["type"] == "server_unban"
        assert ban(admin, troll.name, kind="server_unban")["code"] == "not_banned"
    back = chat.connect("troll")
    assert post(back, "sorry")["type"] == "ack"


def test_only_an_admin_bans_and_never_an_admin_or_themselves(chat):
    server = chat.server
    _, root, token = account(server, "root")
    _, other_admin, _ = account(server, "other-admin")
    guest = chat.connect("guest")
    victim = chat.connect("victim")
    assert ban(guest, victim.name)["code"] == "forbidden"  # a guest is no admin
    guest.send(f"/serverban {victim.name} because")
    assert guest.recv_type("error")["code"] == "forbidden"
    assert post(victim, "not banned")["type"] == "ack"
    assert admin_command(server, "grant-admin", root)[0] == 0
    assert admin_command(server, "grant-admin", other_admin)[0] == 0
    with token_socket(server, root, token) as admin:
        assert ban(admin, root)["code"] == "bad_field"
        assert ban(admin, other_admin)["code"] == "forbidden"
        assert ban(admin, "no such name!")["code"] == "bad_name"
        assert ban(admin, victim.name, reason=["not", "text"])["code"] == "bad_field"
        admin.send(f"/serverban {victim.name} flooding")  # the slash form
        assert admin.recv_type("server_ban")["user"] == victim.name
        assert victim.recv_close() == (CLOSE_CREDENTIALS_ENDED, "banned from this server: flooding")
        admin.send(f"/serverunban {victim.name}")
        assert admin.recv_type("server_unban")["user"] == victim.name
    assert admin_command(server, "revoke-admin", other_admin)[0] == 0


def test_a_banned_account_cannot_connect_with_its_token_until_unbanned(chat):
    server = chat.server
    _, root, root_token = account(server, "root")
    _, name, token = account(server, "banned-account")
    assert admin_command(server, "grant-admin", root)[0] == 0
    member = token_socket(server, name, token)
    with token_socket(server, root, root_token) as admin:
        ban(admin, name)
        assert member.recv_close()[0] == CLOSE_CREDENTIALS_ENDED
        assert refused(server, f"/ws/{name}?token={token}") == (403, f"{name} is banned from this server")
        ban(admin, name, kind="server_unban")
    with token_socket(server, name, token) as again:
        assert post(again, "back")["type"] == "ack"


def test_the_operator_bans_from_the_command_line(chat):
    server = chat.server
    troll = chat.connect("cli-troll")
    code, said = admin_command(server, "ban", troll.name, "--reason", "by hand", "--port", str(server.port))
    assert code == 0, said
    assert f"{troll.name} is banned from the server" in said and "closed 1 open connection" in said
    assert troll.recv_close() == (CLOSE_CREDENTIALS_ENDED, "banned from this server: by hand")
    assert refused(server, f"/ws/{troll.name}")[0] == 403
    assert admin_command(server, "unban", troll.name) == (0, f"{troll.name} may connect again\n")
    assert admin_command(server, "unban", troll.name)[0] == 1
    chat.connect("cli-troll")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_ban_closes_the_sockets_on_every_process(pair, clients):
    a, b = pair
    _, root, root_token = account(a, "root")
    _, troll, token = account(a, "troll")
    assert admin_command(a, "grant-admin", root)[0] == 0
    troll_a, troll_b = token_socket(a, troll, token), token_socket(b, troll, token)
    bystander = clients(b, "bystander")
    online_everywhere(bystander, troll, "bystander")
    with token_socket(a, root, root_token) as admin:
        assert ban(admin, troll)["type"] == "server_ban"
    for socket in (troll_a, troll_b):
        assert socket.recv_close()[0] == CLOSE_CREDENTIALS_ENDED
    assert refused(b, f"/ws/{troll}?token={token}")[0] == 403
    assert post(bystander, "nothing lost")["type"] == "ack"


@pytest.mark.parametrize("text, expected", [
    ("/serverban", ("bad_command", "usage: /serverban NAME [reason]")),
    ("/serverunban alice now", ("bad_command", "usage: /serverunban NAME")),
    ('{"type":"server_ban"}', ("bad_field", None)),
    ('{"type":"server_ban","user":"alice","reason":"\\ud800"}', ("bad_field", None)),
    ('{"type":"server_unban","user":"a b"}', ("bad_name", None)),
])
def test_malformed_ban_commands_are_refused_with_their_usage(text, expected):
    from chat.messaging.protocol import ProtocolError, parse_inbound

    with pytest.raises(ProtocolError) as refusal:
        parse_inbound(text, max_name_length=32, default_history=50, max_history=500)
    code, message = expected
    assert refusal.value.code == code
    if message is not None:
        assert refusal.value.message == message


def test_ban_commands_parse():
    from chat.messaging.protocol import ServerBan, parse_inbound

    options = dict(max_name_length=32, default_history=50, max_history=500)
    assert parse_inbound("/serverban troll  posts spam ", **options) == ServerBan("troll", True, "posts spam")
    assert parse_inbound('{"type":"server_unban","user":"troll","ref":"u"}', **options) == ServerBan("troll", False, "", "u")
