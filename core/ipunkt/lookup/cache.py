"""A time-to-live cache for lookups, with one load per key at a time.

The integrasjonspunkt caches registry answers for five minutes; a busy gateway asks the same
question many times at once (a batch to one municipality), so concurrent callers of one key
share one request. Only answers are cached: a failure is never remembered, so the next call
asks again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values expire ``ttl`` seconds after they were loaded; at most ``max_entries`` are kept."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._values: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Task[V]] = {}
        self.loads = 0
        """How many times ``load`` was called: the requests that reached the source."""

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value of ``key``, else ``load()``'s result (shared by concurrent callers)."""
        now = self._clock()
        cached = self._values.get(key)
        if cached is not None and cached[0] > now:
            self._values.move_to_end(key)
            return cached[1]
        task = self._loading.get(key)
        if task is None:
            self.loads += 1
            task = asyncio.ensure_future(self._load(key, load))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await load()
        finally:
            self._loading.pop(key, None)
        if self.ttl > 0:
            self._values[key] = (self._clock() + self.ttl, value)
            self._values.move_to_end(key)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)
        return value


def _retrieve(task: asyncio.Task[object]) -> None:
    """Mark a load's failure as seen even when every caller that waited for it was cancelled."""
    if not task.cancelled():
        task.exception()
