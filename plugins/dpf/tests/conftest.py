"""Fixtures for the DPF plugin's tests: keys, the fake SvarUt/SvarInn on a real port, tokens,
messages, sinks, and a check of every request against SvarUt's published OpenAPI (v3)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.testcerts import CertificateAuthority, make_ca
from ipunkt.plugin import (
    Attachment,
    ChannelContext,
    IncomingMessage,
    OutgoingMessage,
    PollableConversation,
    ReceiptStatus,
)
from ipunkt.testing import specs_dir
from ipunkt_dpf.channel import DPFChannel
from ipunkt_dpf.config import DPFConfig
from ipunkt_dpf.fake import Account, FakeSvarUt, Mailbox
from lxml import etree
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SENDER = "910077473"
RECEIVER = "910075918"
SVARUT_HOST = "https://test.svarut.ks.no"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
V2_PATHS = {
    "eksternref": re.compile(rf"^/api/v2/kontoer/{UUID}/forsendelser$"),
    "hendelser": re.compile(rf"^/api/v2/forsendelser/{UUID}/hendelser$"),
}
"""SvarUt calls outside the v3 specs (fiks-svarut-klient's v2 OpenAPI files), checked by shape."""
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@pytest.fixture(scope="session")
def specs() -> Path:
    return specs_dir()


@pytest.fixture(scope="session")
def ca() -> CertificateAuthority:
    return make_ca("ipunkt DPF test CA")


@pytest.fixture(scope="session")
def sender_key(ca: CertificateAuthority) -> OrganisationKey:
    return ca.issue(SENDER, "AVSENDER KOMMUNE")


@pytest.fixture(scope="session")
def receiver_key(ca: CertificateAuthority) -> OrganisationKey:
    return ca.issue(RECEIVER, "MOTTAKER KOMMUNE")


@pytest.fixture(scope="session")
def svarut_key() -> OrganisationKey:
    return make_ca("KS test CA").issue("971032146", "KS SVARUT")


@pytest.fixture(scope="session")
def arkivmelding_schema(specs: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(specs / "arkivmelding" / "arkivmelding.xsd")))


class Tokens:
    """A Maskinporten stand-in: a fresh token per call, recording the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.issued: list[str] = []

    async def token(self, scopes: Any, *, altinn: bool = False) -> str:
        self.scopes.append(tuple(scopes))
        token = f"mp-{uuid.uuid4()}"
        self.issued.append(token)
        return token


@dataclass
class Seen:
    """A request as it reached the fake, body included."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int | None = None


@dataclass
class _Request:
    """openapi-core's view of a request, as sent to SvarUt's published server."""

    path: str
    method: str
    body: bytes
    content_type: str
    headers: dict[str, str]
    query: dict[str, str]
    host_url: str = SVARUT_HOST
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(self.query), header=Headers(self.headers),
            cookie=ImmutableMultiDict(),
        )


@dataclass
class _Response:
    status_code: int
    data: bytes
    content_type: str
    headers: Headers


