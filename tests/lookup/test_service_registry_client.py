"""The Service Registry client over real HTTP: published answers, signatures, cache, failures."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ipunkt.lookup.cache import TtlCache
from ipunkt.lookup.records import IdentifierResource
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.service_registry import ServiceRegistryClient, ServiceRegistryConfig
from ipunkt.lookup.service_registry_fake import FakeServiceRegistry
from ipunkt.lookup.source import (
    LookupNotFound,
    LookupQuery,
    LookupRejected,
    LookupSourceContext,
    LookupUnavailable,
)

ADMIN = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scripted:
    """A registry stand-in answering each documented request with a given response."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, str, str]] = {}
        self.seen: list[web.Request] = []
        self.statuses: list[int] = []
        self.signer = FakeServiceRegistry(LocalRegistry(Path("unused.toml")))

    def add(self, path_and_query: str, status: int, body: str, *, signed: bool = False) -> None:
        if signed:
            body = self.signer.sign(body.encode())
        content_type = "application/jose" if signed else "application/json"
        self.answers[path_and_query] = (status, body, content_type)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        if request.path == "/jwk":
            return web.json_response(self.signer.jwk_set())
        key = request.path_qs
        if key not in self.answers:
            self.statuses.append(418)
            return web.Response(status=418, text=f"unexpected request {key}")
        status, body, content_type = self.answers[key]
        self.statuses.append(status)
        return web.Response(status=status, text=body, content_type=content_type)


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    registry = Scripted()
    app = web.Application()
    app.router.add_get("/{tail:.*}", registry.handle)
    server = TestServer(app)
    await server.start_server()
    yield registry, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., ServiceRegistryClient]]:
    made: list[ServiceRegistryClient] = []

    def make(url: str, **settings: Any) -> ServiceRegistryClient:
        tokens = settings.pop("tokens", None)
        client = ServiceRegistryClient(ServiceRegistryConfig(url=url, **settings), tokens=tokens)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.stop()


def query_of(fixture: Path) -> tuple[str, LookupQuery | None]:
    """The request a published answer replies to, from its file name."""
    answer = IdentifierResource.model_validate_json(fixture.read_text())
    assert answer.info_record is not None
    identifier = answer.info_record.identifier
    if fixture.name.startswith("info-"):
        return f"/info/{identifier}", None
    processes = {r.process for r in answer.service_records}
    if "-" in fixture.stem and len(processes) == 1:
        process = processes.pop()
        return f"/identifier/{identifier}/process/{process}", LookupQuery(identifier, process)
    return f"/identifier/{identifier}", LookupQuery(identifier)


@pytest.mark.parametrize("signed", [False, True], ids=["json", "jose"])
async def test_every_published_answer_is_read(
    sr_fixtures: list[Path], scripted: tuple[Scripted, str], client_for: Any, signed: bool
) -> None:
    registry, url = scripted
    client = client_for(url, verify_signatures=signed)
    for fixture in sr_fixtures:
        path, query = query_of(fixture)
        registry.add(path, 200, fixture.read_text(), signed=signed)
        expected = IdentifierResource.model_validate_json(fixture.read_text())
        if query is None:
            assert await client.info(path.rsplit("/", 1)[1]) == expected.info_record, fixture.name
        else:
            assert await client.lookup(query) == expected, fixture.name
    accepted = {r.headers["Accept"] for r in registry.seen if r.path != "/jwk"}
    assert accepted == {"application/jose, application/json" if signed else "application/json"}


async def test_a_published_dpi_answer_keeps_what_routing_and_capabilities_need(
    sr_dir: Path, scripted: tuple[Scripted, str], client_for: Any
) -> None:
    registry, url = scripted
    registry.add("/identifier/09118532322", 200, (sr_dir / "09118532322.json").read_text())
    client = client_for(url, verify_signatures=False)
    answer = await client.lookup(LookupQuery("09118532322"))
    info, vedtak = answer.service_records
    assert (info.service_identifier, info.orgnr_postkasse, info.postkasse_adresse) == (
        "DPI", "987464291", "dummy"
    )
    assert vedtak.process == "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
    assert info.accepts("urn:no:difi:digitalpost:xsd:fysisk::print")
    pem = info.certificate_pem()
    assert pem is not None and pem.startswith("-----BEGIN CERTIFICATE-----\nMIICujCC")


