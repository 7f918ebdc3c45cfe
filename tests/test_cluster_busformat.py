"""chat/cluster/busformat.py on its own: the batch format the processes exchange over Redis, and what it refuses."""
import pytest

from chat.cluster.busformat import BusFormatError, BusKick, BusMessage, BusNotice, BusPresence, decode_batch, encode_batch


def test_a_batch_round_trips_every_kind_of_entry():
    entries = [
        BusMessage(1, "alice", None, b"\x81\x05hello"),
        BusMessage(2**63 - 1, "bob", "ünïcode-user", bytes(range(256)) * 300),
        BusPresence("carol", True),
        BusPresence("carol", False),
        BusKick("dave", "account removed"),
        BusKick("erin", "signed out", digest="ab" * 32, guests_only=False),
        BusKick("frank", "name registered", guests_only=True),
        BusNotice("gina", None, b"\x81\x10{\"type\":\"read\"}"),
        BusNotice(None, "harry", b"typing frame"),
        BusNotice("", "", b""),
        BusMessage(3, "ivy", None, b"room frame", "dev"),
        BusMessage(4, "ivy", None, b"event frame", "dev", "member", "jack", '{"change":"kicked"}'),
        BusMessage(5, "ivy", None, b"topic frame", "dev", "topic", None, '{"topic":"ünïcode"}'),
        BusNotice(None, "ivy", b"room typing", "dev"),
        BusMessage(6, "ivy", None, b"edit frame", "dev", "edit", None, "", 3),
        BusMessage(7, "jack", "ivy", b"reaction frame", None, "reaction", None, "", 2**63 - 1),
        BusMessage(8, "kate", None, b"reply frame", None, None, None, "", 1),
    ]
    origin, decoded = decode_batch(encode_batch("host-1-abc", entries))
    assert origin == "host-1-abc"
    assert decoded == entries


def test_an_empty_batch_is_just_its_origin():
    assert decode_batch(encode_batch("x", [])) == ("x", [])


@pytest.mark.parametrize("cut", [1, 3, 10, 20])
def test_a_truncated_batch_is_refused(cut):
    data = encode_batch("origin", [BusMessage(7, "alice", "bob", b"frame bytes")])
    with pytest.raises(BusFormatError):
        decode_batch(data[:-cut])


def test_an_unknown_entry_type_is_refused():
    with pytest.raises(BusFormatError, match="unknown bus entry type"):
        decode_batch(encode_batch("o", []) + b"Z")


def test_bad_utf8_is_refused():
    with pytest.raises(BusFormatError, match="bad text"):
        decode_batch(b"\x04\x00\x02\xff\xfe")  # version 4, then an origin of two bad bytes


def test_a_batch_starts_with_its_format_version():
    assert encode_batch("o", [])[0] == 4


@pytest.mark.parametrize("version", [0, 1, 2, 3, 255])
def test_an_unknown_format_version_is_refused(version):
    data = bytes([version]) + encode_batch("origin", [BusPresence("alice", True)])[1:]
    with pytest.raises(BusFormatError, match=f"format version {version}"):
        decode_batch(data)


def test_a_notice_with_a_bad_optional_text_flag_is_refused():
    data = encode_batch("o", [BusNotice("ann", None, b"f")])
    flag_at = len(encode_batch("o", [])) + 1
    with pytest.raises(BusFormatError, match="optional-text flag"):
        decode_batch(data[:flag_at] + b"\x07" + data[flag_at + 1 :])


def test_a_message_with_a_bad_target_flag_is_refused():
    data = encode_batch("o", [BusMessage(9, "ann", None, b"f", None, "edit", None, "", 1)])
    flag_at = len(data) - 9  # the target's flag byte, then its 8 bytes
    with pytest.raises(BusFormatError, match="optional-id flag"):
        decode_batch(data[:flag_at] + b"\x02" + data[flag_at + 1 :])


def test_encoding_refuses_what_is_not_an_entry():
    with pytest.raises(TypeError):
        encode_batch("o", [("not", "an entry")])
