"""Channel faults: each channel's fake misbehaves, and every message still arrives exactly once.

For DPO, DPV, DPF and DPI in turn, the sandbox runs the channel's fakes with faults at the
rates of :data:`RATES` (about one request in five spoilt: 5xx and 429 before the fake acts,
slow answers, answers that never come, bodies cut short, and answers lost after the fake
acted), and the integration points run as real ``ipunkt serve`` processes on the configs the
sandbox wrote (with short timeouts and retry delays, so that the test takes seconds). A
fagsystem sends N messages through A's Next Move API and takes what arrives, as fagsystemer
do. Every message must reach its final status at A with each status once, reach the remote
side (the broker's transfers, Altinn's inbox, SvarUt's forsendelser, the access point's
shipments) once, and reach the receiving fagsystem once; and a message the channel refuses
for good must end FEIL, with the reason in ``/api/statuses``.

``IPUNKT_FAULTS_SEED`` repeats a run's draws (each test prints the seed it used).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from aiohttp import web
from ipunkt.fault_injection import FaultPlan
from ipunkt.plugin import SandboxChannel, SandboxEnvironment, SandboxPart
from ipunkt.plugins import PluginHost, load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.testing import Fagsystem, ServerProcess, free_port

pytestmark = pytest.mark.slow

RATES = "5xx=0.04,429=0.03,slow=0.04,timeout=0.02,truncate=0.03,lost=0.03"
"""19 % of the requests to a channel's fakes go wrong, across every kind of fault."""
CLIENT_TIMEOUT = 2.0
"""The channels' request timeouts here: how long a ``timeout`` fault holds a request up."""
DELIVERY = {"retry_initial_seconds": 0.5, "retry_max_seconds": 3, "outbox_poll_seconds": 0.2}
SETTLE_SECONDS = 90.0
"""How long the messages of one scenario may take to settle, faults and all."""

ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
DIGITAL = "urn:no:difi:digitalpost:xsd:digital::digital"
VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n" + bytes(range(256)) * 32 + b"\n%%EOF\n"
ARKIVMELDING_XML = """<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding"
              xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <system>Fagsystem</system>
  <meldingId>{id}</meldingId>
  <tidspunkt>2024-01-16T10:00:00+01:00</tidspunkt>
  <antallFiler>1</antallFiler>
  <mappe xsi:type="saksmappe">
    <systemID>43fbe161-7aac-4c9f-a888-d8167aab4144</systemID>
    <tittel>Byggesak Storgata 1</tittel>
    <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
    <opprettetAv>Saksbehandler</opprettetAv>
    <basisregistrering xsi:type="journalpost">
      <systemID>{id}</systemID>
      <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
      <opprettetAv>Saksbehandler</opprettetAv>
      <dokumentbeskrivelse>
        <systemID>{id}</systemID>
        <dokumenttype>Vedtak</dokumenttype>
        <dokumentstatus>Dokumentet er ferdigstilt</dokumentstatus>
        <tittel>Vedtak</tittel>
        <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
        <opprettetAv>Saksbehandler</opprettetAv>
        <tilknyttetRegistreringSom>Hoveddokument</tilknyttetRegistreringSom>
        <dokumentnummer>1</dokumentnummer>
        <tilknyttetDato>2024-01-16T10:00:00+01:00</tilknyttetDato>
        <tilknyttetAv>Saksbehandler</tilknyttetAv>
        <dokumentobjekt>
          <versjonsnummer>1</versjonsnummer>
          <variantformat>Produksjonsformat</variantformat>
          <opprettetDato>2024-01-16T10:00:00+01:00</opprettetDato>
          <opprettetAv>Saksbehandler</opprettetAv>
          <referanseDokumentfil>vedtak.pdf</referanseDokumentfil>
        </dokumentobjekt>
      </dokumentbeskrivelse>
      <tittel>Vedtak om byggeløyve (intern)</tittel>
      <offentligTittel>Vedtak om byggeløyve</offentligTittel>
      <journalaar>2024</journalaar>
      <journalsekvensnummer>25</journalsekvensnummer>
      <journalpostnummer>13</journalpostnummer>
      <journalposttype>Utgående dokument</journalposttype>
      <journalstatus>Ekspedert</journalstatus>
      <journaldato>2024-01-16</journaldato>
      <dokumentetsDato>2024-01-15</dokumentetsDato>
      <korrespondansepart>
        <korrespondanseparttype>Mottaker</korrespondanseparttype>
        <korrespondansepartNavn>Mottaker</korrespondansepartNavn>
      </korrespondansepart>
      <korrespondansepart>
        <korrespondanseparttype>Avsender</korrespondanseparttype>
        <korrespondansepartNavn>Avsender kommune</korrespondansepartNavn>
        <postadresse>Rådhusgata 1</postadresse><postnummer>0151</postnummer>
        <poststed>Oslo</poststed>
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
</arkivmelding>"""

