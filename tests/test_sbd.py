"""The SBD model: round trips of the documented SBDs, defaults, liberal reading, strict writing."""

from __future__ import annotations

import copy
import json
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from ipunkt.sbd import SbdFormatError, SbdInvalid, parse_sbd, parse_sbd_text
from ipunkt.sbd.times import OSLO, TimeFormatError, format_datetime, parse_date, parse_datetime

sys.path.insert(0, str(Path(__file__).parent / "api"))

from restdocs import load

CREATE = "Create message"

SBD: dict[str, Any] = {
    "standardBusinessDocumentHeader": {
        "headerVersion": "1.0",
        "sender": [{"identifier": {"value": "0192:910077473",
                                   "authority": "iso6523-actorid-upis"}}],
        "receiver": [{"identifier": {"value": "0192:910075918",
                                     "authority": "iso6523-actorid-upis"}}],
        "documentIdentification": {
            "standard": "urn:no:difi:digitalpost:xsd:digital::digital", "typeVersion": "1.0",
            "instanceIdentifier": "ff88849c-e281-4809-8555-7cd54952b916", "type": "digital",
            "creationDateAndTime": "2019-03-25T11:35:00+01:00"},
        "businessScope": {"scope": [{
            "type": "ConversationId", "instanceIdentifier": "ff88849c-e281-4809-8555-7cd54952b916",
            "identifier": "urn:no:difi:profile:digitalpost:info:ver1.0",
            "scopeInformation": [{"expectedResponseDateTime": "2019-04-25T11:38:23+02:00"}]}]},
    },
    "digital": {
        "sikkerhetsnivaa": 3, "hoveddokument": "a.pdf", "tittel": "Title", "spraak": "NO",
        "digitalPostInfo": {"virkningsdato": "2019-04-01", "aapningskvittering": False},
    },
}


def with_header(**changes: Any) -> dict[str, Any]:
    sbd = copy.deepcopy(SBD)
    sbd["standardBusinessDocumentHeader"].update(changes)
    return sbd


def nulls(value: Any, where: str = "") -> list[str]:
    """Every path in ``value`` that holds a JSON null."""
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{where}[{i}]")]
    return []


# --- round trips ----------------------------------------------------------------------------------


def documented_sbds(specs: Path) -> list[tuple[str, str]]:
    """(title, text) of every SBD the original answers with in the documentation."""
    found = []
    for (section, title), example in load(specs).items():
        body = example.response.body.strip()
        if not body.startswith("{") or example.status != 200:
            continue
        data = json.loads(body)
        if "standardBusinessDocumentHeader" in data:
            found.append((f"{section}: {title}", body))
        for item in data.get("content", []):
            if isinstance(item, dict) and "standardBusinessDocumentHeader" in item:
                found.append((f"{section}: {title} (page)", json.dumps(item)))
    return found


def test_every_documented_sbd_reads_and_writes_back_the_same(specs_dir: Path) -> None:
    sbds = documented_sbds(specs_dir)
    assert len(sbds) >= 10
    for title, text in sbds:
        sbd = parse_sbd_text(text)
        assert sbd.to_json() == json.loads(text), title
        assert nulls(sbd.to_json()) == [], title


def test_the_written_text_is_byte_for_byte_the_originals(specs_dir: Path) -> None:
    """The create answers are Jackson's pretty print: the same bytes come out."""
    examples = load(specs_dir)
    for number in range(1, 7):
        title = next(t for (s, t) in examples if s == CREATE and t.startswith(f"Example {number}"))
        documented = examples[(CREATE, title)].response.body
        assert parse_sbd_text(documented).to_text() == documented, title


def test_the_published_sbd_template_reads_once_filled_in(specs_dir: Path) -> None:
    template = (specs_dir / "sbd-examples" / "arkivmelding-sbd.json").read_text()
    with pytest.raises(SbdInvalid, match="<leveringsfrist>"):  # placeholders are no times
        parse_sbd_text(template)
    text = (template.replace("<leveringsfrist>", "2030-01-01T12:00:00")
            .replace("<forretningsmeldingnavn>", "arkivmelding")
            .replace("<konversasjonsIdentifikator>", "ff88849c-e281-4809-8555-7cd54952b916"))
    sbd = parse_sbd_text(text)
    assert sbd.conversation_id == "ff88849c-e281-4809-8555-7cd54952b916"
    assert sbd.body_key == "arkivmelding" and sbd.business is not None
    assert sbd.expected_response == datetime(2030, 1, 1, 12, tzinfo=OSLO)


# --- defaults -------------------------------------------------------------------------------------


