"""The cyclic garbage collector, set for a long-running server.

CPython starts a young collection every 700 allocations; a request allocates thousands of
short-lived objects (parsed JSON, models, rows), nearly all freed by reference counting, so the
default spends a measurable part of each request (about 6 % of a create, ``bench/create_rate``)
walking objects that are about to go anyway. What startup built (modules, classes, validators,
the application) lives as long as the process: frozen, no collection walks it again.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations between young collections: cycles are still found, after a few requests."""


def tune_for_serving() -> None:
    """Call once, in the process that serves, after startup has built what lives for ever."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
