"""The serving process's collector settings: startup frozen, cycles made later still freed."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, weakref
from ipunkt.gc_tuning import tune_for_serving

class Node:
    pass

tune_for_serving()
frozen = gc.get_freeze_count()
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle reference counting cannot free
gone = weakref.ref(a)
del a, b
for _ in range(5):
    garbage = [[] for _ in range(20_000)]  # allocations that start young collections
    del garbage
print(frozen > 0, gone() is None)
"""


def test_startup_is_frozen_and_cycles_made_later_are_still_collected() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["True", "True"]
