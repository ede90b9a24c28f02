"""read_head: a small stream whole, a large one streamed from its start, closed on failure."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ipunkt.stream_head import read_head


class Source:
    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            for index in range(self.count):
                if index == self.fail_at:
                    raise OSError(f"chunk {index} could not be read")
                yield bytes([index]) * 10
        finally:
            self.closed = True


async def test_a_stream_within_the_limit_arrives_whole() -> None:
    head = await read_head(Source(3).chunks(), limit=30)
    assert head.whole
    assert head.arrived == [bytes([i]) * 10 for i in range(3)]


async def test_a_larger_stream_is_streamed_from_its_start_and_closed() -> None:
    source = Source(10)
    head = await read_head(source.chunks(), limit=25)
    assert not head.whole
    assert len(head.arrived) == 3
    assert [c async for c in head.stream()] == [bytes([i]) * 10 for i in range(10)]
    source = Source(10)
    stream = (await read_head(source.chunks(), limit=25)).stream()
    await anext(stream)
    await stream.aclose()
    assert source.closed


class Failing:
    """An iterator (not a generator, which a raise would end by itself) that fails once."""

    def __init__(self) -> None:
        self.sent = 0
        self.closed = False

    def __aiter__(self) -> Failing:
        return self

    async def __anext__(self) -> bytes:
        self.sent += 1
        if self.sent == 2:
            raise OSError("chunk 1 could not be read")
        return b"x" * 10

    async def aclose(self) -> None:
        self.closed = True


async def test_a_failing_stream_is_closed_and_its_error_raised() -> None:
    source = Failing()
    with pytest.raises(OSError, match="chunk 1"):
        await read_head(source, limit=100)
    assert source.closed
