"""``/api/subscriptions``: every documented example replayed, and the rules around them.

The documentation's push endpoint, ``http://my.pushendpoint.no/messages/incoming``, is served
by a local receiver acting as the HTTP proxy (``HTTP_PROXY``, which the dispatcher honours), so
the examples run unchanged and their pings really arrive, signed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import CHANNELS, DOC_TYPES, OWN_ORG, TableResolver
from ipunkt.api.middlewares import errors, request_context
from ipunkt.api.nextmove import build, setup
from ipunkt.api.settings import ApiSettings
from ipunkt.api.subscriptions import setup_routes
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.settings import WebhookSettings
from ipunkt.delivery.webhooks import WebhookDispatcher, verify
from ipunkt.messages.settings import MessagesSettings
from ipunkt.messages.subscriptions import Subscriptions
from ipunkt.sbd.times import parse_datetime
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import Keyring, MasterKey
from ipunkt.store.sqlite import SqliteStore
from ipunkt.testing import free_port
from pydantic import SecretStr
from restdocs import Example, load

SECRET = "receivers-know-this"
DOCUMENTED_ENDPOINT = "http://my.pushendpoint.no/messages/incoming"
SKIPPED_HEADERS = {"content-length", "host"}
LIST = "List all subscriptions"
GET = "Get a subscription"
CREATE = "Create a subscription"
UPDATE = "Update a subscription"


@dataclass
class Push:
    host: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A push endpoint: records what arrives and answers with the scripted status."""

    answers: list[int] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.pushes.append(Push(request.host, request.path, dict(request.headers),
                                await request.read()))
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    store: SqliteStore
    dispatcher: WebhookDispatcher
    receiver: Receiver


@pytest.fixture(scope="module")
def examples(specs_dir: Path) -> dict[tuple[str, str], Example]:
    return load(specs_dir)


