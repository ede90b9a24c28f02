"""Opening the CMS envelope of an incoming package as it streams to the client.

Incoming packages are stored exactly as they arrived, encrypted to this organisation's
certificate (so they are sealed at rest twice over); ``pop`` decrypts them on the fly, as the
original does. The CMS reader is blocking code, so it runs in a worker thread that pulls the
stored chunks from the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from ipunkt.package import cms
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.seal import from_async


async def decrypted(
    open_chunks: Callable[[], AsyncIterator[bytes]], key: OrganisationKey
) -> AsyncIterator[bytes]:
    """The plaintext of a stored CMS EnvelopedData; PackageError if it is not one for us."""
    source = from_async(open_chunks, asyncio.get_running_loop())
    plaintext = await asyncio.to_thread(lambda: cms.decrypt(source(), key))
    while True:
        chunk = await asyncio.to_thread(next, plaintext, None)
        if chunk is None:
            return
        yield chunk