async def test_the_restdocs_examples(
    restdocs_examples: list[tuple[str, str, int, str]],
    scripted: tuple[Scripted, str],
    client_for: Any,
) -> None:
    """Each documented request is what the client sends; each documented answer is read."""
    registry, url = scripted
    client = client_for(url, verify_signatures=False)
    for path, query_string, status, body in restdocs_examples:
        registry.add(f"{path}?{query_string}" if query_string else path, status, body)
        parts = path.strip("/").split("/")
        level = int(query_string.split("=")[1]) if query_string else None
        if parts[0] == "info":
            info = await client.info(parts[1])
            assert info.identifier == parts[1]
            continue
        query = LookupQuery(parts[1], parts[3] if len(parts) > 3 else None, level)
        if status == 404:
            with pytest.raises(LookupNotFound) as missing:
                await client.lookup(query)
            assert missing.value.description == "Entity with identifier '404040404' not found."
            assert not missing.value.identifier_known
        elif status == 400:
            with pytest.raises(LookupRejected, match="security level not found") as refused:
                await client.lookup(query)
            assert refused.value.status == 400
        else:
            answer = await client.lookup(query)
            assert answer == IdentifierResource.model_validate_json(body)
    assert 418 not in registry.statuses
    assert len(registry.statuses) == len(restdocs_examples)


