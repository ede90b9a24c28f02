"""ASiC-E containers (ETSI EN 319 162): a signed ZIP, written and read as streams.

Writing (stream-zip): ``mimetype`` first, stored, without extra fields (so that its content
sits at byte 38 for magic-number sniffing); then the documents, each digested with SHA-256 as
it streams; then ``META-INF/manifest.xml`` (OASIS) and the signature: CAdES
(``META-INF/ASiCManifest.xml`` listing every document's digest and MIME type, signed by
``META-INF/signature-<uuid>.p7s``) or XAdES (``META-INF/signatures.xml``). Documents that do not
compress (PDF, images, already-zipped data) are deflated at level 0, which costs no CPU and
keeps the entry readable by Java's ``ZipInputStream`` (it refuses stored entries with a data
descriptor, which streaming needs).

Reading (stream-unzip) checks everything a stranger's ZIP could do wrong before any file is
trusted: entry names that escape the target directory, duplicate names, too many entries, too
many bytes or a suspicious compression ratio (zip bombs), damaged data (CRC), and then every
file's digest against what the signature covers, and the signature itself.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import stat
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from itertools import chain
from typing import Protocol
from urllib.parse import unquote
from xml.sax.saxutils import escape, quoteattr

from cryptography import x509
from lxml import etree
from stream_unzip import (
    CRC32IntegrityError,
    SizeIntegrityError,
    TruncatedDataError,
    UnzipError,
    stream_unzip,
)
from stream_zip import NO_COMPRESSION_32, ZIP_AUTO, stream_zip

from ipunkt.package import cades, safexml, xades
from ipunkt.package.digest import BackgroundSha256
from ipunkt.package.errors import IntegrityError, PackageError, SignatureInvalid, UnsafeArchive
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import TrustStore
from ipunkt.package.zip_directory import ReadEntry, StreamRecord, check_directory

MIMETYPE = b"application/vnd.etsi.asic-e+zip"
ASIC_NS = "http://uri.etsi.org/02918/v1.2.1#"
ASIC_NAMESPACES = (ASIC_NS, "http://uri.etsi.org/02918/v1.1.1#", "http://uri.etsi.org/2918/v1.1.1#")
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
ODF_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
CHUNK = 1 << 20
PROBE = 256 << 10
"""How much of a document is trial-compressed to choose its compression level."""
FILE_MODE = stat.S_IFREG | 0o644


class SignatureFormat(StrEnum):
    CADES = "cades"
    """CMS signature over ASiCManifest.xml: DPO, DPF, Fiks IO."""
    XADES = "xades"
    """XML signature META-INF/signatures.xml: DPI."""


@dataclass
class AsicEntry:
    """A document to put in a container; ``chunks`` is consumed once, as it is written."""

    name: str
    mime: str
    chunks: Iterable[bytes]
    size: int | None = None
    """The size if known (a file's); lets small entries use the 32-bit ZIP format."""


@dataclass(frozen=True)
class WrittenFile:
    """A document as it went into the container."""

    name: str
    mime: str
    size: int
    sha256: bytes


@dataclass
class WriteResult:
    """Filled in while the container streams; complete once the stream is exhausted."""

    files: list[WrittenFile] = field(default_factory=list)
    signature_file: str | None = None


_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def check_name(name: str) -> str:
    """Refuse a ZIP entry name that could escape a directory or confuse a file system."""
    if not name:
        raise UnsafeArchive("an entry has an empty name")
    if _UNSAFE.search(name):
        raise UnsafeArchive(f"the entry name {name!r} contains control characters or a backslash")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchive(f"the entry name {name!r} is an absolute path")
    parts = name.rstrip("/").split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeArchive(f"the entry name {name!r} leaves its directory (path traversal)")
    if len(name.encode()) > 1024 or any(len(part.encode()) > 255 for part in parts):
        raise UnsafeArchive(f"the entry name {name[:80]!r}... is too long")
    return name


def _level(first: bytes) -> int:
    """Deflate level for a document, from a trial compression of its first bytes."""
    if len(first) < 4096:
        return 6
    sample = first[:PROBE]
    compressor = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressed = len(compressor.compress(sample)) + len(compressor.flush())
    return 0 if compressed > 0.9 * len(sample) else 6


def _oasis_manifest(files: list[WrittenFile]) -> bytes:
    lines = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        f'<manifest:manifest xmlns:manifest="{ODF_NS}">',
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{MIMETYPE.decode()}"/>',
    ]
    lines += [
        f"<manifest:file-entry manifest:full-path={quoteattr(f.name)} "
        f"manifest:media-type={quoteattr(f.mime)}/>"
        for f in files
    ]
    lines.append("</manifest:manifest>")
    return "\n".join(lines).encode()


