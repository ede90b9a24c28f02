"""Two organisations, the core's fake Maskinporten and the fake broker, over real HTTP.

Every request the plugin makes to the fake broker, and every answer the fake gives, is checked
against the published OpenAPI document of the Altinn 3 broker when the test ends.
"""

from __future__ import annotations

import io
import json
import uuid
import warnings
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ipunkt.maskinporten.client import MaskinportenClient, MaskinportenError, SystemUser
from ipunkt.maskinporten.fake import EXCHANGE_PATH, FakeClient, FakeMaskinporten
from ipunkt.package import testcerts
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.manifest import IpManifest, MainDocument
from ipunkt.package.seal import Document, seal
from ipunkt.package.testcerts import ThrowawayPki
from ipunkt.plugin import (
    Attachment,
    ChannelContext,
    IncomingMessage,
    OutgoingMessage,
    PermanentError,
    TransientError,
)
from ipunkt.testing import specs_dir
from ipunkt_dpo.channel import DPOChannel
from ipunkt_dpo.client import BrokerClient, FileTransferInitialize, Scope
from ipunkt_dpo.config import DPOConfig
from ipunkt_dpo.fake import AltinnTokens, FakeBroker, JournalEntry
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI, V30RequestValidator, V30ResponseValidator
from openapi_core.testing import MockRequest, MockResponse

ORG_A = "910077473"
ORG_B = "910075918"
REPORTEE = "987654321"
SPEC_HOST = "https://platform.tt02.altinn.no"

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture(scope="session")
def pki() -> ThrowawayPki:
    return testcerts.make_pki(ORG_A, ORG_B, REPORTEE)


