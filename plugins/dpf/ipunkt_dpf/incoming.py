"""A SvarInn forsendelse as an incoming eFormidling message: its SBD and its sealed package.

SvarInn gives JSON metadata and, to download, a ZIP of the documents CMS-encrypted to the
mottakersystem's certificate. The SBD is built as the integrasjonspunkt's
``SvarInnNextMoveConverter`` builds it (messageId and conversationId are the forsendelse id, the
sender is the reply address's organisation, ``svarPaForsendelse`` becomes the ``ReceiverRef``
scope). The documents are re-sealed, with an ``arkivmelding.xml`` made from the metadata, into
the same package every channel hands the core: a CAdES ASiC-E encrypted to this organisation.

Decrypting, unzipping and sealing run as one stream in worker threads: no document is ever
whole in memory or written in plain text, and each file's size and SHA-256 are checked against
SvarInn's ``filmetadata`` on the way.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from ipunkt.package.cms import CmsReader
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.manifest import IpManifest, MainDocument
from ipunkt.package.seal import Document, Sealed, seal
from stream_unzip import UnzipError, stream_unzip

from ipunkt_dpf.arkivmelding import FILENAME, incoming_arkivmelding, when

ARKIVMELDING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding"
MAX_RATIO = 100
"""Unpacked bytes per downloaded byte beyond which a download is refused as a zip bomb..."""
RATIO_GRACE = 16 << 20
"""...once this many bytes are unpacked."""
AUTHORITY = "iso6523-actorid-upis"
ZIP_MAGIC = b"PK\x03\x04"
_ORGNR = re.compile(r"^\d{9}$")


class Unprocessable(Exception):
    """A forsendelse that cannot be taken in; ``permanent`` says whether a retry could help."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.permanent = permanent


class OrderMismatch(Exception):
    """The ZIP holds the documents in another order than ``filmetadata`` lists them."""

    def __init__(self, order: list[str] | None = None) -> None:
        super().__init__("the ZIP's order differs from filmetadata")
        self.order = order


@dataclass(frozen=True)
class FileMeta:
    """One document as ``filmetadata`` announces it."""

    name: str
    mime: str
    sha256: bytes | None
    size: int | None


@dataclass(frozen=True)
class Forsendelse:
    """A SvarInn forsendelse, checked enough to be taken in."""

    id: str
    sender: str
    receiver: str
    download_url: str
    files: list[FileMeta]
    data: dict[str, Any]

    @property
    def reply_to(self) -> str | None:
        """``svarPaForsendelse``: the SvarUt id of the forsendelse this one answers."""
        value = self.data.get("svarPaForsendelse")
        return str(value) if value else None

    @property
    def sender_ref(self) -> str | None:
        """The sender's ``eksternRef`` when it is a UUID (an integration point's messageId)."""
        value = self.data.get("eksternRef")
        try:
            return str(uuid.UUID(str(value))) if value else None
        except ValueError:
            return None


def _file(item: Any, index: int) -> FileMeta:
    if not isinstance(item, dict) or not str(item.get("filnavn") or "").strip():
        raise Unprocessable(f"filmetadata[{index}] has no filnavn")
    digest = None
    if item.get("sha256hash"):
        try:
            digest = bytes.fromhex(str(item["sha256hash"]))
        except ValueError:
            raise Unprocessable(f"filmetadata[{index}].sha256hash is not hexadecimal") from None
    size = item.get("size")
    return FileMeta(
        str(item["filnavn"]),
        str(item.get("mimetype") or "application/octet-stream"),
        digest,
        int(size) if isinstance(size, int) and size > 0 else None,
    )


def read_forsendelse(data: dict[str, Any], *, fallback_sender: str | None) -> Forsendelse:
    """Check a ``hentNyeForsendelser`` entry; raises a permanent :class:`Unprocessable`."""
    try:
        forsendelse_id = str(uuid.UUID(str(data.get("id"))))
    except ValueError:
        raise Unprocessable(f"the forsendelse id {data.get('id')!r} is not a UUID") from None
    receiver = str((data.get("mottaker") or {}).get("orgnr") or "")
    if not _ORGNR.match(receiver):
        raise Unprocessable(
            f"mottaker.orgnr {receiver!r} is not an organisation number; an integration "
            "point takes forsendelser to organisations only"
        )
    sender = str((data.get("svarSendesTil") or {}).get("orgnr") or "") or fallback_sender or ""
    if not _ORGNR.match(sender):
        raise Unprocessable(
            "svarSendesTil has no organisation number, so the message would have no sender "
            "(set fallback_sender in [channels.dpf] to take such forsendelser)"
        )
    download_url = str(data.get("downloadUrl") or "")
    if not download_url:
        raise Unprocessable("the forsendelse has no downloadUrl")
    files = [_file(item, i) for i, item in enumerate(data.get("filmetadata") or [])]
    if not files:
        raise Unprocessable("the forsendelse has no filmetadata (no documents)")
    names = [f.name for f in files]
    if FILENAME in names:
        raise Unprocessable(f"a document is named {FILENAME}, which the integration point makes")
    if len(set(names)) != len(names):
        raise Unprocessable("filmetadata names a document twice")
    return Forsendelse(forsendelse_id, sender, receiver, download_url, files, data)


