"""chat/cluster/sequencer.py on its own: the sequencer that releases deliveries from all processes in id order."""
import pytest

from chat.cluster.sequencer import Sequencer


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
