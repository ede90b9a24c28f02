"""Every example request of the published NextMove API documentation, replayed.

Each answer is matched against the documented one: status, headers, and the body field by
field. Generated values (ids, creation and update times) are compared by shape only; the
documentation's fixed 2019 lifetimes are moved into the future before sending.
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import Gateway, MakeGateway, TableResolver
from ipunkt.plugin import ReceiptStatus
from ipunkt.sbd import parse_sbd
from ipunkt.sbd.times import format_datetime, now_oslo, parse_datetime
from ipunkt.store.base import StatusChange
from restdocs import Example, load

IGNORED = "<generated>"
GENERATED = {"timestamp", "creationDateAndTime", "id", "convId"}
SKIPPED_HEADERS = {"content-length", "host"}


@pytest.fixture(scope="module")
def examples(specs_dir: Path) -> dict[tuple[str, str], Example]:
    return load(specs_dir)


def future() -> str:
    return format_datetime((now_oslo() + timedelta(days=30)).replace(microsecond=0))


def with_future_lifetime(body: Any) -> Any:
    body = copy.deepcopy(body)
    for scope in body["standardBusinessDocumentHeader"]["businessScope"]["scope"]:
        for info in scope.get("scopeInformation", []):
            info["expectedResponseDateTime"] = future()
    return body


def masked(value: Any, keys: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: IGNORED if k in keys else masked(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, keys) for v in value]
    return value


def assert_headers(example: Example, response: Any) -> None:
    documented: dict[str, list[str]] = {}
    for name, value in example.response.headers:
        if name.lower() not in SKIPPED_HEADERS:
            documented.setdefault(name, []).append(value)
    for name, values in documented.items():
        assert response.headers.getall(name, []) == values, name
    if "Content-Type" not in documented and response.status != 204:
        assert "Content-Type" not in response.headers


async def replay(gw: Gateway, example: Example, *, body: Any = None, target: str | None = None,
                 raw: bytes | None = None) -> Any:
    request = example.request
    assert request is not None
    headers = {k: v for k, v in request.headers if k.lower() not in ("host", "content-length")}
    if raw is None and body is None and request.body:
        raw = request.body.encode()
    if body is not None:
        raw = json.dumps(body, ensure_ascii=False).encode()
    response = await gw.client.request(example.method, target or example.target, data=raw,
                                       headers=headers)
    assert response.status == example.status, await response.text()
    assert_headers(example, response)
    return response


async def assert_json(response: Any, documented: Any, keys: set[str] = GENERATED) -> Any:
    text = await response.text()
    actual = json.loads(text)
    assert masked(actual, keys) == masked(documented, keys)
    return actual


def sbd_of(example: Example) -> Any:
    return example.response.json()


async def receive(
    gw: Gateway, sbd: Any, service: str, asic: bytes | None = b"PK\x03\x04 asic"
) -> None:
    async def chunks() -> Any:
        if asic is not None:
            yield asic

    stored = await gw.nextmove.incoming.receive(parse_sbd(sbd), service,
                                                chunks() if asic is not None else None)
    assert stored


def incoming(examples: Any, title: str) -> list[Any]:
    return examples[("Find incoming messages", title)].response.json()["content"]


# --- outgoing: create ---------------------------------------------------------------------------

CREATES = [
    "Example 1 - Creating an arkivmelding message",
    "Example 2 - Creating a DPI digital message",
    "Example 3 - Creating a DPV digital message",
    "Example 4 - Creating a DPI print message",
    "Example 5 - Creating a DPE innsynskrav message",
    "Example 6 - Creating a DPE publisering message",
]


@pytest.mark.parametrize("title", CREATES)
async def test_create(examples: Any, gateway: Gateway, title: str) -> None:
    example = examples[("Create message", title)]
    body = with_future_lifetime(example.request.json())
    response = await replay(gateway, example, body=body)
    keys = GENERATED | {"expectedResponseDateTime"}
    actual = await assert_json(response, example.response.json(), keys)
    scope = actual["standardBusinessDocumentHeader"]["businessScope"]["scope"][0]
    sent = body["standardBusinessDocumentHeader"]["businessScope"]["scope"][0]
    assert scope["scopeInformation"] == sent["scopeInformation"]
    created = actual["standardBusinessDocumentHeader"]["documentIdentification"]
    assert abs(parse_datetime(created["creationDateAndTime"]) - now_oslo()) < timedelta(minutes=1)
    status = await gateway.client.get(f"/api/statuses/{created['instanceIdentifier']}")
    assert [s["status"] for s in (await status.json())["content"]] == ["OPPRETTET"]


async def test_validation_error(examples: Any, make_gateway: MakeGateway) -> None:
    """Example 7: the receiver's channel (DPI) is not enabled here."""
    resolver = TableResolver({("910075918", "urn:no:difi:digitalpost:xsd:digital::digital"):
                              "DPI"}, enabled={"DPO"})
    gw = await make_gateway(resolver=resolver)
    example = examples[("Create message", "Example 7 - Validation error")]
    request = examples[("Create message", CREATES[1])]
    response = await gw.client.post("/api/messages/out",
                                    json=with_future_lifetime(request.request.json()))
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    await assert_json(response, example.response.json())


