"""The legacy ``content.xml``: an SBD in XML, turned into the JSON form the core takes.

Older senders put the SBD in the broker file as XML (JAXB's StandardBusinessDocument: the
header in the GS1 namespace, the business message in eFormidling's). The original still reads
it; so does this channel. Element names become lowerCamelCase keys, the header's repeatable
elements (``Sender``, ``Receiver``, ``Scope``, ``ScopeInformation``) become lists, a party's
``Identifier``'s ``Authority`` attribute and text become ``authority`` and ``value``, and the
business message's elements become nested objects (repeated elements: lists) of strings.
"""

from __future__ import annotations

from typing import Any

from ipunkt.package import safexml
from lxml import etree

SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"
LISTS = frozenset({"Sender", "Receiver", "Scope", "ScopeInformation"})
MAX_BYTES = 16 << 20


class LegacySbdError(ValueError):
    """``content.xml`` is not an SBD."""


def _key(element: etree._Element) -> str:
    name = str(etree.QName(element).localname)
    return name[:1].lower() + name[1:]


def _header_value(element: etree._Element) -> Any:
    children = [c for c in element if isinstance(c.tag, str)]
    parent = element.getparent()
    in_partner = parent is not None and etree.QName(parent).localname in ("Sender", "Receiver")
    if in_partner and etree.QName(element).localname == "Identifier":
        return {"authority": element.get("Authority"), "value": (element.text or "").strip()}
    if not children:
        return (element.text or "").strip()
    value: dict[str, Any] = {}
    for child in children:
        converted = _header_value(child)
        if etree.QName(child).localname in LISTS:
            value.setdefault(_key(child), []).append(converted)
        else:
            value[_key(child)] = converted
    return value


def _body_value(element: etree._Element) -> Any:
    children = [c for c in element if isinstance(c.tag, str)]
    if not children:
        return (element.text or "").strip()
    value: dict[str, Any] = {}
    for child in children:
        key, converted = _key(child), _body_value(child)
        if key in value:
            if not isinstance(value[key], list):
                value[key] = [value[key]]
            value[key].append(converted)
        else:
            value[key] = converted
    return value


def parse_content_xml(data: bytes) -> dict[str, Any]:
    """The SBD in ``content.xml`` as the JSON form's dict; raises :class:`LegacySbdError`."""
    try:
        root = safexml.parse(data, what="content.xml", limit=MAX_BYTES)
    except safexml.UnsafeXml as exc:
        raise LegacySbdError(str(exc)) from exc
    if etree.QName(root).localname != "StandardBusinessDocument":
        raise LegacySbdError(f"content.xml's root is {etree.QName(root).localname}, not an SBD")
    elements = [c for c in root if isinstance(c.tag, str)]
    header = next(
        (
            e
            for e in elements
            if etree.QName(e) == etree.QName(SBDH, "StandardBusinessDocumentHeader")
        ),
        None,
    )
    if header is None:
        raise LegacySbdError("content.xml has no StandardBusinessDocumentHeader")
    sbd: dict[str, Any] = {"standardBusinessDocumentHeader": _header_value(header)}
    for element in elements:
        if element is not header:
            sbd[etree.QName(element).localname] = _body_value(element)
    return sbd
