"""`hotline serve` settles its heap once started: what start-up made stays out of the garbage
collector's full collections, which with thousands of calls in progress stop every call for as
long as they walk (bench.scale measures the pauses)."""

from __future__ import annotations

import gc

from agi_app.serve.app import settle_heap


def test_full_collections_walk_only_what_was_made_after_start_up() -> None:
    start_up = [{"menu": n} for n in range(10_000)]  # a server's long-lived state
    try:
        settle_heap()
        frozen = gc.get_freeze_count()
        later = [{"call": n} for n in range(100)]
        walked = len(gc.get_objects())
    finally:
        gc.unfreeze()  # this test process goes on starting servers
    assert frozen > len(start_up)
    assert walked < len(start_up) // 10 and later
