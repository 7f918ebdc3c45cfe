"""chat/messaging/protocol.py on its own: every inbound form, every error code, and the outbound events."""
import json
from datetime import datetime, timezone

import pytest

from chat.messaging import protocol
from chat.messaging.protocol import CURRENT, History, Help, ProtocolError, SendDirect, SendGroup, Who
from chat.records import MessageRecord

OPTIONS = dict(max_name_length=32, default_history=50, max_history=200)


def parse(text):
    return protocol.parse_inbound(text, **OPTIONS)


def error_of(text):
    with pytest.raises(ProtocolError) as info:
        parse(text if isinstance(text, str) else json.dumps(text))
    return info.value


def code_of(text):
    return error_of(text).code


# ---- plain text and slash commands --------------------------------------------------------


def test_plain_text_is_a_group_message():
    assert parse("hello everyone") == SendGroup("hello everyone", room=CURRENT)


def test_plain_text_keeps_surrounding_whitespace_and_unicode():
    assert parse("  héllo 😀  ") == SendGroup("  héllo 😀  ", room=CURRENT)


def test_text_starting_with_a_space_then_brace_is_plain_text():
    assert parse(' {"msg": 1}') == SendGroup(' {"msg": 1}', room=CURRENT)


def test_double_slash_escapes_a_leading_slash():
    assert parse("//shrug") == SendGroup("/shrug", room=CURRENT)
    assert parse("//msg bob hi") == SendGroup("/msg bob hi", room=CURRENT)


def test_double_slash_alone_is_a_message_of_one_slash():
    assert parse("//") == SendGroup("/", room=CURRENT)


def test_slash_msg():
    assert parse("/msg bob hi there") == SendDirect("bob", "hi there")


def test_slash_msg_normalises_the_name_and_command():
    assert parse("/MSG  Bob  hi") == SendDirect("bob", " hi")


def test_slash_msg_without_a_name_is_bad_command():
    assert code_of("/msg") == "bad_command"
    assert code_of("/msg   ") == "bad_command"


def test_slash_msg_without_text_is_empty_message():
    assert code_of("/msg bob") == "empty_message"
    assert code_of("/msg bob    ") == "empty_message"


def test_slash_msg_with_an_invalid_name_is_bad_name():
    assert code_of("/msg <b> hi") == "bad_name"


def test_slash_who_and_help():
    assert parse("/who") == Who(room=CURRENT)
    assert parse("/help") == Help()
    assert parse("/WHO") == Who(room=CURRENT)


def test_slash_history():
    assert parse("/history") == History(50, room=CURRENT)
    assert parse("/history 5") == History(5, room=CURRENT)
    assert parse("/history  7 ") == History(7, room=CURRENT)


def test_slash_history_is_capped():
    assert parse("/history 100000") == History(200, room=CURRENT)


@pytest.mark.parametrize("arg", ["0", "-1", "abc", "2.5", "1e3"])
def test_slash_history_with_a_bad_count_is_bad_command(arg):
    assert code_of(f"/history {arg}") == "bad_command"


@pytest.mark.parametrize("text", ["/nope", "/", "/ hi", "/msgs bob hi"])
def test_unknown_slash_command(text):
    assert code_of(text) == "unknown_command"


@pytest.mark.parametrize("text", ["", " ", "   \t\n "])
def test_empty_and_whitespace_text_is_empty_message(text):
    assert code_of(text) == "empty_message"


def test_double_slash_with_only_whitespace_after_is_still_text():
    assert parse("// ") == SendGroup("/ ", room=CURRENT)


# ---- JSON forms --------------------------------------------------------------------------


def test_typed_group_message():
    assert parse('{"type":"message","msg":"hi"}') == SendGroup("hi")


def test_typed_direct_message():
    assert parse('{"type":"direct","to":"bob","msg":"hi"}') == SendDirect("bob", "hi")


def test_seed_msg_form_is_a_group_message():
    assert parse('{"msg":"hi"}') == SendGroup("hi")


def test_seed_to_form_is_a_direct_message():
    assert parse('{"to":"bob","msg":"hi"}') == SendDirect("bob", "hi")


def test_seed_to_sender_form_is_a_direct_message():
    assert parse('{"to_sender":"bob","msg":"hi"}') == SendDirect("bob", "hi")


def test_to_sender_wins_over_to():
    assert parse('{"to_sender":"bob","to":"carol","msg":"hi"}') == SendDirect("bob", "hi")


def test_direct_target_is_normalised():
    assert parse('{"to":"  Bob ","msg":"hi"}') == SendDirect("bob", "hi")


def test_json_text_keeps_unicode():
    assert parse(json.dumps({"msg": "emoji 😀 and 中文"})) == SendGroup("emoji 😀 and 中文")


