"""Fixtures for the DPI plugin's tests: keys, the fake access point on a real port, tokens,
messages, and a check of every request the channel makes against the published OpenAPI."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from ipunkt.package import jws
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.testcerts import CertificateAuthority, make_ca, pem
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import (
    Attachment,
    ChannelContext,
    OutgoingMessage,
    PollableConversation,
    ReceiptStatus,
)
from ipunkt.testing import specs_dir
from ipunkt_dpi.channel import DPIChannel
from ipunkt_dpi.config import DPIConfig
from ipunkt_dpi.fake import FakeAccessPoint
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict
from yarl import URL

ORG = "910077473"
CITIZEN = "ola.nordmann#9YDT"
BASE = "/dpi"
FAULT_STATUSES = {408, 429, 500, 502, 503, 504}
"""Statuses the fake answers only when a fault is injected; the OpenAPI does not list them.
Their answers, and answers cut short by a fault, are not checked; the requests always are."""


@pytest.fixture(scope="session")
def specs() -> Path:
    return specs_dir()


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return make_ca("ipunkt DPI test CA")


@pytest.fixture(scope="session")
def our_key(ca: CertificateAuthority) -> OrganisationKey:
    return ca.issue(ORG, "TESTKOMMUNE")


@pytest.fixture(scope="session")
def providers(ca: CertificateAuthority) -> tuple[OrganisationKey, OrganisationKey]:
    """The fake's mailbox and print provider keys, made once (RSA keys take time)."""
    return ca.issue("984661185", "FAKE POSTKASSE"), ca.issue("974761076", "FAKE UTSKRIFT")


@pytest.fixture
def anchors(tmp_path: Path, ca: CertificateAuthority) -> Path:
    path = tmp_path / "anchors.pem"
    path.write_bytes(pem(ca.certificate))
    return path


TOKEN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Tokens:
    """Maskinporten-like tokens: RS256 JWTs with the scope, as the core's client hands out."""

    def __init__(self, organisation: str = ORG, *, delegations: bool = True) -> None:
        self.organisation = organisation
        self.delegations = delegations
        self.key = TOKEN_KEY
        self.issued: list[str] = []

    async def token(
        self, scopes: Any, *, altinn: bool = False, organisation: str | None = None
    ) -> str:
        """``organisation``: act for it (``consumer_org``), if it delegated to us."""
        consumer = organisation if organisation and self.delegations else self.organisation
        now = int(time.time())
        claims = {
            "iss": "https://test.maskinporten.no/",
            "scope": " ".join(scopes),
            "client_id": f"MOVE_IP_{self.organisation}",
            "consumer": {"authority": "iso6523-actorid-upis", "ID": f"0192:{consumer}"},
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        }
        token = jws.sign(claims, self.key, kid="maskinporten-test")
        self.issued.append(token)
        return token


@dataclass
class Exchange:
    """One request the channel made, as it went on the wire, and the answer."""

    method: str
    url: URL
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytearray = field(default_factory=bytearray)


