"""Parsing XML that strangers send: no DTDs, no entities, no network, bounded size and depth.

Manifests and signatures arrive inside packages from other organisations. lxml does the
parsing (XML-DSig needs its canonicalisation); this module refuses what makes XML dangerous
(entity expansion such as "billion laughs", external entities that read local files or URLs,
DTD fetching, nesting deep enough to exhaust a recursive reader), as defusedxml does for the
standard library's parsers, and bounds the input.

:func:`parse` builds a tree of a small document. :class:`XmlCheck` checks a document of any size
as it streams past, building nothing: for the XML files of an incoming package that ipunkt
hands to its client unread (``arkivmelding.xml``), so that the client's parser never meets them.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

MAX_XML_BYTES = 10 << 20
MAX_DEPTH = 100
"""The deepest element nesting accepted (eFormidling's documents nest about a dozen deep)."""

_PARSER = etree.XMLParser(
    resolve_entities=False,
    load_dtd=False,
    no_network=True,
    huge_tree=False,
    remove_blank_text=False,
)


class UnsafeXml(ValueError):
    """The XML is malformed, too large, too deep, or uses a DTD or entities."""


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


class _Watcher:
    """An lxml parser target that keeps nothing: it counts depth and refuses a DTD."""

    def __init__(self, what: str, max_depth: int) -> None:
        self.what = what
        self.max_depth = max_depth
        self.depth = 0
        self.problem: UnsafeXml | None = None

    def _refuse(self, problem: UnsafeXml) -> None:
        self.problem = self.problem or problem
        raise problem

    def doctype(self, name: Any, public_id: Any, system_url: Any) -> None:
        self._refuse(UnsafeXml(f"{self.what} declares a DTD, which is refused"))

    def start(self, tag: Any, attributes: Any, namespaces: Any = None) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            self._refuse(UnsafeXml(f"{self.what} nests elements deeper than {self.max_depth}"))

    def end(self, tag: Any) -> None:
        self.depth -= 1

    def close(self) -> None:
        """Nothing was built."""


class XmlCheck:
    """Checks one XML document fed in pieces (``feed``, then ``close``), in constant memory.

    Refuses, with :class:`UnsafeXml`: a DTD (and so any entity declaration: "billion laughs",
    external entities), a reference to an undeclared entity, nesting deeper than ``max_depth``,
    and anything not well-formed.
    """

    def __init__(self, what: str, *, max_depth: int = MAX_DEPTH) -> None:
        self.what = what
        self._watcher = _Watcher(what, max_depth)
        self._parser = etree.XMLParser(
            target=self._watcher,
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
        )
        self._empty = True

    def _failed(self, exc: Exception) -> UnsafeXml:
        if self._watcher.problem is not None:
            return self._watcher.problem
        return UnsafeXml(f"{self.what} is not well-formed XML: {exc}")

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._empty = False
        try:
            self._parser.feed(data)
        except (etree.XMLSyntaxError, UnsafeXml) as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        if self._empty:
            raise UnsafeXml(f"{self.what} is empty")
        try:
            self._parser.close()
        except (etree.XMLSyntaxError, UnsafeXml) as exc:
            raise self._failed(exc) from None
