"""The business manifest at the top of a package: ``manifest.xml``.

Two kinds, told apart by namespace:

- the integration point's, for DPO and DPF (``no.difi.meldingsutveksling.manifest.xml``): no
  namespace; ``mottaker`` and ``avsender`` organisations and the ``hoveddokument``;
- DPI's SDP manifest (``http://begrep.difi.no/sdp/schema_v10``, ``sdp-manifest.xsd``): the
  recipient's postbox address, the sender, the main document and up to 200 attachments, each
  with an optional title and metadata document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from ipunkt.package import safexml

AUTHORITY = "iso6523-actorid-upis"
SDP = "http://begrep.difi.no/sdp/schema_v10"
ISO6523 = re.compile(r"[0-9]{4}:\w{1,35}")
MAX_ATTACHMENTS = 200


class ManifestError(ValueError):
    """A manifest is malformed, or its values break the schema's rules."""


def iso6523(organisation: str) -> str:
    """``0192:<orgnr>`` for a bare Norwegian organisation number; other values as given."""
    value = organisation.strip()
    if value.isdigit() and len(value) == 9:
        return f"0192:{value}"
    if not ISO6523.fullmatch(value):
        raise ManifestError(f"{organisation!r} is not an organisation number or ICD:identifier")
    return value


def _serialise(root: etree._Element) -> bytes:
    serialised: bytes = etree.tostring(
        root, xml_declaration=True, encoding="UTF-8", standalone=True, pretty_print=True
    )
    return serialised


def _parse(data: bytes) -> etree._Element:
    try:
        return safexml.parse(data, what="manifest.xml")
    except safexml.UnsafeXml as exc:
        raise ManifestError(str(exc)) from exc


@dataclass(frozen=True)
class MainDocument:
    """The integration point's ``hoveddokument``."""

    href: str
    mime: str
    title: str = "Hoveddokument"
    lang: str = "no"


@dataclass(frozen=True)
class IpManifest:
    """The integration point's manifest for DPO and DPF packages."""

    receiver: str
    sender: str
    main_document: MainDocument | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "receiver", iso6523(self.receiver))
        object.__setattr__(self, "sender", iso6523(self.sender))

    def to_xml(self) -> bytes:
        root = etree.Element("manifest")
        for tag, value in (("mottaker", self.receiver), ("avsender", self.sender)):
            organisation = etree.SubElement(etree.SubElement(root, tag), "organisasjon")
            organisation.set("authority", AUTHORITY)
            organisation.text = value
        if self.main_document is not None:
            document = etree.SubElement(
                root, "hoveddokument", href=self.main_document.href, mime=self.main_document.mime
            )
            title = etree.SubElement(document, "tittel", lang=self.main_document.lang)
            title.text = self.main_document.title
        return _serialise(root)

    @classmethod
    def from_xml(cls, data: bytes) -> IpManifest:
        root = _parse(data)
        if root.tag != "manifest":
            raise ManifestError(f"manifest.xml has the root {root.tag}, not manifest")
        receiver = root.findtext("mottaker/organisasjon")
        sender = root.findtext("avsender/organisasjon")
        if not receiver or not sender:
            raise ManifestError("manifest.xml lacks mottaker or avsender")
        document = root.find("hoveddokument")
        main = None
        if document is not None:
            href, mime = document.get("href"), document.get("mime")
            if not href or not mime:
                raise ManifestError("manifest.xml's hoveddokument lacks href or mime")
            title = document.find("tittel")
            main = MainDocument(
                href,
                mime,
                (title.text or "") if title is not None else "",
                title.get("lang", "no") if title is not None else "no",
            )
        return cls(receiver.strip(), sender.strip(), main)


@dataclass(frozen=True)
class SdpDocument:
    """A document of an SDP manifest: the main document or an attachment."""

    href: str
    mime: str
    title: str | None = None
    lang: str = "NO"
    metadata_href: str | None = None
    """The metadata document (``data``) that enriches this one in the postbox."""
    metadata_mime: str | None = None

    def __post_init__(self) -> None:
        for name in (self.href, self.metadata_href):
            if name is not None and not 4 <= len(name) <= 100:
                raise ManifestError(f"the file name {name!r} must be 4 to 100 characters")
        if not 1 <= len(self.mime) <= 100:
            raise ManifestError(f"the MIME type {self.mime!r} must be 1 to 100 characters")
        if self.title is not None and not 1 <= len(self.title) <= 255:
            raise ManifestError("a document title must be 1 to 255 characters")
        if len(self.lang) != 2:
            raise ManifestError(f"the language {self.lang!r} must be two letters (ISO 639-1)")
        if (self.metadata_href is None) != (self.metadata_mime is None):
            raise ManifestError("a metadata document needs both a name and a MIME type")

    def _element(self, parent: etree._Element, tag: str) -> None:
        element = etree.SubElement(parent, f"{{{SDP}}}{tag}", href=self.href, mime=self.mime)
        if self.title is not None:
            title = etree.SubElement(element, f"{{{SDP}}}tittel", lang=self.lang)
            title.text = self.title
        if self.metadata_href is not None and self.metadata_mime is not None:
            etree.SubElement(
                element, f"{{{SDP}}}data", href=self.metadata_href, mime=self.metadata_mime
            )

    @classmethod
    def _parse(cls, element: etree._Element) -> SdpDocument:
        title = element.find(f"{{{SDP}}}tittel")
        data = element.find(f"{{{SDP}}}data")
        return cls(
            element.get("href", ""),
            element.get("mime", ""),
            title.text if title is not None else None,
            title.get("lang", "NO") if title is not None else "NO",
            data.get("href") if data is not None else None,
            data.get("mime") if data is not None else None,
        )


