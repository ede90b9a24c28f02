"""A ZIP's central directory, held to what the streaming read of its local entries saw.

ipunkt reads a container front to back (stream-unzip: local headers, data, descriptors) and
stops at the first central-directory signature. The fagsystem that pops the container reads it
as nearly every ZIP library does, from the central directory at its end. The two views must be
the same container: else entries that were never checked against the signature, or other
bytes under a checked entry's name, reach the client (a few stray bytes that look like the
start of a directory, then hidden entries and a directory that lists them).

As the packed bytes stream past, :class:`StreamRecord` notes where each local-header signature
lies (with its fixed fields and name), keeps the stream's last few MiB, and hands the bytes on
cut at the end of every such header: the reader, having read a header, has been handed exactly
the bytes up to its end, so the header it took is known exactly (a stored ZIP among the
documents may hold headers of the same names; they end elsewhere). Once the entries are read
and the signature checked, :func:`check_directory` reads the directory from the kept tail with
the standard library's ``zipfile`` and requires the same entries, by raw name, in the same
order, and every checked entry listed at the very local header the read took, with its
compression method and size.
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ipunkt.package.errors import UnsafeArchive

SIGNATURE = b"PK\x03\x04"
FIXED = 30
"""A local header's fixed part: signature, versions, flags, method, time, CRC, sizes, lengths."""
MAX_NAME = 1024
TAIL = 4 << 20
"""The end of the stream kept for the directory and its end records (the directory of 1,000
entries with 1 KiB names, and a 64 KiB comment, fit well within it)."""
MAX_SIGNATURES = 100_000
"""Local-header signatures noted before the container is refused (an entry of stored ZIPs
holds many; no honest container holds this many)."""


@dataclass(frozen=True)
class LocalHeader:
    method: int
    name: bytes
    extra_length: int

    def end(self, offset: int) -> int:
        """Where this header ends, found at ``offset``."""
        return offset + FIXED + len(self.name) + self.extra_length


@dataclass(frozen=True)
class ReadEntry:
    """An entry as the streaming read saw it: its raw name, unpacked size, and the bytes handed
    to the reader when it had read the entry's local header (where that header ends)."""

    raw_name: bytes
    size: int
    handed: int


