"""The Next Move API's rules beyond the documented examples: Content-Disposition forms, file and
size rules, multipart limits, the send checks, lifetimes, and bad input, which always gets the
documented 400 body, never a 500, and never leaves anything stored."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from conftest import OWN_ORG, Gateway
from ipunkt.sbd.times import format_datetime, now_oslo

STANDARDS = {
    "arkivmelding": ("urn:no:difi:arkivmelding:xsd::arkivmelding",
                     "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"),
    "innsynskrav": ("urn:no:difi:einnsyn:xsd::innsynskrav",
                    "urn:no:difi:profile:einnsyn:innsynskrav:ver1.0"),
    "digital_dpv": ("urn:no:difi:digitalpost:xsd:digital::digital_dpv",
                    "urn:no:difi:profile:digitalpost:info:ver1.0"),
    "digital": ("urn:no:difi:digitalpost:xsd:digital::digital",
                "urn:no:difi:profile:digitalpost:info:ver1.0"),
}
BODIES: dict[str, dict[str, Any]] = {
    "arkivmelding": {"hoveddokument": "main.pdf"},
    "innsynskrav": {"orgnr": OWN_ORG, "epost": "innsyn@example.no"},
    "digital_dpv": {"tittel": "T", "sammendrag": "S", "innhold": "I"},
    "digital": {"sikkerhetsnivaa": 3, "hoveddokument": "a.pdf", "tittel": "T", "spraak": "NO",
                "digitalPostInfo": {"virkningsdato": "2030-01-01", "aapningskvittering": False},
                "varsler": {"epostTekst": "E", "smsTekst": "S"},
                "metadataFiler": {"a.pdf": "a.xml"}},
}
ARKIVMELDING_XML = """<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>case</systemID>
    <registrering><offentligTittel>Title</offentligTittel>
      <journalpostnummer>7</journalpostnummer>
      <dokumentbeskrivelse><dokumentobjekt>
        <referanseDokumentfil>main.pdf</referanseDokumentfil>
      </dokumentobjekt></dokumentbeskrivelse>
    </registrering>
  </mappe>