File = tuple[str, str, bytes]
"""A file of a message: its name, media type and bytes."""


def arkivmelding_files(extra: Sequence[File] = ()) -> list[File]:
    xml = ARKIVMELDING_XML.replace("{id}", str(uuid.uuid4())).encode()
    return [("arkivmelding.xml", "application/xml", xml),
            ("vedtak.pdf", "application/pdf", PDF), *extra]


class Party(Fagsystem):
    """A fagsystem calling one sandbox integration point, patient with it as with any server:
    a call that fails on the way (not with an answer) is made again."""

    async def ask(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        for attempt in range(5):
            try:
                return await self.call(method, path, **kwargs)
            except aiohttp.ClientConnectionError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2)
        raise AssertionError("unreachable")

    async def send(self, receiver: str, kind: str, body: Mapping[str, Any],
                   files: Sequence[File], *, process: str = ADMINISTRASJON,
                   standard: str = ARKIVMELDING) -> str:
        """Create, upload each file, send; the message id."""
        message_id = str(uuid.uuid4())
        sbd = {
            "standardBusinessDocumentHeader": {
                "headerVersion": "1.0",
                "sender": [{"identifier": {"value": f"0192:{self.number}",
                                           "authority": "iso6523-actorid-upis"}}],
                "receiver": [{"identifier": {"value": receiver if len(receiver) == 11
                                             else f"0192:{receiver}",
                                             "authority": "iso6523-actorid-upis"}}],
                "documentIdentification": {"standard": standard, "typeVersion": "2.0",
                                           "instanceIdentifier": message_id, "type": kind},
                "businessScope": {"scope": [{"type": "ConversationId",
                                             "instanceIdentifier": str(uuid.uuid4()),
                                             "identifier": process}]},
            },
            kind: dict(body),
        }
        response = await self.ask("POST", "/api/messages/out", json=sbd)
        assert response.status == 200, await response.text()
        for name, mime, data in files:
            response = await self.ask(
                "PUT", f"/api/messages/out/{message_id}", data=data,
                headers={"Content-Type": mime,
                         "Content-Disposition": f'attachment; name="{name}"; filename="{name}"'})
            assert response.status == 200, await response.text()
        response = await self.ask("POST", f"/api/messages/out/{message_id}")
        assert response.status == 200, await response.text()
        return message_id

    async def statuses(self, message_id: str) -> list[dict[str, Any]]:
        response = await self.ask("GET", f"/api/statuses/{message_id}", params={"size": 100})
        assert response.status == 200, await response.text()
        return list((await response.json())["content"])

    async def take_all(self) -> list[dict[str, Any]]:
        """Peek, pop and delete everything waiting, as a fagsystem does; the SBDs taken."""
        taken = []
        while True:
            response = await self.ask("GET", "/api/messages/in/peek")
            if response.status == 204:
                return taken
            assert response.status == 200, await response.text()
            sbd = await response.json()
            message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"]
            popped = await self.ask("GET", f"/api/messages/in/pop/{message_id}")
            assert popped.status in (200, 204), await popped.text()
            deleted = await self.ask("DELETE", f"/api/messages/in/{message_id}")
            assert deleted.status == 200, await deleted.text()
            taken.append(sbd)


