"""Parsing XML that strangers send: no DTDs, no entities, no network, bounded size.

Manifests and signatures arrive inside packages from other organisations. lxml does the
parsing (XML-DSig needs its canonicalisation); this module refuses what makes XML dangerous
(entity expansion, external entities, DTD fetching), as defusedxml does for the standard
library's parsers, and bounds the input.
"""

from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 10 << 20

_PARSER = etree.XMLParser(
    resolve_entities=False,
    load_dtd=False,
    no_network=True,
    huge_tree=False,
    remove_blank_text=False,
)


class UnsafeXml(ValueError):
    """The XML is malformed, too large, or uses a DTD or entities."""


def parse(data: bytes, *, what: str, limit: int = MAX_XML_BYTES) -> etree._Element:
    """The root element of ``data``; raises :class:`UnsafeXml` saying what is wrong."""
    if len(data) > limit:
        raise UnsafeXml(f"{what} is {len(data)} bytes; at most {limit} are accepted")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsafeXml(f"{what} declares a DTD or entities, which are refused")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"{what} is not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise UnsafeXml(f"{what} declares a DTD, which is refused")
    return root
