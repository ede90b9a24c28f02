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
from ipunkt.specs import specs_folder
from ipunkt.testing import Fagsystem, ServerProcess, free_port
from noark import arkivmelding_xml

pytestmark = pytest.mark.slow

RATES = "5xx=0.04,429=0.03,slow=0.04,timeout=0.02,truncate=0.03,lost=0.03"
"""19 % of the requests to a channel's fakes go wrong, across every kind of fault."""
CLIENT_TIMEOUT = 2.0
"""The channels' request timeouts here: how long a ``timeout`` fault holds a request up."""
DELIVERY = {"retry_initial_seconds": 0.5, "retry_max_seconds": 3, "outbox_poll_seconds": 0.2}
SETTLE_SECONDS = 60.0
"""How long the messages of one scenario may take to settle, faults and all, besides a second
for each message."""

ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
DIGITAL = "urn:no:difi:digitalpost:xsd:digital::digital"
VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n" + bytes(range(256)) * 32 + b"\n%%EOF\n"

File = tuple[str, str, bytes]
"""A file of a message: its name, media type and bytes."""


def arkivmelding_files(extra: Sequence[File] = (),
                       main: File = ("vedtak.pdf", "application/pdf", PDF)) -> list[File]:
    """arkivmelding.xml naming ``main`` as its main document, ``main`` and ``extra``."""
    xml = arkivmelding_xml(str(uuid.uuid4()), main[0])
    return [("arkivmelding.xml", "application/xml", xml), main, *extra]


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

    def check_faults(self) -> None:
        """The fakes did misbehave (at the planned rates, so not always in every way)."""
        requests = sum(i.requests for i in self.sandbox.injectors.values())
        print(f"faults injected into {requests} requests: {dict(self.faults())}")
        assert requests > 0 and sum(self.faults().values()) > 0, "no fault was injected"

    def logs(self) -> str:
        """The end of each integration point's log, without its access log."""
        return "\n".join(
            f"--- {server.config.name}\n" + "\n".join(
                [line[:600] for line in server.output().splitlines()
                 if '"logger": "ipunkt.http"' not in line][-40:])
            for server in self.servers)


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
    sandbox = Sandbox(folder, host, (free_port(), free_port()), fakes_only=True,
                      specs=specs_folder(), faults=plan)
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


async def settle(check: Callable[[], Awaitable[list[str]]], run: Run, timeout: float,
                 remote: Callable[[], Awaitable[object]] | None = None) -> None:
    """Wait until ``check`` finds nothing left to wait for (it names what is); on time out,
    say what, with the logs and what ``remote`` shows of the remote side."""
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    while time.monotonic() < deadline:
        waiting = await check()
        if not waiting:
            return
        await asyncio.sleep(0.3)
    shown = await remote() if remote is not None else ""
    raise AssertionError(f"still waiting after {timeout:g} s (seed {run.seed}, faults "
                         f"{dict(run.faults())}): {waiting[:10]}\n{run.logs()}\n{shown}")


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

    await settle(waiting, run, 30)
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
            _, waiting = await final_statuses(a, ids, "LEVERT")
            return waiting

        await settle(delivered, run, SETTLE_SECONDS + count)
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
        run.check_faults()
        assert (lost, duplicated, sent_twice) == (0, 0, 0), (taken, with_file)
        assert errors == [], errors
        assert set(taken) == set(ids)

        too_big = await a.send(b.number, "arkivmelding", {"hoveddokument": "vedtak.pdf"},
                               arkivmelding_files([("stor.bin", "application/octet-stream",
                                                    bytes(250_000))]))
        reason = await refused(a, too_big, run)
        assert "DPO takes at most 200000" in reason, reason


# --- DPV ------------------------------------------------------------------------------------

