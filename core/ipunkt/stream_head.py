"""The start of a byte stream, read ahead to learn whether the stream is small.

A small payload costs more to stream through worker threads (a trip to a thread for each
step) than to handle whole once it has arrived. :func:`read_head` reads up to a limit; the
caller handles a stream that ended within it whole, and streams a larger one from its start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass
class Head:
    arrived: list[bytes]
    """The chunks read so far: the whole stream when :attr:`whole`."""
    rest: AsyncIterator[bytes]
    whole: bool

    async def stream(self) -> AsyncIterator[bytes]:
        """Every chunk: those that arrived, then the rest; closes the rest when it stops."""
        try:
            for chunk in self.arrived:
                yield chunk
            async for chunk in self.rest:
                yield chunk
        finally:
            await _close(self.rest)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


async def read_head(chunks: AsyncIterator[bytes], limit: int) -> Head:
    """Read ``chunks`` until more than ``limit`` bytes arrived or it ended.

    If reading fails, the stream is closed (when it can be) before the error is raised.
    """
    arrived: list[bytes] = []
    size = 0
    try:
        while size <= limit:
            chunk = await anext(chunks, None)
            if chunk is None:
                return Head(arrived, chunks, whole=True)
            arrived.append(chunk)
            size += len(chunk)
    except BaseException:
        await _close(chunks)
        raise
    return Head(arrived, chunks, whole=False)