class SpecCheck:
    """Checks every SvarUt request (and its answer) against the published OpenAPI."""

    def __init__(self, apis: tuple[OpenAPI, OpenAPI]) -> None:
        self.send, self.status = apis
        self.seen: list[Seen] = []
        self.violations: list[str] = []

    def _api(self, path: str) -> OpenAPI | None:
        if path.endswith("/status/sok"):
            return self.status
        if path.startswith("/api/v3/"):
            return self.send
        return None

    def check_request(self, seen: Seen) -> None:
        if seen.path.startswith("/tjenester/svarinn/") or seen.path.startswith("/_fake"):
            return
        for header in ("IntegrasjonId", "IntegrasjonPassord"):
            if not seen.headers.get(header):
                self.violations.append(f"{seen.method} {seen.path}: no {header} header")
        api = self._api(seen.path)
        if api is None:
            if not any(p.match(seen.path) for p in V2_PATHS.values()) or seen.method != "GET":
                self.violations.append(f"{seen.method} {seen.path}: not a SvarUt API call")
            if "/kontoer/" in seen.path and not seen.query.get("eksternRef"):
                self.violations.append(f"{seen.path}: no eksternRef query parameter")
            return
        request = _Request(seen.path, seen.method.lower(), seen.body,
                           seen.headers.get("Content-Type", "").lower(), seen.headers, seen.query)
        try:
            api.validate_request(request)
        except Exception as exc:
            cause = getattr(exc, "__cause__", None)
            details = [str(e).splitlines()[0] for e in getattr(cause, "schema_errors", [])]
            self.violations.append(f"{seen.method} {seen.path}: {exc} {details}")

    def check_response(self, seen: Seen, response: web.Response) -> None:
        api = self._api(seen.path)
        if api is None or not isinstance(response.body, bytes):
            return
        request = _Request(seen.path, seen.method.lower(), seen.body,
                           seen.headers.get("Content-Type", "").lower(), seen.headers, seen.query)
        answer = _Response(response.status, response.body,
                           response.content_type or "", Headers(dict(response.headers)))
        try:
            api.validate_response(request, answer)
        except Exception as exc:
            self.violations.append(f"answer to {seen.method} {seen.path}: {exc}")

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def validate(request: web.Request, handler: Any) -> web.StreamResponse:
            body = bytearray()
            while chunk := await request.content.read(1 << 20):
                body += chunk
            replay = StreamReader(request.protocol, 1 << 16, loop=asyncio.get_running_loop())
            replay.feed_data(bytes(body))
            replay.feed_eof()
            request._payload = replay  # type: ignore[attr-defined]  # hand the body on
            seen = Seen(request.method, request.path, dict(request.query),
                        dict(request.headers), bytes(body))
            self.seen.append(seen)
            self.check_request(seen)
            response = await handler(request)
            seen.status = response.status
            if isinstance(response, web.Response):
                self.check_response(seen, response)
            return response  # type: ignore[no-any-return]

        return validate


@pytest.fixture(scope="session")
def svarut_apis(specs: Path) -> tuple[OpenAPI, OpenAPI]:
    """SvarUt's send and status APIs (v3), as published."""
    svarut = specs / "svarut"
    send = OpenAPI.from_dict(json.loads((svarut / "forsendelse-send-api-v3.json").read_text()))
    # The status API declares its body as */*; SvarUt's own client sends JSON.
    status = OpenAPI.from_dict(
        json.loads((svarut / "forsendelse-status-api-v3.json").read_text()),
        config=Config(extra_media_type_deserializers={"*/*": json.loads}),
    )
    return send, status


@dataclass
class Svarut:
    """The fake on a real port, the accounts and mailboxes made for the tests."""

    fake: FakeSvarUt
    url: str
    spec: SpecCheck
    sender: Account
    receiver: Account
    sender_mailbox: Mailbox
    receiver_mailbox: Mailbox

    def sent(self, operation_path: str) -> list[Seen]:
        return [s for s in self.spec.seen if s.path.endswith(operation_path)]


@pytest.fixture
async def svarut(
    tmp_path: Path,
    svarut_apis: tuple[OpenAPI, OpenAPI],
    svarut_key: OrganisationKey,
    sender_key: OrganisationKey,
    receiver_key: OrganisationKey,
) -> AsyncIterator[Svarut]:
    fake = FakeSvarUt(tmp_path / "svarut", key=svarut_key)
    spec = SpecCheck(svarut_apis)
    app = fake.app()
    app.middlewares.insert(0, spec.middleware())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    sender = fake.add_account(SENDER, name="Avsender kommune",
                              address=("Rådhusgata 1", "0151", "Oslo"))
    receiver = fake.add_account(RECEIVER, name="Mottaker kommune")
    sender_mailbox = fake.add_mailbox(SENDER, sender_key.certificate, name="Avsender kommune")
    receiver_mailbox = fake.add_mailbox(RECEIVER, receiver_key.certificate,
                                        name="Mottaker kommune")
    try:
        yield Svarut(fake, str(server.make_url("")).rstrip("/"), spec, sender, receiver,
                     sender_mailbox, receiver_mailbox)
    finally:
        await server.close()
    assert not spec.violations, "requests or answers break SvarUt's OpenAPI:\n" + "\n".join(
        spec.violations
    )