async def test_signed_answers_from_the_fake_registry_verify(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"))
    client = running.client()
    answer = await client.lookup(LookupQuery("910077473", ADMIN))
    assert [r.process for r in answer.service_records] == [ADMIN]
    assert running.paths() == [f"/identifier/910077473/process/{ADMIN}", "/jwk"]
    await client.lookup(LookupQuery("910077473"))
    assert running.paths().count("/jwk") == 1


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["serviceRecords"][0]["service"]["identifier"] = "DPV"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


async def test_a_tampered_answer_is_refused(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"))
    upstream = running.url

    async def forge(request: web.Request) -> web.Response:
        if request.path == "/jwk":
            return web.json_response(running.fake.jwk_set())
        genuine = running.fake.registry.answer(LookupQuery("910077473"), beta_features=False)
        token = running.fake.sign(json.dumps(genuine.to_wire()).encode())
        return web.Response(text=tamper(token), content_type="application/jose")

    app = web.Application()
    app.router.add_get("/{tail:.*}", forge)
    proxy = TestServer(app)
    await proxy.start_server()
    try:
        client = running.client(url=str(proxy.make_url("")).rstrip("/"))
        with pytest.raises(LookupUnavailable, match="signature does not verify"):
            await client.lookup(LookupQuery("910077473"))
        assert upstream != str(proxy.make_url(""))
    finally:
        await proxy.close()


async def test_an_answer_signed_by_another_key_is_refused(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    registry = registry_of_fixture(sr_dir / "910077473.json")
    genuine = await start_fake(registry)
    impostor = await start_fake(registry)  # same key id, its own key
    client = impostor.client(jwk_url=f"{genuine.url}/jwk")
    with pytest.raises(LookupUnavailable, match="signature does not verify"):
        await client.lookup(LookupQuery("910077473"))
    other_kid = await start_fake(registry, key_id="someone-else")
    client = other_kid.client(jwk_url=f"{genuine.url}/jwk")
    with pytest.raises(LookupUnavailable, match="signature does not verify"):
        await client.lookup(LookupQuery("910077473"))


async def test_an_unsigned_answer_is_refused_when_signatures_are_required(
    sr_dir: Path, scripted: tuple[Scripted, str], client_for: Any
) -> None:
    registry, url = scripted
    registry.add("/identifier/910077473", 200, (sr_dir / "910077473.json").read_text())
    with pytest.raises(LookupUnavailable, match="not signed"):
        await client_for(url).lookup(LookupQuery("910077473"))


async def test_a_rotated_key_is_fetched_again(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"))
    client = running.client(cache_ttl=0)
    await client.lookup(LookupQuery("910077473"))
    running.fake.rotate_key("2027-key")
    answer = await client.lookup(LookupQuery("910077473"))
    assert len(answer.service_records) == 3
    assert running.paths().count("/jwk") == 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_answers_are_cached_for_the_configured_lifetime(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"))
    client = running.client(verify_signatures=False)
    clock = Clock()
    client.cache = TtlCache(300, clock=clock)
    first = await client.lookup(LookupQuery("910077473", ADMIN, conversation_id="a"))
    again = await client.lookup(LookupQuery("910077473", ADMIN, conversation_id="b"))
    assert again == first
    await client.lookup(LookupQuery("910077473"))
    await client.lookup(LookupQuery("910077473", ADMIN, security_level=3))
    assert len(running.paths()) == 3
    clock.now += 299
    await client.lookup(LookupQuery("910077473", ADMIN))
    assert len(running.paths()) == 3
    clock.now += 2
    await client.lookup(LookupQuery("910077473", ADMIN))
    assert len(running.paths()) == 4
    assert running.fake.requests[0].query == {"conversationId": "a"}


async def test_concurrent_lookups_share_one_request_and_failures_are_not_cached(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"))
    client = running.client(verify_signatures=False)
    answers = await asyncio.gather(*(client.lookup(LookupQuery("910077473")) for _ in range(25)))
    assert len({id(a) for a in answers}) == 1
    assert len(running.paths()) == 1
    for _ in range(2):
        with pytest.raises(LookupNotFound):
            await client.lookup(LookupQuery("974720760"))
    assert len(running.paths()) == 3


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_registry_is_unavailable_not_not_found(client_for: Any) -> None:
    client = client_for(f"http://127.0.0.1:{closed_port()}", verify_signatures=False)
    with pytest.raises(LookupUnavailable, match="Service Registry unreachable"):
        await client.lookup(LookupQuery("910077473"))


async def test_a_slow_registry_times_out_as_unavailable(client_for: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", slow)
    server = TestServer(app)
    await server.start_server()
    try:
        client = client_for(str(server.make_url("")), verify_signatures=False, timeout=0.2)
        with pytest.raises(LookupUnavailable, match="unreachable"):
            await client.lookup(LookupQuery("910077473"))
    finally:
        await server.close()


def registry_error(description: str) -> str:
    return json.dumps({"error_code": "", "error_description": description})


CITIZEN_NOT_FOUND = '{"message": "No service record found for citizen: 01017012345"}'


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "message"),
    [
        (503, "", {"Retry-After": "7"}, LookupUnavailable, "answered 503"),
        (500, registry_error("SvarUt is down"), {}, LookupUnavailable, "SvarUt is down"),
        (429, "", {}, LookupUnavailable, "answered 429"),
        (401, "", {}, LookupUnavailable, "refused our credentials (401)"),
        (403, "", {}, LookupUnavailable, "refused our credentials (403)"),
        (404, CITIZEN_NOT_FOUND, {}, LookupNotFound, "No service record found for citizen"),
        (400, registry_error("security level not found"), {}, LookupRejected, "security level"),
        (200, "<html>proxy login</html>", {}, LookupUnavailable, "is not a registry record"),
        (200, '{"serviceRecords": [{"process": "x"}]}', {}, LookupUnavailable, "not a registry"),
        (200, "x" * (1024 * 1024 + 10), {}, LookupUnavailable, "exceeds"),
    ],
)
async def test_registry_statuses_become_lookup_errors(
    client_for: Any, status: int, body: str, headers: dict[str, str], error: type[Exception],
    message: str,
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = TestServer(app)
    await server.start_server()
    try:
        client = client_for(str(server.make_url("")), verify_signatures=False)
        with pytest.raises(error, match=re.escape(message)) as caught:
            await client.lookup(LookupQuery("01017012345"))
        if status == 503:
            assert caught.value.retry_after == 7  # type: ignore[attr-defined]
    finally:
        await server.close()


class Tokens:
    def __init__(self, fail: bool = False) -> None:
        self.asked: list[list[str]] = []
        self.fail = fail

    async def token(self, scopes: Any, *, altinn: bool = False) -> str:
        self.asked.append(list(scopes))
        if self.fail:
            raise RuntimeError("Maskinporten said invalid_client")
        return "eyJ.token.sig"


async def test_the_bearer_token_carries_the_enabled_services_scopes(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"), require_token=True)
    with pytest.raises(LookupUnavailable, match="refused our credentials"):
        await running.client().lookup(LookupQuery("910077473"))
    tokens = Tokens()
    context = LookupSourceContext(
        organisation="910077473",
        config=ServiceRegistryConfig(url=running.url),
        services=frozenset({"DPO", "DPV", "DPX"}),
        tokens=tokens,
    )
    client = ServiceRegistryClient.from_context(context)
    running.clients.append(client)
    await client.lookup(LookupQuery("910077473"))
    assert tokens.asked == [["eformidling:dpo", "eformidling:dpv"]]
    asked = [r for r in running.fake.requests if r.path == "/identifier/910077473"]
    assert [r.authorization for r in asked] == [None, "Bearer eyJ.token.sig"]
    failing = running.client(tokens=Tokens(fail=True))
    with pytest.raises(LookupUnavailable, match=r"no Maskinporten token.*invalid_client"):
        await failing.lookup(LookupQuery("910077473"))


async def test_query_parameters_print_and_beta_header(
    registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "30878199614.json"))
    plain = running.client(print_lookup=False)
    assert (await plain.lookup(LookupQuery("30878199614", security_level=4))).service_records == []
    assert running.fake.requests[0].query == {"securityLevel": "4", "print": "false"}
    beta = running.client(beta_features=True)
    records = (await beta.lookup(LookupQuery("30878199614"))).service_records
    assert [r.service_identifier for r in records] == ["DPH"]


async def test_info_lookups(registry_of_fixture: Any, sr_dir: Path, start_fake: Any) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910075924.json"))
    client = running.client()
    info = await client.info("910075924")
    assert (info.identifier, info.organization_name) == ("910075924", "TEST - C4")
    with pytest.raises(LookupNotFound):
        await client.info("974720760")
    assert running.paths() == ["/info/910075924", "/jwk", "/info/974720760"]


@pytest.mark.parametrize("url", ["ftp://registry.example", "registry.example"])
def test_the_registry_url_must_be_http(url: str) -> None:
    with pytest.raises(ValueError, match="must be an http:// or https:// URL"):
        ServiceRegistryConfig(url=url)