async def test_dpv_delivers_each_message_once_through_a_faulty_altinn(
    tmp_path: Path, size: Callable[[float, float], float], report: Callable[..., None],
) -> None:
    dpv_fake = pytest.importorskip("ipunkt_dpv.fake")
    dpv_sandbox = pytest.importorskip("ipunkt_dpv.sandbox")
    count = int(size(16, 200))
    part = dpv_sandbox.DPVSandbox(dpv_fake.Lifecycle(publish_after=0.5, read_after=1.0),
                                  status_poll_interval=0.3)
    host = load_plugins(allow=["dpv"])
    if "DPV" not in host.sandbox_parts:
        pytest.skip("the DPV plugin has no sandbox part here")
    host.sandbox_parts["DPV"] = SandboxPart("DPV", part.setup)
    business = dpv_sandbox.BUSINESS[0]
    channel = {"request_timeout": CLIENT_TIMEOUT}
    async with running(tmp_path, "dpv", ["altinn-correspondence"], channel, host=host) as run:
        a = run.parties["A"]
        ids = await send_all(a, count, lambda: a.send(
            business, "arkivmelding", {"hoveddokument": "vedtak.pdf"}, arkivmelding_files()))
        receipts: list[str] = []

        async def read() -> list[str]:
            receipts.extend(s["arkivmelding_kvittering"]["relatedToMessageId"]
                            for s in await a.take_all())
            _, waiting = await final_statuses(a, ids, "LEST")
            return waiting + [f"no receipt for {i}" for i in ids if i not in receipts]

        await settle(read, run, SETTLE_SECONDS + count)
        await asyncio.sleep(1.5)  # a duplicate would come with the next polls
        receipts.extend(s["arkivmelding_kvittering"]["relatedToMessageId"]
                        for s in await a.take_all())
        names, _ = await final_statuses(a, ids, "LEST")

        altinn = part.fake
        held = [c.senders_reference for c in altinn.correspondences.values()]
        lost, duplicated = tally(ids, held)
        _, receipts_twice = tally(ids, receipts)
        conversations = [await a.ask("GET", "/api/conversations", params={"messageId": i})
                         for i in ids]
        references = {(await c.json())["content"][0]["externalSystemReference"]
                      for c in conversations}
        errors = wrong_statuses(names, ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"])
        errors += [f"{i}: not A's correspondence" for i in ids
                   if altinn.by_senders_reference(i)[0].id not in references]
        report(scenario="channel faults: dpv", messages=count, lost=lost,
               duplicated=duplicated + receipts_twice, errors=len(errors))
        run.check_faults()
        assert (lost, duplicated, receipts_twice) == (0, 0, 0), (held, receipts)
        assert errors == [], errors
        assert altinn.violations == [], "the channel broke the published spec"

        refused_id = await a.send(
            business, "arkivmelding", {"hoveddokument": "program.exe"},
            arkivmelding_files(main=("program.exe", "application/octet-stream", b"MZ" * 100)))
        reason = await refused(a, refused_id, run)
        assert "2013" in reason and "Filetype not allowed" in reason, reason


# --- DPF ------------------------------------------------------------------------------------

async def test_dpf_delivers_each_message_once_through_a_faulty_svarut(
    tmp_path: Path, size: Callable[[float, float], float], report: Callable[..., None],
) -> None:
    dpf_sandbox = pytest.importorskip("ipunkt_dpf.sandbox")
    municipality = dpf_sandbox.MUNICIPALITY
    count = int(size(10, 150))
    channel = {"request_timeout": CLIENT_TIMEOUT, "connect_timeout": CLIENT_TIMEOUT,
               "poll_interval": 0.5, "status_poll_interval": 0.5}
    async with running(tmp_path, "dpf", ["svarut"], channel) as run:
        a = run.parties["A"]
        svarut = run.state["fakes"]["svarut"]
        ids = await send_all(a, count, lambda: a.send(
            municipality, "arkivmelding", {"hoveddokument": "vedtak.pdf", "sikkerhetsnivaa": 3},
            arkivmelding_files()))
        replies: list[str] = []

        async def forsendelser() -> list[dict[str, Any]]:
            async with run.session.get(f"{svarut}/_fake/forsendelser") as response:
                assert response.status == 200
                return list(await response.json())

        async def answered() -> list[str]:
            for sbd in await a.take_all():
                scopes = {s["type"]: s["instanceIdentifier"] for s in
                          sbd["standardBusinessDocumentHeader"]["businessScope"]["scope"]}
                replies.append(scopes["ReceiverRef"])
            _, waiting = await final_statuses(a, ids, "LEST")
            return waiting + [f"{count - len(set(replies))} replies missing"] * (
                len(set(replies)) < count)

        async def remote() -> object:
            async with run.session.get(run.state["fakes"]["dpf-municipality"]) as response:
                return {"svarut": await forsendelser(), "municipality": await response.json(),
                        "replies": replies}

        await settle(answered, run, SETTLE_SECONDS + count, remote=remote)
        await asyncio.sleep(1.5)  # a duplicate would come with the next polls
        for sbd in await a.take_all():
            replies.append(sbd["standardBusinessDocumentHeader"]["businessScope"]["scope"])
        names, _ = await final_statuses(a, ids, "LEST")

        sent = [f for f in await forsendelser() if f["sender"] == a.number]
        lost, duplicated = tally(ids, [f["eksternReferanse"] for f in sent])
        by_reference = {f["eksternReferanse"]: f["id"] for f in sent}
        replies_lost, replies_twice = tally([by_reference.get(i, "") for i in ids], replies)
        errors = wrong_statuses(names, ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"])
        report(scenario="channel faults: dpf", messages=count, lost=lost + replies_lost,
               duplicated=duplicated + replies_twice, errors=len(errors))
        run.check_faults()
        assert (lost, duplicated) == (0, 0), sent
        assert (replies_lost, replies_twice) == (0, 0), (by_reference, replies)
        assert errors == [], errors

        refused_id = await a.send(
            municipality, "arkivmelding", {"hoveddokument": "notat.txt", "sikkerhetsnivaa": 3},
            arkivmelding_files(main=("notat.txt", "text/plain", b"Bare tekst")))
        reason = await refused(a, refused_id, run)
        assert "none of its documents is a PDF" in reason, reason


# --- DPI ------------------------------------------------------------------------------------

async def test_dpi_delivers_each_message_once_through_a_faulty_access_point(
    tmp_path: Path, size: Callable[[float, float], float], report: Callable[..., None],
) -> None:
    dpi_sandbox = pytest.importorskip("ipunkt_dpi.sandbox")
    citizen = dpi_sandbox.DIGITAL_CITIZEN.number
    count = int(size(10, 150))
    channel = {"read_timeout": CLIENT_TIMEOUT, "connect_timeout": CLIENT_TIMEOUT,
               "receipt_poll_interval": 0.5, "upload_size_limit": 100_000}
    letter = {
        "sikkerhetsnivaa": 4, "hoveddokument": "vedtak.pdf", "tittel": "Vedtak", "spraak": "NO",
        "digitalPostInfo": {"virkningsdato": "2026-12-01", "aapningskvittering": True},
        "varsler": {"epostTekst": "Du har fått post", "smsTekst": "Du har fått post"},
    }
    files = [("vedtak.pdf", "application/pdf", PDF)]
    async with running(tmp_path, "dpi", ["dpi-access-point"], channel) as run:
        a = run.parties["A"]
        access_point = run.state["fakes"]["dpi-access-point"]
        ids = await send_all(a, count, lambda: a.send(
            citizen, "digital", letter, files, process=VEDTAK, standard=DIGITAL))

        async def read() -> list[str]:
            _, waiting = await final_statuses(a, ids, "LEST")
            return waiting

        await settle(read, run, SETTLE_SECONDS + count)
        await asyncio.sleep(1.5)  # a receipt read twice would show with the next polls
        names, _ = await final_statuses(a, ids, "LEST")
        async with run.session.get(f"{access_point}/_fake/shipments") as response:
            shipments = list(await response.json())

        lost, duplicated = tally(ids, [s["messageId"] for s in shipments])
        errors = wrong_statuses(names, ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"])
        errors += [f"{s['messageId']}: receipts {s['receipts']}" for s in shipments
                   if s["receipts"] != ["leveringskvittering", "aapningskvittering"]]
        report(scenario="channel faults: dpi", messages=count, lost=lost,
               duplicated=duplicated, errors=len(errors))
        run.check_faults()
        assert (lost, duplicated) == (0, 0), shipments
        assert errors == [], errors

        big = PDF + bytes(150_000)
        refused_id = await a.send(citizen, "digital", letter,
                                  [("vedtak.pdf", "application/pdf", big)],
                                  process=VEDTAK, standard=DIGITAL)
        reason = await refused(a, refused_id, run)
        assert f"the files take {len(big)} bytes; DPI takes at most 100000" in reason, reason