def test_typed_message_ignores_a_stray_to():
    assert parse('{"type":"message","to":"bob","msg":"hi"}') == SendGroup("hi")


@pytest.mark.parametrize("ref", ["abc", "", "r" * 64, 0, 7, -3, 2**53 - 1])
def test_ref_is_carried(ref):
    assert parse(json.dumps({"msg": "hi", "ref": ref})) == SendGroup("hi", ref)
    assert parse(json.dumps({"to": "bob", "msg": "hi", "ref": ref})) == SendDirect("bob", "hi", ref)


@pytest.mark.parametrize("ref", ["r" * 65, 1.5, True, [1], {"a": 1}, 2**53])
def test_bad_ref_is_bad_field(ref):
    assert code_of({"msg": "hi", "ref": ref}) == "bad_field"


def test_history_request_defaults():
    assert parse('{"type":"history"}') == History(50)


def test_history_request_with_everything():
    assert parse('{"type":"history","limit":10,"before":99,"with":"Bob","ref":"h1"}') == History(10, 99, "bob", "h1")


def test_history_request_limit_is_capped():
    assert parse('{"type":"history","limit":5000}') == History(200)


@pytest.mark.parametrize("limit", [0, -1, "10", 2.0, True, [5]])
def test_history_bad_limit_is_bad_field(limit):
    assert code_of({"type": "history", "limit": limit}) == "bad_field"


@pytest.mark.parametrize("before", [0, -5, "10", 1.5, False, 2**63, 10**30])
def test_history_bad_before_is_bad_field(before):
    assert code_of({"type": "history", "before": before}) == "bad_field"


def test_history_largest_before():
    assert parse(json.dumps({"type": "history", "before": 2**63 - 1})) == History(50, 2**63 - 1)


@pytest.mark.parametrize("raw,value", [("0", 0), ("17", 17), ("007", 7), (str(2**63 - 1), 2**63 - 1)])
def test_parse_message_id(raw, value):
    assert protocol.parse_message_id(raw) == value


@pytest.mark.parametrize("raw", ["", "-1", "+1", "1.0", " 1", "abc", "²", "١٢", str(2**63), "9" * 40])
def test_parse_message_id_rejects(raw):
    assert protocol.parse_message_id(raw) is None


def test_history_bad_with():
    assert code_of({"type": "history", "with": 5}) == "bad_field"
    assert code_of({"type": "history", "with": "a b"}) == "bad_name"


def test_typed_who_and_help():
    assert parse('{"type":"who","ref":1}') == Who(1)
    assert parse('{"type":"help"}') == Help()


# ---- JSON errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{", "{not json}", '{"msg": "hi"', "{'msg': 'hi'}", '{"msg":"hi"} trailing'])
def test_invalid_json_is_bad_json(text):
    assert code_of(text) == "bad_json"


@pytest.mark.parametrize("text", ["[1,2]", '"string"', "42", "null"])
def test_json_that_is_not_an_object_starting_with_brace_is_plain_text(text):
    """Only frames starting with '{' are JSON: anything else is chat text, even if it parses as JSON."""
    assert parse(text) == SendGroup(text, room=CURRENT)


def test_unknown_type():
    error = error_of({"type": "dance", "ref": "x"})
    assert (error.code, error.ref) == ("unknown_type", "x")


@pytest.mark.parametrize("kind", [5, True, ["message"], {"a": 1}])
def test_non_string_type_is_bad_field(kind):
    assert code_of({"type": kind, "msg": "hi"}) == "bad_field"


def test_object_without_type_msg_or_to_is_bad_message():
    assert code_of({}) == "bad_message"
    assert code_of({"text": "hi"}) == "bad_message"


@pytest.mark.parametrize("obj", [{"type": "message"}, {"type": "direct", "to": "bob"}, {"to": "bob"}])
def test_missing_msg_is_bad_field(obj):
    assert code_of(obj) == "bad_field"


@pytest.mark.parametrize("msg", [5, None, ["hi"], {"t": "hi"}, True])
def test_wrong_typed_msg_is_bad_field(msg):
    assert code_of({"msg": msg}) == "bad_field"
    assert code_of({"type": "direct", "to": "bob", "msg": msg}) == "bad_field"


@pytest.mark.parametrize("msg", ["", " ", "\n\t "])
def test_empty_json_msg_is_empty_message(msg):
    assert code_of({"msg": msg}) == "empty_message"
    assert code_of({"to": "bob", "msg": msg}) == "empty_message"


def test_direct_without_to_is_bad_field():
    assert code_of({"type": "direct", "msg": "hi"}) == "bad_field"
    assert code_of({"to": None, "msg": "hi"}) == "bad_field"


@pytest.mark.parametrize("to", [5, ["bob"], True])
def test_wrong_typed_to_is_bad_field(to):
    assert code_of({"to": to, "msg": "hi"}) == "bad_field"


