"""The package a DPO message carries: its documents sealed to the receiver with our key.

The sealing toolkit (:func:`ipunkt.package.seal.seal`) is blocking and reads documents as
plain iterables, while the core hands attachments over as async streams. :func:`sealer`
bridges the two: the returned function runs in the worker thread that writes ``sbd.zip``, and
each document it reads pulls its chunks from the event loop one at a time. Documents of a small
package (:data:`~ipunkt_dpo.broker_file.SMALL_PACKAGE`) are read on the event loop first,
which costs less than pulling them across threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import IO, Any

from cryptography import x509
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.manifest import IpManifest, MainDocument
from ipunkt.package.seal import Document, seal
from ipunkt.package.trust import check_rsa, check_usage, check_validity
from ipunkt.plugin import Attachment, PermanentError, TransientError

from ipunkt_dpo.broker_file import SMALL_PACKAGE, SealInto


def receiver_certificate(service_record: Mapping[str, Any] | None) -> x509.Certificate:
    """The receiver's certificate from its Service Registry record (``pemCertificate``)."""
    pem = (service_record or {}).get("pemCertificate")
    if not isinstance(pem, str) or not pem.strip():
        raise PermanentError("the receiver's service record has no pemCertificate to seal to")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        check_rsa(certificate)
        check_validity(certificate)
        check_usage(certificate, ("key_encipherment",))
    except ValueError as exc:
        raise PermanentError(f"the receiver's pemCertificate cannot be read: {exc}") from exc
    except PackageError as exc:
        raise PermanentError(f"cannot seal to the receiver's certificate: {exc}") from exc
    return certificate


def _pull(
    open_stream: Callable[[], AsyncIterator[bytes]], loop: asyncio.AbstractEventLoop
) -> Iterator[bytes]:
    """An attachment's async stream, opened and read on the event loop from a worker thread."""

    async def opened() -> AsyncIterator[bytes]:
        return open_stream()

    async def step() -> bytes:
        return await anext(stream)

    stream = asyncio.run_coroutine_threadsafe(opened(), loop).result()
    try:
        while True:
            try:
                yield asyncio.run_coroutine_threadsafe(step(), loop).result()
            except StopAsyncIteration:
                return
    finally:
        closing = getattr(stream, "aclose", None)
        if closing is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(closing(), loop).result()


def main_document(attachments: Sequence[Attachment], named: str | None) -> MainDocument | None:
    """The ``hoveddokument``: the attachment marked primary, else the one the SBD names."""
    chosen = next((a for a in attachments if a.primary), None)
    if chosen is None and named:
        chosen = next((a for a in attachments if a.filename == named), None)
    return MainDocument(chosen.filename, chosen.mime_type) if chosen else None


async def _read(attachment: Attachment) -> list[bytes]:
    try:
        return [chunk async for chunk in attachment.open()]
    except OSError as exc:
        raise TransientError(f"a document could not be read: {exc}") from exc


async def sealer(
    attachments: Sequence[Attachment],
    *,
    key: OrganisationKey,
    recipient: x509.Certificate,
    sender: str,
    receiver: str,
    main: MainDocument | None,
) -> SealInto:
    """A function that seals ``attachments`` (after the IP manifest) into a writable."""
    loop = asyncio.get_running_loop()
    if sum(a.size for a in attachments) <= SMALL_PACKAGE:
        read = [await _read(a) for a in attachments]
        documents = [
            Document(name=a.filename, mime=a.mime_type, open=lambda c=chunks: c, size=a.size)
            for a, chunks in zip(attachments, read, strict=True)
        ]
    else:
        documents = [
            Document(
                name=a.filename,
                mime=a.mime_type,
                open=lambda a=a: _pull(a.open, loop),  # type: ignore[misc]
                size=a.size,
            )
            for a in attachments
        ]
    manifest = IpManifest(receiver=receiver, sender=sender, main_document=main)

    def seal_into(out: IO[bytes]) -> None:
        seal(documents, key=key, recipient=recipient, out=out, manifest=manifest)

    return seal_into
