"""Opening the CMS envelope of an incoming package as it streams to the client.

Incoming packages are stored exactly as they arrived, encrypted to this organisation's
certificate (so they are sealed at rest twice over); ``pop`` decrypts them on the fly, as the
original does. The CMS reader is blocking code, so it runs in a worker thread that pulls the
stored chunks from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from ipunkt.package import cms
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.seal import from_async


async def decrypted(
    open_chunks: Callable[[], AsyncIterator[bytes]], key: OrganisationKey
) -> AsyncIterator[bytes]:
    """The plaintext of a stored CMS EnvelopedData; PackageError if it is not one for us.

    The stored chunks are closed in the worker thread, as soon as the package is refused or
    read (or the client goes away), not left to the garbage collector.
    """
    chunks = from_async(open_chunks, asyncio.get_running_loop())()

    def opened() -> Iterator[bytes]:
        try:
            return cms.decrypt(chunks, key)
        except BaseException:
            chunks.close()
            raise

    plaintext = await asyncio.to_thread(opened)
    try:
        while True:
            chunk = await asyncio.to_thread(next, plaintext, None)
            if chunk is None:
                return
            yield chunk
    finally:
        with contextlib.suppress(ValueError):  # still running in a thread a cancel left behind
            await asyncio.to_thread(chunks.close)
