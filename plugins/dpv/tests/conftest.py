"""The DPV channel against the fake Altinn over real HTTP, and the messages the tests send."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ipunkt.plugin import Attachment, ChannelContext, OutgoingMessage
from ipunkt.testing import specs_dir
from ipunkt_dpv.channel import DPVChannel
from ipunkt_dpv.config import DPVConfig
from ipunkt_dpv.fake import API, FakeCorrespondence, Lifecycle, ManualClock
from ipunkt_dpv.spec_check import SPEC_FILE, CorrespondenceSpec
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

ORG = "910077473"
BUSINESS = "910075946"
PERSON = "17912099997"
ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
TAUSHETSBELAGT = "urn:no:difi:profile:arkivmelding:taushetsbelagt:ver1.0"
DIGITAL_INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"
DIGITAL_VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

ARKIVMELDING_XML = """<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <system>Sakarias</system>
  <meldingId>7d2c1f7a-3b0e-4a55-9e3e-2d6b1c9f0a11</meldingId>
  <tidspunkt>2026-03-02T09:15:00</tidspunkt>
  <antallFiler>2</antallFiler>
  <mappe xsi:type="saksmappe">
    <systemID>0b7a6f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b</systemID>
    <tittel>Byggesak Storgata 5</tittel>
    <opprettetDato>2026-03-01T08:00:00</opprettetDato>
    <opprettetAv>saksbehandler</opprettetAv>
    <basisregistrering xsi:type="journalpost">
      <systemID>1c8b7a6f-2d3e-4f5a-9b0c-1d2e3f4a5b6c</systemID>
      <opprettetDato>2026-03-02T09:00:00</opprettetDato>
      <opprettetAv>saksbehandler</opprettetAv>
      <referanseForelderMappe>0b7a6f5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b</referanseForelderMappe>
      <dokumentbeskrivelse>
        <systemID>2d9c8b7a-3e4f-4a5b-8c0d-2e3f4a5b6c7d</systemID>
        <dokumenttype>Vedlegg</dokumenttype>
        <dokumentstatus>Dokumentet er ferdigstilt</dokumentstatus>
        <tittel>Situasjonskart</tittel>
        <opprettetDato>2026-03-02T09:00:00</opprettetDato>
        <opprettetAv>saksbehandler</opprettetAv>
        <tilknyttetRegistreringSom>Vedlegg</tilknyttetRegistreringSom>
        <dokumentnummer>2</dokumentnummer>
        <tilknyttetDato>2026-03-02T09:00:00</tilknyttetDato>
        <tilknyttetAv>saksbehandler</tilknyttetAv>
        <dokumentobjekt>
          <versjonsnummer>1</versjonsnummer>
          <variantformat>Produksjonsformat</variantformat>
          <opprettetDato>2026-03-02T09:00:00</opprettetDato>
          <opprettetAv>saksbehandler</opprettetAv>
          <referanseDokumentfil>kart.png</referanseDokumentfil>
        </dokumentobjekt>
      </dokumentbeskrivelse>
      <dokumentbeskrivelse>
        <systemID>3e0d9c8b-4f5a-4b6c-9d1e-3f4a5b6c7d8e</systemID>
        <dokumenttype>Brev</dokumenttype>
        <dokumentstatus>Dokumentet er ferdigstilt</dokumentstatus>
        <tittel>Vedtak om rammetillatelse</tittel>
        <opprettetDato>2026-03-02T09:00:00</opprettetDato>
        <opprettetAv>saksbehandler</opprettetAv>
        <tilknyttetRegistreringSom>Hoveddokument</tilknyttetRegistreringSom>
        <dokumentnummer>1</dokumentnummer>
        <tilknyttetDato>2026-03-02T09:00:00</tilknyttetDato>
        <tilknyttetAv>saksbehandler</tilknyttetAv>
        <dokumentobjekt>
          <versjonsnummer>1</versjonsnummer>
          <variantformat>Produksjonsformat</variantformat>
          <opprettetDato>2026-03-02T09:00:00</opprettetDato>
          <opprettetAv>saksbehandler</opprettetAv>
          <referanseDokumentfil>vedtak.pdf</referanseDokumentfil>
        </dokumentobjekt>
      </dokumentbeskrivelse>
      <tittel>Vedtak i byggesak Storgata 5, gnr 12 bnr 3</tittel>
      <offentligTittel>Vedtak i byggesak Storgata 5</offentligTittel>
      <journalposttype>Utgående dokument</journalposttype>
      <journalstatus>Journalført</journalstatus>
      <journaldato>2026-03-02</journaldato>
    </basisregistrering>
    <saksdato>2026-03-01</saksdato>
    <administrativEnhet>Byggesak</administrativEnhet>
    <saksansvarlig>saksbehandler</saksansvarlig>
    <saksstatus>Under behandling</saksstatus>
  </mappe>
