"""The business manifests: DPI's against the published ``sdp-manifest.xsd``; the IP's shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import signxml
from ipunkt.package.manifest import (
    IpManifest,
    MainDocument,
    ManifestError,
    SdpDocument,
    SdpManifest,
    parse_manifest,
)
from lxml import etree

XMLDSIG_SCHEMA = Path(signxml.__file__).parent / "schemas" / "xmldsig-core-schema.xsd"


class _XmlDsigSchema(etree.Resolver):
    """sdp-felles.xsd imports the W3C XML-DSig schema, which the specs folder does not ship."""

    def resolve(self, url: str, pubid: str, context: object) -> object:
        if url.endswith("xmldsig-core-schema.xsd"):
            return self.resolve_filename(str(XMLDSIG_SCHEMA), context)
        return None


@pytest.fixture(scope="module")
def sdp_schema(specs_dir: Path) -> etree.XMLSchema:
    parser = etree.XMLParser()
    parser.resolvers.add(_XmlDsigSchema())
    return etree.XMLSchema(etree.parse(str(specs_dir / "dpi" / "xsd" / "sdp-manifest.xsd"), parser))


def test_digital_post_manifest_is_valid_against_the_xsd(sdp_schema: etree.XMLSchema) -> None:
    manifest = SdpManifest(
        sender="987654321",
        main_document=SdpDocument(
            "vedtak.pdf",
            "application/pdf",
            "Vedtak om barnehageplass",
            metadata_href="vedtak-lenke.xml",
            metadata_mime="application/vnd.difi.dpi.lenke+xml",
        ),
        attachments=tuple(
            SdpDocument(f"vedlegg-{i}.pdf", "application/pdf", f"Vedlegg {i}") for i in range(200)
        ),
        postkasseadresse="ola.nordmann#9YDT",
        personidentifikator="01010112345",
        avsenderidentifikator="barnehage",
        fakturareferanse="faktura-42",
    )
    xml = manifest.to_xml()
    sdp_schema.assertValid(etree.fromstring(xml))
    assert SdpManifest.from_xml(xml) == manifest
    assert parse_manifest(xml) == manifest


def test_print_manifest_without_recipient_is_valid(sdp_schema: etree.XMLSchema) -> None:
    manifest = SdpManifest(
        sender="0192:987654321", main_document=SdpDocument("brev.pdf", "application/pdf")
    )
    root = etree.fromstring(manifest.to_xml())
    sdp_schema.assertValid(root)
    assert root.find("{http://begrep.difi.no/sdp/schema_v10}mottaker") is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SdpDocument("a.p", "application/pdf"), "4 to 100 characters"),
        (lambda: SdpDocument("brev.pdf", "application/pdf", lang="nor"), "two letters"),
        (
            lambda: SdpManifest(
                sender="987654321",
                main_document=SdpDocument("brev.pdf", "application/pdf"),
                attachments=(SdpDocument("vedlegg.pdf", "application/pdf"),) * 201,
            ),
            "at most 200 attachments",
        ),
        (
            lambda: SdpManifest(sender="not an org", main_document=SdpDocument("brev.pdf", "x/y")),
            "organisation number",
        ),
    ],
)
def test_values_the_schema_forbids_are_refused(make: object, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        make()  # type: ignore[operator]


def test_the_integration_points_manifest() -> None:
    manifest = IpManifest(
        "910075918", "0192:910077473", MainDocument("arkivmelding.xml", "application/xml")
    )
    root = etree.fromstring(manifest.to_xml())
    assert root.tag == "manifest"
    assert [e.tag for e in root] == ["mottaker", "avsender", "hoveddokument"]
    organisation = root.find("mottaker/organisasjon")
    assert organisation.get("authority") == "iso6523-actorid-upis"
    assert organisation.text == "0192:910075918"
    assert root.find("hoveddokument").attrib == {
        "href": "arkivmelding.xml",
        "mime": "application/xml",
    }
    assert root.findtext("hoveddokument/tittel") == "Hoveddokument"
    assert parse_manifest(manifest.to_xml()) == manifest


def test_a_malformed_manifest_is_refused() -> None:
    with pytest.raises(ManifestError, match="lacks mottaker or avsender"):
        IpManifest.from_xml(b"<manifest><mottaker/></manifest>")
    with pytest.raises(ManifestError, match="not well-formed"):
        parse_manifest(b"<manifest>")