class Recorder:
    """Records every request through aiohttp's tracing hooks, body included."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_headers_sent.append(self._headers)
        self.config.on_request_chunk_sent.append(self._chunk)
        self.config.on_request_end.append(self._end)
        self.config.on_response_chunk_received.append(self._response_chunk)

    async def _start(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        context.exchange = Exchange(params.method, params.url)
        self.exchanges.append(context.exchange)

    async def _headers(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        context.exchange.headers = dict(params.headers)

    async def _chunk(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        context.exchange.body += params.chunk

    async def _end(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        context.exchange.status = params.response.status
        context.exchange.response_headers = dict(params.response.headers)

    async def _response_chunk(self, session: Any, context: SimpleNamespace, params: Any) -> None:
        context.exchange.response_body += params.chunk


@dataclass
class _SpecRequest:
    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    content_type: str
    body: bytes | None


@dataclass
class _SpecResponse:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes


def _json_loads(value: bytes, **parameters: str) -> Any:
    return json.loads(value)


class AccessPointSpec:
    """The access point's published OpenAPI (response codes turned into strings)."""

    def __init__(self, specs: Path) -> None:
        document = yaml.safe_load((specs / "dpi" / "corner2-openapi.yaml").read_text())
        for item in document["paths"].values():
            for operation in item.values():
                operation["responses"] = {str(k): v for k, v in operation["responses"].items()}
        config = Config(extra_media_type_deserializers={"application/problem+json": _json_loads})
        self.api = OpenAPI.from_dict(document, config=config)

    def _request(self, exchange: Exchange) -> _SpecRequest:
        path = exchange.url.path.removeprefix(BASE)
        headers = Headers(list(exchange.headers.items()))
        return _SpecRequest(
            host_url=f"{exchange.url.scheme}://{exchange.url.host}:{exchange.url.port}",
            path=path,
            method=exchange.method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(exchange.url.query.items())), header=headers
            ),
            content_type=headers.get("Content-Type", ""),
            body=bytes(exchange.body) if exchange.body else None,
        )

    def errors(self, exchange: Exchange) -> list[str]:
        request = self._request(exchange)
        problems = [f"request: {e}" for e in self.api.iter_request_errors(request)]
        headers = Headers(list(exchange.response_headers.items()))
        length = headers.get("Content-Length")
        truncated = length is not None and int(length) != len(exchange.response_body)
        if exchange.status is not None and exchange.status not in FAULT_STATUSES and not truncated:
            response = _SpecResponse(
                exchange.status,
                headers.get("Content-Type", "").split(";")[0],
                headers,
                bytes(exchange.response_body),
            )
            problems += [f"response: {e}" for e in self.api.iter_response_errors(request, response)]
        return problems


@pytest.fixture(scope="session")
def access_point_spec(specs: Path) -> AccessPointSpec:
    return AccessPointSpec(specs)


@pytest.fixture
def recorder(access_point_spec: AccessPointSpec) -> Iterator[Recorder]:
    """Every exchange recorded in a test is checked against the OpenAPI when it ends."""
    recorder = Recorder()
    yield recorder
    problems = [
        f"{e.method} {e.url}: {p}" for e in recorder.exchanges for p in access_point_spec.errors(e)
    ]
    assert not problems, "\n".join(problems)


@pytest.fixture
def fake(
    ca: CertificateAuthority, providers: Any, specs: Path, tmp_path: Path
) -> Iterator[FakeAccessPoint]:
    mailbox, printer = providers
    fake = FakeAccessPoint(
        ca=ca,
        mailbox=mailbox,
        printer=printer,
        sender_trust=TrustStore([ca.certificate]),
        specs=specs,
        storage=tmp_path / "fake",
    )
    yield fake
    fake.cleanup()


@pytest.fixture
async def access_point(aiohttp_server: Any, fake: FakeAccessPoint) -> str:
    """The fake on a real port; its base URL."""
    server = await aiohttp_server(fake.app())
    return str(server.make_url(BASE))


MakeChannel = Callable[..., Awaitable[DPIChannel]]


@pytest.fixture
async def make_channel(
    access_point: str, our_key: OrganisationKey, anchors: Path, recorder: Recorder, tmp_path: Path
) -> AsyncIterator[MakeChannel]:
    """Build and start a DPI channel against the fake; ``config`` overrides its settings."""
    channels: list[DPIChannel] = []

    async def make(tokens: Tokens | None = None, **config: Any) -> DPIChannel:
        settings = {
            "enabled": True,
            "access_point_url": access_point,
            "trust_anchors": (anchors,),
            "spool_directory": tmp_path,
            **config,
        }
        context = ChannelContext(
            organisation=ORG,
            config=DPIConfig(**settings),
            key=our_key,
            tokens=tokens or Tokens(),
        )
        channel = DPIChannel(context, trace_configs=[recorder.config])
        await channel.start()
        channels.append(channel)
        return channel

    yield make
    for channel in channels:
        await channel.stop()


def attachment(
    name: str,
    data: bytes,
    *,
    mime: str = "application/pdf",
    primary: bool = False,
    title: str | None = None,
    chunk: int = 1 << 16,
) -> Attachment:
    async def open_() -> AsyncIterator[bytes]:
        for start in range(0, len(data), chunk):
            yield data[start : start + chunk]

    return Attachment(name, mime, len(data), open_, title=title, primary=primary)