</arkivmelding>
"""


def attachment(name: str, data: bytes, mime: str = "application/pdf",
               title: str | None = None) -> Attachment:
    """A file whose bytes come in 8 KiB chunks, as the store would stream them."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 8192):
            yield data[start:start + 8192]

    return Attachment(filename=name, mime_type=mime, size=len(data), open=chunks, title=title)


def arkivmelding_files(xml: str = ARKIVMELDING_XML) -> list[Attachment]:
    return [
        attachment("arkivmelding.xml", xml.encode(), "application/xml", "Arkivmelding"),
        attachment("vedtak.pdf", b"%PDF-1.7 vedtak " * 1000, title="Vedtaket"),
        attachment("kart.png", b"\x89PNG kart" * 500, "image/png"),
    ]


def outgoing(
    kind: str = "arkivmelding",
    *,
    business: dict[str, Any] | None = None,
    files: Sequence[Attachment] | None = None,
    receiver: str = BUSINESS,
    process: str | None = None,
    message_id: str | None = None,
    resource: str | None = "eformidling-dpv-administrasjon",
    sender: str = f"0192:{ORG}",
) -> OutgoingMessage:
    """A message as the delivery engine hands it to the channel."""
    message_id = message_id or str(uuid.uuid4())
    conversation_id = str(uuid.uuid4())
    if process is None:
        process = ADMINISTRASJON if kind == "arkivmelding" else DIGITAL_INFO
    standard = ("urn:no:difi:arkivmelding:xsd::arkivmelding" if kind == "arkivmelding"
                else f"urn:no:difi:digitalpost:xsd:digital::{kind}")
    if business is None:
        business = ({"hoveddokument": "vedtak.pdf"} if kind == "arkivmelding"
                    else {"tittel": "Vedtak om bostøtte", "sammendrag": "Du har fått svar",
                          "innhold": "Søknaden din er innvilget."})
    expires = datetime.now(UTC) + timedelta(hours=24)
    sbd = {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"authority": "iso6523-actorid-upis", "value": sender}}],
            "receiver": [{"identifier": {"authority": "iso6523-actorid-upis",
                                         "value": receiver}}],
            "documentIdentification": {"standard": standard, "typeVersion": "2.0",
                                       "instanceIdentifier": message_id, "type": kind},
            "businessScope": {"scope": [{
                "type": "ConversationId", "instanceIdentifier": conversation_id,
                "identifier": process,
                "scopeInformation": [{"expectedResponseDateTime": expires.isoformat()}]}]},
        },
        kind: business,
    }
    record = {
        "organisationNumber": receiver, "process": process, "documentTypes": [standard],
        "service": {"identifier": "DPV", "resource": resource, "endpointUrl": "",
                    "securityLevel": 3},
    }
    if files is None:
        files = arkivmelding_files() if kind == "arkivmelding" else [
            attachment("vedtak.pdf", b"%PDF-1.7 bostotte", title="Vedtak")]
    return OutgoingMessage(
        message_id=message_id, conversation_id=conversation_id, sender=sender,
        receiver=receiver, process=process, document_type=standard, sbd=sbd,
        expires_at=expires, attachments=tuple(files), service_record=record,
    )


