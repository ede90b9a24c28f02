"""The document package (``asic.cms``) of one shipment, sealed to a spool file on disk.

DPI's business message carries the SHA-256 of the encrypted package, so the package must exist
in full before the business message can be signed and the upload can start: it is sealed to a
temporary file (never to memory), digested on the way, and streamed from there. Sealing is CPU
work, so it runs in worker threads (see :func:`ipunkt.package.seal.seal`) while the event loop
keeps serving; the documents' async streams are pulled from the loop one chunk at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from ipunkt.package.asic import SignatureFormat
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.seal import Document, seal
from ipunkt.plugin import Attachment, PermanentError, TransientError

from ipunkt_dpi.shipment import Shipment


@dataclass(frozen=True)
class SealedPackage:
    path: Path
    size: int
    sha256: bytes


def _pulled(attachment: Attachment, loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """The attachment's async stream as a blocking iterator, for a worker thread."""

    async def start() -> AsyncIterator[bytes]:
        return attachment.open()

    async def pull(stream: AsyncIterator[bytes]) -> bytes | None:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None

    async def close(stream: AsyncIterator[bytes]) -> None:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()

    stream = asyncio.run_coroutine_threadsafe(start(), loop).result()
    try:
        while (chunk := asyncio.run_coroutine_threadsafe(pull(stream), loop).result()) is not None:
            if chunk:
                yield chunk
    finally:
        asyncio.run_coroutine_threadsafe(close(stream), loop).result()


def _document(attachment: Attachment, loop: asyncio.AbstractEventLoop) -> Document:
    return Document(
        attachment.filename,
        attachment.mime_type,
        lambda: _pulled(attachment, loop),
        attachment.size,
    )


@contextlib.asynccontextmanager
async def sealed(
    shipment: Shipment, key: OrganisationKey, *, spool: Path | None = None
) -> AsyncIterator[SealedPackage]:
    """Seal the shipment's documents and manifest to its provider; the file is removed after.

    A package that cannot be made (a certificate that may not encrypt, a duplicate file name)
    is a :class:`PermanentError`; a disk that fails is a :class:`TransientError`.
    """
    loop = asyncio.get_running_loop()
    documents = [_document(a, loop) for a in shipment.documents]
    descriptor, name = tempfile.mkstemp(prefix="ipunkt-dpi-", suffix=".asic.cms", dir=spool)
    path = Path(name)
    try:
        try:
            with os.fdopen(descriptor, "wb") as out:
                result = await asyncio.to_thread(
                    seal,
                    documents,
                    key=key,
                    recipient=shipment.recipient,
                    out=out,
                    manifest=shipment.manifest,
                    signature=SignatureFormat.XADES,
                    fingerprint=True,
                )
        except PackageError as exc:
            raise PermanentError(f"DPI: the document package cannot be made: {exc}") from exc
        except OSError as exc:
            raise TransientError(f"DPI: the document package cannot be spooled: {exc}") from exc
        assert result.sha256 is not None
        yield SealedPackage(path, result.size, result.sha256)
    finally:
        path.unlink(missing_ok=True)