def test_maps_and_partner_lists_are_always_written() -> None:
    sbd = copy.deepcopy(SBD)
    del sbd["standardBusinessDocumentHeader"]["sender"]
    sbd["digital"]["metadataFiler"] = None
    written = parse_sbd(sbd).to_json()
    header = written["standardBusinessDocumentHeader"]
    assert header["sender"] == [] and header["receiver"][0]["identifier"]["value"] == (
        "0192:910075918")
    assert list(header)[:3] == ["headerVersion", "sender", "receiver"]  # the original's order
    assert written["digital"]["metadataFiler"] == {}
    print_sbd = with_header()
    print_sbd["standardBusinessDocumentHeader"]["documentIdentification"]["type"] = "print"
    print_sbd["print"] = print_sbd.pop("digital")
    assert parse_sbd(print_sbd).to_json()["print"]["printinstruksjoner"] == {}


# --- liberal reading ------------------------------------------------------------------------------

PLUS_ONE = timezone(timedelta(hours=1))
PLUS_TWO = timezone(timedelta(hours=2))


@pytest.mark.parametrize(("text", "expected"), [
    ("2019-03-25T11:38:23+01:00", datetime(2019, 3, 25, 11, 38, 23, tzinfo=PLUS_ONE)),
    ("2019-03-25T10:38:23Z", datetime(2019, 3, 25, 10, 38, 23, tzinfo=UTC)),
    ("2019-03-25t10:38:23z", datetime(2019, 3, 25, 10, 38, 23, tzinfo=UTC)),
    ("2019-03-25T11:38:23+0100", datetime(2019, 3, 25, 11, 38, 23, tzinfo=PLUS_ONE)),
    ("2019-03-25T11:38:23+01", datetime(2019, 3, 25, 11, 38, 23, tzinfo=PLUS_ONE)),
    ("2019-03-25T11:38:23.123456789+01:00",
     datetime(2019, 3, 25, 11, 38, 23, 123456, tzinfo=PLUS_ONE)),
    ("2019-03-25T11:38:23,5Z", datetime(2019, 3, 25, 11, 38, 23, 500000, tzinfo=UTC)),
    ("2019-03-25 11:38", datetime(2019, 3, 25, 11, 38, tzinfo=PLUS_ONE)),
    ("2019-03-25T11:38:23", datetime(2019, 3, 25, 11, 38, 23, tzinfo=PLUS_ONE)),  # winter: +1
    ("2019-07-01T12:00:00", datetime(2019, 7, 1, 12, tzinfo=PLUS_TWO)),  # summer in Oslo: +2
    ("2019-07-01T12:00:00+02:00[Europe/Oslo]", datetime(2019, 7, 1, 12, tzinfo=PLUS_TWO)),
    ("2019-07-01T12:00:00[UTC]", datetime(2019, 7, 1, 12, tzinfo=UTC)),
])
def test_times_in_every_form_the_field_sends(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


def test_a_time_without_offset_is_oslo_time() -> None:
    parsed = parse_datetime("2019-07-01T12:00:00")
    assert parsed.tzinfo is OSLO
    assert format_datetime(parsed) == "2019-07-01T12:00:00+02:00"


@pytest.mark.parametrize("text", ["yesterday", "2019-02-30T00:00:00", "2019-03-25T25:00:00",
                                  "2019-03-25T11:38:23+19:00", "2019-03-25T11:38:23[Mars/Base]",
                                  "2019-03-25T11:38:23.1234567890Z"])
def test_impossible_times_are_refused(text: str) -> None:
    with pytest.raises(TimeFormatError):
        parse_datetime(text)


def test_dates_alone_or_as_the_date_of_a_time() -> None:
    assert parse_date("2019-04-01") == date(2019, 4, 1)
    assert parse_date("2019-04-01T23:30:00+01:00") == date(2019, 4, 1)
    sbd = copy.deepcopy(SBD)
    sbd["digital"]["digitalPostInfo"]["virkningsdato"] = "2019-04-01T08:00:00Z"
    assert parse_sbd(sbd).to_json()["digital"]["digitalPostInfo"]["virkningsdato"] == "2019-04-01"


def test_times_in_the_sbd_are_read_liberally_and_written_as_the_original() -> None:
    sbd = copy.deepcopy(SBD)
    header = sbd["standardBusinessDocumentHeader"]
    header["documentIdentification"]["creationDateAndTime"] = "2019-03-25 11:35:00.120000000"
    header["businessScope"]["scope"][0]["scopeInformation"][0][
        "expectedResponseDateTime"] = "2019-04-25T09:38:23.000Z"
    written = parse_sbd(sbd).to_json()["standardBusinessDocumentHeader"]
    assert written["documentIdentification"]["creationDateAndTime"] == (
        "2019-03-25T11:35:00.120+01:00")
    assert written["businessScope"]["scope"][0]["scopeInformation"][0][
        "expectedResponseDateTime"] == "2019-04-25T09:38:23Z"


def test_explicit_nulls_read_as_absent_and_are_never_written() -> None:
    sbd = copy.deepcopy(SBD)
    header = sbd["standardBusinessDocumentHeader"]
    header["manifest"] = None
    header["documentIdentification"]["multipleType"] = None
    header["businessScope"]["scope"][0]["scopeInformation"] = None
    header["receiver"][0]["contactInformation"] = None
    sbd["digital"].update({"varsler": None, "avsenderId": None, "metadataFiler": None,
                           "digitalPostInfo": {"virkningsdato": "2019-04-01",
                                               "aapningskvittering": None}})
    written = parse_sbd(sbd).to_json()
    assert nulls(written) == []
    assert "manifest" not in written["standardBusinessDocumentHeader"]
    assert "scopeInformation" not in written["standardBusinessDocumentHeader"][
        "businessScope"]["scope"][0]
    assert written["digital"]["digitalPostInfo"] == {"virkningsdato": "2019-04-01"}
    assert "null" not in parse_sbd(sbd).to_text()


def test_other_liberties_unknown_fields_any_case_numbers_for_text() -> None:
    sbd = copy.deepcopy(SBD)
    sbd["standardBusinessDocumentHeader"]["receiver"][0]["identifier"]["value"] = 910075918
    sbd["standardBusinessDocumentHeader"]["unknownField"] = {"x": 1}
    sbd["DIGITAL"] = sbd.pop("digital")  # the body's key in another case
    sbd["DIGITAL"]["somethingNew"] = True
    parsed = parse_sbd(sbd)
    assert parsed.receiver == "910075918"
    written = parsed.to_json()
    assert "unknownField" not in written["standardBusinessDocumentHeader"]
    assert "somethingNew" not in written["digital"]
    print_sbd = copy.deepcopy(SBD)
    print_sbd["standardBusinessDocumentHeader"]["documentIdentification"]["type"] = "print"
    print_sbd["print"] = {"hoveddokument": "a.pdf", "utskriftsfarge": "farge",
                          "posttype": "b_oekonomi",
                          "retur": {"returhaandtering": "Direkte_Retur"}}
    written = parse_sbd(print_sbd).to_json()["print"]
    assert (written["utskriftsfarge"], written["posttype"], written["retur"]) == (
        "FARGE", "B_OEKONOMI", {"returhaandtering": "DIREKTE_RETUR"})


# --- refusals -------------------------------------------------------------------------------------


def test_a_mistyped_field_is_named_with_its_value() -> None:
    sbd = copy.deepcopy(SBD)
    sbd["digital"]["sikkerhetsnivaa"] = "high"
    sbd["standardBusinessDocumentHeader"]["businessScope"]["scope"][0]["scopeInformation"][0][
        "expectedResponseDateTime"] = "soon"
    with pytest.raises(SbdInvalid) as refused:
        parse_sbd(sbd)
    by_field = {v.field: v for v in refused.value.violations}
    assert by_field["digital.sikkerhetsnivaa"].rejected_value == "high"
    expected = by_field["standardBusinessDocumentHeader.businessScope.scope[0]."
                        "scopeInformation[0].expectedResponseDateTime"]
    assert expected.rejected_value == "soon"
    assert "ISO-8601" in expected.message
    assert all(v.as_json()["bindingFailure"] for v in refused.value.violations)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"text"', "{", "\xff"])
def test_what_is_not_a_json_object_is_a_format_error(text: str) -> None:
    with pytest.raises(SbdFormatError):
        parse_sbd_text(text.encode("latin-1"))


def test_the_test_kit_builds_an_sbd_the_api_takes_as_a_fagsystem_sends_it() -> None:
    """``ipunkt.testing.sbd``, which the suite and plugin authors build requests with."""
    from ipunkt.sbd.validation import header_violations
    from ipunkt.testing import sbd

    built = sbd("910075918", "3f1e6a52-7c0e-4b7e-9a43-0d6b1f1e2a10",
                sender="0192:910077473:991825827",
                conversation_id="5d2f4d1e-1111-4a4a-8b8b-2c2c2c2c2c2c")
    document = parse_sbd(built)
    assert header_violations(document, datetime.now(UTC)) == []
    assert document.receiver == "0192:910075918"
    assert document.sender == "0192:910077473:991825827"
    assert str(document.message_id) == "3f1e6a52-7c0e-4b7e-9a43-0d6b1f1e2a10"
    assert str(document.conversation_id) == "5d2f4d1e-1111-4a4a-8b8b-2c2c2c2c2c2c"
    assert built["arkivmelding"] == {"hoveddokument": "brev.txt"}

    left_out = sbd("01017012345", kind="digital", body={"tittel": "Vedtak"})
    header = left_out["standardBusinessDocumentHeader"]
    assert "sender" not in header
    assert header["receiver"][0]["identifier"]["value"] == "01017012345"
    assert "instanceIdentifier" not in header["documentIdentification"]
    assert "instanceIdentifier" not in header["businessScope"]["scope"][0]
    assert left_out["digital"] == {"tittel": "Vedtak"}