</arkivmelding>"""


def new_sbd(kind: str = "arkivmelding", *, lifetime: timedelta | None = timedelta(days=1),
            message_id: str | None = None) -> dict[str, Any]:
    standard, process = STANDARDS[kind]
    scope: dict[str, Any] = {"type": "ConversationId", "instanceIdentifier": str(uuid.uuid4()),
                             "identifier": process}
    if lifetime is not None:
        scope["scopeInformation"] = [{"expectedResponseDateTime": format_datetime(
            (now_oslo() + lifetime).replace(microsecond=0))}]
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "receiver": [{"identifier": {"value": "0192:910075918",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {"standard": standard, "typeVersion": "1.0",
                                       "instanceIdentifier": message_id or str(uuid.uuid4()),
                                       "type": kind},
            "businessScope": {"scope": [scope]},
        },
        kind: copy.deepcopy(BODIES[kind]),
    }


def message_id_of(sbd: dict[str, Any]) -> str:
    return str(sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"])


async def create(gw: Gateway, kind: str = "arkivmelding", **options: Any) -> str:
    sbd = new_sbd(kind, **options)
    response = await gw.client.post("/api/messages/out", json=sbd)
    assert response.status == 200, await response.text()
    return message_id_of(sbd)


async def upload(gw: Gateway, message_id: str, disposition: str, data: bytes | Any = b"x",
                 content_type: str = "text/plain", **headers: str) -> Any:
    return await gw.client.put(f"/api/messages/out/{message_id}", data=data, headers={
        "Content-Type": content_type, "Content-Disposition": disposition, **headers})


async def files(gw: Gateway, message_id: str) -> list[tuple[str, str | None]]:
    record = await gw.nextmove.outgoing.get(message_id)
    return [(f.filename, f.title) for f in await gw.nextmove.store.files(record)]


async def assert_refused(response: Any, message: str, exception: str | None = None) -> Any:
    assert response.status == 400, await response.text()
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    assert body["status"] == 400 and body["error"] == "Bad Request"
    assert message in body["message"], body["message"]
    if exception is not None:
        assert body["exception"] == exception
    return body


def payload_files(gw: Gateway) -> list[Path]:
    root = gw.path / "payloads"
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"]


async def nothing_stored(gw: Gateway) -> None:
    listed = await (await gw.client.get("/api/messages/out")).json()
    assert listed["totalElements"] == 0
    conversations = await (await gw.client.get("/api/conversations")).json()
    assert conversations["totalElements"] == 0
    assert payload_files(gw) == []


# --- Content-Disposition -------------------------------------------------------------------------

DISPOSITIONS = [
    ('attachment; filename="quoted name.txt"', "quoted name.txt", None),
    ("attachment; filename=unquoted.txt", "unquoted.txt", None),
    ("attachment; name=Before The Law; filename=before_the_law.txt", "before_the_law.txt",
     "Before The Law"),
    ('form-data; name="A title"; filename="form.txt"', "form.txt", "A title"),
    ("attachment; filename*=UTF-8''%C3%A6%C3%B8%C3%A5.txt", "æøå.txt", None),
    ("attachment; filename=\"fallback.txt\"; filename*=utf-8'no'%E2%82%AC-rates.txt",
     "€-rates.txt", None),
    ("attachment; filename*=iso-8859-1''%E6blegr%F8d.txt", "æblegrød.txt", None),
    ("attachment; name*=UTF-8''Tittel%20%C3%A6; filename=t.txt", "t.txt", "Tittel æ"),
    ('attachment; FILENAME="upper.txt"; NAME="Upper"', "upper.txt", "Upper"),
    ("filename=no-type.txt", "no-type.txt", None),
    ('attachment; filename="C:\\\\Users\\\\me\\\\path.txt"', "path.txt", None),
    ('attachment; filename="semi;colon.txt"', "semi;colon.txt", None),
]


async def test_every_content_disposition_form(gateway: Gateway) -> None:
    message_id = await create(gateway)
    for header, _, _ in DISPOSITIONS:
        response = await upload(gateway, message_id, header)
        assert response.status == 200, (header, await response.text())
    assert await files(gateway, message_id) == [(name, title) for _, name, title in DISPOSITIONS]


async def test_the_title_parameter_wins_over_the_name(gateway: Gateway) -> None:
    message_id = await create(gateway)
    response = await gateway.client.put(
        f"/api/messages/out/{message_id}?title=From%20query", data=b"x",
        headers={"Content-Disposition": "attachment; name=From header; filename=a.txt"})
    assert response.status == 200
    assert await files(gateway, message_id) == [("a.txt", "From query")]
    record = await gateway.nextmove.outgoing.get(message_id)
    stored = await gateway.nextmove.store.files(record)
    assert stored[0].mime_type == "text/plain"  # guessed from the name: no Content-Type sent


@pytest.mark.parametrize("header", [None, "", "attachment", "attachment; name=Only a title",
                                    "attachment; filename*=UTF-8''%FF%FE.txt",
                                    "attachment; filename*=EBCDIC''abc.txt"])
async def test_a_disposition_that_names_no_file_is_refused(gateway: Gateway,
                                                           header: str | None) -> None:
    message_id = await create(gateway)
    headers = {"Content-Type": "text/plain"}
    if header is not None:
        headers["Content-Disposition"] = header
    response = await gateway.client.put(f"/api/messages/out/{message_id}", data=b"x",
                                        headers=headers)
    body = await assert_refused(response, "Expected a HTTP header named 'Content-Disposition'",
                                "no.difi.meldingsutveksling.exceptions."
                                "MissingHttpHeaderException")
    assert body["path"] == f"/api/messages/out/{message_id}"
    assert await files(gateway, message_id) == []
    assert payload_files(gateway) == []


# --- file rules and the channel's size limit ------------------------------------------------------


async def test_a_duplicate_file_name_is_refused(gateway: Gateway) -> None:
    message_id = await create(gateway)
    assert (await upload(gateway, message_id, "attachment; filename=a.txt")).status == 200
    response = await upload(gateway, message_id, 'attachment; filename="a.txt"', b"other")
    await assert_refused(response, "Filename already exists in message: a.txt.")
    assert await files(gateway, message_id) == [("a.txt", None)]
    assert len(payload_files(gateway)) == 1


async def chunked(size: int, block: int = 64 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        piece = min(block, size - sent)
        sent += piece
        yield b"z" * piece


@pytest.mark.parametrize("declared", [True, False])
async def test_the_channels_size_limit(gateway: Gateway, declared: bool) -> None:
    """DPE takes 2 MiB per message: a file past it is refused, declared or streamed."""
    message_id = await create(gateway, "innsynskrav")
    limit = 2 * 1024 * 1024
    assert (await upload(gateway, message_id, "attachment; filename=first.txt",
                         b"a" * (limit - 10))).status == 200
    data: Any = b"b" * 11 if declared else chunked(11)
    response = await upload(gateway, message_id, "attachment; filename=second.txt", data)
    await assert_refused(
        response, "The combined file size for all attachments (2MB) exceeds the maximum "
                  "allowed upload size for the target service (DPE, 2MB)",
        "no.difi.meldingsutveksling.exceptions.MaxFileSizeExceededException")
    assert await files(gateway, message_id) == [("first.txt", None)]
    assert len(payload_files(gateway)) == 1


async def test_a_large_streamed_file_past_the_limit_is_refused_and_not_kept(
    gateway: Gateway,
) -> None:
    message_id = await create(gateway, "innsynskrav")
    response = await upload(gateway, message_id, "attachment; filename=big.bin",
                            chunked(3 * 1024 * 1024), "application/octet-stream")
    await assert_refused(response, "exceeds the maximum allowed upload size")
    assert await files(gateway, message_id) == []
    assert payload_files(gateway) == []


async def test_dpv_needs_a_title_on_every_file(gateway: Gateway) -> None:
    message_id = await create(gateway, "digital_dpv")
    response = await upload(gateway, message_id, "attachment; filename=a.pdf")
    await assert_refused(response, "Title is required for the following capabilities: DPV")
    assert (await upload(gateway, message_id, "attachment; name=A; filename=a.pdf")).status == 200


# --- multipart ------------------------------------------------------------------------------------


def multipart(sbd: dict[str, Any], *parts: tuple[str, str, bytes]) -> FormData:
    form = FormData()
    form.add_field("sbd", json.dumps(sbd), content_type="application/json")
    for title, filename, data in parts:
        form.add_field(title, data, filename=filename, content_type="application/pdf")
    return form


async def test_multipart_refuses_a_file_over_5_mib_and_keeps_nothing(gateway: Gateway) -> None:
    sbd = new_sbd()
    form = multipart(sbd, ("Small", "arkivmelding.xml", ARKIVMELDING_XML.encode()),
                     ("Big", "main.pdf", b"p" * (5 * 1024 * 1024 + 1)))
    response = await gateway.client.post("/api/messages/out/multipart", data=form)
    await assert_refused(
        response, "The attachment named 'main.pdf' is too large. The maximum size for "
                  "multipart requests is 5242880 bytes.",
        "no.difi.meldingsutveksling.exceptions.MultipartFileToLargeException")
    await nothing_stored(gateway)


async def test_multipart_refuses_duplicate_file_names_and_keeps_nothing(
    gateway: Gateway,
) -> None:
    sbd = new_sbd()
    form = multipart(sbd, ("One", "main.pdf", b"1"), ("Two", "main.pdf", b"2"),
                     ("Xml", "arkivmelding.xml", ARKIVMELDING_XML.encode()))
    response = await gateway.client.post("/api/messages/out/multipart", data=form)
    await assert_refused(response, "Filename already exists in message: main.pdf.")
    await nothing_stored(gateway)


async def test_multipart_at_exactly_5_mib_is_taken(gateway: Gateway) -> None:
    sbd = new_sbd()
    form = multipart(sbd, ("Main", "main.pdf", b"p" * (5 * 1024 * 1024)),
                     ("Xml", "arkivmelding.xml", ARKIVMELDING_XML.encode()))
    response = await gateway.client.post("/api/messages/out/multipart", data=form)
    assert response.status == 200, await response.text()
    assert (await gateway.nextmove.outgoing.get(message_id_of(sbd))).queued


async def test_multipart_without_the_sbd_part(gateway: Gateway) -> None:
    form = FormData()
    form.add_field("Main", b"x", filename="main.pdf", content_type="application/pdf")
    response = await gateway.client.post("/api/messages/out/multipart", data=form)
    await assert_refused(response, "Expected a HTTP header named 'sbd'")
    await nothing_stored(gateway)


# --- sending --------------------------------------------------------------------------------------


async def test_the_arkivmelding_send_checks(gateway: Gateway) -> None:
    message_id = await create(gateway)
    send = f"/api/messages/out/{message_id}"
    await assert_refused(await gateway.client.post(send),
                         "There must always be at least one attachment")
    assert (await upload(gateway, message_id, "attachment; filename=other.txt")).status == 200
    await assert_refused(await gateway.client.post(send),
                         "DPO message type requires arkivmelding.xml attachment")
    assert (await upload(gateway, message_id, "attachment; filename=arkivmelding.xml",
                         ARKIVMELDING_XML.encode(), "application/xml")).status == 200
    body = await assert_refused(await gateway.client.post(send), "")
    assert body["message"] == (
        "File(s) defined in arkivmelding, but not found in message: main.pdf")
    assert not (await gateway.nextmove.outgoing.get(message_id)).queued
    assert (await upload(gateway, message_id, "attachment; filename=main.pdf",
                         b"%PDF", "application/pdf")).status == 200
    sent = await gateway.client.post(send, data=b"{}", headers={"Content-Type":
                                                                "application/json"})
    assert sent.status == 200 and await sent.read() == b""
    assert (await gateway.nextmove.outgoing.get(message_id)).queued
    again = await gateway.client.post(send + "/")  # without a body, with a trailing slash
    assert again.status == 200
    late = await upload(gateway, message_id, "attachment; filename=late.txt")
    await assert_refused(late, "has been sent; its files cannot change")


async def test_a_message_whose_lifetime_ran_out_is_not_sent(gateway: Gateway) -> None:
    message_id = await create(gateway, lifetime=timedelta(minutes=10))
    for name, data in (("arkivmelding.xml", ARKIVMELDING_XML.encode()), ("main.pdf", b"%PDF")):
        assert (await upload(gateway, message_id, f"attachment; filename={name}",
                             data)).status == 200
    gateway.clock.offset = timedelta(minutes=11)
    response = await gateway.client.post(f"/api/messages/out/{message_id}")
    body = await assert_refused(response, "has been exceeded. Please resend the message",
                                "no.difi.meldingsutveksling.exceptions.TimeToLiveException")
    assert body["message"].startswith("ExpectedResponseDateTime 20")
    statuses = await (await gateway.client.get(f"/api/statuses/{message_id}")).json()
    assert [s["status"] for s in statuses["content"]] == ["OPPRETTET", "LEVETID_UTLOPT"]
    assert statuses["content"][1]["description"] == (
        "Levetiden for meldingen er utgått. Må sendes på nytt")
    assert not (await gateway.nextmove.outgoing.get(message_id)).queued


async def test_an_sbd_whose_lifetime_has_passed_is_refused_at_create(gateway: Gateway) -> None:
    sbd = new_sbd(lifetime=-timedelta(minutes=1))
    response = await gateway.client.post("/api/messages/out", json=sbd)
    body = await assert_refused(response, "must be a future date")
    assert body["errors"][0]["field"] == (
        "standardBusinessDocumentHeader.businessScope.scope[0].scopeInformation[0]."
        "expectedResponseDateTime")
    await nothing_stored(gateway)


async def test_defaults_are_filled_in(gateway: Gateway) -> None:
    sbd = new_sbd("digital_dpv", lifetime=None)
    header = sbd["standardBusinessDocumentHeader"]
    del header["documentIdentification"]["instanceIdentifier"]
    del header["businessScope"]["scope"][0]["instanceIdentifier"]
    before = now_oslo()
    response = await gateway.client.post("/api/messages/out", json=sbd)
    assert response.status == 200
    written = (await response.json())["standardBusinessDocumentHeader"]
    ident = written["documentIdentification"]
    scope = written["businessScope"]["scope"][0]
    assert uuid.UUID(ident["instanceIdentifier"]) and uuid.UUID(scope["instanceIdentifier"])
    assert written["sender"][0]["identifier"] == {"value": f"0192:{OWN_ORG}",
                                                  "authority": "iso6523-actorid-upis"}
    from ipunkt.sbd.times import parse_datetime

    created = parse_datetime(ident["creationDateAndTime"])
    assert before - timedelta(seconds=1) <= created <= now_oslo()
    expires = parse_datetime(scope["scopeInformation"][0]["expectedResponseDateTime"])
    assert abs(expires - (created + timedelta(hours=168))) < timedelta(seconds=2)  # DPV's TTL


# --- bad input: the documented 400, nothing stored, never a 500 -----------------------------------

NOT_READABLE = "org.springframework.http.converter.HttpMessageNotReadableException"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "Required request body is missing"),
    (b"   \n", "Required request body is missing"),
    (b"{not json", "JSON parse error"),
    (b"[1, 2, 3]", "must be a JSON object"),
    (b'"a string"', "must be a JSON object"),
    (b"\xff\xfe\x00", "JSON parse error"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
    (b'{"standardBusinessDocumentHeader": "\\ud800"}', "lone UTF-16 surrogate"),
    (b'{"arkivmelding": {"hoveddokument": "a\\udc00b.txt"}}', "lone UTF-16 surrogate"),
])
async def test_unreadable_bodies(gateway: Gateway, body: bytes, message: str) -> None:
    response = await gateway.client.post("/api/messages/out", data=body,
                                         headers={"Content-Type": "application/json"})
    await assert_refused(response, message, NOT_READABLE)
    await nothing_stored(gateway)


@pytest.mark.parametrize("declared", [True, False])
async def test_a_huge_sbd_is_refused(gateway: Gateway, declared: bool) -> None:
    sbd = new_sbd()
    sbd["arkivmelding"]["padding"] = "p" * (11 * 1024 * 1024)
    raw = json.dumps(sbd).encode()
    data: Any = raw if declared else chunked(len(raw))
    response = await gateway.client.post("/api/messages/out", data=data,
                                         headers={"Content-Type": "application/json"})
    await assert_refused(response, "The SBD is larger than 10485760 bytes", NOT_READABLE)
    await nothing_stored(gateway)


@pytest.mark.parametrize("kind", ["strange", "feil", "fiksio", None, 7])
async def test_unknown_or_missing_message_types(gateway: Gateway, kind: Any) -> None:
    sbd = new_sbd()
    sbd["standardBusinessDocumentHeader"]["documentIdentification"]["type"] = kind
    response = await gateway.client.post("/api/messages/out", json=sbd)
    body = await assert_refused(response, "")
    if kind in ("feil", "fiksio"):  # NextMove types this integration point cannot create
        assert body["message"].startswith(f"Unknown NextMove document type {kind}. Expected "
                                          "one of the following values: ")
    else:
        field = "standardBusinessDocumentHeader.documentIdentification.type"
        assert [e["field"] for e in body["errors"]] == [field]
    await nothing_stored(gateway)


async def test_a_wrong_shape_names_each_field(gateway: Gateway) -> None:
    sbd = new_sbd()
    sbd["standardBusinessDocumentHeader"]["receiver"] = "0192:910075918"
    sbd["standardBusinessDocumentHeader"]["businessScope"] = {"scope": [{"type": "Nonsense"}]}
    sbd["arkivmelding"] = ["not", "an", "object"]
    response = await gateway.client.post("/api/messages/out", json=sbd)
    body = await assert_refused(response, "",
                                "javax.validation.ConstraintViolationException")
    fields = {e["field"]: e["rejectedValue"] for e in body["errors"]}
    assert fields["standardBusinessDocumentHeader.receiver"] == "0192:910075918"
    assert "arkivmelding" in fields
    await nothing_stored(gateway)


NASTY: list[Any] = [None, "", " ", 0, -1, 2**63, 1e308, True, False, [], {}, [None], {"a": None},
                    "x" * 5000, "\u0000", "💥", "2019-02-30T00:00:00", "../../etc/passwd",
                    [[[[[]]]]], {"$ref": "#"}, "NaN"]


def leaves(value: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [where] + [p for k, v in value.items() for p in leaves(v, (*where, k))]
    if isinstance(value, list):
        return [where] + [p for i, v in enumerate(value) for p in leaves(v, (*where, i))]
    return [where]


def replaced(value: Any, where: tuple[Any, ...], new: Any) -> Any:
    """``value`` with the node at ``where`` replaced (unchanged if an earlier change took it)."""
    if not where:
        return new
    if isinstance(value, dict) and where[0] not in value:
        return value
    if not isinstance(value, dict) and not (
        isinstance(value, list) and isinstance(where[0], int) and where[0] < len(value)
    ):
        return value
    copied = copy.copy(value)
    copied[where[0]] = replaced(value[where[0]], where[1:], new)
    return copied


@pytest.mark.parametrize("kind", ["arkivmelding", "digital"])
async def test_mangled_sbds_never_give_a_500(gateway: Gateway, kind: str) -> None:
    """Every node of a valid SBD replaced by hostile values, one or three at a time."""
    chance = random.Random(4)
    template = new_sbd(kind)
    places = leaves(template)[1:]
    statuses: dict[int, int] = {}
    for attempt in range(250):
        sbd = template
        for _ in range(1 if attempt < len(places) else 3):
            sbd = replaced(sbd, chance.choice(places) if attempt >= len(places)
                           else places[attempt], chance.choice(NASTY))
        header = sbd.get("standardBusinessDocumentHeader")
        ident = header.get("documentIdentification") if isinstance(header, dict) else None
        if isinstance(ident, dict) and ident.get("instanceIdentifier") == message_id_of(template):
            sbd = replaced(sbd, ("standardBusinessDocumentHeader", "documentIdentification",
                                 "instanceIdentifier"), str(uuid.uuid4()))
        response = await gateway.client.post("/api/messages/out", json=sbd)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status in (200, 400), (sbd, await response.text())
        if response.status == 400:
            body = await response.json()
            assert body["status"] == 400 and body["path"] == "/api/messages/out"
    assert statuses.get(400, 0) > 100 and statuses.get(200, 0) > 0, statuses


@pytest.mark.parametrize(("path", "status", "message"), [
    ("/api/messages/out?page=abc", 400, "Parameter 'page' must be a whole number"),
    ("/api/messages/out?sort=nonsense,desc", 400, "No property 'nonsense' found to sort by"),
    ("/api/statuses?fromDateTime=yesterday", 400, "Parameter 'fromDateTime'"),
    ("/api/statuses?id=one", 400, "Parameter 'id' must be a whole number"),
    ("/api/conversations?direction=SIDEWAYS", 400, "must be OUTGOING or INCOMING"),
    ("/api/conversations?finished=perhaps", 400, "must be true or false"),
    ("/api/conversations?lastUpdateFrom=2019-13-45", 400, "Parameter 'lastUpdateFrom'"),
    ("/api/statuses?toDateTime=9999-12-31", 200, None),
    ("/api/messages/out?size=0", 200, None),
    ("/api/messages/out?size=-5&page=-2", 200, None),
    ("/api/conversations?lastUpdateTo=9999-12-31", 200, None),
    ("/api/conversations/not-a-number", 404, "Conversation with id = not-a-number was not found"),
])
async def test_odd_query_parameters(gateway: Gateway, path: str, status: int,
                            message: str | None) -> None:
    response = await gateway.client.get(path)
    assert response.status == status
    body = await response.json()
    if message is not None:
        assert message in body["message"], body["message"]
    elif "size=" in path:  # as Spring: a size below 1 is the default, a page below 0 the first
        assert (body["size"], body["number"]) == (10, 0)


async def test_a_status_id_that_is_no_number(gateway: Gateway) -> None:
    response = await gateway.client.delete("/api/statuses/abc")
    await assert_refused(response, "The status id must be a whole number, not 'abc'")


async def test_upload_headers_in_iso_8859_1_are_read_as_tomcat_reads_them(
    gateway: Gateway,
) -> None:
    """Java clients often send file names and titles in ISO-8859-1 rather than UTF-8."""
    message_id = await create(gateway)
    server = gateway.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"PUT /api/messages/out/{message_id} HTTP/1.1\r\nHost: x\r\n".encode()
        + b"Content-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n"
        + "Content-Disposition: attachment; name=Rådhus; filename=råd.txt\r\n\r\nx".encode(
            "iso-8859-1"))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert await files(gateway, message_id) == [("råd.txt", "Rådhus")]


async def test_an_unexpected_failure_is_answered_in_the_originals_shape(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(gateway.nextmove.store, "find_messages", broken)
    response = await gateway.client.get("/api/messages/out")
    assert response.status == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    text = await response.text()
    assert '"status" : 500' in text and "the disk went away" not in text
    assert json.loads(text)["error"] == "Internal Server Error"


async def test_a_json_body_in_a_declared_charset_is_read_in_it(gateway: Gateway) -> None:
    sbd = new_sbd()
    sbd["arkivmelding"]["hoveddokument"] = "rådhus.pdf"
    for charset, status in (("ISO-8859-1", 200), ("x-no-such-charset", 400)):
        sbd["standardBusinessDocumentHeader"]["documentIdentification"]["instanceIdentifier"] = (
            str(uuid.uuid4()))
        response = await gateway.client.post(
            "/api/messages/out", data=json.dumps(sbd, ensure_ascii=False).encode("iso-8859-1"),
            headers={"Content-Type": f"application/json; charset={charset}"})
        assert response.status == status, await response.text()
    assert "rådhus.pdf" in (await (await gateway.client.get("/api/messages/out")).text())