@dataclass(frozen=True)
class SdpManifest:
    """DPI's manifest (``sdp-manifest.xsd``)."""

    sender: str
    main_document: SdpDocument
    attachments: tuple[SdpDocument, ...] = field(default=())
    postkasseadresse: str | None = None
    """The recipient's postbox address; absent for printed letters."""
    personidentifikator: str | None = None
    avsenderidentifikator: str | None = None
    fakturareferanse: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", iso6523(self.sender))
        if len(self.attachments) > MAX_ATTACHMENTS:
            raise ManifestError(f"DPI allows at most {MAX_ATTACHMENTS} attachments")
        if self.personidentifikator is not None and not re.fullmatch(
            r"[0-9]{11}", self.personidentifikator
        ):
            raise ManifestError("personidentifikator must be 11 digits")
        if self.personidentifikator is not None and self.postkasseadresse is None:
            raise ManifestError("a personidentifikator needs the postkasseadresse too")
        if self.avsenderidentifikator is not None and len(self.avsenderidentifikator) > 100:
            raise ManifestError("avsenderidentifikator must be at most 100 characters")
        if self.fakturareferanse is not None and len(self.fakturareferanse) > 40:
            raise ManifestError("fakturaReferanse must be at most 40 characters")

    @property
    def documents(self) -> tuple[SdpDocument, ...]:
        return (self.main_document, *self.attachments)

    def to_xml(self) -> bytes:
        root = etree.Element(f"{{{SDP}}}manifest", nsmap={None: SDP})
        if self.postkasseadresse is not None:
            person = etree.SubElement(
                etree.SubElement(root, f"{{{SDP}}}mottaker"), f"{{{SDP}}}person"
            )
            if self.personidentifikator is not None:
                etree.SubElement(
                    person, f"{{{SDP}}}personidentifikator"
                ).text = self.personidentifikator
            etree.SubElement(person, f"{{{SDP}}}postkasseadresse").text = self.postkasseadresse
        sender = etree.SubElement(root, f"{{{SDP}}}avsender")
        organisation = etree.SubElement(sender, f"{{{SDP}}}organisasjon", authority=AUTHORITY)
        organisation.text = self.sender
        if self.avsenderidentifikator is not None:
            etree.SubElement(
                sender, f"{{{SDP}}}avsenderidentifikator"
            ).text = self.avsenderidentifikator
        if self.fakturareferanse is not None:
            etree.SubElement(sender, f"{{{SDP}}}fakturaReferanse").text = self.fakturareferanse
        self.main_document._element(root, "hoveddokument")
        for attachment in self.attachments:
            attachment._element(root, "vedlegg")
        return _serialise(root)

    @classmethod
    def from_xml(cls, data: bytes) -> SdpManifest:
        root = _parse(data)
        if root.tag != f"{{{SDP}}}manifest":
            raise ManifestError(f"manifest.xml has the root {root.tag}, not the SDP manifest")
        ns = {"sdp": SDP}
        main = root.find("sdp:hoveddokument", ns)
        sender = root.findtext("sdp:avsender/sdp:organisasjon", namespaces=ns)
        if main is None or not sender:
            raise ManifestError("the SDP manifest lacks hoveddokument or avsender")
        return cls(
            sender=sender.strip(),
            main_document=SdpDocument._parse(main),
            attachments=tuple(SdpDocument._parse(e) for e in root.findall("sdp:vedlegg", ns)),
            postkasseadresse=root.findtext(
                "sdp:mottaker/sdp:person/sdp:postkasseadresse", namespaces=ns
            ),
            personidentifikator=root.findtext(
                "sdp:mottaker/sdp:person/sdp:personidentifikator", namespaces=ns
            ),
            avsenderidentifikator=root.findtext(
                "sdp:avsender/sdp:avsenderidentifikator", namespaces=ns
            ),
            fakturareferanse=root.findtext("sdp:avsender/sdp:fakturaReferanse", namespaces=ns),
        )


def parse_manifest(data: bytes) -> IpManifest | SdpManifest:
    """Whichever manifest ``data`` is."""
    root = _parse(data)
    if etree.QName(root).namespace == SDP:
        return SdpManifest.from_xml(data)
    return IpManifest.from_xml(data)