def message_id_of(sbd: Mapping[str, Any]) -> str:
    return str(sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"])


@dataclasses.dataclass
class Run:
    """One sandbox with faulty fakes, its integration points as processes, and a fagsystem
    on each."""

    sandbox: Sandbox
    state: dict[str, Any]
    servers: list[ServerProcess]
    parties: dict[str, Party]
    session: aiohttp.ClientSession
    seed: int
    apps: dict[str, web.Application]

    def fake(self, name: str) -> Any:
        """The object behind a fake's app (its handlers' owner), to read what it holds."""
        for route in self.apps[name].router.routes():
            owner = getattr(route.handler, "__self__", None)
            if owner is not None:
                return owner
        raise LookupError(name)

    def faults(self) -> Counter[str]:
        return sum((Counter({k.value: n for k, n in i.injected.items()})
                    for i in self.sandbox.injectors.values()), Counter())

    def logs(self) -> str:
        return "\n".join(f"--- {s.config.name}\n{s.output()[-4000:]}" for s in self.servers)


def capturing(part: SandboxPart, apps: dict[str, web.Application]) -> SandboxPart:
    """The part, with each app it serves kept in ``apps`` by name."""

    async def setup(environment: SandboxEnvironment) -> SandboxChannel:
        async def serve(name: str, app: Any) -> str:
            apps[name] = app
            return await environment.serve(name, app)

        return await part.setup(dataclasses.replace(environment, serve=serve))

    return SandboxPart(part.service, setup)


@contextlib.asynccontextmanager
async def running(
    folder: Path, plugin: str, faulty: Sequence[str], channel: Mapping[str, Any], *,
    letters: str = "A", host: PluginHost | None = None,
) -> AsyncIterator[Run]:
    """The sandbox of ``plugin`` with ``faulty`` fakes at :data:`RATES`; the integration
    points ``letters`` run as processes, their ``[channels.<plugin>]`` updated with
    ``channel``."""
    seed = int(os.environ.get("IPUNKT_FAULTS_SEED") or random.randrange(1 << 30))
    print(f"faults seed: IPUNKT_FAULTS_SEED={seed}")
    host = host or load_plugins(allow=[plugin])
    service = plugin.upper()
    if service not in host.sandbox_parts:
        pytest.skip(f"the {service} plugin has no sandbox part here")
    apps: dict[str, web.Application] = {}
    host.sandbox_parts[service] = capturing(host.sandbox_parts[service], apps)
    plan = FaultPlan.parse([f"{name}:{RATES}" for name in faulty], seed=seed, slow_seconds=0.3)
    sandbox = Sandbox(folder, host, (free_port(), free_port()), fakes_only=True, faults=plan)
    state = await sandbox.start()
    servers: list[ServerProcess] = []
    try:
        parties_state = {o["letter"]: o for o in state["organisations"]}
        for letter in letters:
            organisation = parties_state[letter]
            config = Path(organisation["config"])
            settings = tomllib.loads(config.read_text())
            settings["delivery"].update(DELIVERY)
            settings["channels"][plugin].update(channel)
            config.write_text(tomli_w.dumps(settings))
            server = ServerProcess(config, int(organisation["url"].rsplit(":", 1)[1]))
            servers.append(server)
        await asyncio.gather(*(asyncio.to_thread(s.start, 60) for s in servers))
        async with aiohttp.ClientSession() as session:
            parties = {letter: Party(session, parties_state[letter]) for letter in letters}
            yield Run(sandbox, state, servers, parties, session, seed, apps)
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)
        await sandbox.stop()


async def settle(check: Callable[[], Awaitable[list[str]]], run: Run,
                 timeout: float = SETTLE_SECONDS) -> None:
    """Wait until ``check`` finds nothing left to wait for (it names what is)."""
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    while time.monotonic() < deadline:
        waiting = await check()
        if not waiting:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"still waiting after {timeout:g} s (seed {run.seed}, faults "
                         f"{dict(run.faults())}): {waiting[:10]}\n{run.logs()}")