async def test_constraint_violation(examples: Any, gateway: Gateway) -> None:
    """Example 8: an unknown message type, named in errors[] with its rejected value."""
    example = examples[("Create message", "Example 8 - Constraint violation")]
    body = with_future_lifetime(examples[("Create message", CREATES[0])].request.json())
    body["standardBusinessDocumentHeader"]["documentIdentification"]["type"] = "strange"
    response = await gateway.client.post("/api/messages/out", json=body)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    await assert_json(response, example.response.json())


# --- outgoing: files, send, read, delete ----------------------------------------------------------

ARKIVMELDING = """<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>system</systemID>
    <registrering><systemID>r1</systemID><offentligTittel>A message title</offentligTittel>
      <journalpostnummer>12463</journalpostnummer>
      <dokumentbeskrivelse><dokumentobjekt>
        <referanseDokumentfil>before_the_law.txt</referanseDokumentfil>
      </dokumentobjekt></dokumentbeskrivelse>
    </registrering>
  </mappe>
</arkivmelding>"""


async def create_example(gw: Gateway, examples: Any, title: str = CREATES[0]) -> Any:
    body = with_future_lifetime(examples[("Create message", title)].request.json())
    response = await gw.client.post("/api/messages/out", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_upload_send_get_delete(examples: Any, gateway: Gateway) -> None:
    await create_example(gateway, examples)
    await replay(gateway, examples[("Upload attachment", "Upload attachment")])
    upload = await gateway.client.put(
        "/api/messages/out/e99e5cd1-74de-4cce-b902-cecdf97dc4f3", data=ARKIVMELDING.encode(),
        headers={"Content-Type": "application/xml", "Content-Disposition":
                 'attachment; filename="arkivmelding.xml"'},
    )
    assert upload.status == 200, await upload.text()
    await replay(gateway, examples[("Send message", "Send message")])
    conversation = await gateway.client.get(
        "/api/conversations/messageId/e99e5cd1-74de-4cce-b902-cecdf97dc4f3")
    described = await conversation.json()
    assert described["messageTitle"] == "A message title"
    assert described["messageReference"] == "system-12463"
    get = examples[("Get outgoing message", "Get outgoing message")]
    response = await replay(gateway, get)
    await assert_json(response, get.response.json(), GENERATED | {"expectedResponseDateTime"})
    await replay(gateway, examples[("Delete message", "Delete message")])
    gone = await gateway.client.get(get.target)
    assert gone.status == 404
    assert (await gone.json())["message"] == (
        "Message with messageId = e99e5cd1-74de-4cce-b902-cecdf97dc4f3 was not found")


async def test_multipart(examples: Any, gateway: Gateway) -> None:
    example = examples[("Send multipart message", "Example 1 - Send a multipart arkivmelding")]
    documented = example.request.body
    old = "2019-04-25T11:38:23+02:00"
    raw = documented.replace(old, future()).replace("\n", "\r\n").encode() + b"\r\n"
    gateway.resolver.table[("910075918", "urn:no:difi:arkivmelding:xsd::arkivmelding")] = "DPV"
    response = await replay(gateway, example, raw=raw)
    await assert_json(response, example.response.json(), GENERATED | {"expectedResponseDateTime"})
    files = await gateway.nextmove.store.files(
        await gateway.nextmove.outgoing.get("e99e5cd1-74de-4cce-b902-cecdf97dc4f3"))
    assert [(f.filename, f.title, f.mime_type, f.primary) for f in files] == [
        ("before_the_law.txt", "Before The Law", "text/plain", True)]
    record = await gateway.nextmove.outgoing.get("e99e5cd1-74de-4cce-b902-cecdf97dc4f3")
    assert record.queued


FIND_OUT = "Find outgoing messages"


async def test_find_outgoing(examples: Any, gateway: Gateway) -> None:
    await create_example(gateway, examples, CREATES[0])
    await create_example(gateway, examples, CREATES[1])
    keys = GENERATED | {"expectedResponseDateTime"}
    for title in ("Example 1 - Find all outgoing messages",
                  "Example 2 - Find all outgoing DPO messages", "Example 3 - Sorting"):
        example = examples[(FIND_OUT, title)]
        await assert_json(await replay(gateway, example), example.response.json(), keys)


async def test_find_outgoing_paging(examples: Any, gateway: Gateway) -> None:
    """Page 3 of 41: the documented page is a mock with one element; ours has ten."""
    template = with_future_lifetime(examples[("Create message", CREATES[1])].request.json())
    ident = template["standardBusinessDocumentHeader"]["documentIdentification"]
    for number in range(41):
        body = copy.deepcopy(template)
        if number != 30:
            body["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"] = f"00000000-0000-4000-8000-{number:012d}"
        response = await gateway.client.post("/api/messages/out", json=body)
        assert response.status == 200
    example = examples[(FIND_OUT, "Example 4 - Paging")]
    actual = await (await replay(gateway, example)).json()
    documented = example.response.json()
    for key in ("pageable", "totalElements", "last", "totalPages", "sort", "first", "size",
                "number", "empty"):
        assert actual[key] == documented[key], key
    assert actual["numberOfElements"] == len(actual["content"]) == 10
    first = actual["content"][0]["standardBusinessDocumentHeader"]["documentIdentification"]
    assert first["instanceIdentifier"] == ident["instanceIdentifier"]
    keys = GENERATED | {"expectedResponseDateTime"}
    assert masked(actual["content"][0], keys) == masked(documented["content"][0], keys)


# --- incoming -----------------------------------------------------------------------------------

FIND_IN = "Find incoming messages"


async def test_find_incoming(examples: Any, gateway: Gateway) -> None:
    arkivmelding, publisering = incoming(examples, "Example 1 - Get all incoming messages")
    await receive(gateway, arkivmelding, "DPO")
    await receive(gateway, publisering, "DPE")
    for title in ("Example 1 - Get all incoming messages",
                  "Example 2 - Search for incoming DPO messages", "Example 3 - Sorting"):
        example = examples[(FIND_IN, title)]
        response = await replay(gateway, example)
        body = await response.read()
        assert json.loads(body) == example.response.json()
        assert body.decode() == example.response.body
        newlines = example.response.body.count("\n")
        assert len(body) + newlines == int(example.response.header("Content-Length"))


async def test_find_incoming_paging(examples: Any, gateway: Gateway) -> None:
    arkivmelding = incoming(examples, "Example 1 - Get all incoming messages")[0]
    for number in range(30):
        other = copy.deepcopy(arkivmelding)
        other["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"] = f"00000000-0000-4000-8000-{number:012d}"
        await receive(gateway, other, "DPO")
    await receive(gateway, arkivmelding, "DPO")
    example = examples[(FIND_IN, "Example 4 - Paging")]
    response = await replay(gateway, example)
    assert await response.json() == example.response.json()


async def test_peek(examples: Any, gateway: Gateway) -> None:
    arkivmelding, publisering = incoming(examples, "Example 1 - Get all incoming messages")
    await receive(gateway, publisering, "DPE")
    await receive(gateway, arkivmelding, "DPO")
    peek = examples[("Peek incoming messages", "Example 1 - Peek incoming message")]
    assert await (await replay(gateway, peek)).json() == peek.response.json()
    peek_dpe = examples[("Peek incoming messages", "Example 2 - Peek incoming DPE message")]
    gateway.clock.offset = timedelta(minutes=6)  # the first lock has run out
    assert await (await replay(gateway, peek_dpe)).json() == peek_dpe.response.json()
    response = await gateway.client.get("/api/messages/in/peek?serviceIdentifier=DPE")
    assert examples[("Peek incoming messages", "Example 3 - No more messages")].response
    assert response.status == 204
    assert response.headers["Content-Type"] == "application/json"
    assert await response.read() == b""  # HTTP forbids a body on 204; the doc shows one


async def test_pop_and_delete(examples: Any, gateway: Gateway) -> None:
    arkivmelding = incoming(examples, "Example 1 - Get all incoming messages")[0]
    asic = bytes(range(256)) * 4 + b"end"
    await receive(gateway, arkivmelding, "DPO", asic)
    not_locked = await gateway.client.get(
        "/api/messages/in/pop/e99e5cd1-74de-4cce-b902-cecdf97dc4f3")
    assert not_locked.status == 400
    assert (await not_locked.json())["exception"] == (
        "no.difi.meldingsutveksling.exceptions.MessageNotLockedException")
    peek = await gateway.client.get(
        "/api/messages/in/peek?messageId=e99e5cd1-74de-4cce-b902-cecdf97dc4f3")
    assert peek.status == 200
    pop = examples[("Pop incoming messages", "Example 1 - Download ASiC")]
    response = await replay(gateway, pop)
    assert await response.read() == asic
    assert response.headers["Content-Length"] == str(len(asic))
    delete = examples[("Delete incoming message", "Example 1 - Delete an incoming message")]
    response = await replay(gateway, delete)
    body = await response.read()
    assert body.decode() == delete.response.body
    statuses = await gateway.client.get(
        "/api/statuses/e99e5cd1-74de-4cce-b902-cecdf97dc4f3")
    assert [s["status"] for s in (await statuses.json())["content"]] == [
        "OPPRETTET", "INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
    gone = await gateway.client.get(delete.target.replace("/in/", "/in/pop/"))
    assert gone.status == 404


# --- conversations ------------------------------------------------------------------------------

CONV_OPTIONAL = {"serviceCode", "serviceEditionCode"}


def assert_conversation(actual: dict[str, Any], documented: dict[str, Any]) -> None:
    assert set(documented) - CONV_OPTIONAL <= set(actual) <= set(documented)
    for key in ("senderIdentifier", "receiverIdentifier", "processIdentifier", "finished",
                "direction", "serviceIdentifier"):
        assert actual[key] == documented[key], key
    for key in ("lastUpdate", "expiry"):
        parse_datetime(actual[key])
    wanted = {s["status"] for s in documented["messageStatuses"]}
    assert wanted <= {s["status"] for s in actual["messageStatuses"]}
    for status in actual["messageStatuses"]:
        assert set(status) <= {"id", "lastUpdate", "status", "description"}


def conversation_sbd(examples: Any, documented: dict[str, Any]) -> Any:
    sbd = copy.deepcopy(incoming(examples, "Example 1 - Get all incoming messages")[0])
    header = sbd["standardBusinessDocumentHeader"]
    header["documentIdentification"]["instanceIdentifier"] = documented["messageId"]
    header["businessScope"]["scope"][0]["instanceIdentifier"] = documented["conversationId"]
    header["businessScope"]["scope"][0]["identifier"] = documented["processIdentifier"]
    header["receiver"][0]["identifier"]["value"] = documented["receiverIdentifier"]
    return sbd


async def test_find_conversations(examples: Any, gateway: Gateway) -> None:
    example = examples[("Find conversations", "Example 1 - Get all conversations")]
    documented = example.response.json()["content"]
    for conv in reversed(documented):  # newest first: the first one is received last
        await receive(gateway, conversation_sbd(examples, conv), conv["serviceIdentifier"])
    actual = await (await replay(gateway, example)).json()
    assert [c["messageId"] for c in actual["content"]] == [c["messageId"] for c in documented]
    for ours, theirs in zip(actual["content"], documented, strict=True):
        assert_conversation(ours, theirs)
    for key in ("pageable", "totalElements", "last", "totalPages", "sort", "numberOfElements",
                "first", "size", "number", "empty"):
        assert actual[key] == example.response.json()[key], key
    search = examples[("Find conversations", "Example 2 - Search for conversations")]
    found = await (await replay(gateway, search)).json()
    assert [c["serviceIdentifier"] for c in found["content"]] == ["DPO"]
    assert found["totalElements"] == search.response.json()["totalElements"]
    sorting = examples[("Find conversations", "Example 3 - Sorting")]
    found = await (await replay(gateway, sorting)).json()
    assert [c["serviceIdentifier"] for c in found["content"]] == ["DPI", "DPO"]  # oldest first
    assert found["sort"] == sorting.response.json()["sort"]


async def test_conversations_paging(examples: Any, gateway: Gateway) -> None:
    example = examples[("Find conversations", "Example 4 - Paging")]
    documented = example.response.json()
    wanted = documented["content"][0]
    for number in range(31):
        conv = dict(wanted, messageId=f"00000000-0000-4000-8000-{number:012d}")
        await receive(gateway, conversation_sbd(examples, conv), "DPI")
    actual = await (await replay(gateway, example)).json()
    for key in ("pageable", "totalElements", "last", "totalPages", "sort", "numberOfElements",
                "first", "size", "number", "empty"):
        assert actual[key] == documented[key], key
    assert_conversation(actual["content"][0], wanted)


async def test_conversation_by_id_and_message_id(examples: Any, gateway: Gateway) -> None:
    by_id = examples[("Get conversation by id", "Example 1 - Get conversation")]
    missing = examples[("Get conversation by id", "Example 2 - Conversation not found")]
    response = await gateway.client.get("/api/conversations/49")
    assert response.status == 404
    await assert_json(response, missing.response.json())
    by_message = examples[("Get conversation by messageId", "Example 1 - Get conversation by "
                                                             "messageId")]
    documented = by_message.response.json()
    await receive(gateway, conversation_sbd(examples, documented), "DPO")
    actual = await (await replay(gateway, by_message)).json()
    assert actual["messageId"] == documented["messageId"]
    assert_conversation(actual, documented)
    response = await replay(gateway, by_id, target=f"/api/conversations/{actual['id']}")
    assert_conversation(await response.json(), by_id.response.json())
    not_found = examples[("Get conversation by messageId", "Example 2 - Conversation not found")]
    response = await gateway.client.get(
        "/api/conversations/messageId/df64afa1-83f4-497c-ae94-db22108801b9")
    await assert_json(response, not_found.response.json())
    delete = examples[("Delete conversation by messageId",
                       "Example: delete conversation by messageId")]
    await replay(gateway, delete)
    await replay(gateway, delete, target=f"/api/conversations/messageId/{documented['messageId']}")
    assert (await gateway.client.get(by_message.target)).status == 404
    await replay(gateway, examples[("Delete conversation by id",
                                    "Example: delete conversation by id")])


async def test_queued_conversations(examples: Any, gateway: Gateway) -> None:
    example = examples[("Queued conversations", "Example 1 - Get queued conversations")]
    documented = example.response.json()["content"]
    for conv in reversed(documented):
        await receive(gateway, conversation_sbd(examples, conv), conv["serviceIdentifier"])
        await gateway.nextmove.store.register_status(
            conv["messageId"], StatusChange("ANNET", now_oslo(), pollable=True))
    await receive(gateway, conversation_sbd(examples, dict(
        documented[0], messageId="00000000-0000-4000-8000-000000000001")), "DPO")
    actual = await (await replay(gateway, example)).json()
    assert [c["messageId"] for c in actual["content"]] == [c["messageId"] for c in documented]
    for ours, theirs in zip(actual["content"], documented, strict=True):
        assert_conversation(ours, theirs)


# --- statuses -----------------------------------------------------------------------------------

FIND_STATUS = "Find message statuses"


async def statuses_as_documented(gw: Gateway, examples: Any, before: int = 0) -> list[Any]:
    documented = examples[(FIND_STATUS, "Example 1 - Get all message statuses")].response.json()
    template = with_future_lifetime(examples[("Create message", CREATES[0])].request.json())
    for number in range(before):
        body = copy.deepcopy(template)
        body["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"] = f"00000000-0000-4000-8000-{number:012d}"
        await gw.client.post("/api/messages/out", json=body)
    for status in documented["content"]:
        body = copy.deepcopy(template)
        header = body["standardBusinessDocumentHeader"]
        header["documentIdentification"]["instanceIdentifier"] = status["messageId"]
        header["businessScope"]["scope"][0]["instanceIdentifier"] = status["conversationId"]
        assert (await gw.client.post("/api/messages/out", json=body)).status == 200
        await gw.nextmove.statuses.register(
            status["messageId"], ReceiptStatus(status["status"]),
            parse_datetime(status["lastUpdate"]), "DPO", description=status["description"])
    return documented["content"]


def instants(value: Any) -> Any:
    """Times as instants: the documentation writes November times with a summer offset."""
    if isinstance(value, dict):
        return {k: (parse_datetime(v).timestamp() if k == "lastUpdate" else instants(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [instants(v) for v in value]
    return value


def without_ids(statuses: list[Any]) -> list[Any]:
    return [instants(masked(s, {"id", "convId"})) for s in statuses]


async def test_find_statuses(examples: Any, gateway: Gateway) -> None:
    documented = await statuses_as_documented(gateway, examples)
    mottatt, levert = without_ids(documented)
    example = examples[(FIND_STATUS, "Example 1 - Get all message statuses")]
    actual = await (await replay(gateway, example)).json()
    ours = without_ids(actual["content"])
    assert [s for s in ours if s["status"] != "OPPRETTET"] == [mottatt, levert]
    assert {s["status"] for s in ours} == {"OPPRETTET", "MOTTATT", "LEVERT"}
    search = examples[(FIND_STATUS, "Example 2 - Search for message statuses")]
    found = await (await replay(gateway, search)).json()
    assert instants(masked(found, {"id", "convId"})) == instants(
        masked(search.response.json(), {"id", "convId"}))
    by_message = examples[("Find message statuses by messageId",
                           "Example 1 - Find all message statuses by messageId")]
    found = await (await replay(gateway, by_message)).json()
    assert [s for s in without_ids(found["content"]) if s["status"] != "OPPRETTET"] == [mottatt]
    sorting = examples[(FIND_STATUS, "Example 3 - Sorting")]
    found = await (await replay(gateway, sorting)).json()
    assert without_ids(found["content"])[:2] == [levert, mottatt]
    time_range = examples[(FIND_STATUS, "Example 5 - Time range")]
    found = await (await replay(gateway, time_range)).json()
    assert without_ids(found["content"]) == [levert]


async def test_statuses_paging(examples: Any, gateway: Gateway) -> None:
    await statuses_as_documented(gateway, examples, before=27)
    example = examples[(FIND_STATUS, "Example 4 - Paging")]
    actual = await (await replay(gateway, example)).json()
    documented = example.response.json()
    assert instants(masked(actual, {"id", "convId"})) == instants(
        masked(documented, {"id", "convId"}))


async def test_status_peek(examples: Any, make_gateway: MakeGateway) -> None:
    from ipunkt.messages.settings import MessagesSettings

    gw = await make_gateway(messages=MessagesSettings(status_queue_includes=["DPO"]))
    empty = examples[("Peek the latest message status", "Example 2 - Unsuccessful peek")]
    response = await gw.client.get("/api/statuses/peek")
    assert response.status == empty.status == 204
    template = with_future_lifetime(examples[("Create message", CREATES[0])].request.json())
    peek = examples[("Peek the latest message status", "Example 1 - Successfull peek")]
    documented = peek.response.json()
    header = template["standardBusinessDocumentHeader"]
    header["documentIdentification"]["instanceIdentifier"] = documented["messageId"]
    header["businessScope"]["scope"][0]["instanceIdentifier"] = documented["conversationId"]
    assert (await gw.client.post("/api/messages/out", json=template)).status == 200
    created = await (await gw.client.get("/api/statuses/peek")).json()
    assert created["status"] == "OPPRETTET"
    assert (await gw.client.delete(f"/api/statuses/{created['id']}")).status == 200
    assert (await gw.client.delete(f"/api/statuses/{created['id']}")).status == 404
    await gw.nextmove.statuses.register(
        documented["messageId"], ReceiptStatus.MOTTATT, parse_datetime(documented["lastUpdate"]),
        "DPO", description="Mottatt")
    response = await replay(gw, peek)
    assert instants(masked(await response.json(), {"id", "convId"})) == instants(
        masked(documented, {"id", "convId"}))
