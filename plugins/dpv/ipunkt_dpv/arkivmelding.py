"""What DPV needs from an ``arkivmelding.xml``: the journalpost's titles and its files.

The original takes the correspondence's title and summary from the journalpost's
``offentligTittel`` (its ``tittel`` when there is none), the body from its ``tittel``, and
attaches only the files the journalpost's ``dokumentbeskrivelse`` elements name, in
``dokumentnummer`` order. The file comes from a fagsystem, so it is parsed without DTDs,
entities or network access (defusedxml), and its size is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

FILENAME = "arkivmelding.xml"
MAX_BYTES = 10 << 20
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


class ArkivmeldingError(ValueError):
    """The arkivmelding.xml is unreadable or lacks what DPV needs; the reason says which."""


@dataclass(frozen=True)
class Document:
    """One file the journalpost names, with its document description's title."""

    filename: str
    title: str | None


@dataclass(frozen=True)
class Journalpost:
    """The parts of the first journalpost that become the correspondence."""

    title: str
    """``offentligTittel``, or ``tittel`` when there is none: the correspondence's title."""
    body: str
    """``tittel``: the correspondence's body."""
    documents: tuple[Document, ...]


async def read_bounded(chunks: AsyncIterator[bytes], limit: int = MAX_BYTES) -> bytes:
    """The whole of a small file, refusing one larger than ``limit``."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise ArkivmeldingError(f"{FILENAME} is larger than {limit} bytes")
    return bytes(data)


def parse_journalpost(data: bytes) -> Journalpost:
    """The first journalpost of an arkivmelding, as the original finds it."""
    try:
        root = fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise ArkivmeldingError(f"{FILENAME} uses a DTD or entities, which are refused") from exc
    except ParseError as exc:
        raise ArkivmeldingError(f"{FILENAME} is not well-formed XML: {exc}") from exc
    if _local(root.tag) != "arkivmelding":
        raise ArkivmeldingError(f"{FILENAME} has the root <{_local(root.tag)}>, not <arkivmelding>")
    journalpost = next(_journalposts(root), None)
    if journalpost is None:
        raise ArkivmeldingError(f"{FILENAME} has no journalpost (basisregistrering of that type)")
    tittel = _text(journalpost, "tittel")
    if not tittel:
        raise ArkivmeldingError(f"the journalpost in {FILENAME} has no tittel")
    descriptions = sorted(
        (child for child in journalpost if _local(child.tag) == "dokumentbeskrivelse"),
        key=_document_number,
    )
    documents = tuple(
        Document(filename, _text(description, "tittel"))
        for description in descriptions
        for item in description
        if _local(item.tag) == "dokumentobjekt"
        and (filename := _text(item, "referanseDokumentfil"))
    )
    return Journalpost(title=_text(journalpost, "offentligTittel") or tittel, body=tittel,
                       documents=documents)


def _journalposts(root: Element) -> Iterator[Element]:
    """Journalposts directly under the arkivmelding, then in its (nested) mapper, in order."""
    for child in root:
        name = _local(child.tag)
        if name == "basisregistrering" and _is_journalpost(child):
            yield child
        elif name == "mappe":
            yield from _journalposts(child)


def _is_journalpost(element: Element) -> bool:
    kind = element.get(_XSI_TYPE, "")
    return kind.rpartition(":")[2] == "journalpost"


def _document_number(element: Element) -> tuple[int, int]:
    number = _text(element, "dokumentnummer")
    return (0, int(number)) if number and number.isdigit() else (1, 0)


def _text(element: Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return (child.text or "").strip() or None
    return None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