def service_record(
    fake: FakeAccessPoint, *, printing: bool = False, **extra: Any
) -> dict[str, Any]:
    """A DPI record as the Service Registry writes it (wire names); for print, the print
    provider's organisation number and certificate, as the routing puts them."""
    provider = fake.printer if printing else fake.mailbox
    record: dict[str, Any] = {
        "organisationNumber": "06068700602",
        "pemCertificate": pem(provider.certificate).decode(),
        "process": "urn:no:difi:profile:digitalpost:vedtak:ver1.0",
        "documentTypes": [
            "urn:no:difi:digitalpost:xsd:digital::digital",
            "urn:no:difi:digitalpost:xsd:fysisk::print",
        ],
        "service": {"identifier": "DPI", "securityLevel": 3},
        "orgnrPostkasse": provider.organisation_number,
        "postkasseAdresse": None if printing else CITIZEN,
        "mobilnummer": "",
        "kanVarsles": False,
        "epostAdresse": "",
        "fysiskPost": printing,
        "spraak": None,
    }
    record.update(extra)
    return record


def _sbd(kind: str, message_id: str, conversation_id: str, body: dict[str, Any]) -> dict[str, Any]:
    standard = {
        "digital": "urn:no:difi:digitalpost:xsd:digital::digital",
        "print": "urn:no:difi:digitalpost:xsd:fysisk::print",
    }[kind]
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [
                {"identifier": {"authority": "iso6523-actorid-upis", "value": f"0192:{ORG}"}}
            ],
            "receiver": [
                {"identifier": {"authority": "iso6523-actorid-upis", "value": "06068700602"}}
            ],
            "documentIdentification": {
                "standard": standard,
                "typeVersion": "1.0",
                "instanceIdentifier": message_id,
                "type": kind,
            },
            "businessScope": {
                "scope": [
                    {
                        "type": "ConversationId",
                        "instanceIdentifier": conversation_id,
                        "identifier": "urn:no:difi:profile:digitalpost:vedtak:ver1.0",
                    }
                ]
            },
        },
        kind: body,
    }


def digital_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sikkerhetsnivaa": 3,
        "hoveddokument": "vedtak.pdf",
        "tittel": "Vedtak om barnehageplass",
        "spraak": "NO",
        "digitalPostInfo": {"virkningsdato": "2026-12-01", "aapningskvittering": False},
    }
    body.update(overrides)
    return body


def print_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hoveddokument": "brev.pdf",
        "mottaker": {
            "navn": "Kari Nordmann",
            "adresselinje1": "Storgata 1",
            "postnummer": "0155",
            "poststed": "Oslo",
            "land": "Norge",
        },
        "retur": {
            "mottaker": {
                "navn": "Testkommune",
                "adresselinje1": "Postboks 1",
                "postnummer": "6863",
                "poststed": "Leikanger",
            },
            "returhaandtering": "DIREKTE_RETUR",
        },
    }
    body.update(overrides)
    return body


def message(
    kind: str,
    record: dict[str, Any] | None,
    body: dict[str, Any],
    attachments: list[Attachment],
    *,
    sender: str = f"0192:{ORG}",
) -> OutgoingMessage:
    message_id, conversation_id = str(uuid.uuid4()), str(uuid.uuid4())
    return OutgoingMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender=sender,
        receiver="06068700602",
        process="urn:no:difi:profile:digitalpost:vedtak:ver1.0",
        document_type=_sbd(kind, message_id, conversation_id, body)[
            "standardBusinessDocumentHeader"
        ]["documentIdentification"]["standard"],
        sbd=_sbd(kind, message_id, conversation_id, body),
        expires_at=datetime.now(UTC) + timedelta(days=1),
        attachments=tuple(attachments),
        service_record=record,
    )


def conversation(
    sent: OutgoingMessage, *statuses: ReceiptStatus, reference: str | None = None
) -> PollableConversation:
    return PollableConversation(
        message_id=sent.message_id,
        conversation_id=sent.conversation_id,
        receiver=sent.receiver,
        external_reference=reference or sent.message_id,
        statuses=statuses or (ReceiptStatus.OPPRETTET, ReceiptStatus.SENDT),
    )


PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"


@pytest.fixture
def kit() -> SimpleNamespace:
    """The builders above, for the test modules (which cannot import conftest)."""
    return SimpleNamespace(
        attachment=attachment,
        service_record=service_record,
        digital_body=digital_body,
        print_body=print_body,
        message=message,
        conversation=conversation,
        Tokens=Tokens,
        Exchange=Exchange,
        PDF=PDF,
        CITIZEN=CITIZEN,
        ORG=ORG,
    )
