"""The lookup cache: lifetime, size bound, one load per key, failures never kept."""

from __future__ import annotations

import asyncio

import pytest
from ipunkt.lookup.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def loader(calls: list[str], value: str, *, fail: bool = False, wait: float = 0):
    async def load() -> str:
        calls.append(value)
        await asyncio.sleep(wait)
        if fail:
            raise RuntimeError(f"{value} failed")
        return value

    return load


async def test_values_live_for_the_lifetime_and_the_oldest_goes_first() -> None:
    clock, calls = Clock(), []
    cache: TtlCache[str] = TtlCache(10, max_entries=2, clock=clock)
    for key in ("a", "b", "a", "c"):
        assert await cache.get(key, loader(calls, key)) == key
    assert calls == ["a", "b", "c"]  # "a" was used again, so "b" was the one dropped
    await cache.get("a", loader(calls, "a"))
    await cache.get("b", loader(calls, "b"))
    assert calls == ["a", "b", "c", "b"]
    clock.now = 10.5
    await cache.get("b", loader(calls, "b"))
    assert calls[-1] == "b" and cache.loads == 5


async def test_failures_are_not_kept() -> None:
    calls: list[str] = []
    cache: TtlCache[str] = TtlCache(10)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="x failed"):
            await cache.get("x", loader(calls, "x", fail=True))
    assert calls == ["x", "x"]


async def test_a_cancelled_caller_does_not_cancel_the_load_for_the_others() -> None:
    calls: list[str] = []
    cache: TtlCache[str] = TtlCache(10)
    first = asyncio.ensure_future(cache.get("k", loader(calls, "k", wait=0.05)))
    second = asyncio.ensure_future(cache.get("k", loader(calls, "k", wait=0.05)))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "k"
    assert calls == ["k"]
    assert await cache.get("k", loader(calls, "k")) == "k"
    assert calls == ["k"]


async def test_a_zero_lifetime_keeps_nothing_but_still_shares_a_load() -> None:
    calls: list[str] = []
    cache: TtlCache[str] = TtlCache(0)
    waiting = [cache.get("k", loader(calls, "k", wait=0.01)) for _ in range(5)]
    results = await asyncio.gather(*waiting)
    assert results == ["k"] * 5 and calls == ["k"]
    await cache.get("k", loader(calls, "k"))
    assert calls == ["k", "k"]
