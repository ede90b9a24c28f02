"""Webhook pushes over real HTTP: the documented event bodies, HMAC signatures (checked against
OpenSSL), retries with backoff that survive a restart, giving up, filters, and failing
subscriptions on the health data."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.settings import WebhookSettings
from ipunkt.delivery.webhooks import WebhookDispatcher, signature, verify
from ipunkt.messages.statuses import EXPIRED_DESCRIPTION
from ipunkt.messages.subscriptions import StatusEvent, accepts, event_filter
from ipunkt.sbd.times import OSLO, now_oslo
from ipunkt.store.base import Direction, NewMessage, NewSubscription, PageRequest, StatusChange
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import Keyring, MasterKey
from ipunkt.store.sqlite import SqliteStore
from pydantic import SecretStr

SECRET = "a-secret-the-receivers-share"
DOCUMENTED_AT = datetime(2019, 3, 25, 12, 38, 23, tzinfo=OSLO)
"""The documented events' createdTs."""
DOC_MESSAGE_ID = "bdb5d59e-6819-483e-a2a5-aafa2cfb09e2"
DOC_CONVERSATION_ID = "9a62cb73-b122-4ad4-aa8e-b73130aff58b"
T0 = datetime(2030, 5, 2, 9, 0, tzinfo=OSLO)


# --- a push endpoint, a clock, a store ---------------------------------------------------------


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Push endpoints under one server: records each push, answers as scripted per path."""

    url: str = ""
    answers: dict[str, list[int | tuple[int, dict[str, str]]]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.pushes.append(Push(request.path, dict(request.headers), await request.read()))
        scripted = self.answers.get(request.path)
        answer = scripted.pop(0) if scripted else self.always.get(request.path, 200)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return web.Response(status=status, headers=headers)

    def at(self, path: str) -> list[Push]:
        return [p for p in self.pushes if p.path == path]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", found.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.url = f"http://127.0.0.1:{server.port}"
    yield found
    await server.close()


def open_store(folder: Path) -> SqliteStore:
    keyring = Keyring(MasterKey(b"w" * 32))
    return SqliteStore(folder / "ipunkt.sqlite3", BlobStore(folder / "payloads", keyring))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = open_store(tmp_path)
    await opened.open()
    yield opened
    await opened.close()


def dispatcher(store: SqliteStore, clock: Clock, folder: Path,
               **settings: Any) -> WebhookDispatcher:
    return WebhookDispatcher(store, WebhookSettings(**{"secret": SECRET, **settings}),
                             Metrics(store.outbox_depth), key_folder=folder, clock=clock)


def pushes(metrics: Metrics, outcome: str) -> float:
    return metrics.registry.get_sample_value("ipunkt_webhook_pushes_total",
                                             {"outcome": outcome}) or 0.0


async def conversation(store: SqliteStore, message_id: str, direction: Direction, service: str,
                       at: datetime, conversation_id: str | None = None) -> None:
    await store.create_message(
        NewMessage(direction, message_id, conversation_id or message_id + "-c",
                   "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0", "arkivmelding",
                   "urn:no:difi:arkivmelding:xsd::arkivmelding", "0192:910077473", "910077473",
                   "0192:910075918", "910075918", service, "{}", at + timedelta(days=30)),
        StatusChange("OPPRETTET", at),
    )


async def status(store: SqliteStore, message_id: str, direction: Direction, name: str,
                 at: datetime, description: str | None = None) -> None:
    assert await store.register_status(message_id, StatusChange(name, at, description),
                                       direction) is not None


async def subscribe(store: SqliteStore, url: str, name: str = "s", *, resource: str = "messages",
                    event: str = "status", filter: str | None = None) -> int:
    created = await store.add_subscription(NewSubscription(name, url, resource, event, filter))
    return created.id


def documented_request(specs: Path, heading: str) -> tuple[dict[str, str], bytes]:
    """The headers and body of the example request under ``### heading`` in the API docs."""
    lines = (specs / "nextmove-api" / "restdocs.md").read_text(encoding="utf-8").split("\n")
    i = lines.index(f"### {heading}")
    i = lines.index("Request", i) + 1
    while not lines[i].strip():
        i += 1
    indent = len(lines[i]) - len(lines[i].lstrip())
    i += 1
    headers = {}
    while lines[i].strip():
        name, _, value = lines[i].strip().partition(":")
        headers[name] = value.strip()
        i += 1
    body = []
    i += 1
    while not lines[i].strip() or lines[i].startswith(" " * indent):
        body.append(lines[i][indent:])
        i += 1
    return headers, "\n".join(body).strip("\n").encode("utf-8")


