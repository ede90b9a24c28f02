"""Noark 5 ``arkivmelding.xml`` both ways: what SvarUt needs from it, and one made for SvarInn.

Going out, SvarUt gets no XML: the forsendelse's title, documents and Noark metadata are read
from the journalpost (the first registration, usually inside a saksmappe), as the
integrasjonspunkt's ``FiksRestMapper`` does. Coming in, SvarInn gives only JSON metadata, so an
``arkivmelding.xml`` is written from it that the fagsystem can import; unlike the original's, it
is valid against ``arkivmelding.xsd`` (every required element is present). Element names are
matched by local name, so the namespace of either arkivmelding version is read.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from ipunkt.package import safexml
from lxml import etree

NS = "http://www.arkivverket.no/standarder/noark5/arkivmelding"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
FILENAME = "arkivmelding.xml"
MAX_BYTES = 10 << 20
OSLO = ZoneInfo("Europe/Oslo")
SYSTEM = "ipunkt"

JOURNALPOSTTYPE = {
    "I": "Inngående dokument",
    "U": "Utgående dokument",
    "N": "Organinternt dokument for oppfølging",
    "X": "Organinternt dokument uten oppfølging",
    "S": "Saksframlegg",
}
"""Noark 4 codes (what SvarUt carries) and the Noark 5 names (what arkivmelding carries)."""
JOURNALSTATUS = {
    "J": "Journalført",
    "R": "Ferdigstilt fra saksbehandler",
    "F": "Godkjent av leder",
    "E": "Ekspedert",
    "A": "Arkivert",
    "U": "Utgår",
}
MAIN = "Hoveddokument"
ATTACHMENT = "Vedlegg"
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


class ArkivmeldingInvalid(ValueError):
    """``arkivmelding.xml`` cannot be read, or lacks what a forsendelse needs."""


@dataclass(frozen=True)
class Party:
    """A korrespondansepart: who sends or receives, with a postal address."""

    name: str
    address_lines: tuple[str, ...] = ()
    postal_code: str | None = None
    postal_area: str | None = None
    country: str | None = None
    case_officer: str | None = None


@dataclass(frozen=True)
class DocumentRef:
    """A file the journalpost names, in the order SvarUt should get it."""

    filename: str
    main: bool
    document_type: str | None = None
    title: str | None = None


@dataclass
class Journalpost:
    """What a forsendelse takes from ``arkivmelding.xml``."""

    title: str | None
    public_title: str | None
    documents: list[DocumentRef]
    metadata: dict[str, Any] = field(default_factory=dict)
    """``metadataFraAvleverendeSystem``, ready for SvarUt."""
    sender: Party | None = None
    receiver: Party | None = None

    @property
    def forsendelse_title(self) -> str | None:
        """The forsendelse's title: the public title, as the original uses, else the title."""
        return self.public_title or self.title


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in element if _local(child) == name]


def _text(element: etree._Element, name: str) -> str | None:
    for child in _children(element, name):
        value = (child.text or "").strip()
        return value or None
    return None