def asic_manifest(files: list[WrittenFile], signature_file: str) -> bytes:
    """``META-INF/ASiCManifest.xml``: what the CAdES signature covers."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        f'<ASiCManifest xmlns="{ASIC_NS}" xmlns:ns2="{DS_NS}">',
        f'<SigReference URI={quoteattr(signature_file)} MimeType="application/x-pkcs7-signature"/>',
    ]
    for f in files:
        lines += [
            f"<DataObjectReference URI={quoteattr(f.name)} MimeType={quoteattr(f.mime)}>",
            f'<ns2:DigestMethod Algorithm="{SHA256_URI}"/>',
            f"<ns2:DigestValue>{escape(base64.b64encode(f.sha256).decode())}</ns2:DigestValue>",
            "</DataObjectReference>",
        ]
    lines.append("</ASiCManifest>")
    return "\n".join(lines).encode()


def write_asic(
    entries: Iterable[AsicEntry],
    key: OrganisationKey,
    *,
    signature: SignatureFormat = SignatureFormat.CADES,
    result: WriteResult | None = None,
    chunk_size: int = CHUNK,
) -> Iterator[bytes]:
    """Stream a signed ASiC-E container of ``entries``, signed with ``key``.

    Pass a :class:`WriteResult` to learn each document's size and digest once the stream is
    exhausted.
    """
    written = result if result is not None else WriteResult()
    now = datetime.now()
    seen: set[str] = set()

    def digested(entry: AsicEntry, first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
        digest = BackgroundSha256()
        size = 0
        try:
            for chunk in chain((first,), rest):
                digest.update(chunk)
                size += len(chunk)
                yield chunk
        except BaseException:
            digest.cancel()
            raise
        if entry.size is not None and size != entry.size:
            digest.cancel()
            raise PackageError(f"{entry.name} was {size} bytes, not the {entry.size} announced")
        written.files.append(WrittenFile(entry.name, entry.mime, size, digest.digest()))

    def members() -> Iterator[tuple]:  # type: ignore[type-arg]
        yield "mimetype", now, FILE_MODE, NO_COMPRESSION_32, (MIMETYPE,)
        for entry in entries:
            check_name(entry.name)
            if entry.name == "mimetype" or entry.name.upper().startswith("META-INF/"):
                raise PackageError(f"a document may not be named {entry.name!r}")
            if entry.name.casefold() in seen:
                raise PackageError(f"two documents are named {entry.name!r}")
            seen.add(entry.name.casefold())
            rest = iter(entry.chunks)
            first = next(rest, b"")
            size = entry.size if entry.size is not None else 1 << 40
            method = ZIP_AUTO(size, level=_level(first))
            yield entry.name, now, FILE_MODE, method, digested(entry, first, rest)
        files = list(written.files)
        metadata = [("META-INF/manifest.xml", _oasis_manifest(files))]
        if signature is SignatureFormat.CADES:
            signature_file = f"META-INF/signature-{uuid.uuid4()}.p7s"
            manifest = asic_manifest(files, signature_file)
            metadata += [
                ("META-INF/ASiCManifest.xml", manifest),
                (signature_file, cades.sign_detached(manifest, key)),
            ]
        else:
            signature_file = "META-INF/signatures.xml"
            signed = [xades.SignedFile(f.name, f.mime, f.sha256) for f in files]
            metadata.append((signature_file, xades.sign(signed, key)))
        written.signature_file = signature_file
        for name, data in metadata:
            yield name, now, FILE_MODE, ZIP_AUTO(len(data)), (data,)

    yield from stream_zip(members(), chunk_size=chunk_size, extended_timestamps=False)


class FileWriter(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where a reader puts the files it unpacks; nothing is trusted until the reader returns."""

    def open(self, name: str) -> FileWriter: ...


