"""The garbage collector, tuned for a worker: many short-lived request objects."""

from __future__ import annotations

import gc

# Thousands of provider requests a second keep each one's objects alive across many of
# the default 700-allocation young collections, so they reach the oldest generation as
# garbage and full collections ran every second or two, each 60-90 ms with a bot's
# caches in memory (the event loop's p99 lag at N = 10,000). A young generation this
# large lets request objects die young; what start-up left (caches, the loaded code)
# is frozen out of every later collection.
GC_YOUNG_THRESHOLD = 50_000


_gc_tuned = False


def tune_gc() -> None:
    """When the first worker loop of the process starts (process-wide; later calls, such
    as the many pollers of a test session, change nothing). Does nothing with the
    collector disabled or a larger young generation already set."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    young, middle, old = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    gc.collect()  # no garbage of the start-up is frozen with it
    gc.freeze()