def _positive(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ArkivmeldingInvalid(f"{what} is {value!r}, not a whole number") from None
    return number if number > 0 else None


def start_of_day(value: str | None) -> str | None:
    """An ``xs:date`` (``2024-01-16``, maybe with a zone) as SvarUt's date-time, Oslo time."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise ArkivmeldingInvalid(f"the date {value!r} is not YYYY-MM-DD") from None
    return datetime.combine(day, time(), OSLO).isoformat()


def _party(element: etree._Element) -> Party:
    return Party(
        name=_text(element, "korrespondansepartNavn") or "",
        address_lines=tuple(
            (line.text or "").strip()
            for line in _children(element, "postadresse")
            if (line.text or "").strip()
        ),
        postal_code=_text(element, "postnummer"),
        postal_area=_text(element, "poststed"),
        country=_text(element, "land"),
        case_officer=_text(element, "saksbehandler"),
    )


def _extra_metadata(registration: etree._Element) -> list[dict[str, str]]:
    """Simple children of ``virksomhetsspesifikkeMetadata`` as key/value pairs."""
    found: list[dict[str, str]] = []
    for container in _children(registration, "virksomhetsspesifikkeMetadata"):
        for child in container:
            if not isinstance(child.tag, str) or len(child):
                continue
            value = (child.text or "").strip()
            if value:
                found.append({"key": _local(child), "value": value})
    return found


def _documents(registration: etree._Element) -> list[DocumentRef]:
    main: list[DocumentRef] = []
    others: list[DocumentRef] = []
    for child in registration:
        name = _local(child)
        if name == "dokumentbeskrivelse":
            is_main = _text(child, "tilknyttetRegistreringSom") == MAIN
            for document in _children(child, "dokumentobjekt"):
                filename = _text(document, "referanseDokumentfil")
                if filename:
                    ref = DocumentRef(
                        filename, is_main, _text(child, "dokumenttype"), _text(child, "tittel")
                    )
                    (main if is_main else others).append(ref)
        elif name == "dokumentobjekt":
            filename = _text(child, "referanseDokumentfil")
            if filename:
                others.append(DocumentRef(filename, False))
    return main + others


def _find_registration(root: etree._Element) -> tuple[etree._Element | None, etree._Element]:
    """The first saksmappe (if any) and the first registration (usually its journalpost)."""
    for mappe in _children(root, "mappe"):
        for registration in _children(mappe, "basisregistrering"):
            return mappe, registration
    for registration in _children(root, "basisregistrering"):
        return None, registration
    raise ArkivmeldingInvalid(
        "arkivmelding.xml has no journalpost (mappe/basisregistrering or basisregistrering)"
    )


def read_journalpost(data: bytes) -> Journalpost:
    """Read the first journalpost of an ``arkivmelding.xml``."""
    try:
        root = safexml.parse(data, what=FILENAME, limit=MAX_BYTES)
    except safexml.UnsafeXml as exc:
        raise ArkivmeldingInvalid(str(exc)) from exc
    if _local(root) != "arkivmelding" or not (etree.QName(root).namespace or "").startswith(NS):
        raise ArkivmeldingInvalid(f"the root element is {root.tag}, not an arkivmelding")
    mappe, registration = _find_registration(root)
    parts = _children(registration, "korrespondansepart")
    by_type = [(_text(p, "korrespondanseparttype"), _party(p)) for p in parts]
    sender = next((party for kind, party in by_type if kind == "Avsender"), None)
    receiver = next((party for kind, party in by_type if kind == "Mottaker"), None)
    title = _text(registration, "tittel")
    public_title = _text(registration, "offentligTittel")
    metadata: dict[str, Any] = {
        "mappeSystemId": _text(mappe, "systemID") if mappe is not None else None,
        "saksaar": _positive(_text(mappe, "saksaar"), "saksaar") if mappe is not None else None,
        "sakssekvensnummer": (
            _positive(_text(mappe, "sakssekvensnummer"), "sakssekvensnummer")
            if mappe is not None
            else None
        ),
        "systemId": _text(registration, "systemID"),
        "registreringsId": _text(registration, "registreringsID"),
        "journalaar": _positive(_text(registration, "journalaar"), "journalaar"),
        "journalsekvensnummer": _positive(
            _text(registration, "journalsekvensnummer"), "journalsekvensnummer"
        ),
        "journalpostnummer": _positive(
            _text(registration, "journalpostnummer"), "journalpostnummer"
        ),
        "journalposttype": _code(_text(registration, "journalposttype"), JOURNALPOSTTYPE),
        "journalstatus": _code(_text(registration, "journalstatus"), JOURNALSTATUS),
        "journaldato": start_of_day(_text(registration, "journaldato")),
        "dokumentetsDato": start_of_day(_text(registration, "dokumentetsDato")),
        "tittel": public_title or title,
        "saksbehandler": sender.case_officer if sender else None,
        "ekstraMetadata": _extra_metadata(registration) or None,
    }
    return Journalpost(
        title=title,
        public_title=public_title,
        documents=_documents(registration),
        metadata={k: v for k, v in metadata.items() if v is not None},
        sender=sender,
        receiver=receiver,
    )


def _code(value: str | None, names: dict[str, str]) -> str | None:
    """A Noark 5 name as its Noark 4 code; a code, or an unknown value, as given."""
    if value is None:
        return None
    for code, name in names.items():
        if value.casefold() == name.casefold():
            return code
    return value


# --- incoming: an arkivmelding.xml made from a SvarInn forsendelse -------------------------


def _id(forsendelse_id: str, what: str) -> str:
    """A systemID derived from the forsendelse, so that a second import gives the same XML."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"svarinn:{forsendelse_id}:{what}"))


def when(value: Any) -> datetime | None:
    """SvarInn's dates: epoch milliseconds (as number or text) or ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, UTC).astimezone(OSLO)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=OSLO)


def _add(parent: etree._Element, name: str, value: Any) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if value is not None:
        element.text = str(value)
    return element


def _positive_value(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _address_lines(party: dict[str, Any]) -> list[str]:
    return [
        str(party[key]).strip()
        for key in ("adresse1", "adresse2", "adresse3", "adresselinje1", "adresselinje2")
        if party.get(key) and str(party[key]).strip()
    ]


def _korrespondansepart(parent: etree._Element, kind: str, party: dict[str, Any]) -> None:
    name = str(party.get("navn") or "").strip()
    if not name:
        return
    element = _add(parent, "korrespondansepart", None)
    _add(element, "korrespondanseparttype", kind)
    _add(element, "korrespondansepartNavn", name)
    for line in _address_lines(party):
        _add(element, "postadresse", line)
    for key, tag in (("postnr", "postnummer"), ("poststed", "poststed"), ("land", "land")):
        value = str(party.get(key) or "").strip()
        if value:
            _add(element, tag, value)


def incoming_arkivmelding(forsendelse: dict[str, Any], *, received: datetime) -> bytes:
    """An ``arkivmelding.xml`` (valid against arkivmelding.xsd) for a SvarInn forsendelse."""
    forsendelse_id = str(forsendelse["id"])
    metadata = forsendelse.get("metadataFraAvleverendeSystem") or {}
    files = forsendelse.get("filmetadata") or []
    reply_to = forsendelse.get("svarSendesTil") or {}
    sender = forsendelse.get("avsender") or {}
    sent = when(forsendelse.get("date")) or received
    created = sent.isoformat()
    author = str(reply_to.get("navn") or sender.get("navn") or "SvarUt").strip()
    title = str(metadata.get("tittel") or forsendelse.get("tittel") or "").strip() or "Uten tittel"
    if reply_to.get("fnr"):
        title = f"{title} (eDialog fra {reply_to['fnr']})"
    public_title = str(forsendelse.get("tittel") or "").strip()

    root = etree.Element(f"{{{NS}}}arkivmelding", nsmap={None: NS, "xsi": XSI})
    _add(root, "system", SYSTEM)
    _add(root, "meldingId", forsendelse_id)
    document_date = when(metadata.get("dokumentetsDato"))
    _add(root, "tidspunkt", (document_date or sent).isoformat())
    _add(root, "antallFiler", len(files))

    mappe = _add(root, "mappe", None)
    mappe.set(f"{{{XSI}}}type", "saksmappe")
    mappe_id = _id(forsendelse_id, "saksmappe")
    _add(mappe, "systemID", mappe_id)
    _add(mappe, "tittel", title)
    _add(mappe, "opprettetDato", created)
    _add(mappe, "opprettetAv", author)

    journalpost = _add(mappe, "basisregistrering", None)
    journalpost.set(f"{{{XSI}}}type", "journalpost")
    _add(journalpost, "systemID", _id(forsendelse_id, "journalpost"))
    _add(journalpost, "opprettetDato", created)
    _add(journalpost, "opprettetAv", author)
    _add(journalpost, "referanseForelderMappe", mappe_id)
    for index, file in enumerate(files):
        filename = str(file.get("filnavn") or "")
        description = _add(journalpost, "dokumentbeskrivelse", None)
        _add(description, "systemID", _id(forsendelse_id, f"dokument:{index}"))
        _add(description, "dokumenttype", str(file.get("dokumentType") or "Dokument"))
        _add(description, "dokumentstatus", "Dokumentet er ferdigstilt")
        _add(description, "tittel", filename)
        _add(description, "opprettetDato", created)
        _add(description, "opprettetAv", author)
        _add(description, "tilknyttetRegistreringSom", MAIN if index == 0 else ATTACHMENT)
        _add(description, "dokumentnummer", index + 1)
        _add(description, "tilknyttetDato", created)
        _add(description, "tilknyttetAv", author)
        document = _add(description, "dokumentobjekt", None)
        _add(document, "versjonsnummer", 1)
        _add(document, "variantformat", "Produksjonsformat")
        _add(document, "opprettetDato", created)
        _add(document, "opprettetAv", author)
        _add(document, "referanseDokumentfil", filename)
    _add(journalpost, "tittel", title)
    if public_title:
        _add(journalpost, "offentligTittel", public_title)
    extra = [
        m for m in metadata.get("ekstraMetadata") or []
        if isinstance(m, dict) and _NCNAME.match(str(m.get("key") or "")) and m.get("value")
    ]
    if extra:
        container = _add(journalpost, "virksomhetsspesifikkeMetadata", None)
        for item in extra:
            _add(container, str(item["key"]), str(item["value"]))
    for name in ("journalaar", "journalsekvensnummer", "journalpostnummer"):
        number = _positive_value(metadata.get(name))
        if number is not None:
            _add(journalpost, name, number)
    _add(
        journalpost,
        "journalposttype",
        JOURNALPOSTTYPE.get(str(metadata.get("journalposttype") or ""), JOURNALPOSTTYPE["I"]),
    )
    _add(
        journalpost,
        "journalstatus",
        JOURNALSTATUS.get(str(metadata.get("journalstatus") or ""), JOURNALSTATUS["R"]),
    )
    journal_date = when(metadata.get("journaldato"))
    _add(journalpost, "journaldato", (journal_date or sent).date().isoformat())
    if document_date is not None:
        _add(journalpost, "dokumentetsDato", document_date.date().isoformat())
    _add(journalpost, "mottattDato", received.isoformat())
    _korrespondansepart(journalpost, "Avsender", reply_to or sender)
    _korrespondansepart(journalpost, "Mottaker", forsendelse.get("mottaker") or {})

    for name in ("saksaar", "sakssekvensnummer"):
        number = _positive_value(metadata.get(name))
        if number is not None:
            _add(mappe, name, number)
    _add(mappe, "saksdato", sent.date().isoformat())
    _add(mappe, "administrativEnhet", "SvarInn")
    _add(mappe, "saksansvarlig", str(metadata.get("saksBehandler") or "").strip() or author)
    _add(mappe, "saksstatus", "Under behandling")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