class StreamRecord:
    """The packed bytes, passed through: counted, their local-header signatures noted, their
    last :data:`TAIL` bytes kept, and cut at the end of every local header."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.consumed = 0
        self.headers: dict[int, LocalHeader] = {}
        self._incomplete: list[int] = []
        self._ends_ahead: set[int] = set()
        """Where headers end that are noted but end in a chunk still to come."""
        self._carry = b""
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            at = 0
            for cut in [*self._note(chunk), len(chunk)]:
                if cut > at:
                    piece = chunk[at:cut]
                    self.consumed += len(piece)
                    at = cut
                    yield piece

    @property
    def tail(self) -> tuple[int, bytes]:
        """Where the kept end of the stream starts, and its bytes."""
        data = b"".join(self._tail)
        return self.consumed - len(data), data

    def _note(self, chunk: bytes) -> list[int]:
        """Note the headers whose bytes are all here now; where in ``chunk`` each one ends."""
        if not chunk:
            return []
        start = self.consumed  # none of this chunk is handed yet
        ends = self._ends_ahead
        self._tail.append(chunk)
        self._tail_bytes += len(chunk)
        while self._tail_bytes - len(self._tail[0]) >= TAIL:
            self._tail_bytes -= len(self._tail.popleft())
        # The bytes of the headers still being read, and signatures across the seam.
        window = self._carry + chunk[: FIXED + MAX_NAME]
        window_start = start - len(self._carry)
        found = {window_start + at for at in _find_all(window, SIGNATURE)}
        found |= {start + at for at in _find_all(chunk, SIGNATURE)}
        pending = sorted(set(self._incomplete) | found)
        self._incomplete = []
        for offset in pending:
            if offset in self.headers:
                continue
            if len(self.headers) >= MAX_SIGNATURES:
                raise UnsafeArchive(
                    f"the container holds more than {MAX_SIGNATURES} local-header signatures"
                )
            header = _header_at(offset, window, window_start, chunk, start)
            if header is None:
                self._incomplete.append(offset)
            else:
                self.headers[offset] = header
                ends.add(header.end(offset))
        self._carry = (self._carry + chunk[-(FIXED + MAX_NAME) :])[-(FIXED + MAX_NAME) :]
        end = start + len(chunk)
        self._ends_ahead = {at for at in ends if at > end}
        return sorted(at - start for at in ends if at <= end)


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    at = data.find(needle)
    while at >= 0:
        yield at
        at = data.find(needle, at + 1)


def _header_at(
    offset: int, window: bytes, window_start: int, chunk: bytes, chunk_start: int
) -> LocalHeader | None:
    """The local header at ``offset``, None while its bytes have not all come. A name longer
    than any entry may have is noted as no name: it can match no entry."""
    if offset >= chunk_start:
        data, at = chunk, offset - chunk_start
    else:
        data, at = window, offset - window_start
    if at + FIXED > len(data):
        return None
    (method,) = struct.unpack_from("<H", data, at + 8)
    name_length, extra_length = struct.unpack_from("<HH", data, at + 26)
    if name_length > MAX_NAME:
        return LocalHeader(method, b"", extra_length)
    if at + FIXED + name_length > len(data):
        return None
    return LocalHeader(method, data[at + FIXED : at + FIXED + name_length], extra_length)


def check_directory(
    record: StreamRecord, entries: Sequence[ReadEntry], checked: Collection[bytes]
) -> None:
    """Refuse the container unless its central directory lists exactly ``entries``, and each
    of those whose raw name is in ``checked`` where the streaming read found it."""
    infos = _directory(record)
    if len(infos) != len(entries):
        raise UnsafeArchive(
            f"the central directory lists {len(infos)} entries; the container holds "
            f"{len(entries)}"
        )
    headers: dict[tuple[bytes, int], list[int]] = {}  # by name and end
    for offset, header in record.headers.items():
        headers.setdefault((header.name, header.end(offset)), []).append(offset)
    for index, (info, entry) in enumerate(zip(infos, entries, strict=True)):
        if _raw_name(info) != entry.raw_name:
            raise UnsafeArchive(
                f"the central directory lists {info.filename!r} where the container holds "
                f"{entry.raw_name.decode('utf-8', 'replace')!r}"
            )
        if index == 0 and info.header_offset != 0:
            raise UnsafeArchive("the central directory does not start at the first entry")
        if entry.raw_name not in checked:
            continue
        found = headers.get((entry.raw_name, entry.handed), [])
        if len(found) != 1:
            raise UnsafeArchive(f"where {info.filename!r} starts in the container is unclear")
        header = record.headers[found[0]]
        if (info.header_offset != found[0] or info.compress_type != header.method
                or info.file_size != entry.size
                or (header.method == 0 and info.compress_size != entry.size)):
            raise UnsafeArchive(
                f"the central directory describes {info.filename!r} otherwise than its entry"
            )


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")


def _directory(record: StreamRecord) -> list[zipfile.ZipInfo]:
    start, data = record.tail
    view = _TailView(start, data, record.consumed)
    try:
        with zipfile.ZipFile(view) as archive:
            return sorted(archive.infolist(), key=lambda info: info.header_offset)
    except _BeforeTail:
        raise UnsafeArchive(
            f"the container's central directory is larger than {TAIL} bytes"
        ) from None
    except (zipfile.BadZipFile, ValueError, UnicodeDecodeError, struct.error) as exc:
        raise UnsafeArchive(f"the container's central directory is unreadable: {exc}") from None


class _BeforeTail(Exception):
    """A read reached before the kept end of the stream."""


class _TailView(io.RawIOBase):
    """The stream as a seekable file of its whole length, of which only the kept end can be
    read: all ``zipfile`` reads of a directory and its end records."""

    def __init__(self, start: int, data: bytes, length: int) -> None:
        self._start = start
        self._data = data
        self._length = length
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        if base + offset < 0:
            raise OSError("seek before the start")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._position >= self._length:
            return 0
        if self._position < self._start:
            raise _BeforeTail
        at = self._position - self._start
        piece = self._data[at : at + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)