class _Nowhere:
    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


class DiscardSink:
    """Unpacks into nothing: for checking and listing a package."""

    def open(self, name: str) -> FileWriter:
        return _Nowhere()


@dataclass(frozen=True)
class Limits:
    """What a container may do before it is refused as hostile."""

    max_entries: int = 1000
    max_total_bytes: int = 64 << 30
    max_ratio: int = 100
    """Unpacked bytes per packed byte, once more than ``ratio_grace`` bytes are unpacked."""
    ratio_grace: int = 16 << 20
    max_metadata_bytes: int = 10 << 20
    """The ``META-INF`` files together (they are held until the signature is checked)."""


@dataclass(frozen=True)
class AsicFile:
    name: str
    mime: str | None
    size: int
    sha256: bytes


@dataclass(frozen=True)
class AsicContents:
    """A container whose every file was checked against a verified signature."""

    files: list[AsicFile]
    signer: x509.Certificate
    signature_format: SignatureFormat
    signature_file: str
    trusted: bool
    """Whether the signer's certificate was checked against trust anchors."""
    unsigned_metadata: list[str]
    """``META-INF`` files that no signature covers (e.g. the OASIS manifest)."""
    manifest: bytes | None = None
    """The business manifest (``manifest.xml`` at the top), when there is one."""


class _Budget:
    """The unpacked bytes of every entry, held to the limits as they come out."""

    def __init__(self, limits: Limits, packed: StreamRecord) -> None:
        self._limits = limits
        self._packed = packed
        self.total = 0

    def spend(self, size: int) -> None:
        limits = self._limits
        self.total += size
        if self.total > limits.max_total_bytes:
            raise UnsafeArchive(
                f"the container unpacks to more than {limits.max_total_bytes} bytes"
            )
        consumed = self._packed.consumed
        if self.total > limits.ratio_grace and self.total > limits.max_ratio * consumed:
            raise UnsafeArchive(
                f"the container unpacks {self.total} bytes from {consumed} "
                f"(over {limits.max_ratio}:1): a zip bomb"
            )