class BrokerSpec:
    """The published broker API, with the quirks of that file handled.

    - Its ``webhooks`` are malformed (see SOURCES.md), so they are dropped.
    - It declares OpenAPI 3.1 but marks optional fields ``nullable: true``, a 3.0 keyword that
      3.1 ignores; the integrasjonspunkt sends ``"checksum": null`` and Altinn takes it, so the
      document is read with 3.0 semantics, which honour ``nullable``.
    - It labels the download's error bodies (ProblemDetails) ``application/octet-stream``; Altinn
      sends them as JSON, so those bodies are checked against the ProblemDetails schema.
    - RFC 7807 bodies are JSON; ASP.NET labels them ``application/problem+json``, the document
      ``application/json``.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        document.pop("webhooks", None)
        self.document = document
        self.api = OpenAPI(
            SchemaPath.from_dict(document),
            config=Config(
                request_validator_cls=V30RequestValidator,
                response_validator_cls=V30ResponseValidator,
            ),
        )

    def check(self, entry: JournalEntry, *, request_is_valid: bool = True) -> None:
        """One request and its answer against the published document.

        ``request_is_valid=False``: a request made wrong on purpose; only its answer is checked.
        """
        request = MockRequest(
            SPEC_HOST,
            entry.method.lower(),
            entry.path,
            args=[(k, v) for k, values in entry.query.items() for v in values],  # type: ignore[arg-type]
            data=entry.body,
            content_type=(entry.content_type or "application/json").split(";")[0],
        )
        if request_is_valid:
            self.api.validate_request(request)
        if entry.fault is not None or entry.response_body is None:
            return  # injected faults are not the broker's contract; streamed bodies are binary
        content_type = (entry.response_content_type or "").split(";")[0]
        if content_type == "application/problem+json":
            content_type = "application/json"
        problem = self.document["components"]["schemas"]["ProblemDetails"]
        if entry.path.endswith("/download") and entry.status >= 400:
            jsonschema.validate(json.loads(entry.response_body), problem)
            return
        if not request_is_valid and entry.status == 400:
            # ASP.NET's model validation answers 400 where the document declares none.
            jsonschema.validate(json.loads(entry.response_body), problem)
            return
        self.api.validate_response(
            request, MockResponse(entry.response_body, entry.status, content_type=content_type)
        )


@pytest.fixture(scope="session")
def broker_spec() -> BrokerSpec:
    return BrokerSpec(json.loads((specs_dir() / "altinn" / "altinn-broker-v1.json").read_text()))


@pytest.fixture
def spec_check(broker_spec: BrokerSpec) -> Callable[..., None]:
    """Checks one journalled exchange against the published document."""
    return broker_spec.check


class SystemUserTokens:
    """A TokenProvider as DPO needs it: Altinn tokens for our or a reportee's system user.

    It uses the core's Maskinporten client; each organisation has its own Maskinporten client
    here, because the core's fake lets a client use only its own organisation's system user.
    """

    def __init__(
        self, clients: Mapping[str, MaskinportenClient], exchange_url: str, own: str
    ) -> None:
        self._clients = clients
        self._exchange_url = exchange_url
        self._own = own
        self.calls: list[tuple[tuple[str, ...], str]] = []

    async def token(
        self, scopes: Sequence[str], *, altinn: bool = False, organisation: str | None = None
    ) -> str:
        who = organisation or self._own
        self.calls.append((tuple(scopes), who))
        client = self._clients[who]
        user = SystemUser(who, f"{who}_integrasjonspunkt_systembruker_{who}")
        try:
            if not altinn:
                return (await client.token(scopes, system_user=user)).value
            return (await client.altinn_token(self._exchange_url, scopes, system_user=user)).value
        except MaskinportenError as exc:  # as the contract says, and the core's provider does
            raise (TransientError if exc.transient else PermanentError)(str(exc)) from exc


@dataclass
class RecordingSink:
    """An IncomingSink that stores each message's SBD and package in a folder."""

    folder: Path
    received: list[tuple[dict[str, Any], Path | None]] = field(default_factory=list)
    fail_with: Exception | None = None
    wrap_errors: bool = False
    """Raise the sink's own error when reading the package fails, as a store might."""

    async def receive(self, message: IncomingMessage) -> bool:
        if self.fail_with is not None:
            raise self.fail_with
        # As the core must: a status reuses the original's messageId, so MOTTATT and LEVERT
        # for one message are two messages.
        if any(_identity(sbd) == _identity(message.sbd) for sbd, _ in self.received):
            return False
        path = None
        if message.payload is not None:
            path = self.folder / f"{uuid.uuid4()}.asic"
            with path.open("wb") as out:
                try:
                    async for chunk in message.payload:
                        out.write(chunk)
                except Exception as exc:
                    if self.wrap_errors:
                        raise RuntimeError(f"could not store the package: {exc}") from exc
                    raise
        self.received.append((dict(message.sbd), path))
        return True

    def of_type(self, kind: str) -> list[tuple[dict[str, Any], Path | None]]:
        return [(sbd, path) for sbd, path in self.received if _type(sbd) == kind]


def _identity(sbd: Mapping[str, Any]) -> tuple[str, str, str]:
    identification = sbd["standardBusinessDocumentHeader"]["documentIdentification"]
    status = sbd.get("status", {}).get("status", "") if _type(sbd) == "status" else ""
    return identification["instanceIdentifier"], identification["type"], status


def _type(sbd: Mapping[str, Any]) -> str:
    return str(sbd["standardBusinessDocumentHeader"]["documentIdentification"]["type"])


