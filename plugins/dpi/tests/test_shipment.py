"""From a Next Move message to DPI: the original's rules and defaults, and clear refusals."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ipunkt.package.testcerts import pem
from ipunkt.plugin import PermanentError
from ipunkt_dpi.shipment import plan

FINGERPRINT = hashlib.sha256(b"package").digest()


def _digital(fake: Any, kit: Any, body: dict[str, Any] | None = None, **record: Any) -> Any:
    return kit.message(
        "digital",
        kit.service_record(fake, **record),
        kit.digital_body(**(body or {})),
        [kit.attachment("vedtak.pdf", kit.PDF, primary=True)],
    )


def _print(fake: Any, kit: Any, body: dict[str, Any] | None = None, **record: Any) -> Any:
    return kit.message(
        "print",
        kit.service_record(fake, printing=True, **record),
        kit.print_body(**(body or {})),
        [kit.attachment("brev.pdf", kit.PDF, primary=True)],
    )


def _wire(shipment: Any) -> dict[str, Any]:
    document = shipment.business_document(FINGERPRINT, "the-token").wire()
    return dict(document["standardBusinessDocument"])


def test_digital_defaults_are_the_originals(fake: Any, kit: Any) -> None:
    shipment = plan(_digital(fake, kit))
    sbd = _wire(shipment)
    digital = sbd["digital"]
    assert digital["virkningstidspunkt"] == "2026-12-01T00:00:00.000+01:00"
    assert "virkningsdato" not in digital
    assert digital["aapningskvittering"] is False
    assert digital["varsler"] == {}
    assert digital["spraak"] == "NO"
    assert digital["ikkesensitivtittel"] == "Vedtak om barnehageplass"
    assert digital["mottaker"] == {"postkasseadresse": kit.CITIZEN}
    assert digital["maskinportentoken"] == "the-token"
    assert digital["avsender"] == {
        "virksomhetsidentifikator": {
            "authority": "iso6523-actorid-upis",
            "value": f"0192:{kit.ORG}",
        }
    }
    header = sbd["standardBusinessDocumentHeader"]
    identification = header["documentIdentification"]
    assert identification["standard"] == (
        "urn:fdc:digdir.no:2020:innbyggerpost:xsd::innbyggerpost"
        "##urn:fdc:digdir.no:2020:innbyggerpost:schema:digital::1.0"
    )
    assert (identification["type"], identification["typeVersion"]) == ("digital", "1.0")
    scope = header["businessScope"]["scope"][0]
    assert (
        scope["identifier"]
        == "urn:fdc:digdir.no:2020:profile:egovernment:innbyggerpost:digital:ver1.0"
    )
    assert scope["type"] == "ConversationId"
    assert shipment.manifest.main_document.lang == "NO"


def test_a_message_without_virkningsdato_takes_effect_now(fake: Any, kit: Any) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    message = _digital(fake, kit, {"digitalPostInfo": {"aapningskvittering": True}})
    digital = _wire(plan(message))["digital"]
    assert datetime.fromisoformat(digital["virkningstidspunkt"]) >= before
    assert digital["aapningskvittering"] is True


def test_notifications_need_the_address_from_the_record_and_the_text_from_the_message(
    fake: Any, kit: Any
) -> None:
    texts = {"varsler": {"epostTekst": "Ny post", "smsTekst": "Ny post på SMS"}}
    addresses = {"epostAdresse": "ola@example.no", "mobilnummer": "99999999"}
    both = _wire(plan(_digital(fake, kit, texts, **addresses)))["digital"]["varsler"]
    assert both == {
        "epostvarsel": {
            "epostadresse": "ola@example.no",
            "varslingstekst": "Ny post",
            "repetisjoner": [0, 7],
        },
        "smsvarsel": {
            "mobiltelefonnummer": "99999999",
            "varslingstekst": "Ny post på SMS",
            "repetisjoner": [0, 7],
        },
    }
    no_address = _wire(plan(_digital(fake, kit, texts)))["digital"]["varsler"]
    assert no_address == {}
    no_text = _wire(plan(_digital(fake, kit, {}, **addresses)))["digital"]["varsler"]
    assert no_text == {}


@pytest.mark.parametrize(
    ("body", "record", "expected"),
    [
        ({"spraak": "EN"}, "NN", "EN"),
        ({"spraak": None}, "NN", "NN"),
        ({"spraak": None}, None, "SE"),
    ],
)
def test_language_comes_from_the_message_then_the_record_then_the_config(
    fake: Any, kit: Any, body: dict[str, Any], record: str | None, expected: str
) -> None:
    shipment = plan(_digital(fake, kit, body, spraak=record), language="SE")
    assert _wire(shipment)["digital"]["spraak"] == expected
    assert shipment.manifest.main_document.lang == expected


def test_print_defaults_are_black_and_white_b_post_returned_directly(fake: Any, kit: Any) -> None:
    body = kit.print_body()
    body["retur"].pop("returhaandtering")
    message = kit.message(
        "print",
        kit.service_record(fake, printing=True),
        body,
        [kit.attachment("brev.pdf", kit.PDF, primary=True)],
    )
    utskrift = _wire(plan(message))["utskrift"]
    assert utskrift["utskriftstype"] == "SORT_HVIT"
    assert utskrift["posttype"] == "B"
    assert utskrift["retur"]["returposthaandtering"] == "DIREKTE_RETUR"
    assert (
        _wire(plan(message))["standardBusinessDocumentHeader"]["receiver"][0]["identifier"]["value"]
        == f"0192:{fake.printer.organisation_number}"
    )


def test_a_foreign_address_folds_postcode_and_place_into_a_line_and_names_the_country(
    fake: Any, kit: Any
) -> None:
    foreign = {
        "navn": "Sven Svensson",
        "adresselinje1": "Drottninggatan 1",
        "adresselinje2": "Lgh 1102",
        "postnummer": "111 51",
        "poststed": "Stockholm",
        "land": "Sverige",
    }
    utskrift = _wire(plan(_print(fake, kit, {"mottaker": foreign})))["utskrift"]
    assert utskrift["mottaker"] == {
        "navn": "Sven Svensson",
        "adresselinje1": "Drottninggatan 1",
        "adresselinje2": "Lgh 1102",
        "adresselinje3": "111 51 Stockholm",
        "land": "Sverige",
    }


def test_print_addresses_missing_from_the_message_come_from_the_service_record(
    fake: Any, kit: Any
) -> None:
    record = {
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
            "country": "",
        },
    }
    body = {
        "mottaker": {"navn": "Kari N."},
        "retur": {"returhaandtering": "MAKULERING_MED_MELDING"},
    }
    utskrift = _wire(plan(_print(fake, kit, body, **record)))["utskrift"]
    assert utskrift["mottaker"] == {
        "navn": "Kari N.",
        "adresselinje1": "Storgata 1",
        "adresselinje2": "Leilighet H0201",
        "postnummer": "0155",
        "poststed": "Oslo",
    }
    assert utskrift["retur"] == {
        "mottaker": {
            "navn": "Testkommune",
            "adresselinje1": "Postboks 1",
            "postnummer": "6863",
            "poststed": "Leikanger",
        },
        "returposthaandtering": "MAKULERING_MED_MELDING",
    }


def test_documents_go_in_order_with_their_metadata_and_titles(fake: Any, kit: Any) -> None:
    message = kit.message(
        "digital",
        kit.service_record(fake),
        kit.digital_body(hoveddokument="b.pdf", metadataFiler={"a.pdf": "a.xml"}),
        [
            kit.attachment("a.pdf", kit.PDF, title="Vedlegg A"),
            kit.attachment("a.xml", b"<x/>", mime="application/xml"),
            kit.attachment("b.pdf", kit.PDF),
        ],
    )
    shipment = plan(message)
    assert [d.filename for d in shipment.documents] == ["b.pdf", "a.pdf", "a.xml"]
    assert shipment.manifest.main_document.href == "b.pdf"
    assert shipment.manifest.main_document.title == "Missing title"
    (vedlegg,) = shipment.manifest.attachments
    assert (vedlegg.href, vedlegg.title, vedlegg.metadata_href) == ("a.pdf", "Vedlegg A", "a.xml")


REFUSALS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "no certificate": ({}, {"pemCertificate": ""}, "no certificate"),
    "no mailbox provider": ({}, {"orgnrPostkasse": None}, "mailbox provider"),
    "no postbox address": ({}, {"postkasseAdresse": None}, "postkasseAdresse"),
    "security level 5": ({"sikkerhetsnivaa": 5}, {}, "sikkerhetsnivaa"),
    "no title": ({"tittel": None}, {}, "ikkesensitivtittel"),
    "title too long": ({"tittel": "x" * 256}, {}, "ikkesensitivtittel"),
    "SMS text too long": (
        {"varsler": {"smsTekst": "x" * 161}},
        {"mobilnummer": "99999999"},
        "smsvarsel: varslingstekst",
    ),
    "bad e-mail address": (
        {"varsler": {"epostTekst": "Ny post"}},
        {"epostAdresse": "ikke en adresse"},
        "epostadresse",
    ),
    "missing metadata document": ({"metadataFiler": {"vedtak.pdf": "borte.xml"}}, {}, "borte.xml"),
    "bad virkningsdato": ({"digitalPostInfo": {"virkningsdato": "i morgen"}}, {}, "virkningsdato"),
    "avsenderId too long": ({"avsenderId": "x" * 101}, {}, "avsenderidentifikator"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_messages_dpi_cannot_carry_are_refused_naming_the_field(
    case: str, fake: Any, kit: Any
) -> None:
    body, record, expected = REFUSALS[case]
    with pytest.raises(PermanentError, match=expected):
        plan(_digital(fake, kit, body, **record))


def test_an_expired_provider_certificate_is_refused(fake: Any, kit: Any, ca: Any) -> None:
    expired = ca.issue("984661185", not_before=datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(PermanentError, match="expired"):
        plan(_digital(fake, kit, pemCertificate=pem(expired.certificate).decode()))


def test_other_refusals(fake: Any, kit: Any) -> None:
    with pytest.raises(PermanentError, match="no service record"):
        plan(
            kit.message(
                "digital", None, kit.digital_body(), [kit.attachment("vedtak.pdf", kit.PDF)]
            )
        )
    with pytest.raises(PermanentError, match="no main document"):
        plan(
            kit.message(
                "digital",
                kit.service_record(fake),
                kit.digital_body(hoveddokument=None),
                [kit.attachment("x.pdf", kit.PDF)],
            )
        )
    unsigned = dataclasses.replace(_digital(fake, kit), sender="")
    with pytest.raises(PermanentError, match="names no sender"):
        plan(unsigned)
    header = _wire(plan(unsigned, organisation=kit.ORG))["standardBusinessDocumentHeader"]
    assert header["sender"][0]["identifier"]["value"] == f"0192:{kit.ORG}"
    with pytest.raises(PermanentError, match="at most 100"):
        plan(_digital(fake, kit), size_limit=100)
    with pytest.raises(PermanentError, match=r"print\.mottaker"):
        plan(_print(fake, kit, {"mottaker": {"navn": "Uten adresse"}}))


def test_print_without_a_receiver_goes_to_the_configured_print_provider(
    fake: Any, kit: Any
) -> None:
    letter = dataclasses.replace(_print(fake, kit), receiver="", service_record=None)
    with pytest.raises(PermanentError, match=r"channels\.dpi\.print_provider"):
        plan(letter)
    provider = {
        "orgnrPostkasse": fake.printer.organisation_number,
        "pemCertificate": pem(fake.printer.certificate).decode(),
    }
    shipment = plan(letter, print_provider=provider)
    assert shipment.provider == fake.printer.organisation_number
    assert shipment.recipient == fake.printer.certificate
    assert _wire(shipment)["utskrift"]["mottaker"]["navn"] == "Kari Nordmann"
    with pytest.raises(PermanentError, match="no service record"):
        plan(dataclasses.replace(_digital(fake, kit), service_record=None), print_provider=provider)
