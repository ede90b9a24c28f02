from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from ipunkt.api.middlewares import errors, request_context
from ipunkt.api.nextmove import NextMove, build, setup
from ipunkt.api.openapi import document
from ipunkt.api.settings import ApiSettings
from ipunkt.errors import ReceiverDoesNotAcceptProcess, ServiceNotEnabled
from ipunkt.messages.parties import primary
from ipunkt.messages.settings import MessagesSettings
from ipunkt.plugin import Channel, ChannelInfo, OutgoingMessage, SendResult
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import Keyring, MasterKey
from ipunkt.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).parent))

from openapi_check import OpenApiCheck

OWN_ORG = "910077473"
"""The documentation's examples are sent from this organisation."""
GIB = 1024**3


class Unused(Channel):
    async def send(self, message: OutgoingMessage) -> SendResult:
        raise AssertionError("the API never sends; the delivery engine does")


def channel(service: str, types: set[str], max_size: int, ttl_hours: int = 24) -> ChannelInfo:
    return ChannelInfo(service=service, name=service, message_types=frozenset(types),
                       max_size=max_size, factory=Unused, default_ttl=timedelta(hours=ttl_hours))


CHANNELS = {
    "DPO": channel("DPO", {"arkivmelding", "avtalt", "arkivmelding_kvittering"}, 3 * GIB),
    "DPV": channel("DPV", {"arkivmelding", "digital_dpv"}, 250 * 1024 * 1024, 168),
    "DPI": channel("DPI", {"digital", "print"}, 50 * 1024 * 1024),
    "DPE": channel("DPE", {"innsynskrav", "publisering", "einnsyn_kvittering"}, 2 * 1024 * 1024),
    "DPF": channel("DPF", {"arkivmelding"}, GIB),
}


@dataclass(frozen=True)
class Record:
    post_address: Any = None
    return_address: Any = None
    service: Any = None


@dataclass(frozen=True)
class TableRoute:
    service: str
    record: Record
    channel: ChannelInfo


@dataclass
class TableResolver:
    """Routing by a table: (receiver, document type) -> service; disabled services refused.

    The real router (``ipunkt.lookup``) is tested on its own; the API's tests need only the
    outcome of routing, and to choose it.
    """

    table: dict[tuple[str, str], str] = field(default_factory=dict)
    enabled: set[str] = field(default_factory=lambda: set(CHANNELS))
    records: dict[str, Record] = field(default_factory=dict)

    async def route(self, *, receiver: str | None, process: str | None,
                    document_type: str | None = None, message_type: str | None = None,
                    security_level: int | None = None,
                    conversation_id: str | None = None) -> TableRoute:
        key = primary(receiver) or ""
        service = self.table.get((key, document_type or ""))
        if service is None and receiver is None and message_type == "print":
            service = "DPI"
        if service is None:
            raise ReceiverDoesNotAcceptProcess(
                f"Receiver do not accept the document process {process}")
        if service not in self.enabled:
            raise ServiceNotEnabled(f"Service {service} is not enabled")
        return TableRoute(service, self.records.get(key, Record()), CHANNELS[service])


DOC_TYPES = {
    "urn:no:difi:arkivmelding:xsd::arkivmelding": "DPO",
    "urn:no:difi:digitalpost:xsd:digital::digital": "DPI",
    "urn:no:difi:digitalpost:xsd:digital::digital_dpv": "DPV",
    "urn:no:difi:digitalpost:xsd:fysisk::print": "DPI",
    "urn:no:difi:einnsyn:xsd::innsynskrav": "DPE",
    "urn:no:difi:einnsyn:xsd::publisering": "DPE",
    "urn:no:difi:avtalt:xsd::avtalt": "DPO",
}


@dataclass
class Clock:
    """Now, moved by tests (defaults to the real time)."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        from ipunkt.sbd.times import now_oslo

        return now_oslo() + self.offset


@dataclass
class Gateway:
    client: TestClient
    nextmove: NextMove
    resolver: TableResolver
    clock: Clock
    path: Path
    openapi: OpenApiCheck


MakeGateway = Callable[..., Any]


@pytest.fixture
def make_gateway(tmp_path: Path, aiohttp_client: Any) -> Iterator[MakeGateway]:
    """Gateways over a store in tmp_path; every answer they give must fit /api/openapi.json."""
    checks: list[OpenApiCheck] = []

    async def make(*, resolver: TableResolver | None = None, api: ApiSettings | None = None,
                   messages: MessagesSettings | None = None, path: Path | None = None,
                   key: bytes = b"k" * 32) -> Gateway:
        resolver = resolver or TableResolver(
            {(r, d): s for r in ("910075918", OWN_ORG) for d, s in DOC_TYPES.items()})
        folder = path or tmp_path / "store"
        keyring = Keyring(MasterKey(key))
        store = SqliteStore(folder / "ipunkt.sqlite3", BlobStore(folder / "payloads", keyring))
        clock = Clock()
        nextmove = build(store, resolver, CHANNELS, organisation=OWN_ORG,
                         settings=messages or MessagesSettings(), clock=clock)
        api = api or ApiSettings()
        check = OpenApiCheck(document(basic_auth=api.credentials is not None))
        checks.append(check)
        app = web.Application(middlewares=[check.middleware, request_context, errors])
        setup(app, nextmove, api)
        client = await aiohttp_client(app)
        return Gateway(client, nextmove, resolver, clock, folder, check)

    yield make
    problems = [problem for check in checks for problem in check.problems]
    assert not problems, "answers that break /api/openapi.json:\n" + "\n".join(problems)


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> AsyncIterator[Gateway]:
    yield await make_gateway()
