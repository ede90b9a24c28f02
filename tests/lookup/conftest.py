"""Fixtures of the lookup tests: the published registry answers, registry files, a fake registry."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from aiohttp.test_utils import TestServer
from ipunkt.lookup.records import IdentifierResource, ServiceRecord
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.service_registry import ServiceRegistryClient, ServiceRegistryConfig
from ipunkt.lookup.service_registry_fake import FakeServiceRegistry

WriteRegistry = Callable[[Iterable[dict[str, Any]]], Path]


@pytest.fixture(scope="session")
def sr_dir(specs_dir: Path) -> Path:
    return specs_dir / "service-registry"


@pytest.fixture(scope="session")
def sr_fixtures(sr_dir: Path) -> list[Path]:
    files = sorted(sr_dir.glob("*.json"))
    assert len(files) >= 20, f"expected the registry fixtures in {sr_dir}"
    return files


@pytest.fixture(scope="session")
def restdocs_examples(sr_dir: Path) -> list[tuple[str, str, int, str]]:
    """Each example of restdocs.md: (request line, query string, status, JSON body)."""
    text = (sr_dir / "restdocs.md").read_text()
    pattern = re.compile(
        r"\n\s*GET (?P<path>\S+) HTTP/1\.1.*?HTTP/1\.1 (?P<status>\d{3}) [^\n]*\n.*?"
        r"\n\s*\n(?P<indent>[ ]*)(?P<body>\{.*?\n(?P=indent)\})\n",
        re.S,
    )
    examples = []
    for match in pattern.finditer(text):
        path, _, query = match["path"].partition("?")
        examples.append((path, query, int(match["status"]), match["body"]))
    assert len(examples) == 9, [e[0] for e in examples]
    return examples


def registry_receiver(answer: dict[str, Any]) -> dict[str, Any]:
    """A registry ``[[receiver]]`` table holding what one registry answer says."""
    parsed = IdentifierResource.model_validate(answer)
    info = parsed.info_record
    assert info is not None
    receiver: dict[str, Any] = {"identifier": info.identifier, "record": []}
    if info.organization_name is not None:
        receiver["name"] = info.organization_name
    if info.entity_type is not None and info.entity_type.name:
        receiver["entity_type"] = info.entity_type.name
    for record in parsed.service_records:
        receiver["record"].append(registry_record(info.identifier, record))
    return receiver


def registry_record(identifier: str, record: ServiceRecord) -> dict[str, Any]:
    service = record.service
    table: dict[str, Any] = {
        "service": service.identifier,
        "processes": [record.process],
        "document_types": record.document_types,
        "endpoint": service.endpoint_url or "",
    }
    optional = {
        "certificate_pem": record.pem_certificate or None,
        "security_level": service.security_level,
        "service_code": service.service_code,
        "service_edition_code": service.service_edition_code,
        "resource": service.resource,
        "organisation_number": (
            record.organisation_number if record.organisation_number != identifier else None
        ),
    }
    if service.identifier == "DPI":
        optional |= {
            "mailbox_supplier": record.orgnr_postkasse,
            "mailbox_address": record.postkasse_adresse,
            "mobile": record.mobilnummer or None,
            "email": record.epost_adresse or None,
            "notifiable": record.kan_varsles,
            "physical_post": record.fysisk_post,
            "language": record.spraak,
        }
        for key in ("post_address", "return_address"):
            address = getattr(record, key)
            if address is not None and any(address.model_dump().values()):
                optional[key] = address.model_dump()
    table |= {key: value for key, value in optional.items() if value is not None}
    extra = dict(record.model_extra or {})
    if record.her_id is not None:
        extra["herId"] = record.her_id
    if extra:
        table["extra"] = _without_nulls(extra)
    return table


def _without_nulls(value: Any) -> Any:
    """TOML has no null: drop null members (the models read a missing field as null)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@pytest.fixture
def write_registry(tmp_path: Path) -> WriteRegistry:
    """Write a registry file of ``[[receiver]]`` tables and return its path."""

    def write(receivers: Iterable[dict[str, Any]]) -> Path:
        path = tmp_path / f"registry-{len(list(tmp_path.glob('registry-*.toml')))}.toml"
        path.write_text(tomli_w.dumps({"receiver": list(receivers)}))
        return path

    return write


@pytest.fixture
def registry_of_fixture(write_registry: WriteRegistry) -> Callable[[Path], LocalRegistry]:
    """A loaded local registry holding exactly what one published registry answer says."""

    def load(fixture: Path) -> LocalRegistry:
        answer = json.loads(fixture.read_text())
        registry = LocalRegistry(write_registry([registry_receiver(answer)]))
        registry.load()
        return registry

    return load


class RunningFake:
    """A fake registry served over real HTTP, and the clients pointed at it."""

    def __init__(self, fake: FakeServiceRegistry, server: TestServer) -> None:
        self.fake = fake
        self.server = server
        self.url = str(server.make_url("")).rstrip("/")
        self.clients: list[ServiceRegistryClient] = []

    def client(
        self, *, tokens: Any = None, scopes: tuple[str, ...] = (), **settings: Any
    ) -> ServiceRegistryClient:
        config = ServiceRegistryConfig(url=settings.pop("url", self.url), **settings)
        client = ServiceRegistryClient(config, tokens=tokens, scopes=scopes)
        self.clients.append(client)
        return client

    def paths(self) -> list[str]:
        """The paths the registry was asked, in order (the JWK set included)."""
        return [seen.path for seen in self.fake.requests]


StartFake = Callable[..., Any]


@pytest.fixture
async def start_fake() -> AsyncIterator[StartFake]:
    """Start fake registries: ``await start_fake(registry, require_token=...)``."""
    running: list[RunningFake] = []

    async def start(registry: LocalRegistry, **options: Any) -> RunningFake:
        fake = FakeServiceRegistry(registry, **options)
        server = TestServer(fake.app())
        await server.start_server()
        running.append(RunningFake(fake, server))
        return running[-1]

    yield start
    for each in running:
        for client in each.clients:
            await client.stop()
        await each.server.close()