async def final_statuses(party: Party, ids: Sequence[str], final: str,
                         ) -> tuple[dict[str, list[str]], list[str]]:
    """Each message's statuses, and the messages not yet at ``final`` (or FEIL)."""
    found = dict(zip(ids, await asyncio.gather(*(party.statuses(i) for i in ids)), strict=True))
    names = {i: [s["status"] for s in found[i]] for i in ids}
    return names, [i for i in ids if not {final, "FEIL", "LEVETID_UTLOPT"} & set(names[i])]


async def refused(party: Party, message_id: str, run: Run) -> str:
    """The FEIL description of a message the channel refuses for good."""
    async def waiting() -> list[str]:
        names = [s["status"] for s in await party.statuses(message_id)]
        return [] if "FEIL" in names else [f"{message_id}: {names}"]

    await settle(waiting, run, timeout=30)
    statuses = await party.statuses(message_id)
    assert [s["status"] for s in statuses] == ["OPPRETTET", "FEIL"], statuses
    return str(statuses[-1]["description"])


def tally(expected: Sequence[str], seen: Sequence[str]) -> tuple[int, int]:
    """(lost, duplicated): expected ids never seen, and extra sightings of expected ids."""
    counts = Counter(seen)
    lost = sum(1 for i in expected if counts[i] == 0)
    duplicated = sum(counts[i] - 1 for i in expected if counts[i] > 1)
    return lost, duplicated


def wrong_statuses(names: Mapping[str, list[str]], expected: list[str]) -> list[str]:
    return [f"{i}: {n}" for i, n in names.items() if n != expected]


async def send_all(party: Party, count: int, send: Callable[[], Awaitable[str]]) -> list[str]:
    gate = asyncio.Semaphore(8)

    async def one() -> str:
        async with gate:
            return await send()

    return list(await asyncio.gather(*(one() for _ in range(count))))


# --- DPO ------------------------------------------------------------------------------------

async def test_dpo_delivers_each_message_once_through_a_faulty_broker(
    tmp_path: Path, size: Callable[[float, float], float], report: Callable[..., None],
) -> None:
    count = int(size(12, 200))
    channel = {"request_timeout": CLIENT_TIMEOUT, "connect_timeout": CLIENT_TIMEOUT,
               "poll_interval": 0.5, "upload_size_limit": 200_000}
    async with running(tmp_path, "dpo", ["altinn-broker"], channel, letters="AB") as run:
        a, b = run.parties["A"], run.parties["B"]
        ids = await send_all(a, count, lambda: a.send(
            b.number, "arkivmelding", {"hoveddokument": "vedtak.pdf"}, arkivmelding_files()))
        taken: list[str] = []

        async def delivered() -> list[str]:
            taken.extend(message_id_of(s) for s in await b.take_all())
            names, waiting = await final_statuses(a, ids, "LEVERT")
            return waiting

        await settle(delivered, run)
        await asyncio.sleep(1.5)  # a duplicate would come in with the next polls
        taken.extend(message_id_of(s) for s in await b.take_all())
        names, _ = await final_statuses(a, ids, "LEVERT")

        broker = run.fake("altinn-broker")
        with_file = Counter(t.reference for t in broker.transfers.values()
                            if t.sender == a.number and t.path is not None)
        lost, duplicated = tally(ids, taken)
        sent_twice = sum(with_file[i] - 1 for i in ids if with_file[i] > 1)
        errors = wrong_statuses(names, ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"])
        report(scenario="channel faults: dpo", messages=count, lost=lost,
               duplicated=duplicated + sent_twice, errors=len(errors))
        assert run.faults()["lost"] > 0 and sum(run.faults().values()) > count / 2, run.faults()
        assert (lost, duplicated, sent_twice) == (0, 0, 0), (taken, with_file)
        assert errors == [], errors
        assert set(taken) == set(ids)

        too_big = await a.send(b.number, "arkivmelding", {"hoveddokument": "vedtak.pdf"},
                               arkivmelding_files([("stor.bin", "application/octet-stream",
                                                    bytes(250_000))]))
        reason = await refused(a, too_big, run)
        assert "DPO takes at most 200000" in reason, reason