def _decode_name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def read_asic(
    chunks: Iterable[bytes],
    sink: Sink,
    *,
    trust: TrustStore | None,
    at: datetime | None = None,
    limits: Limits | None = None,
    chunk_size: int = CHUNK,
) -> AsicContents:
    """Unpack a container into ``sink`` and verify it; raises a :class:`PackageError` if unsound.

    Files reach the sink before the signature (which comes last) can be checked, so a caller
    must treat them as untrusted until this returns, and discard them when it raises.
    """
    limits = limits or Limits()
    packed = StreamRecord(chunks)
    read: list[ReadEntry] = []
    raw_names: dict[str, bytes] = {}
    seen: set[str] = set()
    digests: dict[str, tuple[int, bytes]] = {}
    metadata: dict[str, bytes] = {}
    held_metadata = 0
    manifest = b""
    budget = _Budget(limits, packed)
    try:
        for index, (raw_name, _size, member) in enumerate(
            stream_unzip(packed, chunk_size=chunk_size)
        ):
            if index >= limits.max_entries:
                raise UnsafeArchive(f"the container has more than {limits.max_entries} entries")
            name = check_name(_decode_name(raw_name))
            handed = packed.consumed
            raw_names[name] = raw_name
            if name.casefold() in seen:
                raise UnsafeArchive(f"the container has two entries named {name!r}")
            seen.add(name.casefold())
            if name.endswith("/"):
                if any(member):
                    raise UnsafeArchive(f"the directory entry {name!r} has content")
                read.append(ReadEntry(raw_name, 0, handed))
                continue
            if name == "mimetype" or name.upper().startswith("META-INF/"):
                buffer = bytearray()
                for chunk in member:
                    budget.spend(len(chunk))
                    buffer += chunk
                    if held_metadata + len(buffer) > limits.max_metadata_bytes:
                        raise UnsafeArchive(
                            f"the META-INF files come to more than {limits.max_metadata_bytes} "
                            "bytes"
                        )
                data = bytes(buffer)
                held_metadata += len(data)
                read.append(ReadEntry(raw_name, len(data), handed))
                if name == "mimetype":
                    if index != 0:
                        raise UnsafeArchive("the mimetype entry is not the first in the container")
                    if data != MIMETYPE:
                        raise UnsafeArchive(
                            f"the mimetype is {data[:60]!r}, not {MIMETYPE.decode()}"
                        )
                    continue
                metadata[name] = data
                writer = sink.open(name)
                writer.write(data)
                writer.close()
                continue
            digest = hashlib.sha256()
            size = 0
            keep = name == "manifest.xml"
            writer = sink.open(name)
            try:
                for chunk in member:
                    size += len(chunk)
                    budget.spend(len(chunk))
                    digest.update(chunk)
                    writer.write(chunk)
                    if keep:
                        if size > limits.max_metadata_bytes:
                            raise UnsafeArchive(
                                f"manifest.xml is larger than {limits.max_metadata_bytes} bytes"
                            )
                        manifest += chunk
            except BaseException:
                # The file is cut short: what its writer thinks of the stub must not hide why.
                with contextlib.suppress(PackageError):
                    writer.close()
                raise
            writer.close()
            digests[name] = (size, digest.digest())
            read.append(ReadEntry(raw_name, size, handed))
    except CRC32IntegrityError as exc:
        raise IntegrityError("a file in the container is damaged (CRC mismatch)") from exc
    except SizeIntegrityError as exc:
        raise IntegrityError("a file in the container is damaged (size mismatch)") from exc
    except TruncatedDataError as exc:
        raise UnsafeArchive("the container is truncated") from exc
    except UnzipError as exc:
        raise UnsafeArchive(f"the container is not a readable ZIP ({type(exc).__name__})") from exc
    if not seen:
        raise UnsafeArchive("the container is empty, or not a ZIP")
    contents = _verify(digests, metadata, trust=trust, at=at)
    checked = {f.name for f in contents.files} | (set(metadata) - set(contents.unsigned_metadata))
    check_directory(packed, read, {raw_names[name] for name in checked})
    if "manifest.xml" in digests:
        return replace(contents, manifest=manifest)
    return contents


def _find(metadata: dict[str, bytes], test: Callable[[str], bool]) -> list[str]:
    return [name for name in metadata if test(name.lower())]


