"""chat/websocket/frames.py, the RFC 6455 codec, on its own: bytes in, events out."""
import struct

import pytest

from chat.websocket import frames
from chat.websocket.frames import Binary, Close, FrameError, FrameParser, Ping, Pong, Text
from tests.support.rawws import build_frame, mask_payload

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def parse(data, max_size=1 << 20, **kwargs):
    return FrameParser(max_size, **kwargs).feed(data)


def fails(data, max_size=1 << 20, parser=None):
    parser = parser or FrameParser(max_size)
    with pytest.raises(FrameError) as info:
        parser.feed(data)
    return info.value.code


# ---- single frames ---------------------------------------------------------------------


def test_masked_text_frame():
    events = parse(build_frame(OP_TEXT, "hello"))
    assert events == ["hello"]
    assert type(events[0]) is Text


def test_empty_text_frame():
    events = parse(build_frame(OP_TEXT, b""))
    assert events == [""] and type(events[0]) is Text


def test_binary_frame():
    events = parse(build_frame(OP_BINARY, b"\x00\xff\x10"))
    assert events == [b"\x00\xff\x10"] and type(events[0]) is Binary


def test_mask_is_applied():
    key = b"\x01\x02\x03\x04"
    frame = build_frame(OP_TEXT, "abcdefghij", mask_key=key)
    # the payload on the wire is not the plain text, and the parser restores it
    assert b"abcdefghij" not in frame
    assert parse(frame) == ["abcdefghij"]


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 125, 1000])
def test_unmask_matches_bytewise_xor(n):
    payload = bytes(range(256)) * 4
    payload = payload[:n]
    key = b"\xa1\xb2\xc3\xd4"
    assert frames.unmask(mask_payload(payload, key), key) == payload


@pytest.mark.parametrize("size", [125, 126, 127, 65535, 65536, 70000])
def test_length_encodings(size):
    """7-bit, 16-bit (126) and 64-bit (127) payload lengths, at their boundaries."""
    text = "x" * size
    frame = build_frame(OP_TEXT, text)
    expected_header = 2 if size < 126 else 4 if size < 65536 else 10
    assert len(frame) == expected_header + 4 + size
    assert parse(frame) == [text]


def test_unmasked_client_frame_is_a_protocol_error():
    assert fails(build_frame(OP_TEXT, "hi", mask=False)) == frames.CLOSE_PROTOCOL_ERROR


def test_unmasked_frames_allowed_when_not_required():
    assert FrameParser(100, require_mask=False).feed(build_frame(OP_TEXT, "hi", mask=False)) == ["hi"]


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits_are_a_protocol_error(rsv):
    assert fails(build_frame(OP_TEXT, "hi", rsv=rsv)) == frames.CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcodes_are_a_protocol_error(opcode):
    assert fails(build_frame(opcode, b"x")) == frames.CLOSE_PROTOCOL_ERROR


def test_64bit_length_with_high_bit_set_is_a_protocol_error():
    frame = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 63)
    assert fails(frame) == frames.CLOSE_PROTOCOL_ERROR


def test_invalid_utf8_text_is_1007():
    assert fails(build_frame(OP_TEXT, b"ok \xff\xfe")) == frames.CLOSE_INVALID_DATA


def test_overlong_utf8_and_surrogates_are_invalid():
    assert fails(build_frame(OP_TEXT, b"\xc0\xaf")) == frames.CLOSE_INVALID_DATA  # overlong '/'
    assert fails(build_frame(OP_TEXT, b"\xed\xa0\x80")) == frames.CLOSE_INVALID_DATA  # U+D800


def test_truncated_utf8_at_end_of_message_is_invalid():
    assert fails(build_frame(OP_TEXT, "é".encode()[:1])) == frames.CLOSE_INVALID_DATA


def test_binary_payload_is_not_utf8_checked():
    assert parse(build_frame(OP_BINARY, b"\xff\xfe")) == [b"\xff\xfe"]