def _party(orgnr: str) -> list[dict[str, Any]]:
    return [{"identifier": {"authority": AUTHORITY, "value": f"0192:{orgnr}"}}]


def incoming_sbd(
    forsendelse: Forsendelse, *, process: str, ttl_hours: int, now: datetime
) -> dict[str, Any]:
    """The SBD of an incoming forsendelse, as the original builds it."""
    created = when(forsendelse.data.get("date")) or now
    scopes: list[dict[str, Any]] = [
        {
            "type": "ConversationId",
            "instanceIdentifier": forsendelse.id,
            "identifier": process,
            "scopeInformation": [
                {"expectedResponseDateTime": (now + timedelta(hours=ttl_hours)).isoformat()}
            ],
        }
    ]
    if forsendelse.reply_to:
        scopes.append({"type": "ReceiverRef", "instanceIdentifier": forsendelse.reply_to})
    if forsendelse.sender_ref:
        scopes.append({"type": "SenderRef", "instanceIdentifier": forsendelse.sender_ref})
    body: dict[str, Any] = {}
    level = str(forsendelse.data.get("niva") or "")
    if level in ("3", "4"):
        body["sikkerhetsnivaa"] = int(level)
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": _party(forsendelse.sender),
            "receiver": _party(forsendelse.receiver),
            "documentIdentification": {
                "standard": ARKIVMELDING_STANDARD,
                "typeVersion": "2.0",
                "instanceIdentifier": forsendelse.id,
                "type": "arkivmelding",
                "creationDateAndTime": created.astimezone(UTC).isoformat(),
            },
            "businessScope": {"scope": scopes},
        },
        "arkivmelding": body,
    }


class _Counted:
    """The downloaded (decrypted) bytes, counted as the unzipping pulls them."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.consumed = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.consumed += len(chunk)
            yield chunk


class _Members:
    """The downloaded documents, one after the other, checked against ``filmetadata``.

    The download is a stranger's ZIP: every byte it unpacks counts against ``limit`` and
    against :data:`MAX_RATIO` to the bytes downloaded (a zip bomb is refused within its first
    megabytes), and it may hold no more files than ``filmetadata`` lists.
    """

    def __init__(self, plaintext: Iterator[bytes], files: list[FileMeta], limit: int) -> None:
        self._limit = limit
        self._unpacked = 0
        self._files = len(files)
        self._seen = 0
        first = next(plaintext, b"")
        self.zipped = first.startswith(ZIP_MAGIC) or len(files) != 1
        self._packed = _Counted(_prepend(first, plaintext))
        self._members: Iterator[tuple[str, Iterable[bytes]]] = (
            ((_name(raw), chunks) for raw, _size, chunks in stream_unzip(self._packed))
            if self.zipped
            else iter([(files[0].name, self._packed)])
        )

    def _next(self) -> tuple[str, Iterable[bytes]] | None:
        try:
            member = next(self._members, None)
        except UnzipError as exc:
            raise _not_a_zip(exc) from exc
        if member is not None:
            self._seen += 1
            if self._seen > self._files:
                raise Unprocessable(
                    f"the download holds {member[0]}, not in filmetadata (more files than the "
                    f"{self._files} it lists)"
                )
        return member

    def take(self, expected: FileMeta) -> Iterator[bytes]:
        """The next document's bytes; it must be ``expected``."""
        member = self._next()
        if member is None:
            raise Unprocessable(f"the download lacks {expected.name}, which filmetadata lists")
        name, chunks = member
        if name != expected.name:
            raise OrderMismatch()
        return self._guarded(expected, chunks)

    def _count(self, size: int) -> None:
        self._unpacked += size
        if self._unpacked > self._limit:
            raise Unprocessable(f"the forsendelse unpacks to more than {self._limit} bytes")
        consumed = self._packed.consumed
        if self._unpacked > RATIO_GRACE and self._unpacked > MAX_RATIO * consumed:
            raise Unprocessable(
                f"the download unpacks {self._unpacked} bytes from {consumed} "
                f"(over {MAX_RATIO}:1): a zip bomb"
            )

    def _guarded(self, expected: FileMeta | None, chunks: Iterable[bytes]) -> Iterator[bytes]:
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                if expected is not None and expected.size is not None and size > expected.size:
                    raise Unprocessable(
                        f"{expected.name} is larger than the {expected.size} bytes filmetadata says"
                    )
                self._count(len(chunk))
                yield chunk
        except UnzipError as exc:
            name = expected.name if expected is not None else "a file"
            raise Unprocessable(
                f"{name} is damaged in the download ({type(exc).__name__})"
            ) from exc

    def rest(self) -> list[str]:
        """Names of members nobody asked for (each drained within the limits); should be none."""
        extra = []
        while (member := self._next()) is not None:
            name, chunks = member
            for _ in self._guarded(None, chunks):
                pass
            extra.append(name)
        return extra