@pytest.fixture
async def make_channel(
    svarut: Svarut, tmp_path: Path, sender_key: OrganisationKey, receiver_key: OrganisationKey
) -> AsyncIterator[Callable[..., Awaitable[DPFChannel]]]:
    """A started channel of the sender (or the receiver) organisation, configured for the fake."""
    channels: list[DPFChannel] = []

    async def make(as_receiver: bool = False, tokens: Tokens | None = None,
                   **settings: Any) -> DPFChannel:
        account = svarut.receiver if as_receiver else svarut.sender
        mailbox = svarut.receiver_mailbox if as_receiver else svarut.sender_mailbox
        work = tmp_path / f"work-{account.organisation}"
        work.mkdir(exist_ok=True)
        values: dict[str, Any] = {
            "enabled": True,
            "svarut_url": svarut.url,
            "account_id": account.konto_id,
            "integration_id": account.integration_id,
            "integration_password": account.integration_password,
            "svarinn_username": mailbox.username,
            "svarinn_password": mailbox.password,
            "work_dir": str(work),
            "request_timeout": 5.0,
        }
        values.update(settings)
        context = ChannelContext(
            organisation=account.organisation,
            config=DPFConfig(**values),
            key=receiver_key if as_receiver else sender_key,
            tokens=tokens or Tokens(),
        )
        channel = DPFChannel(context)
        await channel.start()
        channels.append(channel)
        return channel

    yield make
    for made in channels:
        await made.stop()


@pytest.fixture
async def channel(make_channel: Callable[..., Awaitable[DPFChannel]]) -> DPFChannel:
    """The sending organisation's channel."""
    return await make_channel()


@pytest.fixture
async def receiving(make_channel: Callable[..., Awaitable[DPFChannel]]) -> DPFChannel:
    """The receiving organisation's channel."""
    return await make_channel(as_receiver=True)


def attachment(name: str, data: bytes, mime: str, *, primary: bool = False) -> Attachment:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, max(len(data), 1), 64 * 1024):
            yield data[start : start + 64 * 1024]

    return Attachment(name, mime, len(data), chunks, primary=primary)