# ---- the size cap, before the payload is read --------------------------------------------


def test_message_at_the_cap_is_accepted():
    assert parse(build_frame(OP_TEXT, "a" * 100), max_size=100) == ["a" * 100]


def test_message_over_the_cap_is_1009():
    assert fails(build_frame(OP_TEXT, "a" * 101), max_size=100) == frames.CLOSE_TOO_BIG


@pytest.mark.parametrize("declared", [101, 70000, 2**40, 2**63 - 1])
def test_cap_applies_to_the_declared_length_before_any_payload(declared):
    """Only the header (and mask key) arrives: the parser fails at once, without waiting for the payload."""
    header = build_frame(OP_TEXT, b"", length=declared)  # header + mask, no payload bytes
    assert fails(header, max_size=100) == frames.CLOSE_TOO_BIG


def test_cap_is_checked_before_the_mask_key_arrives():
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, 2**40)  # no mask key yet
    assert fails(header, max_size=1024) == frames.CLOSE_TOO_BIG


def test_cap_applies_to_the_sum_of_fragments():
    parser = FrameParser(100)
    assert parser.feed(build_frame(OP_TEXT, "a" * 60, fin=False)) == []
    # the second fragment's header alone already pushes the message over the cap
    second = build_frame(OP_CONT, b"", length=41)
    assert fails(second, parser=parser) == frames.CLOSE_TOO_BIG


def test_fragments_up_to_the_cap_are_accepted():
    parser = FrameParser(100)
    parser.feed(build_frame(OP_TEXT, "a" * 60, fin=False))
    assert parser.feed(build_frame(OP_CONT, "b" * 40)) == ["a" * 60 + "b" * 40]


def test_control_frames_do_not_count_towards_the_cap():
    assert parse(build_frame(OP_PING, b"p" * 100), max_size=10) == [b"p" * 100]


# ---- fragmentation -----------------------------------------------------------------------


def test_fragmented_text_message():
    data = (
        build_frame(OP_TEXT, "Hel", fin=False)
        + build_frame(OP_CONT, "lo, ", fin=False)
        + build_frame(OP_CONT, "world")
    )
    events = parse(data)
    assert events == ["Hello, world"] and type(events[0]) is Text


def test_fragmented_binary_message():
    data = build_frame(OP_BINARY, b"\x00\x01", fin=False) + build_frame(OP_CONT, b"\x02")
    events = parse(data)
    assert events == [b"\x00\x01\x02"] and type(events[0]) is Binary


def test_empty_fragments():
    data = build_frame(OP_TEXT, b"", fin=False) + build_frame(OP_CONT, b"", fin=False) + build_frame(OP_CONT, "x")
    assert parse(data) == ["x"]


def test_control_frames_interleaved_with_fragments():
    data = (
        build_frame(OP_TEXT, "one ", fin=False)
        + build_frame(OP_PING, b"p1")
        + build_frame(OP_CONT, "two ", fin=False)
        + build_frame(OP_PONG, b"p2")
        + build_frame(OP_CONT, "three")
    )
    events = parse(data)
    assert events == [b"p1", b"p2", "one two three"]
    assert [type(e) for e in events] == [Ping, Pong, Text]


def test_continuation_without_a_message_is_a_protocol_error():
    assert fails(build_frame(OP_CONT, "x")) == frames.CLOSE_PROTOCOL_ERROR


def test_new_message_inside_a_fragmented_one_is_a_protocol_error():
    data = build_frame(OP_TEXT, "a", fin=False) + build_frame(OP_TEXT, "b")
    assert fails(data) == frames.CLOSE_PROTOCOL_ERROR


def test_fragmented_control_frame_is_a_protocol_error():
    assert fails(build_frame(OP_PING, b"x", fin=False)) == frames.CLOSE_PROTOCOL_ERROR


