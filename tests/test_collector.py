"""The server's use of the cyclic garbage collector (chat/collector.py): what exists at start is frozen out of the
collections, and young collections come every `gc_young_threshold` allocations."""
import gc

from chat import collector


def test_settle_freezes_what_exists_and_sets_the_young_threshold():
    before = gc.get_threshold()
    try:
        collector.settle(5000)
        assert gc.get_freeze_count() > 1000  # this test process's modules and objects
        assert gc.get_threshold() == (5000, *collector.OLDER_THRESHOLDS)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
