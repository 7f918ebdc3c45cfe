"""Atheris target: the frame parser, fed any bytes in chunks the fuzzer picks, answers with events or a FrameError
carrying a close code; any other exception, or another code, is a crash.

Run: python3 tests/fuzz/fuzz_frames.py NEW_CORPUS_DIR tests/fuzz/corpus/frames -max_total_time=15 (libFuzzer flags).
"""
import os
import sys

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with atheris.instrument_imports():
    from chat.websocket import frames

CLOSE_CODES = {frames.CLOSE_PROTOCOL_ERROR, frames.CLOSE_INVALID_DATA, frames.CLOSE_TOO_BIG}
EVENT_TYPES = (frames.Text, frames.Binary, frames.Ping, frames.Pong, frames.Close)


def test_one_input(data):
    if os.environ.get("CHAT_FUZZ_SELF_TEST") and data.startswith(b"self-test crash"):
        raise RuntimeError("self-test crash: the harness reports crashes")
    fdp = atheris.FuzzedDataProvider(data)
    parser = frames.FrameParser(fdp.ConsumeIntInRange(1, 70000), require_mask=fdp.ConsumeBool())
    while fdp.remaining_bytes():
        chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 1024))
        try:
            events = parser.feed(chunk)
        except frames.FrameError as e:
            if e.code not in CLOSE_CODES:
                raise AssertionError(f"close code {e.code} ({e.reason})") from None
            events = e.events
            chunk = None
        for event in events:
            if not isinstance(event, EVENT_TYPES):
                raise AssertionError(f"unexpected event {event!r}")
            if isinstance(event, frames.Text):
                event.encode("utf-8")  # a text message is always text
        if chunk is None:
            return


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