@dataclass
class World:
    pki: ThrowawayPki
    maskinporten: FakeMaskinporten
    broker: FakeBroker
    broker_url: str
    tokens: dict[str, SystemUserTokens]
    channels: list[DPOChannel] = field(default_factory=list)

    def context(self, organisation: str, **config: Any) -> ChannelContext:
        settings = DPOConfig(**{"enabled": True, "broker_url": self.broker_url, **config})
        return ChannelContext(
            organisation=organisation,
            config=settings,
            key=self.pki[organisation],
            tokens=self.tokens[organisation],
        )

    async def channel(self, organisation: str, **config: Any) -> DPOChannel:
        channel = DPOChannel(self.context(organisation, **config))
        await channel.start()
        self.channels.append(channel)
        return channel

    async def put_file(
        self,
        sender: str,
        recipient: str,
        data: bytes,
        *,
        reference: str | None = None,
    ) -> str:
        """A file on the broker from ``sender`` to ``recipient``, made by the broker API."""
        async with aiohttp.ClientSession() as session:
            tokens = self.tokens[sender]

            async def token(organisation: str, scope: Scope) -> str:
                return await tokens.token([scope.value], altinn=True)

            client = BrokerClient(self.broker_url, session, token)
            transfer_id = await client.initialize(
                sender,
                FileTransferInitialize(
                    file_name="sbd.zip",
                    resource_id="eformidling-dpo-meldingsutveksling",
                    sender=f"0192:{sender}",
                    recipients=[f"0192:{recipient}"],
                    senders_file_transfer_reference=reference or str(uuid.uuid4()),
                ),
            )

            async def chunks() -> AsyncIterator[bytes]:
                yield data

            await client.upload(sender, transfer_id, chunks())
            return transfer_id

    def service_record(self, organisation: str) -> dict[str, Any]:
        return {
            "organisationNumber": organisation,
            "pemCertificate": testcerts.pem(self.pki[organisation].certificate).decode(),
            "process": "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
            "service": {"identifier": "DPO"},
        }


@pytest.fixture
async def world(
    pki: ThrowawayPki,
    broker_spec: BrokerSpec,
    aiohttp_server: ServerFactory,
    tmp_path: Path,
) -> AsyncIterator[World]:
    maskinporten = FakeMaskinporten(trust=pki.trust)
    scopes = frozenset({"altinn:broker.read", "altinn:broker.write"})
    for org in (ORG_A, ORG_B, REPORTEE):
        maskinporten.register(
            FakeClient(
                f"client-{org}",
                org,
                scopes,
                system_users=frozenset({f"{org}_integrasjonspunkt_systembruker_{org}"}),
            )
        )
    mp_server = await aiohttp_server(maskinporten.app())
    broker = FakeBroker(
        tokens=AltinnTokens(maskinporten.verify_altinn_token), storage=tmp_path / "broker"
    )
    (tmp_path / "broker").mkdir()
    broker_server = await aiohttp_server(broker.app())
    async with aiohttp.ClientSession() as session:
        clients = {
            org: MaskinportenClient(
                session,
                token_url=str(mp_server.make_url("/token")),
                audience=str(mp_server.make_url("/")),
                client_id=f"client-{org}",
                key=pki[org],
            )
            for org in (ORG_A, ORG_B, REPORTEE)
        }
        exchange = str(mp_server.make_url(EXCHANGE_PATH))
        tokens = {org: SystemUserTokens(clients, exchange, org) for org in (ORG_A, ORG_B)}
        world = World(
            pki, maskinporten, broker, str(broker_server.make_url("/broker/api/v1")), tokens
        )
        yield world
        for channel in world.channels:
            await channel.stop()
    for entry in broker.journal:
        broker_spec.check(entry)