@pytest.mark.parametrize("to", ["", "  ", "a b", "<script>", "../x", "x" * 33, "ünï", ".", "..", "-x"])
def test_invalid_to_name_is_bad_name(to):
    assert code_of({"to": to, "msg": "hi"}) == "bad_name"


def test_errors_carry_the_ref():
    assert error_of({"msg": "", "ref": "r9"}).ref == "r9"
    assert error_of({"to": "a b", "msg": "x", "ref": 4}).ref == 4


def test_error_messages_are_human_readable():
    error = error_of("{oops")
    assert isinstance(error.message, str) and len(error.message) > 10


# ---- outbound ------------------------------------------------------------------------------

GROUP = MessageRecord(7, "alice", None, "hi 😀", 1_700_000_000_123)
DIRECT = MessageRecord(8, "alice", "bob", "psst", 1_700_000_000_004)


def test_message_event():
    assert protocol.message_event(GROUP) == {
        "type": "message",
        "id": 7,
        "user": "alice",
        "msg": "hi 😀",
        "ts": "2023-11-14T22:13:20.123Z",
    }


def test_direct_event():
    assert protocol.message_event(DIRECT) == {
        "type": "direct",
        "id": 8,
        "user": "alice",
        "to": "bob",
        "msg": "psst",
        "ts": "2023-11-14T22:13:20.004Z",
    }


def test_iso_timestamp_parses_back():
    ts = protocol.iso_timestamp(1_700_000_000_123)
    parsed = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert parsed.timestamp() == pytest.approx(1_700_000_000.123)


def test_ack_event():
    assert protocol.ack_event(GROUP, None) == {"type": "ack", "id": 7, "ts": "2023-11-14T22:13:20.123Z"}
    assert protocol.ack_event(DIRECT, "r1") == {"type": "ack", "id": 8, "ts": "2023-11-14T22:13:20.004Z", "to": "bob", "ref": "r1"}
    assert protocol.ack_event(GROUP, 0)["ref"] == 0  # a falsy ref is still echoed


def test_error_event():
    assert protocol.error_event("bad_json", "nope") == {"type": "error", "code": "bad_json", "message": "nope"}
    assert protocol.error_event("bad_json", "nope", "r")["ref"] == "r"


def test_encode_event_is_compact_utf8_json():
    text = protocol.encode_event({"type": "message", "msg": "😀"})
    assert text == '{"type":"message","msg":"😀"}'
    assert json.loads(text)["msg"] == "😀"


@pytest.mark.parametrize("recipient", [None, "bob"])
@pytest.mark.parametrize("ref", [None, 7, -3, "r-1", 'quo"te\\ 😀', ""])
@pytest.mark.parametrize("body", ["hi", 'a "quoted" \\ back\nslash\t<b>&', "emoji 😀 ünïcode \u2028 \x00 \x1f"])
def test_fast_event_builders_equal_the_generic_encoder(recipient, ref, body):
    from chat.messaging.protocol import ack_event, ack_json, message_json
    from chat.records import MessageRecord

    record = MessageRecord(42, "al.ice-1", recipient, body, 1795243167123)
    assert json.loads(message_json(record)) == protocol.message_event(record)
    assert message_json(record) == protocol.encode_event(protocol.message_event(record))
    assert json.loads(ack_json(record, ref)) == ack_event(record, ref)
    assert ack_json(record, ref) == protocol.encode_event(ack_event(record, ref))


@pytest.mark.parametrize("recipient", [None, "bob"])
@pytest.mark.parametrize("has_thumb", [True, False])
@pytest.mark.parametrize("name, kind", [("cat.png", "image/png"), ('q"uo\\te 😀\u2028.txt', "text/plain; charset=utf-8")])
def test_fast_builder_with_an_attachment_equals_the_generic_encoder(recipient, has_thumb, name, kind):
    from chat.messaging.protocol import message_json
    from chat.records import AttachmentRef, MessageRecord

    attachment = AttachmentRef(9, name, kind, 123456, has_thumb)
    record = MessageRecord(42, "al.ice-1", recipient, f"[file] {name} (120.6 KiB) http://h/files/9", 1795243167123, attachment)
    event = protocol.message_event(record)
    assert event["attachment"] == {
        "id": 9,
        "name": name,
        "type": kind,
        "size": 123456,
        "url": "/files/9",
        "thumb_url": "/files/9/thumb" if has_thumb else None,
        "image": kind.startswith("image/"),
    }
    assert list(event) == (["type", "id", "user"] + (["to"] if recipient else []) + ["msg", "ts", "attachment"])
    assert message_json(record) == protocol.encode_event(event)
    assert "attachment" not in protocol.message_event(record._replace(attachment=None))
