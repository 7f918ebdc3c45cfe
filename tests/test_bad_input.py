"""Bad input, one case per test, against one server (SQLite, max_message_size=1024) shared by this module.

Recoverable mistakes get an `error` event with a `code` and the connection stays open;
protocol violations get the RFC 6455 close code; refused handshakes get HTTP 400 before any
upgrade. After each case, two other connected users still chat.
"""
import json

import pytest

from tests.support.rawws import (
    OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, RawWebSocket, build_frame, origin, terminal_refusal,
)
from tests.support.servers import Chat, ServerProcess

MAX_MESSAGE_SIZE = 1024


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad_input")
    server = ServerProcess(f"sqlite:///{directory / 'chat.db'}", directory / "server.log", max_message_size=MAX_MESSAGE_SIZE)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def chat(small_server, clients):
    return Chat(small_server, clients)


@pytest.fixture
def still_serving(chat):
    """Two bystanders connected before the bad input; call the result afterwards to check they still chat."""
    one, two = chat.connect("by1"), chat.connect("by2")

    def check():
        one.send({"msg": "still alive", "ref": "alive"})
        ack = next_of(one, "ack")  # skipping deliveries of the test's own messages
        assert ack["ref"] == "alive"
        while True:
            event = next_of(two, "message")
            if event["id"] == ack["id"]:
                break
        assert (event["user"], event["msg"]) == (one.name, "still alive")

    return check


def next_of(client, kind):
    """The client's next event of type `kind`, skipping live deliveries and presence."""
    while True:
        event = client.recv_type(kind, "message", "direct")
        if event["type"] == kind:
            return event


def raw_connect(chat, short):
    raw = RawWebSocket.connect(chat.server.port, f"/ws/{chat.name(short)}")
    raw.handshake()
    return raw


# ---- refused handshakes: HTTP 400 before the upgrade ------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ws/",
        "/ws",
        "/ws/" + "a" * 33,
        "/ws/a%20b",
        "/ws/%3Cscript%3E",
        "/ws/<script>",
        "/ws/../x",
        "/ws/%2E%2E%2Fx",
        "/ws/..",
        "/ws/.hidden",
        "/ws/a/b",
        "/ws/al%C3%A9",
        "/ws/a%00b",
        "/ws/%20alice",
    ],
    ids=["empty-slash", "empty", "too-long", "space", "script-encoded", "script", "dotdot-x", "dotdot-x-encoded",
         "dotdot", "leading-dot", "slash", "non-ascii", "nul", "leading-space"],
)
def test_invalid_username_is_refused_with_400_before_the_upgrade(small_server, path, still_serving):
    raw, response = RawWebSocket.open_http(small_server.port, path, extra_headers=(origin(small_server),))
    try:
        assert response.status == 400
        assert "upgrade" not in response.headers and "sec-websocket-accept" not in response.headers
        assert response.headers["content-type"].startswith("application/json")
        reason = response.json()["error"]
        assert "name" in reason and "a-z" in reason
    finally:
        raw.close()
    # A terminal client (no Origin) gets the same reason in a close frame, 4000 (400)
    assert terminal_refusal(small_server.port, path) == (4000, reason)
    still_serving()


def test_longest_valid_name_is_accepted(chat):
    raw = RawWebSocket.connect(chat.server.port, "/ws/" + "z" * 32)
    welcome, _ = raw.handshake()
    assert welcome["user"] == "z" * 32
    raw.close()


@pytest.mark.parametrize(
    "query",
    ["?since=abc", "?since=-1", "?since=1.5", "?since=", "?since=%C2%B2", "?since=%D9%A1%D9%A2", "?since=9223372036854775808",
     "?since=99999999999999999999999"],
    ids=["letters", "negative", "fraction", "empty", "superscript-two", "arabic-digits", "2**63", "huge"],
)
def test_invalid_since_is_refused_with_400(small_server, query):
    raw, response = RawWebSocket.open_http(small_server.port, "/ws/sincer" + query, extra_headers=(origin(small_server),))
    raw.close()
    assert response.status == 400
    assert "since" in response.json()["error"]
    assert terminal_refusal(small_server.port, "/ws/sincer" + query) == (4000, response.json()["error"])


