"""A deadline for an upload that stands still, for the channels' HTTP clients.

aiohttp's ``sock_read`` timeout starts only once a request's body is sent, so a remote that
stops taking an upload's bytes would hold the send until the outbox's ``send_timeout_seconds``.
Under :func:`upload_deadline` the upload fails with ``TimeoutError`` once no chunk has gone
for ``seconds``; after the last chunk the deadline is lifted and the read timeout takes over.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager


class UploadDeadline:
    """Pushed back by each chunk that goes out; lifted once the body is sent."""

    def __init__(self, seconds: float, timeout: asyncio.Timeout) -> None:
        self.seconds = seconds
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()

    def moved(self) -> None:
        """A chunk went out: the upload may stand still ``seconds`` from now."""
        self._timeout.reschedule(self._loop.time() + self.seconds)

    def sent(self) -> None:
        """The whole body went out: no deadline now but the session's read timeout."""
        self._timeout.reschedule(None)

    async def watch(
        self, chunks: AsyncIterable[bytes], *, last: bool = True
    ) -> AsyncIterator[bytes]:
        """``chunks``, each pushing the deadline back; the body is sent after them if
        ``last`` (else another part of it follows)."""
        async for chunk in chunks:
            self.moved()
            yield chunk
        if last:
            self.sent()
        else:
            self.moved()


@asynccontextmanager
async def upload_deadline(seconds: float) -> AsyncIterator[UploadDeadline]:
    """Raise ``TimeoutError`` from the block when its upload stands still for ``seconds``."""
    async with asyncio.timeout(seconds) as timeout:
        yield UploadDeadline(seconds, timeout)