def assert_documented_headers(push: Push, headers: dict[str, str], documented: bytes) -> None:
    """The documentation was generated on Windows, where Jackson ends pretty lines with CRLF:
    its Content-Length counts those. The bytes are otherwise the same, so the length is too."""
    for name in ("Content-Type", "Accept"):
        assert push.headers[name] == headers[name], name
    assert int(headers["Content-Length"]) == len(documented.replace(b"\n", b"\r\n"))
    assert int(push.headers["Content-Length"]) == len(push.body) == len(documented)


# --- the event bodies ---------------------------------------------------------------------------


async def test_the_status_event_is_the_documented_one_byte_for_byte(
        specs_dir: Path, store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    headers, documented = documented_request(specs_dir, "Message status event")
    await subscribe(store, receiver.url + "/push")
    await conversation(store, DOC_MESSAGE_ID, Direction.INCOMING, "DPO",
                       DOCUMENTED_AT - timedelta(days=1), DOC_CONVERSATION_ID)
    await status(store, DOC_MESSAGE_ID, Direction.INCOMING, "LEVETID_UTLOPT", DOCUMENTED_AT,
                 EXPIRED_DESCRIPTION)
    pusher = dispatcher(store, Clock(T0), tmp_path)
    assert await pusher.deliver_due() == 2
    await pusher.stop()
    created, expired = receiver.pushes
    assert created.json()["status"] == "OPPRETTET"
    assert "description" not in created.json()
    assert expired.body == documented
    assert_documented_headers(expired, headers, documented)
    assert created.headers["X-Ipunkt-Delivery"] != expired.headers["X-Ipunkt-Delivery"]


async def test_the_ping_is_the_documented_one(
        specs_dir: Path, store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    headers, documented = documented_request(specs_dir, "Ping event")
    pusher = dispatcher(store, Clock(DOCUMENTED_AT), tmp_path)
    await pusher.ping(receiver.url + "/push")
    await pusher.stop()
    [ping] = receiver.pushes
    assert ping.body == documented
    assert_documented_headers(ping, headers, documented)
    assert verify(SECRET.encode(), ping.headers["X-Ipunkt-Timestamp"],
                  ping.headers["X-Ipunkt-Signature"], ping.body)


# --- signatures ---------------------------------------------------------------------------------


async def test_the_signature_is_openssls_hmac_over_timestamp_and_body(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    await subscribe(store, receiver.url + "/push")
    await conversation(store, "m1", Direction.OUTGOING, "DPV", T0)
    pusher = dispatcher(store, Clock(T0), tmp_path)
    await pusher.deliver_due()
    await pusher.stop()
    [push] = receiver.pushes
    timestamp = push.headers["X-Ipunkt-Timestamp"]
    signed = tmp_path / "signed"
    signed.write_bytes(timestamp.encode() + b"." + push.body)
    openssl = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", SECRET, "-r", str(signed)],
                             check=True, capture_output=True, text=True).stdout.split()[0]
    assert push.headers["X-Ipunkt-Signature"] == f"sha256={openssl}"
    assert verify(SECRET.encode(), timestamp, push.headers["X-Ipunkt-Signature"], push.body)
    assert not verify(b"another secret", timestamp, push.headers["X-Ipunkt-Signature"],
                      push.body)
    assert not verify(SECRET.encode(), timestamp, push.headers["X-Ipunkt-Signature"],
                      push.body.replace(b"DPV", b"DPO"))
    assert not verify(SECRET.encode(), str(int(timestamp) - 3600),
                      push.headers["X-Ipunkt-Signature"], push.body)
    stale = int(timestamp) - 3600
    assert not verify(SECRET.encode(), str(stale), signature(SECRET.encode(), stale, push.body),
                      push.body)


async def test_a_secret_is_generated_once_private_and_reused(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    settings = WebhookSettings()
    first = WebhookDispatcher(store, settings, Metrics(store.outbox_depth), key_folder=keys)
    await first.ping(receiver.url + "/push")
    await first.stop()
    key_file = keys / "webhook.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert [p.name for p in keys.iterdir()] == ["webhook.key"]
    secret = key_file.read_text().strip().encode()
    assert len(secret) == 64
    second = WebhookDispatcher(store, settings, Metrics(store.outbox_depth), key_folder=keys)
    await second.ping(receiver.url + "/push")
    await second.stop()
    for ping in receiver.pushes:
        assert verify(secret, ping.headers["X-Ipunkt-Timestamp"],
                      ping.headers["X-Ipunkt-Signature"], ping.body)
    configured = WebhookDispatcher(store, WebhookSettings(secret=SecretStr("configured")),
                                   Metrics(store.outbox_depth), key_folder=tmp_path / "unused")
    await configured.ping(receiver.url + "/push")
    await configured.stop()
    assert not (tmp_path / "unused").exists()
    last = receiver.pushes[-1]
    assert verify(b"configured", last.headers["X-Ipunkt-Timestamp"],
                  last.headers["X-Ipunkt-Signature"], last.body)


# --- retries, durability, giving up -----------------------------------------------------------


async def test_a_failing_endpoint_is_retried_with_backoff_across_a_restart(
        receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers["/push"] = [503, 503]
    clock = Clock(T0)
    store = open_store(tmp_path)
    await store.open()
    subscription = await subscribe(store, receiver.url + "/push")
    await conversation(store, "m1", Direction.OUTGOING, "DPO", T0)
    pusher = dispatcher(store, clock, tmp_path, retry_initial_seconds=5)
    assert await pusher.deliver_due() == 1
    clock.now = T0 + timedelta(seconds=4.4)  # the first retry waits 5 s, give or take 10 %
    assert await pusher.deliver_due() == 0
    assert pushes(pusher.metrics, "failed") == 1
    await pusher.stop()
    await store.close()

    store = open_store(tmp_path)
    await store.open()
    pusher = dispatcher(store, clock, tmp_path, retry_initial_seconds=5)
    assert await pusher.deliver_due() == 0
    clock.now = T0 + timedelta(seconds=5.6)
    assert await pusher.deliver_due() == 1
    clock.now += timedelta(seconds=13.4)  # then 15 s, give or take 10 %
    assert await pusher.deliver_due() == 0
    failing = await store.subscription(subscription)
    assert failing is not None and failing.failures == 2
    assert failing.last_error == "503 Service Unavailable: [no body]"
    clock.now += timedelta(seconds=3.2)
    assert await pusher.deliver_due() == 1
    clock.now += timedelta(days=3)
    assert await pusher.deliver_due() == 0
    assert (pushes(pusher.metrics, "failed"), pushes(pusher.metrics, "delivered")) == (1, 1)
    recovered = await store.subscription(subscription)
    assert recovered is not None and (recovered.failures, recovered.last_error) == (0, None)
    await pusher.stop()
    await store.close()

    first, second, third = receiver.pushes
    assert first.body == second.body == third.body
    assert first.json()["status"] == "OPPRETTET"
    assert len({p.headers["X-Ipunkt-Delivery"] for p in receiver.pushes}) == 1
    assert len({p.headers["X-Ipunkt-Signature"] for p in receiver.pushes}) >= 1


async def test_an_endpoint_that_asks_to_wait_longer_is_heard(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers["/busy"] = [(429, {"Retry-After": "120"}), (503, {"Retry-After": "soon"})]
    clock = Clock(T0)
    await subscribe(store, receiver.url + "/busy")
    await conversation(store, "m1", Direction.OUTGOING, "DPO", T0)
    pusher = dispatcher(store, clock, tmp_path, retry_initial_seconds=5)
    assert await pusher.deliver_due() == 1
    clock.now = T0 + timedelta(seconds=119)
    assert await pusher.deliver_due() == 0
    clock.now = T0 + timedelta(seconds=120)
    assert await pusher.deliver_due() == 1  # answered 503 with an unreadable Retry-After
    clock.now += timedelta(seconds=16.6)  # so the backoff alone decides: 15 s, give or take
    assert await pusher.deliver_due() == 1
    assert [p.json()["status"] for p in receiver.pushes] == ["OPPRETTET"] * 3
    assert pushes(pusher.metrics, "delivered") == 1
    await pusher.stop()


async def test_an_event_is_given_up_after_the_configured_time(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    receiver.always["/down"] = 500
    clock = Clock(T0 + timedelta(minutes=50))  # the gateway was down when the status came
    await subscribe(store, receiver.url + "/down")
    await conversation(store, "m1", Direction.OUTGOING, "DPO", T0)
    pusher = dispatcher(store, clock, tmp_path, give_up_hours=1, retry_initial_seconds=5)
    assert await pusher.deliver_due() == 1
    clock.now = T0 + timedelta(minutes=59, seconds=58)
    assert await pusher.deliver_due() == 1
    clock.now = T0 + timedelta(minutes=59, seconds=59, microseconds=999_999)
    assert await pusher.deliver_due() == 0  # the last try is due at the deadline itself
    clock.now = T0 + timedelta(hours=1)
    assert await pusher.deliver_due() == 1
    clock.now += timedelta(days=2)
    assert await pusher.deliver_due() == 0
    assert len(receiver.pushes) == 3
    assert (pushes(pusher.metrics, "failed"), pushes(pusher.metrics, "dropped"),
            pushes(pusher.metrics, "delivered")) == (3, 1, 0)
    await pusher.stop()


# --- filters ------------------------------------------------------------------------------------


async def test_each_subscription_gets_what_its_resource_event_and_filter_accept(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    url = receiver.url
    ids = {
        "/expired-incoming": await subscribe(store, url + "/expired-incoming",
                                             filter="status=FEIL,LEVETID_UTLOPT&direction=INCOMING"),
        "/dpv": await subscribe(store, url + "/dpv", filter="serviceIdentifier=dpv"),
        "/all": await subscribe(store, url + "/all", resource="all", event="all"),
        "/levert": await subscribe(store, url + "/levert", filter="status=levert"),
        "/both": await subscribe(store, url + "/both",
                                 filter="direction=OUTGOING&direction=INCOMING"),
    }
    await conversation(store, "out-dpv", Direction.OUTGOING, "DPV", T0)
    await status(store, "out-dpv", Direction.OUTGOING, "LEVERT", T0 + timedelta(seconds=1))
    await conversation(store, "in-dpo", Direction.INCOMING, "DPO", T0)
    await status(store, "in-dpo", Direction.INCOMING, "INNKOMMENDE_MOTTAT", T0)
    await status(store, "in-dpo", Direction.INCOMING, "LEVETID_UTLOPT", T0, EXPIRED_DESCRIPTION)
    await conversation(store, "out-dpo", Direction.OUTGOING, "DPO", T0)
    await status(store, "out-dpo", Direction.OUTGOING, "FEIL", T0, "refused")
    pusher = dispatcher(store, Clock(T0 + timedelta(minutes=1)), tmp_path)
    assert await pusher.deliver_due() == 7 * len(ids)
    assert await pusher.deliver_due() == 0
    await pusher.stop()

    def got(path: str) -> list[tuple[str, str]]:
        return [(p.json()["messageId"], p.json()["status"]) for p in receiver.at(path)]

    assert got("/expired-incoming") == [("in-dpo", "LEVETID_UTLOPT")]
    assert got("/dpv") == [("out-dpv", "OPPRETTET"), ("out-dpv", "LEVERT")]
    assert got("/levert") == [("out-dpv", "LEVERT")]
    assert got("/both") == []
    assert got("/all") == [
        ("out-dpv", "OPPRETTET"), ("out-dpv", "LEVERT"), ("in-dpo", "OPPRETTET"),
        ("in-dpo", "INNKOMMENDE_MOTTAT"), ("in-dpo", "LEVETID_UTLOPT"), ("out-dpo", "OPPRETTET"),
        ("out-dpo", "FEIL"),
    ]
    for subscription_id in ids.values():
        record = await store.subscription(subscription_id)
        assert record is not None and record.failures == 0
    assert pushes(pusher.metrics, "delivered") == 11


# --- a failing endpoint -----------------------------------------------------------------------


async def test_a_failing_endpoint_costs_one_try_and_holds_up_no_one(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    receiver.answers["/down"] = [503, 503]
    clock = Clock(T0)
    await subscribe(store, receiver.url + "/down", "down")
    await subscribe(store, receiver.url + "/up", "up")
    await conversation(store, "m1", Direction.OUTGOING, "DPO", T0)
    await status(store, "m1", Direction.OUTGOING, "SENDT", T0)
    await status(store, "m1", Direction.OUTGOING, "MOTTATT", T0)
    pusher = dispatcher(store, clock, tmp_path, retry_initial_seconds=5)
    assert await pusher.deliver_due() == 6
    assert [p.json()["status"] for p in receiver.at("/up")] == ["OPPRETTET", "SENDT", "MOTTATT"]
    assert [p.json()["status"] for p in receiver.at("/down")] == ["OPPRETTET"]
    assert pushes(pusher.metrics, "failed") == 1
    clock.now += timedelta(seconds=6)
    assert await pusher.deliver_due() == 3
    assert [p.json()["status"] for p in receiver.at("/down")] == ["OPPRETTET", "OPPRETTET"]
    clock.now += timedelta(seconds=20)
    assert await pusher.deliver_due() == 3
    assert [p.json()["status"] for p in receiver.at("/down")] == [
        "OPPRETTET", "OPPRETTET", "OPPRETTET", "SENDT", "MOTTATT"]
    await pusher.stop()


async def test_subscriptions_that_keep_failing_show_on_health(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    receiver.always["/hook"] = 500
    host = receiver.url.removeprefix("http://")
    endpoint = f"http://user:password@{host}/hook?token=abc"
    clock = Clock(T0)
    failing_id = await subscribe(store, endpoint, "flaky")
    await subscribe(store, receiver.url + "/fine", "fine")
    pusher = dispatcher(store, clock, tmp_path, failing_after=3)
    await conversation(store, "m1", Direction.OUTGOING, "DPO", T0)
    await status(store, "m1", Direction.OUTGOING, "SENDT", T0)
    await pusher.deliver_due()
    assert await pusher.health() == {"status": "UP"}
    await status(store, "m1", Direction.OUTGOING, "MOTTATT", T0)
    await pusher.deliver_due()
    assert [s.id for s in await pusher.failing()] == [failing_id]
    health = await pusher.health()
    assert health["status"] == "DEGRADED"
    [shown] = health["details"]["failing"]
    assert (shown["id"], shown["name"], shown["pushEndpoint"], shown["failures"]) == (
        failing_id, "flaky", f"http://{host}/hook", 3)
    assert "500 Internal Server Error" in shown["lastError"]
    assert "password" not in json.dumps(health) and "token" not in json.dumps(health)

    del receiver.always["/hook"]
    clock.now += timedelta(minutes=2)
    assert await pusher.deliver_due() == 3
    assert await pusher.failing() == []
    assert await pusher.health() == {"status": "UP"}
    assert [p.headers.get("Authorization") for p in receiver.at("/hook")][-1] is not None
    await pusher.stop()


# --- running -------------------------------------------------------------------------------------


async def test_run_pushes_as_statuses_come_and_stop_ends_it(
        store: SqliteStore, receiver: Receiver, tmp_path: Path) -> None:
    await subscribe(store, receiver.url + "/push")
    pusher = WebhookDispatcher(store, WebhookSettings(secret=SecretStr(SECRET)),
                               Metrics(store.outbox_depth), key_folder=tmp_path,
                               poll_seconds=0.05)
    running = asyncio.create_task(pusher.run())
    await conversation(store, "m1", Direction.OUTGOING, "DPO", now_oslo())
    async with asyncio.timeout(10):
        while not receiver.pushes:
            await asyncio.sleep(0.02)
    await status(store, "m1", Direction.OUTGOING, "SENDT", now_oslo())
    pusher.nudge()
    async with asyncio.timeout(10):
        while len(receiver.pushes) < 2:
            await asyncio.sleep(0.02)
    await pusher.stop()
    async with asyncio.timeout(5):
        await running
    assert [p.json()["status"] for p in receiver.pushes] == ["OPPRETTET", "SENDT"]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pushes here go straight to the local receiver, whatever the machine's proxy settings."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield


FILTER_CASES = [
    ("messages", "status", None),
    ("all", "all", "status=LEVERT"),
    ("messages", "status", "status=levert,Sendt&direction=outgoing"),
    ("messages", "status", "serviceIdentifier=dpv"),
    ("messages", "status", "status=LEVERT&status=SENDT,LEVERT"),
    ("messages", "status", "status=LEVERT&status=SENDT"),
    ("messages", "status", "direction=INCOMING&serviceIdentifier=DPO,DPV"),
    ("messages", "other", None),
    ("conversations", "status", "status=LEVERT"),
]


async def test_a_status_is_queued_to_exactly_the_subscriptions_whose_rules_accept_it(
    store: SqliteStore,
) -> None:
    """The store applies each subscription's resource, event and filter as it registers a
    status, so that it queues no delivery the dispatcher would drop: what it queues must be
    what :func:`accepts` says, case for case."""
    for number, (resource, event, text) in enumerate(FILTER_CASES):
        await store.add_subscription(NewSubscription(
            f"s{number}", f"http://127.0.0.1:9/{number}", resource, event, text,
            event_filter(resource, event, text)))
    events = []
    parties = [(Direction.OUTGOING, "DPO"), (Direction.INCOMING, "DPV"),
               (Direction.OUTGOING, "DPV")]
    for number, (direction, service) in enumerate(parties):
        message_id = f"m{number}"
        await conversation(store, message_id, direction, service, T0)
        events.append((message_id, direction, service, "OPPRETTET"))
        for name in ("SENDT", "LEVERT"):
            await status(store, message_id, direction, name, T0)
            events.append((message_id, direction, service, name))
    queued = {(d.subscription.name, d.status.message_id, d.status.status)
              for d in await store.claim_webhook_deliveries(T0 + timedelta(days=1),
                                                            T0 + timedelta(days=2), 1000)}
    subscriptions = (await store.subscriptions(PageRequest(0, 100))).content
    expected = {
        (s.name, message_id, name)
        for s in subscriptions
        for message_id, direction, service, name in events
        if accepts(s, StatusEvent(T0, message_id, message_id + "-c", direction.value, service,
                                  name, None))
    }
    assert queued == expected
    assert 0 < len(expected) < len(subscriptions) * len(events)


async def test_a_subscription_stored_before_its_rules_were_is_queued_every_status(
    store: SqliteStore, receiver: Receiver, tmp_path: Path
) -> None:
    """Such a subscription (no prefilter) is queued everything, and the dispatcher still pushes
    only what its filter accepts."""
    await subscribe(store, f"{receiver.url}/old", filter="status=LEVERT")
    await conversation(store, "m1", Direction.OUTGOING, "DPO", T0)
    await status(store, "m1", Direction.OUTGOING, "LEVERT", T0)
    pusher = dispatcher(store, Clock(T0 + timedelta(seconds=1)), tmp_path)
    assert await pusher.deliver_due() == 2  # OPPRETTET and LEVERT were both queued
    await pusher.stop()
    [pushed] = receiver.pushes
    assert pushed.json()["status"] == "LEVERT"


async def test_a_push_goes_through_the_environment_s_proxy_with_its_credentials(
    store: SqliteStore, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = receiver.url.replace("http://", "http://pusher:s3cret@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "localhost")
    pusher = dispatcher(store, Clock(T0), tmp_path)
    await pusher.ping("http://push.example/hook")  # a host only the proxy can reach
    await pusher.stop()
    [ping] = receiver.pushes
    assert ping.headers["Host"] == "push.example"
    assert ping.headers["Proxy-Authorization"] == "Basic cHVzaGVyOnMzY3JldA=="