def test_largest_since_is_accepted(chat):
    raw = RawWebSocket.connect(chat.server.port, f"/ws/{chat.name('since')}?since={2**63 - 1}")
    _, history = raw.handshake()
    assert (history["messages"], history["since"]) == ([], 2**63 - 1)
    raw.close()


def test_bad_websocket_version_is_refused_with_426(small_server):
    raw, response = RawWebSocket.open_http(small_server.port, "/ws/versioned", version="8")
    raw.close()
    assert response.status == 426
    assert response.headers["sec-websocket-version"] == "13"


# ---- recoverable mistakes: an error event, the connection stays --------------------------------


def assert_error_then_still_works(chat, payload, code, still_serving):
    sender, witness = chat.connect("sender"), chat.connect("witness")
    sender.send(payload)
    error = sender.recv_type("error")
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    # the same connection still works, and nothing of the bad frame was delivered to anyone
    sender.send({"msg": "valid after error", "ref": "ok"})
    ack = sender.recv_type("ack")
    assert ack["ref"] == "ok"
    event = witness.recv_type("message", "direct")
    assert (event["id"], event["msg"]) == (ack["id"], "valid after error")
    still_serving()
    return error


def test_invalid_json(chat, still_serving):
    assert_error_then_still_works(chat, '{"msg": "unterminated', "bad_json", still_serving)


def test_invalid_json_single_quotes(chat, still_serving):
    assert_error_then_still_works(chat, "{'msg': 'python dict'}", "bad_json", still_serving)


def test_json_not_an_object_is_plain_text(chat, still_serving):
    """Only a frame starting with '{' is JSON (docs/protocol.md): a JSON array is chat text, not an error."""
    sender, witness = chat.connect("sender"), chat.connect("witness")
    sender.send('["not", "an", "object"]')
    ack = sender.recv_type("ack")
    assert witness.recv_type("message")["id"] == ack["id"]
    still_serving()


def test_unknown_type(chat, still_serving):
    error = assert_error_then_still_works(chat, {"type": "dance", "msg": "x", "ref": "u1"}, "unknown_type", still_serving)
    assert error["ref"] == "u1"


