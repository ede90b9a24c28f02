"""Seal documents into a package and open packages: what the channel plugins call.

``seal``: documents (and the business manifest) -> signed ASiC-E -> CMS EnvelopedData to the
receiver's certificate, streamed to a writable file in one pass. The ZIP and the digests are
made in a worker thread while the calling thread encrypts and writes, so sealing uses two cores
and a few megabytes whatever the size of the documents.

``open_package``: CMS -> ASiC-E -> files, decrypting in a worker thread while the calling
thread unpacks, digests and writes. Files are written to a staging directory and moved into
place only once every digest and the signature are checked, so a broken package leaves
nothing behind. The XML files that integration points and their clients read (``META-INF``'s,
``manifest.xml``, ``arkivmelding.xml``) are checked on the way for DTDs, entities and depth
(:class:`XmlScreen`), so that no reader after ipunkt meets a "billion laughs" or an external
entity in them.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import shutil
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import structlog
from cryptography import x509

from ipunkt.package.asic import (
    CHUNK,
    AsicContents,
    AsicEntry,
    DiscardSink,
    FileWriter,
    Limits,
    SignatureFormat,
    Sink,
    WriteResult,
    WrittenFile,
    check_name,
    read_asic,
    write_asic,
)
from ipunkt.package.cms import CmsReader, CmsWriter, KeyTransport, Writable
from ipunkt.package.errors import PackageError, UnsafeArchive
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.manifest import IpManifest, ManifestError, SdpManifest, parse_manifest
from ipunkt.package.prefetch import prefetch
from ipunkt.package.safexml import UnsafeXml, XmlCheck
from ipunkt.package.trust import TrustStore

log = structlog.get_logger(__name__)

Source = BinaryIO | Iterable[bytes]
DEFAULT_LIMITS = Limits()


def _chunks(source: Source, chunk_size: int = CHUNK) -> Iterator[bytes]:
    read = getattr(source, "read", None)
    if read is None:
        yield from source
        return
    try:
        while data := read(chunk_size):
            yield data
    finally:
        source.close()  # type: ignore[union-attr]


@dataclass(frozen=True)
class Document:
    """A document to seal; ``open`` is called once, when the document's turn comes."""

    name: str
    mime: str
    open: Callable[[], Source]
    size: int | None = None

    @classmethod
    def from_path(cls, path: Path, *, name: str | None = None, mime: str | None = None) -> Document:
        path = Path(path)
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(name or path.name, mime or guessed, lambda: path.open("rb"), path.stat().st_size)


async def _next(iterator: AsyncIterator[bytes]) -> bytes:
    return await anext(iterator)


def from_async(
    open_chunks: Callable[[], AsyncIterator[bytes]], loop: asyncio.AbstractEventLoop
) -> Callable[[], Generator[bytes, None, None]]:
    """A :attr:`Document.open` for a source that streams on the event loop.

    :func:`seal` is blocking work for a worker thread (``asyncio.to_thread``); this lets it pull
    an attachment that the plugin contract gives as an async iterator, chunk by chunk.
    """

    def chunks() -> Generator[bytes, None, None]:
        iterator = open_chunks()
        try:
            while True:
                try:
                    yield asyncio.run_coroutine_threadsafe(_next(iterator), loop).result()
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                if _running_in(loop):
                    # Finalized by the garbage collector on the loop's own thread (a traceback
                    # held this generator): waiting there for the loop would freeze it for good.
                    loop.create_task(close())
                else:
                    asyncio.run_coroutine_threadsafe(close(), loop).result()

    return chunks


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


@dataclass(frozen=True)
class Sealed:
    """What was sealed: the package's size and SHA-256 and each document's digest."""

    size: int
    sha256: bytes | None
    """The SHA-256 of the package bytes (DPI's ``dokumentpakkefingeravtrykk``), if asked for."""
    files: list[WrittenFile]
    signature_file: str


class _Counting:
    """Counts (and optionally digests) what is written through it."""

    def __init__(self, out: Writable, digest: bool) -> None:
        self._out = out
        self._digest = hashlib.sha256() if digest else None
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._digest is not None:
            self._digest.update(data)
        self._out.write(data)
        self.size += len(data)
        return len(data)

    def sha256(self) -> bytes | None:
        return self._digest.digest() if self._digest is not None else None


def _entries(
    documents: Sequence[Document], manifest: IpManifest | SdpManifest | None
) -> Iterator[AsicEntry]:
    if manifest is not None:
        data = manifest.to_xml()
        yield AsicEntry("manifest.xml", "application/xml", (data,), len(data))
    for document in documents:
        yield AsicEntry(document.name, document.mime, _chunks(document.open()), document.size)


def _check_manifest(
    documents: Sequence[Document], manifest: IpManifest | SdpManifest | None
) -> None:
    names = {d.name for d in documents}
    if "manifest.xml" in names and manifest is not None:
        raise PackageError("a document is named manifest.xml, which the manifest needs")
    if isinstance(manifest, IpManifest):
        referenced = [manifest.main_document.href] if manifest.main_document else []
    elif isinstance(manifest, SdpManifest):
        referenced = [d.href for d in manifest.documents]
        referenced += [d.metadata_href for d in manifest.documents if d.metadata_href]
    else:
        referenced = []
    missing = [href for href in referenced if href not in names]
    if missing:
        raise PackageError(
            f"the manifest names documents that are not sealed: {', '.join(missing)}"
        )


