"""The file DPO puts on the broker, ``sbd.zip``: written and read as streams.

``sbd.zip`` holds ``sbd.json`` (the SBD) and, when the message has documents, ``asic.zip``: the
signed ASiC-E, CMS-encrypted to the receiver. Status messages and receipts have only
``sbd.json``. Older senders wrote the SBD as ``content.xml``; the reader takes that too.

Writing: the sealing toolkit and :mod:`zipfile` are blocking, so they run in a worker thread
that writes the ZIP into a pipe; the event loop reads the pipe a bounded number of chunks
behind, so the upload streams while the package is sealed. A small file (the SBD alone, or
with documents of at most :data:`SMALL_PACKAGE` bytes) is written whole in memory instead, in
one trip to a pooled thread or none. ``asic.zip`` is encrypted and so
incompressible: it is deflated at level 0 (stored blocks), which costs nothing and which every
ZIP reader takes, unlike stored entries with a data descriptor.

Reading: :class:`IncomingFile` unzips the download as it arrives (a small one once it has, see
:data:`SMALL_FILE`). When ``sbd.json`` comes first
(as the integrasjonspunkt writes it) the ``asic.zip`` entry is handed on as a stream while the
download goes on; when it comes first it is spooled to a temporary file. The file comes from a
stranger, so it is held to :class:`FileLimits` as it streams: its size, the bytes it unpacks to
and their ratio to the bytes downloaded (a zip bomb is refused within its first megabytes, not
when memory or disk run out), its number of entries, entry names that could escape a folder,
and an SBD that is too large or nested too deep. The package stream ends only once the rest of
the file was read and found sound, so nothing of a damaged file is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import tempfile
import threading
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

import structlog
from ipunkt.package.asic import check_name
from ipunkt.package.errors import UnsafeArchive
from ipunkt.stream_head import read_head
from stream_unzip import UnzipError, async_stream_unzip, stream_unzip

from ipunkt_dpo.legacy_sbd import LegacySbdError, parse_content_xml

log = structlog.get_logger(__name__)

SBD_JSON = "sbd.json"
CONTENT_XML = "content.xml"
ASIC_ZIP = "asic.zip"
FILE_NAME = "sbd.zip"
PIPE_CHUNK = 1 << 20
"""Bytes the worker gathers before handing them to the event loop."""
PIPE_DEPTH = 4
"""Chunks the pipe holds before the worker waits for the upload to catch up."""
SMALL_PACKAGE = 1 << 20
"""Documents of at most this many bytes in all are sealed in one go, in memory: a thread of
its own and a pipe cost a small message more than its sealing."""
MAX_SBD_BYTES = 16 << 20
MAX_SBD_DEPTH = 64
"""The deepest nesting of objects and arrays an SBD may have (its header nests eight deep)."""
ZIP64_FROM = zipfile.ZIP64_LIMIT - (64 << 20)
"""Documents larger than this (with the package's overhead) need ZIP64 entries."""

SealInto = Callable[[IO[bytes]], None]
"""Writes the sealed package (the CMS) into the given writable; runs in the worker thread."""


class BrokenFile(ValueError):
    """A downloaded file that is not a usable ``sbd.zip``; ``str()`` says why."""


@dataclass(frozen=True)
class FileLimits:
    """What a downloaded ``sbd.zip`` may do before it is refused as broken or hostile."""

    max_bytes: int = 2 << 30
    """The most bytes downloaded, and the most its entries may unpack to together."""
    max_entries: int = 16
    """Entries in the file (the integrasjonspunkt writes two)."""
    max_ratio: int = 100
    """Unpacked bytes per downloaded byte, once more than ``ratio_grace`` bytes are unpacked."""
    ratio_grace: int = 16 << 20


class _Abandoned(Exception):
    """The reader of the pipe went away (the upload failed); the worker stops."""


class _Pipe:
    """The writable end, used in the worker thread; chunks go to the event loop's queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[object]) -> None:
        self._loop = loop
        self._queue = queue
        self._buffer = bytearray()
        self.abandoned = threading.Event()
        self.size = 0

    def _put(self, item: object) -> None:
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while True:
            try:
                future.result(timeout=0.2)
                return
            except FutureTimeout:
                if self.abandoned.is_set():
                    future.cancel()
                    raise _Abandoned from None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self.abandoned.is_set():
            raise _Abandoned
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= PIPE_CHUNK:
            self._put(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        """zipfile flushes; the pipe hands chunks on by size and at :meth:`finish`."""

    def close(self) -> None:
        """zipfile leaves a file it was given open; the pipe ends at :meth:`finish`."""

    def finish(self, error: BaseException | None) -> None:
        if error is None and self._buffer:
            self._put(bytes(self._buffer))
        self._buffer.clear()
        self._put(error if error is not None else _END)


_END = object()


def _write_zip(
    out: IO[bytes] | _Pipe, sbd_json: bytes, seal_into: SealInto | None, zip64: bool
) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=0) as archive:
        archive.writestr(SBD_JSON, sbd_json, compresslevel=6)
        if seal_into is not None:
            with archive.open(ASIC_ZIP, "w", force_zip64=zip64) as member:
                seal_into(member)


def _small_zip(sbd_json: bytes, seal_into: SealInto | None) -> bytes:
    out = io.BytesIO()
    _write_zip(out, sbd_json, seal_into, False)
    log.debug("sbd.zip written", bytes=out.tell())
    return out.getvalue()


async def write_broker_file(
    sbd: Mapping[str, Any], seal_into: SealInto | None, *, documents_size: int = 0
) -> AsyncIterator[bytes]:
    """``sbd.zip`` for ``sbd`` (and the package ``seal_into`` writes), chunk by chunk.

    Stopping early (the upload failed) stops the worker; an error in the worker (a document
    that cannot be read, a certificate the sealing toolkit refuses) is raised here.
    """
    sbd_json = json.dumps(sbd, ensure_ascii=False).encode()
    if seal_into is None:
        # A status or receipt: the SBD alone, already in memory, zipped here in a moment.
        yield _small_zip(sbd_json, None)
        return
    if documents_size <= SMALL_PACKAGE:
        yield await asyncio.to_thread(_small_zip, sbd_json, seal_into)
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=PIPE_DEPTH)
    pipe = _Pipe(loop, queue)

    def work() -> None:
        try:
            _write_zip(pipe, sbd_json, seal_into, documents_size > ZIP64_FROM)
        except _Abandoned:
            return
        except BaseException as error:  # handed to the reader, which raises it
            try:
                pipe.finish(error)
            except _Abandoned:
                return
            return
        try:
            pipe.finish(None)
        except _Abandoned:
            return

    worker = threading.Thread(target=work, name="ipunkt-dpo-sbd-zip", daemon=True)
    worker.start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        pipe.abandoned.set()
        while not queue.empty():
            queue.get_nowait()
        await asyncio.to_thread(worker.join)
    log.debug("sbd.zip written", bytes=pipe.size)


SMALL_FILE = 64 << 10
"""A download of at most this many bytes is unzipped on the event loop once it has arrived;
a larger one as it streams in, in worker threads. A status message is about a kilobyte, and
handing each step of its unzipping to a thread cost more than all of it."""

Member = tuple[bytes, int | None, AsyncIterator[bytes]]


async def _unzipped(chunks: AsyncIterator[bytes]) -> AsyncIterator[Member]:
    """The members of the ZIP that arrives as ``chunks`` (see :data:`SMALL_FILE`)."""
    head = await read_head(chunks, SMALL_FILE)
    if head.whole:
        for name, length, member in stream_unzip(head.arrived, chunk_size=PIPE_CHUNK):
            yield name, length, _async(member)
        return
    async for member in async_stream_unzip(head.stream(), chunk_size=PIPE_CHUNK):
        yield member


async def _async(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def _read_sbd(chunks: AsyncIterator[bytes]) -> bytes:
    """An SBD entry whole: :meth:`IncomingFile._guard` holds it to :data:`MAX_SBD_BYTES`."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
    return bytes(data)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


def _depth(value: Any) -> int:
    """How deep objects and arrays nest in ``value`` (walked without recursion)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children if isinstance(item, dict | list) else ():
            if isinstance(child, dict | list):
                deepest = max(deepest, depth + 1)
                if deepest > MAX_SBD_DEPTH:
                    return deepest
                pending.append((child, depth + 1))
    return deepest


def _parse_sbd(name: str, data: bytes) -> dict[str, Any]:
    if name == CONTENT_XML:
        try:
            sbd = parse_content_xml(data)
        except LegacySbdError as exc:
            raise BrokenFile(f"content.xml: {exc}") from exc
    else:
        try:
            sbd = json.loads(data)
        except ValueError as exc:
            raise BrokenFile(f"sbd.json is not JSON: {exc}") from exc
        except RecursionError:
            raise BrokenFile(f"sbd.json nests deeper than {MAX_SBD_DEPTH} levels") from None
        if not isinstance(sbd, dict):
            raise BrokenFile("sbd.json is not a JSON object")
    if _depth(sbd) > MAX_SBD_DEPTH:
        raise BrokenFile(f"{name} nests deeper than {MAX_SBD_DEPTH} levels")
    return sbd


class IncomingFile:
    """A downloaded ``sbd.zip``, unzipped as it streams in.

    ``async with IncomingFile(chunks) as incoming``: :meth:`open` returns the SBD and the
    package stream (or None), which must be read to its end: it reads the rest of the file on
    the way, so that a damaged or hostile end raises in the stream. Anything wrong with the ZIP
    itself is :class:`BrokenFile` (also kept in :attr:`broken`); errors of the download (the
    channel's transient errors) pass through unchanged.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        spool_dir: Path | None = None,
        limits: FileLimits | None = None,
    ) -> None:
        self.limits = limits or FileLimits()
        self.downloaded = 0
        self.unpacked = 0
        self._entries = 0
        self._members = _unzipped(self._counted(chunks))
        self._spool_dir = spool_dir
        self._spool: BinaryIO | None = None
        self.sbd: dict[str, Any] | None = None
        """The SBD, once read (also when the file turns out broken after it)."""
        self.broken: BrokenFile | None = None
        """Why the file is broken, once that is known (also while the sink read the package)."""

    async def __aenter__(self) -> IncomingFile:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        closing = getattr(self._members, "aclose", None)
        if closing is not None:
            with contextlib.suppress(UnzipError, BrokenFile, RuntimeError):
                await closing()

    def _broken(self, reason: str) -> BrokenFile:
        self.broken = self.broken or BrokenFile(reason)
        return self.broken

    async def _counted(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self.downloaded += len(chunk)
            if self.downloaded > self.limits.max_bytes:
                raise self._broken(f"the file is larger than {self.limits.max_bytes} bytes")
            yield chunk

    async def _next(self) -> tuple[str, AsyncIterator[bytes]] | None:
        try:
            name, _, chunks = await self._members.__anext__()
        except StopAsyncIteration:
            return None
        except UnzipError as exc:
            raise self._broken(f"not a readable ZIP: {type(exc).__name__}: {exc}") from exc
        self._entries += 1
        if self._entries > self.limits.max_entries:
            raise self._broken(f"the file has more than {self.limits.max_entries} entries")
        text = name.decode("utf-8", "replace")
        try:
            check_name(text)
        except UnsafeArchive as exc:
            raise self._broken(str(exc)) from None
        return text, self._guard(text, chunks)

    async def _guard(self, name: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The entry's chunks within the limits; an SBD's own limit is checked first, so that
        an SBD that is a bomb is refused for its size whatever the download's pace."""
        limits = self.limits
        sbd_limit = MAX_SBD_BYTES if name in (SBD_JSON, CONTENT_XML) else None
        entry = 0
        try:
            async for chunk in chunks:
                entry += len(chunk)
                self.unpacked += len(chunk)
                if sbd_limit is not None and entry > sbd_limit:
                    raise self._broken(f"{name} is larger than {sbd_limit} bytes")
                if self.unpacked > limits.max_bytes:
                    raise self._broken(f"the file unpacks to more than {limits.max_bytes} bytes")
                if (
                    self.unpacked > limits.ratio_grace
                    and self.unpacked > limits.max_ratio * self.downloaded
                ):
                    raise self._broken(
                        f"the file unpacks {self.unpacked} bytes from {self.downloaded} "
                        f"(over {limits.max_ratio}:1): a zip bomb"
                    )
                yield chunk
        except UnzipError as exc:
            raise self._broken(f"not a readable ZIP: {type(exc).__name__}: {exc}") from exc

    async def open(self) -> tuple[dict[str, Any], AsyncIterator[bytes] | None]:
        sbd: dict[str, Any] | None = None
        while (member := await self._next()) is not None:
            name, chunks = member
            if name in (SBD_JSON, CONTENT_XML):
                if sbd is not None:
                    raise self._broken(f"the file holds more than one SBD ({name} again)")
                sbd = self.sbd = _parse_sbd(name, await _read_sbd(chunks))
            elif name == ASIC_ZIP:
                if self._spool is not None:
                    raise self._broken("the file holds more than one asic.zip")
                if sbd is not None:
                    return sbd, self._then_rest(chunks)
                # Closed (and so deleted) by aclose().
                self._spool = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115
                async for chunk in chunks:
                    await asyncio.to_thread(self._spool.write, chunk)
            else:
                log.info("skipping an unknown entry of sbd.zip", entry=name)
                await _drain(chunks)
        if sbd is None:
            raise self._broken("the file holds neither sbd.json nor content.xml")
        return sbd, (self._spooled() if self._spool is not None else None)

    async def _spooled(self) -> AsyncIterator[bytes]:
        spool = self._spool
        assert spool is not None
        await asyncio.to_thread(spool.seek, 0)
        while chunk := await asyncio.to_thread(spool.read, PIPE_CHUNK):
            yield chunk

    async def _then_rest(self, package: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The package, then the rest of the file read: only a sound file ends the stream."""
        async for chunk in package:
            yield chunk
        while (member := await self._next()) is not None:
            name, chunks = member
            if name in (SBD_JSON, CONTENT_XML, ASIC_ZIP):
                raise self._broken(f"the file holds {name} twice")
            log.info("skipping an unknown entry of sbd.zip", entry=name)
            await _drain(chunks)