class Kit:
    """Builders for the tests: SBDs, attachments and outgoing messages."""

    ORG_A = ORG_A
    ORG_B = ORG_B
    REPORTEE = REPORTEE

    @staticmethod
    def arkivmelding_sbd(
        sender: str,
        receiver: str,
        *,
        message_id: str | None = None,
        conversation_id: str | None = None,
        extra_scopes: Sequence[dict[str, Any]] = (),
        kind: str = "arkivmelding",
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        standard = {
            "arkivmelding": "urn:no:difi:arkivmelding:xsd::arkivmelding",
            "arkivmelding_kvittering": "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
        }[kind]
        process = {
            "arkivmelding": "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
            "arkivmelding_kvittering": "urn:no:difi:profile:arkivmelding:response:ver1.0",
        }[kind]
        return {
            "standardBusinessDocumentHeader": {
                "headerVersion": "1.0",
                "sender": [{"identifier": {"authority": "iso6523-actorid-upis", "value": sender}}],
                "receiver": [
                    {"identifier": {"authority": "iso6523-actorid-upis", "value": receiver}}
                ],
                "documentIdentification": {
                    "standard": standard,
                    "typeVersion": "2.0",
                    "instanceIdentifier": message_id or str(uuid.uuid4()),
                    "type": kind,
                    "creationDateAndTime": (now - timedelta(seconds=5)).isoformat(),
                },
                "businessScope": {
                    "scope": [
                        {
                            "type": "ConversationId",
                            "instanceIdentifier": conversation_id or str(uuid.uuid4()),
                            "identifier": process,
                            "scopeInformation": [
                                {"expectedResponseDateTime": (now + timedelta(days=1)).isoformat()}
                            ],
                        },
                        *extra_scopes,
                    ]
                },
            },
            kind: body
            if body is not None
            else {"sikkerhetsnivaa": 3, "hoveddokument": "arkivmelding.xml"},
        }

    @staticmethod
    def attachment(
        filename: str, data: bytes, mime: str = "application/xml", *, primary: bool = False
    ) -> Attachment:
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 64 << 10):
                yield data[start : start + (64 << 10)]

        return Attachment(filename, mime, len(data), chunks, primary=primary)

    @staticmethod
    def package(
        sender: OrganisationKey,
        receiver: OrganisationKey,
        files: Mapping[str, bytes] | None = None,
    ) -> bytes:
        """A real sealed package (``asic.zip``) from ``sender`` to ``receiver``."""
        files = files if files is not None else {"arkivmelding.xml": b"<arkivmelding/>"}
        documents = [
            Document(name, "application/xml", lambda data=data: [data], len(data))
            for name, data in files.items()
        ]
        first = next(iter(files))
        buffer = io.BytesIO()
        seal(
            documents,
            key=sender,
            recipient=receiver.certificate,
            out=buffer,
            manifest=IpManifest(
                receiver=receiver.organisation_number or ORG_B,
                sender=sender.organisation_number or ORG_A,
                main_document=MainDocument(first, "application/xml"),
            ),
        )
        return buffer.getvalue()

    @staticmethod
    def sbd_zip(*members: tuple[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
        """A ZIP of ``(name, data)`` members, in that order."""
        buffer = io.BytesIO()
        with (
            zipfile.ZipFile(buffer, "w", compression=compression) as archive,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")  # a duplicate name is what some tests want
            for name, data in members:
                archive.writestr(name, data)
        return buffer.getvalue()

    @staticmethod
    def outgoing(
        sbd: dict[str, Any],
        attachments: Sequence[Attachment] = (),
        service_record: Mapping[str, Any] | None = None,
    ) -> OutgoingMessage:
        header = sbd["standardBusinessDocumentHeader"]
        return OutgoingMessage(
            message_id=header["documentIdentification"]["instanceIdentifier"],
            conversation_id=header["businessScope"]["scope"][0]["instanceIdentifier"],
            sender=header["sender"][0]["identifier"]["value"],
            receiver=header["receiver"][0]["identifier"]["value"],
            process=header["businessScope"]["scope"][0]["identifier"],
            document_type=header["documentIdentification"]["type"],
            sbd=sbd,
            expires_at=datetime.now(UTC) + timedelta(days=1),
            attachments=tuple(attachments),
            service_record=service_record,
        )


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
def make_sink(tmp_path: Path) -> Callable[[], RecordingSink]:
    def make() -> RecordingSink:
        folder = tmp_path / f"received-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        return RecordingSink(folder)

    return make


@pytest.fixture
def sink(make_sink: Callable[[], RecordingSink]) -> RecordingSink:
    return make_sink()