def arkivmelding_xml(
    documents: list[tuple[str, str]],
    *,
    title: str | None = "Søknad om byggeløyve",
    extra: dict[str, str] | None = None,
    sender_address: bool = True,
) -> bytes:
    """An arkivmelding whose journalpost names ``documents`` ((filename, 'Hoveddokument' or
    'Vedlegg'), in this order)."""
    descriptions = "".join(
        f"""
        <dokumentbeskrivelse>
          <systemID>{uuid.uuid4()}</systemID>
          <dokumenttype>Søknad</dokumenttype>
          <dokumentstatus>Dokumentet er ferdigstilt</dokumentstatus>
          <tittel>{name}</tittel>
          <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
          <opprettetAv>Saksbehandler</opprettetAv>
          <tilknyttetRegistreringSom>{role}</tilknyttetRegistreringSom>
          <dokumentnummer>{number}</dokumentnummer>
          <tilknyttetDato>2024-01-16T10:00:00+01:00</tilknyttetDato>
          <tilknyttetAv>Saksbehandler</tilknyttetAv>
          <dokumentobjekt>
            <versjonsnummer>1</versjonsnummer>
            <variantformat>Produksjonsformat</variantformat>
            <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
            <opprettetAv>Saksbehandler</opprettetAv>
            <referanseDokumentfil>{name}</referanseDokumentfil>
          </dokumentobjekt>
        </dokumentbeskrivelse>"""
        for number, (name, role) in enumerate(documents, start=1)
    )
    titles = (f"<tittel>{title} (intern)</tittel><offentligTittel>{title}</offentligTittel>"
              if title else "<tittel></tittel>")
    metadata = "".join(f"<{k}>{v}</{k}>" for k, v in (extra or {}).items())
    address = ("<postadresse>Rådhusgata 1</postadresse><postnummer>0151</postnummer>"
               "<poststed>Oslo</poststed>") if sender_address else ""
    return f"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding"
              xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <system>Fagsystem</system>
  <meldingId>{uuid.uuid4()}</meldingId>
  <tidspunkt>2024-01-16T10:00:00+01:00</tidspunkt>
  <antallFiler>{len(documents)}</antallFiler>
  <mappe xsi:type="saksmappe">
    <systemID>43fbe161-7aac-4c9f-a888-d8167aab4144</systemID>
    <tittel>Byggesak Storgata 1</tittel>
    <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
    <opprettetAv>Saksbehandler</opprettetAv>
    <basisregistrering xsi:type="journalpost">
      <systemID>430a6710-a3d4-4863-8bd0-5eb1021bee45</systemID>
      <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
      <opprettetAv>Saksbehandler</opprettetAv>
      <referanseForelderMappe>43fbe161-7aac-4c9f-a888-d8167aab4144</referanseForelderMappe>
      {descriptions}
      {titles}
      <virksomhetsspesifikkeMetadata>{metadata}</virksomhetsspesifikkeMetadata>
      <journalaar>2024</journalaar>
      <journalsekvensnummer>25</journalsekvensnummer>
      <journalpostnummer>13</journalpostnummer>
      <journalposttype>Utgående dokument</journalposttype>
      <journalstatus>Ekspedert</journalstatus>
      <journaldato>2024-01-16</journaldato>
      <dokumentetsDato>2024-01-15</dokumentetsDato>
      <korrespondansepart>
        <korrespondanseparttype>Mottaker</korrespondanseparttype>
        <korrespondansepartNavn>Mottaker kommune</korrespondansepartNavn>
      </korrespondansepart>
      <korrespondansepart>
        <korrespondanseparttype>Avsender</korrespondanseparttype>
        <korrespondansepartNavn>Avsender kommune</korrespondansepartNavn>
        {address}
        <saksbehandler>Kari Nordmann</saksbehandler>
      </korrespondansepart>
    </basisregistrering>
    <saksaar>2024</saksaar>
    <sakssekvensnummer>7</sakssekvensnummer>
    <saksdato>2024-01-16</saksdato>
    <administrativEnhet>Byggesak</administrativEnhet>
    <saksansvarlig>Kari Nordmann</saksansvarlig>
    <saksstatus>Under behandling</saksstatus>
  </mappe>