@pytest.mark.parametrize(
    "payload,code",
    [
        ({}, "bad_message"),
        ({"text": "no msg key"}, "bad_message"),
        ({"type": "message"}, "bad_field"),
        ({"type": "direct", "msg": "no to"}, "bad_field"),
        ({"to": None, "msg": "null to"}, "bad_field"),
        ({"msg": 5}, "bad_field"),
        ({"msg": ["a"]}, "bad_field"),
        ({"msg": None}, "bad_field"),
        ({"to": 5, "msg": "x"}, "bad_field"),
        ({"type": 7, "msg": "x"}, "bad_field"),
        ({"type": "history", "limit": "5"}, "bad_field"),
        ({"type": "history", "limit": 0}, "bad_field"),
        ({"type": "history", "before": "9"}, "bad_field"),
        ({"type": "history", "before": 2**63}, "bad_field"),
        ({"type": "history", "before": 10**30}, "bad_field"),
        ({"type": "history", "with": 3}, "bad_field"),
        ({"msg": "x", "ref": 1.5}, "bad_field"),
        ({"msg": "x", "ref": "r" * 65}, "bad_field"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_missing_or_wrong_typed_fields(chat, still_serving, payload, code):
    assert_error_then_still_works(chat, payload, code, still_serving)


def test_empty_text_frame(chat, still_serving):
    assert_error_then_still_works(chat, "", "empty_message", still_serving)


@pytest.mark.parametrize("payload", ["   ", "\t\n ", {"msg": ""}, {"msg": "  \n"}, {"type": "message", "msg": " "}])
def test_whitespace_only_text(chat, still_serving, payload):
    assert_error_then_still_works(chat, payload, "empty_message", still_serving)


def test_empty_direct_message(chat, still_serving):
    chat.connect("target")
    assert_error_then_still_works(chat, {"to": chat.name("target"), "msg": " "}, "empty_message", still_serving)


def test_direct_to_yourself(chat, still_serving):
    assert_error_then_still_works(chat, {"to": chat.name("sender"), "msg": "me"}, "self_message", still_serving)


def test_slash_msg_to_yourself(chat, still_serving):
    assert_error_then_still_works(chat, f"/msg {chat.name('sender')} me", "self_message", still_serving)


def test_direct_to_unknown_name(chat, still_serving):
    error = assert_error_then_still_works(chat, {"to": chat.name("ghost"), "msg": "boo", "ref": 5}, "unknown_user", still_serving)
    assert error["ref"] == 5


def test_direct_to_invalid_name(chat, still_serving):
    assert_error_then_still_works(chat, {"to": "<script>", "msg": "x"}, "bad_name", still_serving)


def test_bad_slash_commands(chat, still_serving):
    assert_error_then_still_works(chat, "/msg", "bad_command", still_serving)


def test_unknown_slash_command(chat, still_serving):
    assert_error_then_still_works(chat, "/frobnicate", "unknown_command", still_serving)


def test_many_errors_in_a_row_keep_the_connection(chat, still_serving):
    sender = chat.connect("sender")
    for payload in ["{", "", {"type": "x"}, {"msg": 1}, "/nope"] * 10:
        sender.send(payload)
    codes = [sender.recv_type("error")["code"] for _ in range(50)]
    assert codes == ["bad_json", "empty_message", "unknown_type", "bad_field", "unknown_command"] * 10
    sender.send("fine")
    sender.recv_type("ack")
    still_serving()


# ---- size cap --------------------------------------------------------------------------------


def test_message_at_the_size_cap_is_accepted(chat):
    sender, witness = chat.connect("sender"), chat.connect("witness")
    text = "x" * MAX_MESSAGE_SIZE
    sender.send(text)
    ack = sender.recv_type("ack")
    assert witness.recv_type("message") == {"type": "message", "id": ack["id"], "user": sender.name, "msg": text, "ts": ack["ts"]}


def test_oversized_message_is_closed_with_1009(chat, still_serving):
    big = chat.connect("big")
    big.send("x" * (MAX_MESSAGE_SIZE + 1))
    code, _ = big.recv_close()
    assert code == 1009
    still_serving()


def test_oversized_multibyte_message_is_closed_with_1009(chat, still_serving):
    """The cap is in bytes: 600 two-byte characters is 1200 bytes."""
    big = chat.connect("big")
    big.send("é" * 600)
    assert big.recv_close()[0] == 1009
    still_serving()


def test_size_cap_applies_before_the_payload_is_read(chat, still_serving):
    """Only a frame header declaring 2**40 bytes is sent: the server answers 1009 at once and drops the connection."""
    raw = raw_connect(chat, "huge")
    raw.send_raw(build_frame(OP_TEXT, b"", length=2**40))  # header and mask key, no payload
    code, reason = raw.recv_close()
    assert code == 1009
    assert reason
    assert raw.at_eof()
    raw.close()
    still_serving()


def test_size_cap_applies_to_a_fragmented_message(chat, still_serving):
    raw = raw_connect(chat, "frag")
    raw.send_frame(OP_TEXT, "a" * 1000, fin=False)
    raw.send_raw(build_frame(OP_CONTINUATION, b"", length=100))  # header only: the total would be 1100
    assert raw.recv_close()[0] == 1009
    raw.close()
    still_serving()


# ---- protocol violations: RFC 6455 close codes ----------------------------------------------------


def violation(chat, frame, still_serving):
    """Send `frame` on a fresh raw connection; returns the server's close code. Checks the TCP connection ends too."""
    raw = raw_connect(chat, "rude")
    raw.send_raw(frame)
    code, _ = raw.recv_close()
    assert raw.finish_close(code)
    raw.close()
    still_serving()
    return code


def test_binary_frame_is_closed_with_1003(chat, still_serving):
    assert violation(chat, build_frame(OP_BINARY, b"\x00\x01\x02"), still_serving) == 1003


def test_invalid_utf8_is_closed_with_1007(chat, still_serving):
    assert violation(chat, build_frame(OP_TEXT, b"bad \xff\xfe utf-8"), still_serving) == 1007


def test_invalid_utf8_in_a_first_fragment_fails_fast(chat, still_serving):
    """The message is never finished: the server must reject the bad bytes as soon as it sees them."""
    assert violation(chat, build_frame(OP_TEXT, b"ok \xc3\x28", fin=False), still_serving) == 1007


def test_invalid_utf8_at_the_start_of_an_unfinished_frame_fails_fast(chat, still_serving):
    """A frame declaring 1000 bytes, of which only the first 8 (bad UTF-8) are sent: 1007 without waiting for the rest."""
    frame = build_frame(OP_TEXT, b"bad \xff\xfe!!" + b"x" * 992)
    header = 2 + 2 + 4  # 16-bit length and mask key
    assert violation(chat, frame[: header + 8], still_serving) == 1007


def test_unmasked_client_frame_is_closed_with_1002(chat, still_serving):
    assert violation(chat, build_frame(OP_TEXT, "hello", mask=False), still_serving) == 1002


@pytest.mark.parametrize("opcode", [0x3, 0x7, 0xB, 0xF])
def test_unknown_opcode_is_closed_with_1002(chat, still_serving, opcode):
    assert violation(chat, build_frame(opcode, b"?"), still_serving) == 1002


@pytest.mark.parametrize("rsv", [1, 2, 4])
def test_reserved_bits_are_closed_with_1002(chat, still_serving, rsv):
    assert violation(chat, build_frame(OP_TEXT, "hi", rsv=rsv), still_serving) == 1002


def test_continuation_without_a_message_is_closed_with_1002(chat, still_serving):
    assert violation(chat, build_frame(OP_CONTINUATION, "orphan"), still_serving) == 1002


def test_fragmented_ping_is_closed_with_1002(chat, still_serving):
    assert violation(chat, build_frame(OP_PING, b"x", fin=False), still_serving) == 1002


def test_oversized_ping_is_closed_with_1002(chat, still_serving):
    assert violation(chat, build_frame(OP_PING, b"x" * 126), still_serving) == 1002


def test_close_with_an_invalid_code_is_closed_with_1002(chat, still_serving):
    assert violation(chat, build_frame(OP_CLOSE, (1005).to_bytes(2, "big")), still_serving) == 1002


def test_valid_messages_before_a_violation_in_the_same_packet_are_delivered(chat, still_serving):
    witness = chat.connect("witness")
    raw = raw_connect(chat, "rude")
    raw.send_raw(build_frame(OP_TEXT, "last words") + build_frame(OP_BINARY, b"\x00"))
    assert raw.recv_close()[0] == 1003  # (the ack may or may not make it out before the close frame)
    raw.close()
    assert witness.recv_type("message")["msg"] == "last words"
    still_serving()


# ---- well-behaved control frames -------------------------------------------------------------------


def test_ping_gets_a_pong_with_the_same_payload(chat):
    raw = raw_connect(chat, "pinger")
    raw.send_frame(OP_PING, b"are you there")
    while True:
        fin, opcode, payload = raw.recv_frame()
        if opcode == OP_PONG:
            break
    assert (fin, payload) == (True, b"are you there")
    raw.send_text("after ping")
    assert "id" in raw.recv_type("ack")
    raw.close()


def test_fragmented_text_with_an_interleaved_ping_is_one_message(chat):
    witness = chat.connect("witness")
    raw = raw_connect(chat, "frag")
    raw.send_frame(OP_TEXT, "hel", fin=False)
    raw.send_frame(OP_PING, b"p")
    raw.send_frame(OP_CONTINUATION, "lo 😀")
    assert raw.recv_type("ack")
    assert witness.recv_type("message")["msg"] == "hello 😀"
    raw.close()


def test_client_close_is_answered_with_the_same_code(chat):
    raw = raw_connect(chat, "polite")
    raw.send_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye")
    assert raw.recv_close()[0] == 1000
    assert raw.at_eof()
    raw.close()


def test_client_close_without_a_code_is_answered(chat):
    raw = raw_connect(chat, "terse")
    raw.send_frame(OP_CLOSE, b"")
    assert raw.recv_close()[0] in (1000, 1005)
    assert raw.at_eof()
    raw.close()