class StaticTokens:
    """A TokenProvider that hands out fixed tokens and remembers what it was asked."""

    def __init__(self, value: str = "altinn-token") -> None:
        self.value = value
        self.asked: list[tuple[tuple[str, ...], bool]] = []

    async def token(self, scopes: Sequence[str], *, altinn: bool = False,
                    organisation: str | None = None) -> str:
        self.asked.append((tuple(scopes), altinn))
        return self.value


@dataclass
class Altinn:
    """The fake, its server, and what a test needs to drive the channel against it."""

    fake: FakeCorrespondence
    server: TestServer
    clock: ManualClock
    tokens: StaticTokens
    session: aiohttp.ClientSession
    channels: list[DPVChannel] = field(default_factory=list)
    on_purpose: bool = False

    def broke_spec_on_purpose(self) -> list[str]:
        """The violations a test caused deliberately; they are cleared, not held against it."""
        found, self.on_purpose = list(self.fake.violations), True
        self.fake.violations.clear()
        return found

    @property
    def base(self) -> str:
        return str(self.server.make_url(API))

    def config(self, **overrides: Any) -> DPVConfig:
        values: dict[str, Any] = {
            "enabled": True, "correspondence_url": self.base,
            "health_url": str(self.server.make_url("/health-probe")),
            "sender_name": "Testkommune",
        }
        values.update(overrides)
        return DPVConfig(**values)

    async def channel(self, **overrides: Any) -> DPVChannel:
        """A started channel, made as the core makes it, from a ChannelContext."""
        channel = DPVChannel(ChannelContext(organisation=ORG, config=self.config(**overrides),
                                            tokens=self.tokens))
        await channel.start()
        self.channels.append(channel)
        return channel

    def form(self, index: int = -1) -> dict[str, str]:
        """The fields of an upload the fake received (``-1``: the last)."""
        uploads = [r for r in self.fake.requests if r.operation == "upload"]
        return dict(uploads[index].form)

    async def download(self, correspondence_id: str, filename: str) -> bytes:
        """A stored file's bytes, fetched over the API as a recipient would."""
        stored = next(f for f in self.fake.correspondences[correspondence_id].files
                      if f.filename == filename)
        url = f"{self.base}/correspondence/{correspondence_id}/attachment/{stored.id}/download"
        async with self.session.get(url, headers={"Authorization": "Bearer t"}) as response:
            assert response.status == 200
            return await response.read()


@pytest.fixture(scope="session")
def spec() -> CorrespondenceSpec:
    return CorrespondenceSpec.load(specs_dir() / SPEC_FILE)


@pytest.fixture(scope="session")
def openapi() -> OpenAPI:
    """An independent validator (openapi-core) for the requests that are not multipart."""
    return OpenAPI.from_dict(json.loads((specs_dir() / SPEC_FILE).read_text()))


@pytest.fixture
async def altinn(
    spec: CorrespondenceSpec, openapi: OpenAPI, aiohttp_server: ServerFactory, tmp_path: Path
) -> AsyncIterator[Altinn]:
    """A fake Altinn that checks traffic against the spec; a test ends with none broken."""
    clock = ManualClock()
    fake = FakeCorrespondence(spec=spec, clock=clock, storage=tmp_path / "altinn",
                              lifecycle=Lifecycle(publish_after=60, read_after=None))
    (tmp_path / "altinn").mkdir()
    server = await aiohttp_server(fake.app)
    async with aiohttp.ClientSession() as session:
        setup = Altinn(fake, server, clock, StaticTokens(), session)
        yield setup
        for channel in setup.channels:
            await channel.stop()
    assert fake.violations == [], "the channel or the fake broke the published spec"
    for request in [] if setup.on_purpose else fake.requests:
        if request.method == "GET" and request.operation in ("overview", "list"):
            openapi.validate_request(MockRequest(
                "https://platform.tt02.altinn.no", "get", request.path,
                args=dict(request.query)))
