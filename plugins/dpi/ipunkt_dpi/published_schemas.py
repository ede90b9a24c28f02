"""Digdir's published DPI schemas, read from a specs folder: JSON schemas and the manifest XSD.

The plugin does not ship these files; the fake access point checks against them when it is
given the folder (the tests and the sandbox give it ``$IPUNKT_SPECS``), and the tests check
every business message the channel produces with them. The layout is the one of
``shared/specs``: ``dpi/schemas/*.schema.json`` and ``dpi/xsd/sdp-manifest.xsd``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from lxml import etree
from referencing import Registry
from referencing.jsonschema import DRAFT7

XMLDSIG_STAND_IN = b"""<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    targetNamespace="http://www.w3.org/2000/09/xmldsig#">
  <xsd:element name="Signature"/>
</xsd:schema>"""
"""``sdp-felles.xsd`` imports the XML-DSig schema for a type the manifest never uses; the
published folder does not hold that schema, so a declaration of its one element stands in."""


class _XmldsigResolver(etree.Resolver):
    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        if system_url.endswith("xmldsig-core-schema.xsd"):
            return self.resolve_string(XMLDSIG_STAND_IN, context)
        return None


class PublishedSchemas:
    """Validators for each DPI business message type and for the SDP manifest."""

    def __init__(self, specs: Path) -> None:
        folder = Path(specs) / "dpi"
        schemas = [json.loads(p.read_text()) for p in sorted((folder / "schemas").glob("*.json"))]
        if not schemas:
            raise FileNotFoundError(f"no DPI JSON schemas in {folder / 'schemas'}")
        registry: Registry[Any] = Registry().with_resources(
            (schema["$id"], DRAFT7.create_resource(schema)) for schema in schemas
        )
        self._validators: dict[str, Draft7Validator] = {}
        for path in (folder / "schemas").glob("innbyggerpost_dpi_*_1_0.schema.json"):
            kind = path.name.removeprefix("innbyggerpost_dpi_").removesuffix("_1_0.schema.json")
            self._validators[kind] = Draft7Validator(
                json.loads(path.read_text()),
                registry=registry,
                format_checker=Draft7Validator.FORMAT_CHECKER,
            )
        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(_XmldsigResolver())
        self._manifest = etree.XMLSchema(
            etree.parse(str(folder / "xsd" / "sdp-manifest.xsd"), parser)
        )

    def errors(self, kind: str, document: Any) -> list[str]:
        """Why ``document`` (``{"standardBusinessDocument": ...}``) breaks the ``kind`` schema."""
        validator = self._validators.get(kind)
        if validator is None:
            return [f"no published schema for the type {kind!r}"]
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(document)
        ]

    def manifest_errors(self, manifest: bytes) -> list[str]:
        """Why ``manifest.xml`` breaks ``sdp-manifest.xsd``."""
        try:
            document = etree.fromstring(manifest, etree.XMLParser(resolve_entities=False))
        except etree.XMLSyntaxError as exc:
            return [f"manifest.xml is not XML: {exc}"]
        if self._manifest.validate(document):
            return []
        return [f"line {e.line}: {e.message}" for e in self._manifest.error_log]