def _not_a_zip(exc: Exception) -> Unprocessable:
    return Unprocessable(f"the download is not a readable ZIP ({type(exc).__name__})")


def scan_order(
    source: Iterable[bytes], forsendelse: Forsendelse, key: OrganisationKey, *, limit: int
) -> list[str]:
    """The names in the downloaded ZIP, in its order (the documents are read and dropped)."""
    try:
        return _Members(decrypt(source, key), forsendelse.files, limit=limit).rest()
    except PackageError as exc:
        raise Unprocessable(f"the download cannot be opened: {exc}") from exc


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _name(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def decrypt(source: Iterable[bytes], key: OrganisationKey) -> Iterator[bytes]:
    """The downloaded CMS, decrypted with our key, chunk by chunk."""
    return CmsReader(source).decrypt(key)


def seal_forsendelse(
    forsendelse: Forsendelse,
    source: Iterable[bytes],
    *,
    key: OrganisationKey,
    out: BinaryIO,
    received: datetime,
    limit: int,
    order: list[str] | None = None,
) -> Sealed:
    """Decrypt the download and seal its documents (after a made ``arkivmelding.xml``) for
    ourselves into ``out``.

    ``order`` is the ZIP's order when it differs from ``filmetadata``'s (learned by
    :func:`scan_order` after an :class:`OrderMismatch`). Raises :class:`Unprocessable` when the
    download is not what SvarInn announced, or cannot be decrypted with ``key``.
    """
    files = forsendelse.files
    if order is not None:
        by_name = {f.name: f for f in files}
        unknown = [name for name in order if name not in by_name]
        if unknown:
            raise Unprocessable(f"the download holds {', '.join(unknown)}, not in filmetadata")
        files = [by_name[name] for name in order]
    try:
        members = _Members(decrypt(source, key), files, limit)
    except PackageError as exc:
        raise Unprocessable(f"the download cannot be opened: {exc}") from exc
    arkivmelding = incoming_arkivmelding(forsendelse.data, received=received)
    documents = [Document(FILENAME, "application/xml", lambda: [arkivmelding], len(arkivmelding))]
    documents += [
        Document(meta.name, meta.mime, _opener(members, meta), meta.size) for meta in files
    ]
    manifest = IpManifest(
        receiver=forsendelse.receiver,
        sender=forsendelse.sender,
        main_document=MainDocument(FILENAME, "application/xml"),
    )
    try:
        sealed = seal(documents, key=key, recipient=key.certificate, out=out, manifest=manifest)
    except PackageError as exc:
        raise Unprocessable(f"the documents cannot be packaged: {exc}") from exc
    extra = members.rest()
    if extra:
        raise Unprocessable(f"the download holds {', '.join(extra)}, not in filmetadata")
    _check_digests(sealed, files)
    return sealed


def _opener(members: _Members, meta: FileMeta) -> Callable[[], Iterator[bytes]]:
    return lambda: members.take(meta)


def _check_digests(sealed: Sealed, files: list[FileMeta]) -> None:
    written = {f.name: f for f in sealed.files}
    for meta in files:
        got = written[meta.name]
        if meta.size is not None and got.size != meta.size:
            raise Unprocessable(
                f"{meta.name} is {got.size} bytes; filmetadata says {meta.size}"
            )
        if meta.sha256 is not None and got.sha256 != meta.sha256:
            raise Unprocessable(
                f"{meta.name} does not match its sha256hash in filmetadata (damaged in transfer?)"
            )