</arkivmelding>""".encode()


def sbd(
    message_id: str,
    conversation_id: str,
    *,
    sender: str = SENDER,
    receiver: str = RECEIVER,
    kind: str = "arkivmelding",
    security_level: int | None = 3,
    receiver_ref: str | None = None,
    forsendelse_type: str | None = None,
) -> dict[str, Any]:
    scopes: list[dict[str, Any]] = [{
        "type": "ConversationId",
        "instanceIdentifier": conversation_id,
        "identifier": "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
        "scopeInformation": [
            {"expectedResponseDateTime": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
        ],
    }]
    if receiver_ref:
        scopes.append({"type": "ReceiverRef", "instanceIdentifier": receiver_ref})
    body: dict[str, Any] = {}
    if security_level is not None:
        body["sikkerhetsnivaa"] = security_level
    if forsendelse_type:
        body["dpf"] = {"forsendelseType": forsendelse_type}
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"authority": "iso6523-actorid-upis",
                                       "value": f"0192:{sender}"}}],
            "receiver": [{"identifier": {"authority": "iso6523-actorid-upis",
                                         "value": f"0192:{receiver}"}}],
            "documentIdentification": {
                "standard": f"urn:no:difi:arkivmelding:xsd::{kind}",
                "typeVersion": "2.0",
                "instanceIdentifier": message_id,
                "type": kind,
                "creationDateAndTime": datetime.now(UTC).isoformat(),
            },
            "businessScope": {"scope": scopes},
        },
        kind: body,
    }


@dataclass
class Messages:
    """Builds outgoing messages for the tests."""

    svarut: Svarut

    def make(
        self,
        files: list[Attachment] | None = None,
        *,
        arkivmelding: bytes | None = None,
        sender: str = SENDER,
        receiver: str = RECEIVER,
        record: dict[str, Any] | None = None,
        **sbd_fields: Any,
    ) -> OutgoingMessage:
        message_id, conversation_id = str(uuid.uuid4()), str(uuid.uuid4())
        if files is None:
            files = [attachment("vedtak.pdf", PDF, "application/pdf"),
                     attachment("kart.png", b"\x89PNG\r\n\x1a\nbilde", "image/png")]
        if arkivmelding is None:
            arkivmelding = arkivmelding_xml(
                [(f.filename, "Hoveddokument" if i == 0 else "Vedlegg")
                 for i, f in enumerate(files)]
            )
        everything = [attachment("arkivmelding.xml", arkivmelding, "application/xml"), *files]
        return OutgoingMessage(
            message_id=message_id,
            conversation_id=conversation_id,
            sender=f"0192:{sender}",
            receiver=f"0192:{receiver}",
            process="urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
            document_type="urn:no:difi:arkivmelding:xsd::arkivmelding",
            sbd=sbd(message_id, conversation_id, sender=sender, receiver=receiver, **sbd_fields),
            expires_at=datetime.now(UTC) + timedelta(days=1),
            attachments=everything,
            service_record=(record if record is not None
                            else self.svarut.fake.service_record(receiver)),
        )

    @staticmethod
    def pollable(message: OutgoingMessage, reference: str | None,
                 statuses: tuple[ReceiptStatus, ...] = (ReceiptStatus.SENDT,
                                                        ReceiptStatus.LEVERT),
                 ) -> PollableConversation:
        return PollableConversation(message.message_id, message.conversation_id,
                                    message.receiver, reference, statuses)


@pytest.fixture
def messages(svarut: Svarut) -> Messages:
    return Messages(svarut)


@dataclass
class Received:
    sbd: dict[str, Any]
    package: Path


class Sink:
    """The core's side of receiving: stores each payload in a file; refuses on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.received: list[Received] = []
        self.failures: list[Exception] = []

    async def receive(self, message: IncomingMessage) -> bool:
        if self.failures:
            raise self.failures.pop(0)
        header = message.sbd["standardBusinessDocumentHeader"]
        message_id = header["documentIdentification"]["instanceIdentifier"]
        if any(r.sbd["standardBusinessDocumentHeader"]["documentIdentification"]
               ["instanceIdentifier"] == message_id for r in self.received):
            return False
        path = self.directory / f"{message_id}.cms"
        assert message.payload is not None
        with path.open("wb") as out:
            async for chunk in message.payload:
                out.write(chunk)
        self.received.append(Received(dict(message.sbd), path))
        return True


@pytest.fixture
def sink(tmp_path: Path) -> Sink:
    directory = tmp_path / "stored"
    directory.mkdir()
    return Sink(directory)


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The builders above, for the test modules (which cannot import conftest)."""
    return SimpleNamespace(
        sender=SENDER, receiver=RECEIVER, pdf=PDF, attachment=attachment,
        arkivmelding_xml=arkivmelding_xml, sbd=sbd, tokens=Tokens, sink=Sink,
    )
