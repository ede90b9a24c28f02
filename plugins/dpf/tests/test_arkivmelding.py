"""arkivmelding.xml both ways, and SvarInn's JSON as an SBD, on the published examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ipunkt.plugin import PermanentError
from ipunkt_dpf.arkivmelding import ArkivmeldingInvalid, incoming_arkivmelding, read_journalpost
from ipunkt_dpf.client import SvarInnClient
from ipunkt_dpf.incoming import Unprocessable, incoming_sbd, read_forsendelse
from lxml import etree

NS = {"a": "http://www.arkivverket.no/standarder/noark5/arkivmelding"}
RECEIVED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def sample(specs: Path) -> dict[str, Any]:
    (forsendelse,) = json.loads((specs / "svarinn" / "hentNyeForsendelser-sample.json").read_text())
    return forsendelse  # type: ignore[no-any-return]


def test_the_published_svarinn_example_becomes_a_valid_arkivmelding(
    sample: dict[str, Any], arkivmelding_schema: etree.XMLSchema
) -> None:
    xml = etree.fromstring(incoming_arkivmelding(sample, received=RECEIVED))
    arkivmelding_schema.assertValid(xml)
    assert xml.findtext("a:meldingId", namespaces=NS) == sample["id"]
    assert xml.findtext(".//a:basisregistrering/a:tittel", namespaces=NS) == "testtittel"
    assert xml.findtext(".//a:offentligTittel", namespaces=NS) == "test"
    assert xml.xpath(".//a:referanseDokumentfil/text()", namespaces=NS) == [
        "2017.01.23_Direktoratet_for_forvaltning_og_IKT_Testdokument_7.docx"
    ]
    assert xml.findtext(".//a:korrespondansepartNavn", namespaces=NS) == "Difi"


def test_svarinn_metadata_lands_in_noark_terms(
    sample: dict[str, Any], arkivmelding_schema: etree.XMLSchema
) -> None:
    sample["metadataFraAvleverendeSystem"].update({
        "sakssekvensnummer": 1, "saksaar": 2016, "journalaar": 2016, "journalsekvensnummer": 25,
        "journalpostnummer": 13, "journalposttype": "U", "journalstatus": "F",
        "journaldato": 1458514800000, "dokumentetsDato": 1458514800000, "saksBehandler": "Ola",
        "ekstraMetadata": [{"key": "gnr", "value": "12"}, {"key": "ikke et navn", "value": "x"}],
    })
    sample["svarSendesTil"]["fnr"] = "01017012345"
    xml = etree.fromstring(incoming_arkivmelding(sample, received=RECEIVED))
    arkivmelding_schema.assertValid(xml)
    journalpost = xml.find(".//a:basisregistrering", namespaces=NS)
    assert journalpost.findtext("a:journalposttype", namespaces=NS) == "Utgående dokument"
    assert journalpost.findtext("a:journalstatus", namespaces=NS) == "Godkjent av leder"
    assert journalpost.findtext("a:journaldato", namespaces=NS) == "2016-03-21"
    assert journalpost.findtext("a:journalpostnummer", namespaces=NS) == "13"
    assert journalpost.findtext("a:tittel", namespaces=NS) == "testtittel (eDialog fra 01017012345)"
    assert journalpost.findtext("a:virksomhetsspesifikkeMetadata/a:gnr", namespaces=NS) == "12"
    assert xml.findtext(".//a:mappe/a:saksaar", namespaces=NS) == "2016"
    assert xml.findtext(".//a:mappe/a:saksansvarlig", namespaces=NS) == "Ola"


def test_the_published_svarinn_example_becomes_an_sbd(sample: dict[str, Any]) -> None:
    sample["svarPaForsendelse"] = "27991054-77b4-48ed-bf9b-ae36bb1b41d1"
    forsendelse = read_forsendelse(sample, fallback_sender=None)
    process = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
    sbd = incoming_sbd(forsendelse, process=process, ttl_hours=24, now=RECEIVED)
    header = sbd["standardBusinessDocumentHeader"]
    assert header["sender"] == [{"identifier": {"authority": "iso6523-actorid-upis",
                                                "value": "0192:910229028"}}]
    assert header["documentIdentification"]["instanceIdentifier"] == sample["id"]
    assert header["documentIdentification"]["creationDateAndTime"] == (
        "2017-02-14T10:49:00.334000+00:00"
    )
    scopes = header["businessScope"]["scope"]
    assert scopes[0]["instanceIdentifier"] == sample["id"]
    assert scopes[0]["scopeInformation"] == [
        {"expectedResponseDateTime": "2024-03-02T12:00:00+00:00"}
    ]
    assert scopes[1] == {"type": "ReceiverRef",
                         "instanceIdentifier": "27991054-77b4-48ed-bf9b-ae36bb1b41d1"}
    assert sbd["arkivmelding"] == {"sikkerhetsnivaa": 3}


def test_a_reply_from_a_citizen_needs_a_fallback_sender(sample: dict[str, Any]) -> None:
    sample["svarSendesTil"].update(orgnr=None, fnr="01017012345")
    with pytest.raises(Unprocessable, match="set fallback_sender") as refused:
        read_forsendelse(sample, fallback_sender=None)
    assert refused.value.permanent
    assert read_forsendelse(sample, fallback_sender="999999999").sender == "999999999"


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"id": "abc"}, "is not a UUID"),
     ({"filmetadata": []}, "no filmetadata"),
     ({"downloadUrl": None}, "no downloadUrl"),
     ({"filmetadata": [{"filnavn": "arkivmelding.xml", "mimetype": "application/xml"}]},
      "a document is named arkivmelding.xml")],
)
def test_an_unusable_svarinn_entry_is_refused(
    change: dict[str, Any], reason: str, sample: dict[str, Any]
) -> None:
    sample.update(change)
    with pytest.raises(Unprocessable, match=reason):
        read_forsendelse(sample, fallback_sender=None)


def test_a_download_elsewhere_does_not_get_our_password() -> None:
    client = SvarInnClient(None, base_url="https://svarut.ks.no/tjenester/svarinn",  # type: ignore[arg-type]
                           username="u", password="p")
    assert client.download_url("/tjenester/svarinn/forsendelse/1") == (
        "https://svarut.ks.no/tjenester/svarinn/forsendelse/1"
    )
    with pytest.raises(PermanentError, match="not on SvarInn"):
        client.download_url("https://evil.example/forsendelse/1")


def test_a_journalpost_without_saksmappe_and_in_the_v2_namespace_is_read(kit: Any) -> None:
    xml = b"""<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding/v2">
      <basisregistrering><tittel>Melding</tittel>
        <dokumentbeskrivelse><tilknyttetRegistreringSom>Vedlegg</tilknyttetRegistreringSom>
          <dokumentobjekt><referanseDokumentfil>b.pdf</referanseDokumentfil></dokumentobjekt>
        </dokumentbeskrivelse>
        <dokumentbeskrivelse><tilknyttetRegistreringSom>Hoveddokument</tilknyttetRegistreringSom>
          <dokumentobjekt><referanseDokumentfil>a.pdf</referanseDokumentfil></dokumentobjekt>
        </dokumentbeskrivelse>
        <journalposttype>I</journalposttype>
      </basisregistrering></arkivmelding>"""
    journalpost = read_journalpost(xml)
    assert journalpost.forsendelse_title == "Melding"
    assert [d.filename for d in journalpost.documents] == ["a.pdf", "b.pdf"]
    assert journalpost.metadata == {"journalposttype": "I", "tittel": "Melding"}


@pytest.mark.parametrize(
    ("xml", "reason"),
    [(b"<manifest/>", "not an arkivmelding"),
     (b'<!DOCTYPE x [<!ENTITY a "b">]><arkivmelding/>', "DTD or entities"),
     (b'<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding"/>',
      "has no journalpost"),
     (b'<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">'
      b"<basisregistrering><journalaar>tjue</journalaar></basisregistrering></arkivmelding>",
      "journalaar is 'tjue'")],
)
def test_an_unreadable_arkivmelding_says_why(xml: bytes, reason: str) -> None:
    with pytest.raises(ArkivmeldingInvalid, match=reason):
        read_journalpost(xml)