def test_control_frame_over_125_bytes_is_a_protocol_error():
    assert fails(build_frame(OP_PING, b"x" * 126)) == frames.CLOSE_PROTOCOL_ERROR


def test_utf8_character_split_across_fragments():
    encoded = "a😀b".encode()  # the emoji is 4 bytes: split it 2 + 2
    data = build_frame(OP_TEXT, encoded[:3], fin=False) + build_frame(OP_CONT, encoded[3:])
    assert parse(data) == ["a😀b"]


def test_invalid_utf8_fails_in_the_fragment_it_arrives_in():
    """Fail fast: the bad bytes are rejected before the message's final fragment is sent."""
    parser = FrameParser(1 << 20)
    assert parser.feed(build_frame(OP_TEXT, "fine ", fin=False)) == []
    assert fails(build_frame(OP_CONT, b"\xff", fin=False), parser=parser) == frames.CLOSE_INVALID_DATA


def test_invalid_utf8_fails_before_the_frame_is_complete():
    """Fail fast inside one frame too: bad bytes at the start of a large frame fail before the rest arrives."""
    frame = build_frame(OP_TEXT, b"ok \xff" + b"x" * 1000)
    parser = FrameParser(1 << 20)
    assert parser.feed(frame[:8]) == []  # 16-bit length header and mask only
    assert fails(frame[8:20], parser=parser) == frames.CLOSE_INVALID_DATA


def test_partial_frame_split_inside_a_character_is_not_an_error_yet():
    encoded = ("é" * 50).encode()
    frame = build_frame(OP_TEXT, encoded)
    parser = FrameParser(1 << 20)
    events = []
    pos = 0
    for cut in (7, 9, 31, 57, len(frame)):  # after the 6-byte header, odd offsets fall inside 2-byte characters
        events += parser.feed(frame[pos:cut])
        pos = cut
    assert events == ["é" * 50]


def test_invalid_utf8_in_a_later_fragment_fails_before_that_fragment_is_complete():
    parser = FrameParser(1 << 20)
    parser.feed(build_frame(OP_TEXT, b"\xc3", fin=False))  # first half of a 2-byte character
    second = build_frame(OP_CONT, b"\x28" + b"y" * 500)  # \x28 cannot continue it
    assert parser.feed(second[:8]) == []  # 16-bit length header and mask only
    assert fails(second[8:10], parser=parser) == frames.CLOSE_INVALID_DATA


def test_events_before_a_bad_frame_are_kept_on_the_error():
    parser = FrameParser(1 << 20)
    with pytest.raises(FrameError) as info:
        parser.feed(build_frame(OP_TEXT, "first") + build_frame(OP_PING, b"p") + build_frame(OP_BINARY, b"x", rsv=1))
    assert info.value.events == ["first", b"p"]
    assert info.value.code == frames.CLOSE_PROTOCOL_ERROR


def test_incomplete_character_at_a_fragment_boundary_is_not_an_error_yet():
    parser = FrameParser(1 << 20)
    assert parser.feed(build_frame(OP_TEXT, b"\xf0\x9f", fin=False)) == []
    assert parser.feed(build_frame(OP_CONT, b"\x98\x80")) == ["😀"]


def test_incomplete_character_at_the_end_of_a_fragmented_message_is_invalid():
    parser = FrameParser(1 << 20)
    parser.feed(build_frame(OP_TEXT, b"ok", fin=False))
    assert fails(build_frame(OP_CONT, b"\xf0\x9f"), parser=parser) == frames.CLOSE_INVALID_DATA


# ---- streaming ---------------------------------------------------------------------------


def test_one_byte_at_a_time():
    messages = ["first", "é" * 200, "x" * 70000]
    data = b"".join(build_frame(OP_TEXT, m) for m in messages)
    data += build_frame(OP_TEXT, "frag ", fin=False) + build_frame(OP_PING, b"!") + build_frame(OP_CONT, "ment")
    data += build_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    parser = FrameParser(1 << 20)
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i : i + 1])
    assert events[:3] == messages
    assert events[3] == b"!" and type(events[3]) is Ping
    assert events[4] == "frag ment"
    assert isinstance(events[5], Close) and (events[5].code, events[5].reason) == (1000, "bye")
    assert len(events) == 6


