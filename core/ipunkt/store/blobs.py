"""Payload files on disk, streamed in and out, encrypted at rest.

A blob is written to a temporary file, fsync'd, renamed into place and its directory fsync'd,
so a blob that :meth:`BlobStore.write` returned survives a crash. Memory stays flat whatever
the size: at most a couple of chunks are held at a time. File I/O and sealing run in the
store's own worker threads, one chunk at a time, so the event loop keeps serving. They are not
asyncio's default threads on purpose: blocking work in those (sealing, opening a CMS envelope)
pulls its input from blobs through the event loop, and would wait forever for a thread of its
own pool once enough of them waited at once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ipunkt.durable import sync_folder
from ipunkt.store.encryption import (
    CHUNK_SIZE,
    HEADER_SIZE,
    DecryptionError,
    Keyring,
    Opener,
    Sealer,
)

T = TypeVar("T")


class BlobTooLarge(Exception):
    """The stream went past the size it was allowed; nothing was kept."""

    def __init__(self, limit: int, seen: int) -> None:
        super().__init__(f"more than {limit} bytes ({seen} seen)")
        self.limit = limit
        self.seen = seen


class BlobMissing(Exception):
    """No file is stored under this id."""


@dataclass(frozen=True)
class BlobInfo:
    blob_id: str
    size: int


class BlobStore:
    """Encrypted files under ``root``: ``<root>/<xx>/<id>``, temporary files in ``<root>/tmp``."""

    def __init__(self, root: Path, keyring: Keyring, *, threads: int = 8) -> None:
        self.root = root
        self.keyring = keyring
        self._tmp = root / "tmp"
        self._io = ThreadPoolExecutor(threads, thread_name_prefix="ipunkt-blob-io")

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, function, *args)

    def prepare(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():
            leftover.unlink(missing_ok=True)

    def path(self, blob_id: str) -> Path:
        return self.root / blob_id[:2] / blob_id

    async def write(self, chunks: AsyncIterable[bytes], *, limit: int | None = None) -> BlobInfo:
        """Seal and store a stream; :class:`BlobTooLarge` once it passes ``limit`` bytes."""
        blob_id = uuid.uuid4().hex
        sealer = Sealer(self.keyring, blob_id.encode())
        temp = self._tmp / blob_id
        # The file is created with its first full chunk, or at the end: a blob smaller than a
        # chunk is written in one trip to a worker thread.
        handle: BinaryIO | None = None
        try:
            pending = bytearray()
            async for chunk in chunks:
                if limit is not None and sealer.plaintext_size + len(pending) + len(chunk) > limit:
                    raise BlobTooLarge(limit, sealer.plaintext_size + len(pending) + len(chunk))
                pending += chunk
                if len(pending) >= CHUNK_SIZE:
                    data, pending = bytes(pending), bytearray()
                    if handle is None:
                        handle = await self._run(_open_new, temp, sealer.header)
                    await self._run(_write, handle, sealer.update, data)
            data = bytes(pending)
            await self._run(_finish, handle, temp, sealer, data, self.path(blob_id))
        except BaseException:
            await self._run(_discard, handle, temp)
            raise
        return BlobInfo(blob_id, sealer.plaintext_size)

    async def read(self, blob_id: str) -> AsyncIterator[bytes]:
        """The plaintext, chunk by chunk; :class:`DecryptionError` if it was tampered with."""
        handle, opener, lengths, record = await self._run(self._open_first, blob_id)
        try:
            while record is not None:
                chunk = opener.open(record)
                if chunk:
                    yield chunk
                length = next(lengths, None)
                record = None if length is None else await self._run(_read, handle, length)
        finally:
            handle.close()

    async def check(self, blob_id: str) -> int:
        """Open the blob and verify its first chunk; returns the plaintext size."""
        handle, opener, _, record = await self._run(self._open_first, blob_id)
        handle.close()
        if record is not None:
            opener.open(record)
        return int(opener.plaintext_size)

    def _open_first(self, blob_id: str) -> tuple[BinaryIO, Opener, Iterator[int], bytes | None]:
        """The open blob and its first record: a small blob is read in one worker trip."""
        handle, opener = self._open(blob_id)
        try:
            lengths = opener.record_lengths()
            length = next(lengths, None)
            return handle, opener, lengths, None if length is None else _read(handle, length)
        except BaseException:
            handle.close()
            raise

    def _open(self, blob_id: str) -> tuple[BinaryIO, Opener]:
        try:
            handle = self.path(blob_id).open("rb")
        except FileNotFoundError:
            raise BlobMissing(blob_id) from None
        try:
            size = os.fstat(handle.fileno()).st_size
            opener = Opener(self.keyring, blob_id.encode(), handle.read(HEADER_SIZE), size)
        except BaseException:
            handle.close()
            raise
        return handle, opener

    async def delete(self, blob_ids: Iterable[str]) -> None:
        ids = [b for b in blob_ids if b]
        if ids:
            await self._run(self._delete, ids)

    def _delete(self, blob_ids: list[str]) -> None:
        for blob_id in blob_ids:
            self.path(blob_id).unlink(missing_ok=True)

    def stored_ids(self) -> list[str]:
        """Every blob on disk (for removing those no row refers to)."""
        found: list[str] = []
        for folder in self.root.iterdir():
            if folder.is_dir() and len(folder.name) == 2:
                found.extend(p.name for p in folder.iterdir())
        return found


def _open_new(temp: Path, header: bytes) -> BinaryIO:
    handle = temp.open("wb")
    handle.write(header)
    return handle


def _read(handle: BinaryIO, length: int) -> bytes:
    record = handle.read(length)
    if len(record) != length:
        raise DecryptionError("the file ended early")
    return record


def _write(handle: BinaryIO, update: object, data: bytes) -> None:
    handle.write(update(data))  # type: ignore[operator]


def _finish(
    handle: BinaryIO | None, temp: Path, sealer: Sealer, data: bytes, final: Path
) -> None:
    if handle is None:
        handle = _open_new(temp, sealer.header)
    with handle:  # closed here also when writing fails (closing twice is harmless)
        handle.write(sealer.update(data))
        handle.write(sealer.finish())
        handle.flush()
        os.fsync(handle.fileno())
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, final)
    sync_folder(final.parent)


def _discard(handle: BinaryIO | None, temp: Path) -> None:
    if handle is not None:
        handle.close()
    temp.unlink(missing_ok=True)

