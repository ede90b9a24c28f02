"""Opening the CMS envelope of an incoming package as it streams to the client.

Incoming packages are stored exactly as they arrived, encrypted to this organisation's
certificate (so they are sealed at rest twice over); ``pop`` decrypts them on the fly, as the
original does. The CMS reader is blocking code, so it runs in a worker thread: a small package
in one trip, read first; a large one pulling the stored chunks from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

from ipunkt.package import cms
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.seal import from_async
from ipunkt.stream_head import read_head

SMALL_PACKAGE = 1 << 20
"""A stored package of at most this many bytes is read first and decrypted in one trip to a
worker thread; handing a thread each chunk and each step cost a small one more than its
decryption."""


async def decrypted(
    open_chunks: Callable[[], AsyncIterator[bytes]], key: OrganisationKey
) -> AsyncIterator[bytes]:
    """The plaintext of a stored CMS EnvelopedData; PackageError if it is not one for us."""
    head = await read_head(open_chunks(), SMALL_PACKAGE)
    if head.whole:
        for piece in await asyncio.to_thread(_decrypt_all, head.arrived, key):
            yield piece
        return
    async for piece in _decrypted_in_thread(head.stream, key):
        yield piece


def _decrypt_all(ciphertext: list[bytes], key: OrganisationKey) -> list[bytes]:
    return list(cms.decrypt(iter(ciphertext), key))


async def _decrypted_in_thread(
    open_chunks: Callable[[], AsyncIterator[bytes]], key: OrganisationKey
) -> AsyncIterator[bytes]:
    """The stored chunks are closed in the worker thread, as soon as the package is refused or
    read (or the client goes away), not left to the garbage collector."""
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