def test_many_frames_in_one_feed_and_a_partial_tail():
    parser = FrameParser(1 << 20)
    frame = build_frame(OP_TEXT, "m")
    tail = build_frame(OP_TEXT, "last")
    assert parser.feed(frame * 50 + tail[:3]) == ["m"] * 50
    assert parser.feed(tail[3:]) == ["last"]


def test_buffer_is_compacted_over_a_long_stream():
    parser = FrameParser(1 << 20)
    frame = build_frame(OP_TEXT, "y" * 1000)
    for _ in range(300):  # 300 KB through one parser, with a partial frame left each time
        parser.feed(frame + frame[:10])
        parser.feed(frame[10:])
    assert len(parser._buf) - parser._pos < 2 * len(frame)
    assert len(parser._buf) < 200_000


# ---- close frames ------------------------------------------------------------------------


def close_frame(body):
    return build_frame(OP_CLOSE, body)


def test_close_without_a_body():
    (event,) = parse(close_frame(b""))
    assert isinstance(event, Close) and event.code == frames.CLOSE_NO_STATUS and event.reason == ""


def test_close_with_code_and_reason():
    (event,) = parse(close_frame(struct.pack("!H", 1001) + "going ✓".encode()))
    assert (event.code, event.reason) == (1001, "going ✓")


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_valid_close_codes(code):
    (event,) = parse(close_frame(struct.pack("!H", code)))
    assert event.code == code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_invalid_close_codes_are_a_protocol_error(code):
    assert fails(close_frame(struct.pack("!H", code))) == frames.CLOSE_PROTOCOL_ERROR


def test_close_with_a_one_byte_body_is_a_protocol_error():
    assert fails(close_frame(b"\x03")) == frames.CLOSE_PROTOCOL_ERROR


def test_close_reason_with_invalid_utf8_is_1007():
    assert fails(close_frame(struct.pack("!H", 1000) + b"\xff")) == frames.CLOSE_INVALID_DATA


# ---- encoding (server to client) ---------------------------------------------------------


def decode_server_frame(data):
    parser = FrameParser(1 << 30, require_mask=False)
    return parser.feed(data)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_encode_frame_round_trips(size):
    frame = frames.encode_frame(frames.OP_TEXT, b"z" * size)
    assert not frame[1] & 0x80  # server frames are unmasked
    assert frame[0] == 0x81
    assert decode_server_frame(frame) == ["z" * size]


def test_encode_text_is_utf8():
    assert decode_server_frame(frames.encode_text("ünïcødé 😀")) == ["ünïcødé 😀"]


def test_encode_frame_without_fin():
    assert frames.encode_frame(frames.OP_TEXT, b"a", fin=False)[0] == 0x01


def test_encode_close():
    frame = frames.encode_close(1009, "too big")
    assert frame[0] == 0x88
    (event,) = decode_server_frame(frame)
    assert (event.code, event.reason) == (1009, "too big")


def test_encode_close_without_status_has_an_empty_body():
    assert frames.encode_close(frames.CLOSE_NO_STATUS) == b"\x88\x00"


def test_encode_close_keeps_the_frame_a_valid_control_frame():
    frame = frames.encode_close(1000, "r" * 500)
    assert len(frame) <= 2 + 125
    (event,) = decode_server_frame(frame)
    assert event.code == 1000


def test_encode_close_does_not_split_a_utf8_character():
    frame = frames.encode_close(1000, "é" * 100)  # 200 bytes of reason, cut to fit 125
    (event,) = decode_server_frame(frame)  # would raise FrameError(1007) on a cut character
    assert set(event.reason) == {"é"}
