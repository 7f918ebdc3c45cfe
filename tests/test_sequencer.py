"""Pure units of the multi-process path: the bus batch format, the sequencer that orders deliveries, the cluster presence mirror."""
import pytest

from chat.cluster.busformat import BusFormatError, BusKick, BusMessage, BusPresence, decode_batch, encode_batch
from chat.cluster.presence import ClusterPresence
from chat.cluster.sequencer import Sequencer

# ---- bus batches --------------------------------------------------------------------------------


def test_a_batch_round_trips_every_kind_of_entry():
    entries = [
        BusMessage(1, "alice", None, b"\x81\x05hello"),
        BusMessage(2**63 - 1, "bob", "ünïcode-user", bytes(range(256)) * 300),
        BusPresence("carol", True),
        BusPresence("carol", False),
        BusKick("dave", "account removed"),
        BusKick("erin", "signed out", digest="ab" * 32, guests_only=False),
        BusKick("frank", "name registered", guests_only=True),
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
        decode_batch(b"\x01\x00\x02\xff\xfe")


def test_a_batch_starts_with_its_format_version():
    assert encode_batch("o", [])[0] == 1


@pytest.mark.parametrize("version", [0, 2, 255])
def test_an_unknown_format_version_is_refused(version):
    data = bytes([version]) + encode_batch("origin", [BusPresence("alice", True)])[1:]
    with pytest.raises(BusFormatError, match=f"format version {version}"):
        decode_batch(data)


def test_encoding_refuses_what_is_not_an_entry():
    with pytest.raises(TypeError):
        encode_batch("o", [("not", "an entry")])


# ---- sequencer ---------------------------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_in_order_ids_are_released_at_once():
    seq = Sequencer(10)
    assert seq.offer(10, "a") == ["a"]
    assert seq.offer(11, "b") == ["b"]
    assert seq.next_id == 12 and seq.gap() is None


def test_an_early_id_waits_for_the_ones_before_it():
    clock = Clock()
    seq = Sequencer(1, clock)
    assert seq.offer(3, "c") == ()
    assert seq.offer(4, "d") == ()
    clock.now += 0.3
    assert seq.gap() == (1, 3, pytest.approx(0.3))
    assert seq.offer(1, "a") == ["a"]
    assert seq.gap()[:2] == (2, 3)
    assert seq.offer(2, "b") == ["b", "c", "d"]
    assert seq.gap() is None and len(seq) == 0


def test_duplicates_and_stale_ids_are_dropped():
    seq = Sequencer(5)
    assert seq.offer(4, "old") == ()
    assert seq.offer(7, "g") == ()
    assert seq.offer(7, "g again") == ()
    assert seq.offer(5, "e") == ["e"]
    assert seq.offer(5, "e again") == ()
    assert seq.offer(6, "f") == ["f", "g"]


def test_skipping_ids_the_database_does_not_have_releases_what_waits_in_order():
    seq = Sequencer(1)
    seq.offer(5, "e")
    seq.offer(3, "c")
    seq.offer(6, "f")
    assert seq.skip_to(3) == ["c"]  # 1 and 2 are gone; 4 still missing
    assert seq.next_id == 4
    assert seq.skip_to(10) == ["e", "f"]  # items below the new start are released, never dropped
    assert seq.next_id == 10
    assert seq.skip_to(2) == []  # never backwards


def test_the_wait_clock_restarts_for_the_next_gap():
    clock = Clock()
    seq = Sequencer(1, clock)
    seq.offer(2, "b")
    seq.offer(4, "d")
    clock.now += 5
    seq.offer(1, "a")  # releases a, b; d still waits, for 3, from now on
    assert seq.gap() == (3, 4, 0.0)


# ---- cluster presence ---------------------------------------------------------------------------


class FakeHub:
    def __init__(self, *users):
        self._users = dict.fromkeys(users)

    def is_online(self, user):
        return user in self._users

    def users(self):
        return self._users.keys()


def test_a_user_is_online_while_any_process_has_them():
    cluster = ClusterPresence(FakeHub("local"))
    assert cluster.set_user("p1", "ann", True)
    assert not cluster.set_user("p1", "ann", True)  # no change
    assert cluster.set_user("p2", "ann", True)
    assert cluster.online() == ["ann", "local"]
    assert cluster.set_user("p1", "ann", False)
    assert cluster.is_online("ann")
    assert cluster.drop("p2") == {"ann"}
    assert not cluster.is_online("ann")
    assert cluster.is_online("local")


def test_replacing_a_list_reports_exactly_the_changed_users():
    cluster = ClusterPresence(FakeHub())
    assert cluster.replace("p1", {"a", "b"}) == {"a", "b"}
    assert cluster.replace("p1", {"b", "c"}) == {"a", "c"}
    assert cluster.online() == ["b", "c"]
    assert cluster.instances() == {"p1"}
    assert cluster.drop("nobody") == set()