def _verify(
    digests: dict[str, tuple[int, bytes]],
    metadata: dict[str, bytes],
    *,
    trust: TrustStore | None,
    at: datetime | None,
) -> AsicContents:
    xades_files = _find(metadata, lambda n: "signatures" in n and n.endswith(".xml"))
    cades_files = _find(metadata, lambda n: n.endswith(".p7s"))
    signatures = xades_files + cades_files
    if not signatures:
        raise SignatureInvalid("the container is not signed (no META-INF signature file)")
    if len(signatures) > 1:
        raise SignatureInvalid(f"the container has several signatures ({', '.join(signatures)})")
    signature_file = signatures[0]
    references: dict[str, xades.SignedReference]
    signed_metadata: set[str] = {signature_file}
    if xades_files:
        verified = xades.verify(metadata[signature_file], trust=trust, at=at)
        signer, references, form = verified.signer, verified.files, SignatureFormat.XADES
    else:
        manifests = _find(metadata, lambda n: "asicmanifest" in n and n.endswith(".xml"))
        if len(manifests) != 1:
            raise SignatureInvalid(
                f"a CAdES container needs one META-INF/ASiCManifest.xml, found {len(manifests)}"
            )
        manifest = metadata[manifests[0]]
        references, sig_reference = _parse_asic_manifest(manifest)
        if sig_reference is not None and sig_reference != signature_file:
            raise SignatureInvalid(
                f"ASiCManifest.xml belongs to {sig_reference}, not to {signature_file}"
            )
        signer = cades.verify_detached(metadata[signature_file], manifest, trust=trust, at=at)
        form = SignatureFormat.CADES
        signed_metadata.add(manifests[0])

    files = []
    for name, (size, sha256) in digests.items():
        reference = references.get(name) or references.get(_quoted(name, references))
        if reference is None:
            raise IntegrityError(f"{name} is in the container but not covered by the signature")
        _compare(name, reference, sha256)
        files.append(AsicFile(name, reference.mime, size, sha256))
    for name, reference in references.items():
        target = unquote(name) if unquote(name) in digests else name
        if target in digests:
            continue
        if target in metadata:
            _compare(target, reference, hashlib.sha256(metadata[target]).digest())
            signed_metadata.add(target)
            continue
        raise IntegrityError(f"{name} is signed but missing from the container")
    unsigned = sorted(set(metadata) - signed_metadata)
    return AsicContents(files, signer, form, signature_file, trust is not None, unsigned)


def _quoted(name: str, references: dict[str, xades.SignedReference]) -> str:
    return next((r for r in references if unquote(r) == name), name)


def _compare(name: str, reference: xades.SignedReference, sha256: bytes) -> None:
    if reference.digest_algorithm != "sha256":
        raise SignatureInvalid(
            f"{name} is signed with a {reference.digest_algorithm} digest; ipunkt checks SHA-256"
        )
    if reference.digest != sha256:
        raise IntegrityError(f"{name} was changed after it was signed (its digest differs)")


def _parse_asic_manifest(data: bytes) -> tuple[dict[str, xades.SignedReference], str | None]:
    try:
        root = safexml.parse(data, what="ASiCManifest.xml")
    except safexml.UnsafeXml as exc:
        raise SignatureInvalid(str(exc)) from exc
    namespace = etree.QName(root).namespace
    if etree.QName(root).localname != "ASiCManifest" or namespace not in ASIC_NAMESPACES:
        raise SignatureInvalid(f"ASiCManifest.xml has the root {root.tag}")
    sig_reference = root.find(f"{{{namespace}}}SigReference")
    references: dict[str, xades.SignedReference] = {}
    for element in root.findall(f"{{{namespace}}}DataObjectReference"):
        uri = element.get("URI")
        method = element.find(f"{{{DS_NS}}}DigestMethod")
        value = element.findtext(f"{{{DS_NS}}}DigestValue")
        algorithm = xades.DIGESTS.get(method.get("Algorithm", "") if method is not None else "")
        if not uri or algorithm is None or not value:
            raise SignatureInvalid(
                f"ASiCManifest.xml has an incomplete or unsupported reference {uri!r}"
            )
        if uri in references:
            raise SignatureInvalid(f"ASiCManifest.xml references {uri} twice")
        try:
            digest = base64.b64decode("".join(value.split()), validate=True)
        except ValueError as exc:
            raise SignatureInvalid(f"ASiCManifest.xml has a malformed digest for {uri}") from exc
        references[uri] = xades.SignedReference(algorithm, digest, element.get("MimeType"))
    return references, sig_reference.get("URI") if sig_reference is not None else None