def seal(
    documents: Sequence[Document],
    *,
    key: OrganisationKey,
    recipient: x509.Certificate,
    out: Writable,
    manifest: IpManifest | SdpManifest | None = None,
    signature: SignatureFormat = SignatureFormat.CADES,
    key_transport: KeyTransport = KeyTransport.OAEP,
    fingerprint: bool = False,
) -> Sealed:
    """Seal ``documents`` (after ``manifest.xml``, if given) for ``recipient`` into ``out``.

    ``signature`` is CAdES for DPO and DPF, XAdES for DPI; ``fingerprint`` also digests the
    package bytes, as DPI's business message needs.
    """
    for document in documents:
        check_name(document.name)
    _check_manifest(documents, manifest)
    counted = _Counting(out, fingerprint)
    result = WriteResult()
    zipped = write_asic(_entries(documents, manifest), key, signature=signature, result=result)
    with CmsWriter(counted, recipient, key_transport=key_transport) as writer:
        for chunk in prefetch(zipped, name="ipunkt-seal"):
            writer.write(chunk)
    assert result.signature_file is not None
    log.info(
        "package sealed",
        documents=len(result.files),
        bytes=counted.size,
        signature=signature.value,
        recipient=recipient.subject.rfc4514_string(),
    )
    return Sealed(counted.size, counted.sha256(), result.files, result.signature_file)


class _StagedFile:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("xb")

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()


class DirectorySink:
    """Unpacks into a hidden staging directory; :meth:`commit` moves the files into place."""

    def __init__(self, destination: Path) -> None:
        self.destination = Path(destination)
        self.destination.mkdir(parents=True, exist_ok=True)
        self._staging = self.destination / f".ipunkt-unpacking-{uuid.uuid4().hex}"
        self._staging.mkdir()
        self._names: list[str] = []

    def open(self, name: str) -> FileWriter:
        check_name(name)
        try:
            staged = _StagedFile(self._staging / name)
        except OSError as exc:
            raise UnsafeArchive(f"the entry {name!r} cannot be unpacked: {exc.strerror}") from exc
        self._names.append(name)
        return staged

    def commit(self) -> list[Path]:
        targets = [(self._staging / n, self.destination / n) for n in self._names]
        existing = [str(target) for _, target in targets if target.exists()]
        if existing:
            self.discard()
            raise PackageError(f"refusing to overwrite {', '.join(existing)}")
        for staged, target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(target)
        self.discard()
        return [target for _, target in targets]

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


SCREENED_XML = frozenset({"manifest.xml", "arkivmelding.xml"})
"""Top-level files checked as XML, besides every ``META-INF/*.xml``."""


def screened_as_xml(name: str) -> bool:
    """Whether the file ``name`` of a package is XML that ipunkt or its client reads."""
    folded = name.casefold()
    return folded in SCREENED_XML or (
        folded.startswith("meta-inf/") and folded.endswith(".xml")
    )


class _CheckedWriter:
    def __init__(self, inner: FileWriter, check: XmlCheck) -> None:
        self._inner = inner
        self._check = check

    def write(self, data: bytes) -> object:
        try:
            self._check.feed(data)
        except UnsafeXml as exc:
            raise UnsafeArchive(str(exc)) from None
        return self._inner.write(data)

    def close(self) -> None:
        self._inner.close()
        try:
            self._check.close()
        except UnsafeXml as exc:
            raise UnsafeArchive(str(exc)) from None


class XmlScreen:
    """A sink that passes files on to ``sink``, checking the XML ones as they stream past."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def open(self, name: str) -> FileWriter:
        writer = self._sink.open(name)
        return _CheckedWriter(writer, XmlCheck(name)) if screened_as_xml(name) else writer


@dataclass(frozen=True)
class Opened:
    """A package whose every file was checked; ``paths`` are where they were written."""

    contents: AsicContents
    manifest: IpManifest | SdpManifest | None
    paths: list[Path]


def open_package(
    source: Source,
    *,
    key: OrganisationKey,
    trust: TrustStore | None,
    destination: Path | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Opened:
    """Decrypt and verify a package; write its files to ``destination`` only if it is sound.

    Without ``trust`` the signer's certificate is not checked against anchors (the result says
    so in ``contents.trusted``). Raises a :class:`PackageError` saying what is wrong.
    """
    reader = CmsReader(source)
    plaintext = prefetch(reader.decrypt(key), name="ipunkt-open")
    sink = DirectorySink(destination) if destination is not None else None
    try:
        contents = read_asic(
            plaintext,
            XmlScreen(sink if sink is not None else DiscardSink()),
            trust=trust,
            limits=limits,
        )
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    finally:
        # Stop the decrypting thread now, not whenever the traceback that holds it is freed
        # (in whatever thread that happens to be).
        plaintext.close()
    manifest = None
    if contents.manifest is not None:
        try:
            manifest = parse_manifest(contents.manifest)
        except ManifestError as exc:
            if sink is not None:
                sink.discard()
            raise PackageError(f"the package's manifest.xml is not valid: {exc}") from exc
    paths = sink.commit() if sink is not None else []
    log.info(
        "package opened",
        documents=len(contents.files),
        signer=contents.signer.subject.rfc4514_string(),
        trusted=contents.trusted,
    )
    return Opened(contents, manifest, paths)