@pytest.fixture
async def receiver(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.url = f"http://127.0.0.1:{server.port}"
    monkeypatch.setenv("HTTP_PROXY", found.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield found
    await server.close()


@pytest.fixture
async def api(tmp_path: Path, aiohttp_client: Any, receiver: Receiver) -> Api:
    keyring = Keyring(MasterKey(b"k" * 32))
    store = SqliteStore(tmp_path / "ipunkt.sqlite3", BlobStore(tmp_path / "payloads", keyring))
    settings = WebhookSettings(secret=SecretStr(SECRET), timeout_seconds=2)
    dispatcher = WebhookDispatcher(store, settings, Metrics(store.outbox_depth),
                                   key_folder=tmp_path)
    resolver = TableResolver({(r, d): s for r in ("910075918", OWN_ORG)
                              for d, s in DOC_TYPES.items()})
    nextmove = build(store, resolver, CHANNELS, organisation=OWN_ORG,
                     settings=MessagesSettings())
    app = web.Application(middlewares=[request_context, errors])
    setup(app, nextmove, ApiSettings())
    setup_routes(app, Subscriptions(store, dispatcher))

    async def dispatching(_: web.Application) -> AsyncIterator[None]:
        yield
        await dispatcher.stop()

    app.cleanup_ctx.append(dispatching)
    return Api(await aiohttp_client(app), store, dispatcher, receiver)


def assert_headers(example: Example, response: Any) -> None:
    documented: dict[str, list[str]] = {}
    for name, value in example.response.headers:
        if name.lower() not in SKIPPED_HEADERS:
            documented.setdefault(name, []).append(value)
    for name, values in documented.items():
        assert response.headers.getall(name, []) == values, name
    if "Content-Type" not in documented:
        assert "Content-Type" not in response.headers
        assert response.headers.get("Content-Length") == "0"


async def replay(api: Api, example: Example, *, target: str | None = None,
                 body: Any = None) -> Any:
    request = example.request
    assert request is not None
    headers = {k: v for k, v in request.headers if k.lower() not in SKIPPED_HEADERS}
    data = json.dumps(body).encode() if body is not None else request.body.encode() or None
    response = await api.client.request(example.method, target or example.target, data=data,
                                        headers=headers)
    assert response.status == example.status, await response.text()
    assert_headers(example, response)
    return response


def without(value: Any, *keys: str) -> Any:
    if isinstance(value, dict):
        return {k: without(v, *keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(v, *keys) for v in value]
    return value


async def create(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "Incoming messages", "pushEndpoint": DOCUMENTED_ENDPOINT,
            "resource": "messages", "event": "status", **fields}
    response = await api.client.post("/api/subscriptions", json=body)
    assert response.status == 200, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def listed(api: Api) -> list[dict[str, Any]]:
    response = await api.client.get("/api/subscriptions?size=100")
    return (await response.json())["content"]  # type: ignore[no-any-return]


def assert_signed_ping(push: Push) -> None:
    assert push.host == "my.pushendpoint.no"
    assert push.path == "/messages/incoming"
    assert push.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert push.headers["Accept"] == "application/json"
    assert verify(SECRET.encode(), push.headers["X-Ipunkt-Timestamp"],
                  push.headers["X-Ipunkt-Signature"], push.body)
    assert "X-Ipunkt-Delivery" not in push.headers
    ping = push.json()
    assert list(ping) == ["createdTs", "event"]
    assert ping["event"] == "ping"
    parse_datetime(ping["createdTs"])


# --- the documented examples -----------------------------------------------------------------


async def test_create_example_pings_then_answers_the_subscription(
        examples: Any, api: Api) -> None:
    example = examples[(CREATE, "Example 1 - Create a subscription")]
    response = await replay(api, example)
    documented = example.response.json()
    actual = await response.json()
    assert without(actual, "id") == without(documented, "id")
    assert list(actual) == list(documented)
    assert isinstance(actual["id"], int)
    [ping] = api.receiver.pushes
    assert_signed_ping(ping)
    created_ts = ping.json()["createdTs"]
    assert ping.body == (b'{\n  "createdTs" : "' + created_ts.encode()
                         + b'",\n  "event" : "ping"\n}')


async def test_constraint_violation_example(examples: Any, api: Api) -> None:
    example = examples[(CREATE, "Example 2 - Constraint violation")]
    body = examples[(CREATE, "Example 1 - Create a subscription")].request.json()
    body["event"] = "nonexistent"
    response = await api.client.post("/api/subscriptions", json=body)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    assert without(await response.json(), "timestamp") == without(
        example.response.json(), "timestamp")
    assert api.receiver.pushes == []
    assert await listed(api) == []


async def test_list_example(examples: Any, api: Api) -> None:
    """The documented list holds two subscriptions with the same name and endpoint, which the
    original's own create refuses; the second one here pushes to the same URL with a query."""
    example = examples[(LIST, "Example 1 - List all subscriptions")]
    documented = example.response.json()
    first, second = documented["content"]
    second_endpoint = second["pushEndpoint"] + "?errors"
    await create(api, filter=first["filter"])
    await create(api, pushEndpoint=second_endpoint, filter=second["filter"])
    response = await replay(api, example)
    actual = await response.json()
    assert actual["content"][1]["pushEndpoint"] == second_endpoint
    actual["content"][1]["pushEndpoint"] = second["pushEndpoint"]
    assert without(actual, "id") == without(documented, "id")
    assert [s["id"] for s in actual["content"]] == sorted(s["id"] for s in actual["content"])
    assert (await response.read()).startswith(b'{\n  "content" : [ {\n    "id" : ')


async def test_paging_example(examples: Any, api: Api) -> None:
    example = examples[(LIST, "Example 2 - Paging")]
    await create(api, filter="status=INNKOMMENDE_MOTTAT&direction=INCOMING")
    await create(api, pushEndpoint=DOCUMENTED_ENDPOINT + "?errors",
                 filter="status=FEIL,LEVETID_UTLOPT")
    response = await replay(api, example)
    actual = await response.json()
    actual["content"][0]["pushEndpoint"] = DOCUMENTED_ENDPOINT
    assert without(actual, "id") == without(example.response.json(), "id")


async def test_get_example_and_not_found(examples: Any, api: Api) -> None:
    example = examples[(GET, "Example 1 - Get a subscription")]
    created = await create(api, filter="status=INNKOMMENDE_MOTTAT&direction=INCOMING")
    response = await replay(api, example, target=f"/api/subscriptions/{created['id']}")
    body = await response.read()
    documented = example.response.body.encode()
    assert without(json.loads(body), "id") == without(json.loads(documented), "id")
    assert len(body) - len(str(created["id"])) == len(documented) - len("84")

    missing = examples[(GET, "Example 2 - Subscription not found")]
    response = await api.client.get("/api/subscriptions/84")
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json"
    actual = await response.json()
    # the documentation's path names /api/subscription/84, a path that does not exist
    assert actual["path"] == "/api/subscriptions/84"
    assert without(actual, "timestamp", "path") == without(missing.response.json(),
                                                           "timestamp", "path")


async def test_update_example(examples: Any, api: Api) -> None:
    example = examples[(UPDATE, "Example 1 - Update a subscription")]
    created = await create(api, name="Old name", pushEndpoint=DOCUMENTED_ENDPOINT + "/old",
                           event="all")
    api.receiver.pushes.clear()
    await replay(api, example, target=f"/api/subscriptions/{created['id']}")
    got = await api.client.get(f"/api/subscriptions/{created['id']}")
    assert without(await got.json(), "id") == without(example.request.json(), "id")
    [ping] = api.receiver.pushes  # the endpoint changed, so the new one was pinged
    assert_signed_ping(ping)


async def test_delete_examples(examples: Any, api: Api) -> None:
    one = examples[("Delete a subscription", "Example 1 - Delete a subscription")]
    everything = examples[("Delete all subscriptions", "Example 1 - Delete all subscriptions")]
    first = await create(api)
    second = await create(api, name="Errors")
    third = await create(api, name="Outgoing")
    await replay(api, one, target=f"/api/subscriptions/{first['id']}")
    assert [s["id"] for s in await listed(api)] == [second["id"], third["id"]]
    response = await api.client.delete(f"/api/subscriptions/{first['id']}")
    assert response.status == 404
    await replay(api, everything)
    assert await listed(api) == []
    await replay(api, everything)


# --- the ping -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500, 302])
async def test_an_endpoint_that_refuses_the_ping_is_not_subscribed(api: Api, status: int) -> None:
    api.receiver.answers = [status]
    response = await api.client.post("/api/subscriptions", json={
        "name": "n", "pushEndpoint": DOCUMENTED_ENDPOINT, "resource": "all", "event": "all"})
    assert response.status == 400
    body = await response.json()
    assert body["exception"] == (
        "no.difi.meldingsutveksling.exceptions.WebhookPushEndpointPingFailedException")
    reason = {404: "404 Not Found", 500: "500 Internal Server Error", 302: "302 Found"}[status]
    assert body["message"] == f"Ping failed with: {reason}: [no body]."
    assert body["path"] == "/api/subscriptions"
    assert await listed(api) == []


async def test_an_unreachable_endpoint_is_subscribed_anyway(api: Api) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/push"
    created = await create(api, pushEndpoint=nobody)
    assert [s["pushEndpoint"] for s in await listed(api)] == [nobody]
    assert created["pushEndpoint"] == nobody
    assert api.receiver.pushes == []  # not through the proxy: NO_PROXY names the host


async def test_a_duplicate_is_refused_before_pinging(api: Api) -> None:
    await create(api)
    api.receiver.pushes.clear()
    response = await api.client.post("/api/subscriptions", json={
        "name": "Incoming messages", "pushEndpoint": DOCUMENTED_ENDPOINT,
        "resource": "all", "event": "all"})
    assert response.status == 400
    body = await response.json()
    assert body["exception"] == ("no.difi.meldingsutveksling.exceptions."
                                 "SubscriptionWithSameNameAndPushEndpointAlreadyExists")
    assert body["message"] == "Subscription with same name and push endpoint already exists."
    assert api.receiver.pushes == []
    assert len(await listed(api)) == 1


# --- validation -----------------------------------------------------------------------------


def errors_of(body: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    return [(e["field"], e["code"], e["defaultMessage"], e["rejectedValue"])
            for e in body["errors"]]


async def test_every_field_is_required_on_create(api: Api) -> None:
    response = await api.client.post("/api/subscriptions", json={"id": 7, "filter": None})
    assert response.status == 400
    body = await response.json()
    assert body["exception"] == "javax.validation.ConstraintViolationException"
    assert errors_of(body) == [
        ("id", "Null", "must be null", 7),
        ("name", "NotNull", "must not be null", None),
        ("pushEndpoint", "NotNull", "must not be null", None),
        ("resource", "NotNull", "must not be null", None),
        ("event", "NotNull", "must not be null", None),
    ]
    assert body["message"] == ("id: must be null, name: must not be null, pushEndpoint: must "
                               "not be null, resource: must not be null, event: must not be null")
    assert api.receiver.pushes == []


@pytest.mark.parametrize(("fields", "error"), [
    ({"pushEndpoint": "not a url"}, ("pushEndpoint", "URL", "must be a valid URL")),
    ({"pushEndpoint": "http://"}, ("pushEndpoint", "URL", "must be a valid URL")),
    ({"pushEndpoint": "ftp://files.example/x"},
     ("pushEndpoint", "URL", "must be a valid URL with the scheme http or https")),
    ({"pushEndpoint": "http://host:99999/x"}, ("pushEndpoint", "URL", "must be a valid URL")),
    ({"resource": "conversations"}, ("resource", "OneOf",
                                     "'conversations' is not expected. Allowed values are: "
                                     "[all, messages]")),
    ({"filter": "colour=red"}, ("filter", "WebhookFilter", "Must be a valid filter definition. "
                                "Unknown filter name: colour (use status, serviceIdentifier, "
                                "direction)")),
    ({"filter": "status!=FEIL"}, ("filter", "WebhookFilter", "Must be a valid filter "
                                  "definition. Unknown filter operator in 'status!=FEIL': only "
                                  "'=' is supported")),
    ({"filter": "status=FEIL&"}, ("filter", "WebhookFilter", "Must be a valid filter "
                                  "definition. A filter part is empty (a stray '&'?)")),
    ({"filter": "status="}, ("filter", "WebhookFilter", "Must be a valid filter definition. "
                             "The filter part 'status=' has no value")),
    ({"filter": "direction=SIDEWAYS"}, ("filter", "WebhookFilter", "Must be a valid filter "
                                        "definition. direction must be INCOMING or OUTGOING, "
                                        "not 'SIDEWAYS'")),
])
async def test_bad_fields_are_named(api: Api, fields: dict[str, str],
                                    error: tuple[str, str, str]) -> None:
    body = {"name": "n", "pushEndpoint": DOCUMENTED_ENDPOINT, "resource": "messages",
            "event": "status", **fields}
    response = await api.client.post("/api/subscriptions", json=body)
    assert response.status == 400
    answer = await response.json()
    [(field_name, code, message, rejected)] = errors_of(answer)
    assert (field_name, code, message) == error
    assert rejected == fields[field_name]
    assert answer["message"] == f"{field_name}: {message}"
    assert await listed(api) == []


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "Required request body is missing"),
    (b"{\"name\": ", "JSON parse error"),
    (b"[1, 2]", "The subscription must be a JSON object"),
    (b"{\"name\": 5}", "Field 'name' must be a string, not int"),
    (b"\xff\xfe", "JSON parse error"),
    (b"[" * 100_000, "larger than"),
])
async def test_unreadable_bodies(api: Api, raw: bytes, message: str) -> None:
    response = await api.client.post("/api/subscriptions", data=raw,
                                     headers={"Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert body["exception"] == (
        "org.springframework.http.converter.HttpMessageNotReadableException")
    assert message in body["message"]


async def test_unknown_fields_are_ignored_and_filters_are_kept_verbatim(api: Api) -> None:
    created = await create(api, filter="serviceIdentifier=DPO,dpf&direction=incoming",
                           colour="red")
    assert created["filter"] == "serviceIdentifier=DPO,dpf&direction=incoming"
    assert "colour" not in created


async def test_a_subscription_without_filter_has_no_filter_key(api: Api) -> None:
    created = await create(api)
    assert "filter" not in created
    response = await api.client.get(f"/api/subscriptions/{created['id']}")
    assert "filter" not in await response.json()


# --- partial update -------------------------------------------------------------------------


async def test_update_replaces_only_the_fields_given(api: Api) -> None:
    created = await create(api, filter="status=FEIL")
    api.receiver.pushes.clear()
    target = f"/api/subscriptions/{created['id']}/"
    response = await api.client.put(target, json={"event": "all", "name": None})
    assert response.status == 200
    assert await response.read() == b""
    got = await (await api.client.get(target)).json()
    assert got == {**created, "event": "all"}
    assert api.receiver.pushes == []  # the endpoint did not change: no ping
    response = await api.client.put(target, json={"pushEndpoint": DOCUMENTED_ENDPOINT})
    assert response.status == 200
    assert api.receiver.pushes == []
    response = await api.client.put(target, json={"filter": ""})
    assert "filter" not in await (await api.client.get(target)).json()


async def test_update_is_validated_and_pinged(api: Api) -> None:
    created = await create(api)
    target = f"/api/subscriptions/{created['id']}"
    response = await api.client.put(target, json={"event": "nonexistent", "id": 99})
    assert response.status == 400
    assert errors_of(await response.json()) == [
        ("event", "OneOf", "'nonexistent' is not expected. Allowed values are: [all, status]",
         "nonexistent")]
    api.receiver.answers = [410]
    response = await api.client.put(target, json={"pushEndpoint": DOCUMENTED_ENDPOINT + "/new"})
    assert response.status == 400
    assert (await response.json())["message"] == "Ping failed with: 410 Gone: [no body]."
    got = await (await api.client.get(target)).json()
    assert got == created


async def test_update_refuses_a_duplicate_and_an_unknown_id(api: Api) -> None:
    await create(api, name="first")
    second = await create(api, name="second")
    response = await api.client.put(f"/api/subscriptions/{second['id']}", json={"name": "first"})
    assert response.status == 400
    assert (await response.json())["message"] == (
        "Subscription with same name and push endpoint already exists.")
    response = await api.client.put("/api/subscriptions/9999", json={"name": "x"})
    assert response.status == 404
    assert (await response.json())["message"] == "Subscription with id = 9999 was not found"
    response = await api.client.get("/api/subscriptions/abc")
    assert response.status == 400


# --- listing --------------------------------------------------------------------------------


async def test_list_sorts_and_pages(api: Api) -> None:
    for name in ("b", "c", "a"):
        await create(api, name=name)
    response = await api.client.get("/api/subscriptions/?sort=name,desc&size=2")
    assert response.status == 200
    page = await response.json()
    assert [s["name"] for s in page["content"]] == ["c", "b"]
    assert page["sort"] == {"sorted": True, "unsorted": False, "empty": False}
    assert (page["totalElements"], page["totalPages"], page["last"]) == (3, 2, False)
    response = await api.client.get("/api/subscriptions?sort=colour")
    assert response.status == 400
    response = await api.client.get("/api/subscriptions?page=5")
    page = await response.json()
    assert (page["content"], page["empty"], page["totalElements"]) == ([], True, 3)


# --- events ---------------------------------------------------------------------------------


async def test_a_created_message_is_pushed_to_its_subscriber(examples: Any, api: Api) -> None:
    """End to end: POST /api/messages/out registers OPPRETTET, and the subscriber gets it."""
    await create(api, filter="direction=OUTGOING&status=OPPRETTET")
    api.receiver.pushes.clear()
    sbd = examples[("Create message", "Example 1 - Creating an arkivmelding message")]
    body = sbd.request.json()
    scope = body["standardBusinessDocumentHeader"]["businessScope"]["scope"][0]
    scope["scopeInformation"][0]["expectedResponseDateTime"] = "2099-01-01T00:00:00+01:00"
    response = await api.client.post("/api/messages/out", json=body)
    assert response.status == 200, await response.text()
    assert await api.dispatcher.deliver_due() == 1
    [push] = api.receiver.pushes
    event = push.json()
    message_id = body["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"]
    assert event["messageId"] == message_id
    assert (event["event"], event["status"], event["direction"], event["serviceIdentifier"]) == (
        "status", "OPPRETTET", "OUTGOING", "DPO")
    assert verify(SECRET.encode(), push.headers["X-Ipunkt-Timestamp"],
                  push.headers["X-Ipunkt-Signature"], push.body)
    assert push.headers["X-Ipunkt-Delivery"].isdigit()
