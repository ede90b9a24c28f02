"""What the integration point reads from an uploaded ``arkivmelding.xml`` (Noark 5).

The conversation's title (the journalpost's ``offentligTittel``), its reference
(``<saksmappe systemID>-<journalpostnummer>``) and the files the journalpost names
(``referanseDokumentfil``), which must all be uploaded before the message is sent. The XML is
read as a stream with entities and network access off, and each element is dropped once it has
ended, so neither size nor XML tricks can hurt.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field

from lxml import etree

NS = "{http://www.arkivverket.no/standarder/noark5/arkivmelding}"
FILENAME = "arkivmelding.xml"


class ArkivmeldingError(ValueError):
    """Not a readable arkivmelding."""


@dataclass
class ArkivmeldingSummary:
    title: str | None = None
    journalpostnummer: str | None = None
    saksmappe_system_id: str | None = None
    files: list[str] = field(default_factory=list)

    @property
    def reference(self) -> str | None:
        if self.journalpostnummer is None:
            return None
        return f"{self.saksmappe_system_id}-{self.journalpostnummer}"


async def summarise(chunks: AsyncIterable[bytes]) -> ArkivmeldingSummary:
    """Read the first journalpost (and its saksmappe) of a streamed arkivmelding.xml."""
    parser = etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, huge_tree=False,
        load_dtd=False,
    )
    summary = ArkivmeldingSummary()
    stack: list[str] = []
    registrations = 0
    root_seen = False
    try:
        async for chunk in chunks:
            parser.feed(chunk)
            for event, element in parser.read_events():
                tag = element.tag if isinstance(element.tag, str) else ""
                if event == "start":
                    if not root_seen:
                        root_seen = True
                        if tag != f"{NS}arkivmelding":
                            raise ArkivmeldingError(f"the root element is {tag}, not arkivmelding")
                    stack.append(tag)
                    if tag == f"{NS}registrering":
                        registrations += 1
                    continue
                stack.pop()
                _take(summary, tag, element.text, stack, registrations)
                _forget(element)
        parser.close()
    except etree.XMLSyntaxError as exc:
        raise ArkivmeldingError(f"not well-formed XML: {exc}") from None
    if not root_seen:
        raise ArkivmeldingError("the file is empty")
    return summary


def _forget(element: etree._Element) -> None:
    """Drop an element that has ended, and the siblings before it: all that is wanted of it
    was taken at its end, and the tree held whole would grow with the file."""
    element.clear()
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _take(summary: ArkivmeldingSummary, tag: str, text: str | None, stack: list[str],
          registrations: int) -> None:
    value = (text or "").strip()
    parent = stack[-1] if stack else ""
    in_first = registrations == 1 and f"{NS}registrering" in stack
    if tag == f"{NS}systemID" and parent == f"{NS}mappe" and summary.saksmappe_system_id is None:
        summary.saksmappe_system_id = value
    elif in_first and tag == f"{NS}offentligTittel" and parent == f"{NS}registrering":
        summary.title = value
    elif in_first and tag == f"{NS}journalpostnummer" and parent == f"{NS}registrering":
        summary.journalpostnummer = value
    elif in_first and tag == f"{NS}referanseDokumentfil" and value:
        summary.files.append(value)
