"""Every business message the plugin produces keeps Digdir's published JSON schema, and the
plugin's receipt reader accepts and refuses exactly what the published schemas do."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package import jws
from ipunkt.package.trust import TrustStore
from ipunkt_dpi.business_messages import RECEIPTS, AdresseInformasjon, NotAReceipt, read_receipt
from ipunkt_dpi.fake import Step
from ipunkt_dpi.published_schemas import PublishedSchemas
from ipunkt_dpi.receipts import open_receipt
from ipunkt_dpi.shipment import plan
from pydantic import ValidationError


@pytest.fixture(scope="module")
def schemas(specs: Path) -> PublishedSchemas:
    return PublishedSchemas(specs)


FOREIGN = {
    "navn": "Sven Svensson",
    "adresselinje1": "Drottninggatan 1",
    "postnummer": "111 51",
    "poststed": "Stockholm",
    "land": "Sverige",
}
OUTGOING_CASES = {
    "digital, minimal": ("digital", {}, {}),
    "digital, everything": (
        "digital",
        {
            "sikkerhetsnivaa": 4,
            "spraak": "EN",
            "avsenderId": "skatt-innkreving",
            "fakturaReferanse": "F-2026-17",
            "digitalPostInfo": {"virkningsdato": "2027-01-15", "aapningskvittering": True},
            "varsler": {"epostTekst": "Du har fått post", "smsTekst": "Du har fått post"},
        },
        {"epostAdresse": "ola@example.no", "mobilnummer": "+47 99999999"},
    ),
    "utskrift, Norwegian address": ("print", {}, {}),
    "utskrift, abroad, colour, A, shredded": (
        "print",
        {
            "mottaker": FOREIGN,
            "utskriftsfarge": "FARGE",
            "posttype": "A_PRIORITERT",
            "retur": {
                "mottaker": {**FOREIGN, "navn": "Retur"},
                "returhaandtering": "MAKULERING_MED_MELDING",
            },
        },
        {},
    ),
    "utskrift, addresses from the service record": (
        "print",
        {"mottaker": None, "retur": {"returhaandtering": "DIREKTE_RETUR"}},
        {
            "postAddress": {
                "name": "Kari Nordmann",
                "street": "Storgata 1;Leilighet H0201",
                "postalCode": "0155",
                "postalArea": "Oslo",
                "country": "NO",
            },
            "returnAddress": {
                "name": "Testkommune",
                "street": "Postboks 1",
                "postalCode": "6863",
                "postalArea": "Leikanger",
                "country": "Norge",
            },
        },
    ),
}


@pytest.mark.parametrize("case", list(OUTGOING_CASES))
def test_every_outgoing_business_message_keeps_its_published_schema(
    case: str, schemas: PublishedSchemas, fake: Any, kit: Any
) -> None:
    kind, body, record = OUTGOING_CASES[case]
    if kind == "digital":
        message = kit.message(
            "digital",
            kit.service_record(fake, **record),
            kit.digital_body(**body),
            [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
        )
    else:
        message = kit.message(
            "print",
            kit.service_record(fake, printing=True, **record),
            kit.print_body(**body),
            [kit.attachment("brev.pdf", kit.PDF, primary=True)],
        )
    shipment = plan(message)
    document = shipment.business_document(hashlib.sha256(b"package").digest(), "token").wire()
    assert schemas.errors(shipment.kind, document) == []
    assert schemas.manifest_errors(shipment.manifest.to_xml()) == []


async def test_every_receipt_the_fake_issues_keeps_its_published_schema(
    make_channel: Any, fake: Any, kit: Any, schemas: PublishedSchemas, ca: Any
) -> None:
    channel = await make_channel()
    outgoing = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )
    fake.script(outgoing.message_id, [Step(kind, detail="detaljer") for kind in RECEIPTS])
    await channel.send(outgoing)
    fake.advance()
    assert [entry.kind for entry in fake.inbox] == list(RECEIPTS)
    trust = TrustStore([ca.certificate])
    for entry in fake.inbox:
        payload = jws.verify(entry.jwt, trust=trust).json()
        assert schemas.errors(entry.kind, payload) == [], entry.kind
        receipt = open_receipt(entry.jwt, trust)
        assert receipt.kind == entry.kind
        assert receipt.conversation_id == outgoing.conversation_id
        header = payload["standardBusinessDocument"]["standardBusinessDocumentHeader"]
        assert (
            header["sender"][0]["identifier"]["value"] == f"0192:{fake.mailbox.organisation_number}"
        )
        assert header["receiver"][0]["identifier"]["value"] == f"0192:{kit.ORG}"


def _valid_receipt(specs: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (specs / "dpi" / "examples" / "lerveringskvittering_nav_sample.json").read_text()
    )
    return document


def _mutations(specs: Path) -> dict[str, tuple[str, Any]]:
    examples = specs / "dpi" / "examples"
    valid = _valid_receipt(specs)

    def changed(kind: str, change: Any) -> tuple[str, Any]:
        document = copy.deepcopy(valid)
        sbd = document["standardBusinessDocument"]
        if kind != "leveringskvittering":
            sbd[kind] = sbd.pop("leveringskvittering")
            header = sbd["standardBusinessDocumentHeader"]["documentIdentification"]
            header["type"] = kind
        change(sbd, sbd[kind])
        return kind, document

    return {
        "published sample": ("leveringskvittering", valid),
        "published sample with maskinportentoken": (
            "leveringskvittering",
            json.loads((examples / "innbyggerpost_dpi_lerveringskvittering_1_0.json").read_text()),
        ),
        "published feil sample (body under the wrong key)": (
            "feil",
            json.loads((examples / "feil-sbd.json").read_text()),
        ),
        "no tidspunkt": changed("leveringskvittering", lambda s, b: b.pop("tidspunkt")),
        "tidspunkt not a time": changed(
            "aapningskvittering", lambda s, b: b.update(tidspunkt="i går")
        ),
        "extra property": changed("mottakskvittering", lambda s, b: b.update(status="OK")),
        "feil with feiltype": changed("feil", lambda s, b: b.update(feiltype="KLIENT")),
        "feil without feiltype": changed("feil", lambda s, b: None),
        "feil with an unknown feiltype": changed("feil", lambda s, b: b.update(feiltype="BEGGE")),
        "varslingfeilet with kanal": changed(
            "varslingfeiletkvittering", lambda s, b: b.update(varslingskanal="sms")
        ),
        "varslingfeilet without kanal": changed("varslingfeiletkvittering", lambda s, b: None),
        "two senders": changed(
            "returpostkvittering",
            lambda s, b: s["standardBusinessDocumentHeader"]["sender"].append(
                s["standardBusinessDocumentHeader"]["sender"][0]
            ),
        ),
        "orgnr without ICD": changed(
            "leveringskvittering",
            lambda s, b: b["avsender"]["virksomhetsidentifikator"].update(value="984661185"),
        ),
        "header without creation time": changed(
            "leveringskvittering",
            lambda s, b: s["standardBusinessDocumentHeader"]["documentIdentification"].pop(
                "creationDateAndTime"
            ),
        ),
        "another business message beside the receipt": changed(
            "leveringskvittering", lambda s, b: s.update(digital={})
        ),
    }


def test_the_receipt_reader_agrees_with_the_published_schemas(
    specs: Path, schemas: PublishedSchemas
) -> None:
    verdicts = {}
    for name, (kind, document) in _mutations(specs).items():
        schema_accepts = not schemas.errors(kind, document)
        try:
            read_receipt(document)
            reader_accepts = True
        except (ValidationError, NotAReceipt):
            reader_accepts = False
        verdicts[name] = (schema_accepts, reader_accepts)
    assert {n: v for n, v in verdicts.items() if v[0] != v[1]} == {}
    accepted = {n for n, (schema, _) in verdicts.items() if schema}
    assert accepted == {
        "published sample",
        "feil with feiltype",
        "varslingfeilet with kanal",
    }


ADDRESSES = {
    "Norwegian": {"navn": "A", "adresselinje1": "B", "postnummer": "0155", "poststed": "Oslo"},
    "Norwegian, naming the country too": {
        "navn": "A",
        "adresselinje1": "B",
        "postnummer": "0155",
        "poststed": "Oslo",
        "land": "Norge",
    },
    "abroad by land": {"navn": "A", "adresselinje1": "B", "land": "Sverige"},
    "abroad by landkode": {"navn": "A", "adresselinje1": "B", "landkode": "SE"},
    "both land and landkode": {
        "navn": "A",
        "adresselinje1": "B",
        "land": "Sverige",
        "landkode": "SE",
    },
    "no navn": {"adresselinje1": "B", "postnummer": "0155", "poststed": "Oslo"},
    "three-digit postnummer": {
        "navn": "A",
        "adresselinje1": "B",
        "postnummer": "155",
        "poststed": "O",
    },
    "no poststed, no country": {"navn": "A", "adresselinje1": "B", "postnummer": "0155"},
}


def test_the_address_rules_agree_with_the_published_schema(
    specs: Path, schemas: PublishedSchemas
) -> None:
    sample = json.loads(
        (specs / "dpi" / "examples" / "utskrift-forretningsmelding.json").read_text()
    )
    verdicts = {}
    for name, address in ADDRESSES.items():
        document = copy.deepcopy(sample)
        document["standardBusinessDocument"]["utskrift"]["mottaker"] = address
        schema_accepts = not schemas.errors("utskrift", document)
        try:
            AdresseInformasjon(**address)
            model_accepts = True
        except ValidationError:
            model_accepts = False
        verdicts[name] = (schema_accepts, model_accepts)
    assert {n: v for n, v in verdicts.items() if v[0] != v[1]} == {}
    assert {n for n, (s, _) in verdicts.items() if s} == {
        "Norwegian",
        "abroad by land",
        "abroad by landkode",
    }


def test_the_published_examples_of_outgoing_messages_keep_the_published_schemas(
    specs: Path, schemas: PublishedSchemas
) -> None:
    """The checker itself: the published ready-to-send examples pass it."""
    examples = specs / "dpi" / "examples"
    for name, kind in (
        ("digital_ready_for_send-sbd.json", "digital"),
        ("utskrift_ready_for_send-sbd.json", "utskrift"),
        ("digital-forretningsmelding.json", "digital"),
        ("utskrift-forretningsmelding.json", "utskrift"),
    ):
        assert schemas.errors(kind, json.loads((examples / name).read_text())) == [], name
