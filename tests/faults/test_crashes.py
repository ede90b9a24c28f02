"""Crashes: processes SIGKILLed at random moments while messages flow, then started again.

DPO: the sandbox's fakes (the Altinn broker keeps its transfers on disk), A and B each run as
their own process, and each is killed at random moments (seeded: ``IPUNKT_FAULTS_SEED``) and
started again after a short random pause, while A's fagsystem sends and B's takes. DPV, DPF
and DPI: the sending integration point A is killed the same way; their fakes, whose state
lives in memory, run in the test's process and are not killed.

In the end every message must be at its final status at A (the last status that comes without
a kvittering: LEVERT for DPO and DPI, LEST for DPV and DPF, whose fakes read the message) and
must have reached its receiver exactly once: B's client (one successful DELETE per message,
none peeked again after it), the business's Altinn inbox, the municipality, the citizen's
mailbox. Where A gets something back (DPV's generated kvittering, the municipality's reply), A's
client takes each exactly once as well.

Recovery time: from the moment the last killed process was ready again (after the kills
stopped) until every message reached its final state; zero when all had done so before. It is
bounded by the settings each scenario states: the sandbox's retry delays (2 s, growing
threefold, at most 30 s), a 10 s outbox lease (a killed sender's claims come back after it)
and a 30 s peek lock (a peek whose answer a kill swallowed is retried after it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from ipunkt.plugin import SandboxPart
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.specs import specs_folder
from ipunkt.testing import free_port, sbd
from noark import arkivmelding_xml

pytestmark = pytest.mark.slow

SETTINGS: dict[str, dict[str, Any]] = {
    "delivery": {"lease_seconds": 10},
    "messages": {"lock_timeout_minutes": 0.5},
}
"""The scenarios' own settings beside the sandbox's (see the module's docstring)."""
STALL_SECONDS = 60.0
"""Waiting ends when nothing moved for this long (longer than the longest retry delay)."""
SETTLE_SECONDS = 3.0
"""The clients keep taking this long after the end, to catch a late duplicate."""
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)

DPO_ARKIVMELDING = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>sak</systemID><registrering><systemID>jp</systemID>
    <offentligTittel>Krasj</offentligTittel><journalpostnummer>1</journalpostnummer>
    <dokumentbeskrivelse><dokumentobjekt><referanseDokumentfil>brev.txt</referanseDokumentfil>
    </dokumentobjekt></dokumentbeskrivelse></registrering></mappe>
</arkivmelding>"""
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

Message = tuple[dict[str, Any], list[tuple[str, str, bytes]]]
"""A message as the fagsystem makes it: the SBD, and its files (name, media type, bytes)."""


@dataclass
class Outcome:
    """How a scenario ended, from what the clients and the receivers saw."""

    lost: list[str]
    """Messages not at their final status at A, or that never reached their receiver."""
    duplicated: list[str]
    """Messages a receiver got more than once."""
    errors: list[str]
    """What the clients met that a working system never answers (see ``Tally``), and
    messages that ended FEIL or LEVETID_UTLOPT."""
    recovery_seconds: float | None
    """From the last restart to the moment every message was done; None: it never was."""


async def send_all(sender: Any, messages: Mapping[str, Callable[[], Message]],
                   rate: float) -> None:
    """Send each message at its moment (``rate`` per second), at most 16 at once."""
    gate = asyncio.Semaphore(16)

    async def one(index: int, message_id: str) -> None:
        await asyncio.sleep(index / rate)
        document, files = messages[message_id]()
        async with gate:
            await sender.send(message_id, document, files)

    await asyncio.gather(*(one(i, m) for i, m in enumerate(messages)))


async def wait_until_final(
    done: Callable[[], Awaitable[bool]], progress: Callable[[], Awaitable[object]]
) -> float | None:
    """Poll ``done`` (an awaitable bool) until true; None when ``progress`` (an awaitable
    value) stood still for :data:`STALL_SECONDS`. Returns when it became true (monotonic)."""
    last, since = None, time.monotonic()
    while True:
        if await done():
            return time.monotonic()
        now = await progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            return None
        await asyncio.sleep(1.0)


async def run_chaos(chaos: Any, sending: Coroutine[Any, Any, None]) -> float:
    """Run the kills while ``sending`` runs; then stop them; when the last restart was ready."""
    haunting = asyncio.create_task(chaos.run())
    try:
        await sending
    finally:
        chaos.stop()
        await haunting
    chaos.check_alive()
    print(f"faults: kills {dict(chaos.kills)}", flush=True)
    return float(chaos.last_ready or time.monotonic())


# --- DPO ----------------------------------------------------------------------------------------


async def test_dpo_with_a_b_and_the_broker_killed_at_random(
    tmp_path: Path, kit: SimpleNamespace, size: Callable[[float, float], float],
    report: Callable[..., None], seed: int,
) -> None:
    count = int(size(100, 2000))
    rate = size(5, 12)
    tally = kit.Tally()
    async with (kit.dpo_exchange(tmp_path, SETTINGS) as exchange,
                aiohttp.ClientSession(timeout=TIMEOUT) as session):
        a_state, b_state = exchange.organisation("A"), exchange.organisation("B")
        a = kit.NextMove(session, a_state, tally)
        b = kit.NextMove(session, b_state, tally)
        ids = [str(uuid.uuid4()) for _ in range(count)]
        letters = {m: f"Hei B, dette er melding {m}\n".encode() * 20 for m in ids}

        def message(message_id: str) -> Callable[[], Message]:
            return lambda: (
                sbd(b.number, message_id, sender=a.number, conversation_id=str(uuid.uuid4())),
                [("arkivmelding.xml", "application/xml", DPO_ARKIVMELDING),
                 ("brev.txt", "text/plain", letters[message_id])])

        def check(message_id: str, _: Mapping[str, Any], asic: bytes | None) -> str | None:
            if message_id not in letters:
                return "B got a message nobody sent"
            if kit.asic_file(asic, "brev.txt") != letters[message_id]:
                return "B's brev.txt is not what A sent"
            return None

        sender, receiver = kit.Sender(a), kit.Receiver(b, check)
        chaos = kit.Chaos([exchange.fakes, exchange.a, exchange.b], seed, tally,
                          every=(2.0, 6.0) if count <= 200 else (4.0, 12.0))
        receiving = asyncio.create_task(receiver.run())
        try:
            last_ready = await run_chaos(chaos, send_all(
                sender, {m: message(m) for m in letters}, rate))
            sent = set(sender.accepted)
            final: set[str] = set()

            async def done() -> bool:
                final.update(await a.messages_at("LEVERT"))
                return sent <= final and all(receiver.taken[m] for m in sent)

            async def progress() -> tuple[int, int]:
                return len(final), len(receiver.taken)

            finished = await wait_until_final(done, progress)
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
        failed = (await a.messages_at("FEIL")) | (await a.messages_at("LEVETID_UTLOPT"))
        outcome = Outcome(
            lost=sorted(m for m in letters if m not in final or not receiver.taken[m]),
            duplicated=sorted({m for m, n in receiver.taken.items() if n > 1}
                              | set(receiver.duplicated)),
            errors=[*tally.errors, *(f"{m} ended FEIL or LEVETID_UTLOPT"
                                     for m in sorted(failed & sent))],
            recovery_seconds=max(0.0, finished - last_ready) if finished else None,
        )
        if outcome.lost:
            for message_id in outcome.lost[:10]:
                print(f"faults: lost {message_id}: statuses at A "
                      f"{await a.statuses(message_id)}, at B {await b.statuses(message_id)}, "
                      f"taken {receiver.taken[message_id]}", flush=True)
    conclude(report, "crash DPO: A, B, broker killed", count, outcome, tally, chaos, seed)


def conclude(report: Callable[..., None], scenario: str, count: int, outcome: Outcome,
             tally: Any, chaos: Any, seed: int) -> None:
    """Report the row, then fail on anything lost, duplicated or wrong."""
    kills = ", ".join(f"{name} {n}" for name, n in sorted(chaos.kills.items()))
    report(scenario=scenario, messages=count, lost=len(outcome.lost),
           duplicated=len(outcome.duplicated), errors=len(outcome.errors),
           recovery_seconds=(round(outcome.recovery_seconds, 1)
                             if outcome.recovery_seconds is not None else None),
           details=f"seed {seed}; killed {kills}; {tally.unavailable} answers 503 while a "
                   f"lookup source was down"
                   + ("" if outcome.recovery_seconds is not None
                      else f"; stalled: nothing moved for {STALL_SECONDS:.0f} s"))
    assert not outcome.lost, f"{len(outcome.lost)} lost, e.g. {outcome.lost[:5]}"
    assert not outcome.duplicated, f"duplicated: {outcome.duplicated[:5]}"
    assert not outcome.errors, f"{len(outcome.errors)} errors: {outcome.errors[:5]}"


# --- DPV, DPF, DPI --------------------------------------------------------------------------------


@dataclass
class Channel:
    """What one channel's scenario sends, how it ends, and how the receiving side is asked."""

    plugin: str
    receiver: str
    final: str
    message: Callable[[str, str, str], Message]
    received: Callable[[Sandbox, dict[str, Any], aiohttp.ClientSession],
                       Awaitable[dict[str, int]]]
    """An awaitable of how many times the far side got each message (by message id)."""
    answers: bool
    """A's client gets one message back per message (DPV's kvittering, DPF's reply)."""


def _arkivmelding(sender: str, receiver: str, message_id: str) -> Message:
    return (sbd(receiver, message_id, sender=sender, conversation_id=str(uuid.uuid4()),
                body={"hoveddokument": "vedtak.pdf"}),
            _noark_files(message_id))


def _svarut(sender: str, municipality: str, message_id: str) -> Message:
    body = {"hoveddokument": "vedtak.pdf", "sikkerhetsnivaa": 3}
    return (sbd(municipality, message_id, sender=sender, conversation_id=str(uuid.uuid4()),
                body=body), _noark_files(message_id))


def _noark_files(message_id: str) -> list[tuple[str, str, bytes]]:
    return [("arkivmelding.xml", "application/xml",
             arkivmelding_xml(message_id)),
            ("vedtak.pdf", "application/pdf", PDF + message_id.encode())]


def _digital(sender: str, citizen: str, message_id: str) -> Message:
    body = {"sikkerhetsnivaa": 4, "hoveddokument": "vedtak.pdf", "tittel": "Vedtak",
            "spraak": "NO",
            "digitalPostInfo": {"virkningsdato": "2026-12-01", "aapningskvittering": False}}
    return (sbd(citizen, message_id, sender=sender, conversation_id=str(uuid.uuid4()),
                kind="digital",
                standard="urn:no:difi:digitalpost:xsd:digital::digital",
                process="urn:no:difi:profile:digitalpost:vedtak:ver1.0", body=body),
            [("vedtak.pdf", "application/pdf", PDF + message_id.encode())])


async def _dpv_received(box: Sandbox, state: dict[str, Any],
                        session: aiohttp.ClientSession) -> dict[str, int]:
    async with session.get(state["fakes"]["altinn-inbox"]) as response:
        inbox = await response.json()
    counts: dict[str, int] = {}
    for correspondence in inbox:
        reference = correspondence["sendersReference"]
        counts[reference] = counts.get(reference, 0) + 1
    return counts


async def _dpf_received(box: Sandbox, state: dict[str, Any],
                        session: aiohttp.ClientSession) -> dict[str, int]:
    async with session.get(f"{state['fakes']['svarut']}/_fake/forsendelser") as response:
        forsendelser = await response.json()
    counts: dict[str, int] = {}
    for forsendelse in forsendelser:
        reference = forsendelse["eksternReferanse"]
        counts[reference] = counts.get(reference, 0) + 1
    return counts


async def _dpi_received(box: Sandbox, state: dict[str, Any],
                        session: aiohttp.ClientSession) -> dict[str, int]:
    async with session.get(state["fakes"]["dpi-shipments"]) as response:
        shipments = await response.json()
    counts: dict[str, int] = {}
    for shipment in shipments:
        counts[shipment["messageId"]] = counts.get(shipment["messageId"], 0) + 1
    return counts


def _channels() -> dict[str, Channel]:
    return {
        "DPV": Channel("dpv", "310654329", "LEST", _arkivmelding, _dpv_received, True),
        "DPF": Channel("dpf", "910076787", "LEST", _svarut, _dpf_received, True),
        "DPI": Channel("dpi", "04898510196", "LEVERT", _digital, _dpi_received, False),
    }


def _sandbox(channel: Channel, folder: Path, ports: tuple[int, int]) -> Sandbox:
    host = load_plugins(allow=[channel.plugin])
    if channel.plugin.upper() not in host.sandbox_parts:
        pytest.skip(f"the {channel.plugin.upper()} plugin is not installed")
    if channel.plugin == "dpv":
        from ipunkt_dpv.fake import Lifecycle
        from ipunkt_dpv.sandbox import DPVSandbox

        part = DPVSandbox(Lifecycle(publish_after=0.5, read_after=1.0), status_poll_interval=0.5)
        host.sandbox_parts["DPV"] = SandboxPart("DPV", part.setup)
    return Sandbox(folder, host, ports, fakes_only=True, specs=specs_folder())


@pytest.mark.parametrize("service", ["DPV", "DPF", "DPI"])
async def test_the_sender_killed_at_random(
    service: str, tmp_path: Path, kit: SimpleNamespace, size: Callable[[float, float], float],
    report: Callable[..., None], seed: int,
) -> None:
    channel = _channels()[service]
    count = int(size(20, 200))
    rate = size(2, 4)
    tally = kit.Tally()
    ports = (free_port(), free_port())
    box = _sandbox(channel, tmp_path / "box", ports)
    state = await box.start()
    others = ",".join(p for p in ("dpo", "dpv", "dpf", "dpi") if p != channel.plugin)
    a_state = state["organisations"][0]
    config = kit.own_config(Path(a_state["config"]), tmp_path / "a.toml", SETTINGS)
    a_process = kit.IntegrationPoint("A", config, ports[0], {"IPUNKT_DISABLE_PLUGINS": others})
    try:
        await a_process.start()
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            a = kit.NextMove(session, a_state, tally)
            ids = [str(uuid.uuid4()) for _ in range(count)]

            def check(message_id: str, document: Mapping[str, Any],
                      asic: bytes | None) -> str | None:
                return None

            sender, answers = kit.Sender(a), kit.Receiver(a, check, workers=2)
            chaos = kit.Chaos([a_process], seed, tally, every=(1.0, 3.0))
            taking = asyncio.create_task(answers.run())
            try:
                last_ready = await run_chaos(chaos, send_all(sender, {
                    m: partial(channel.message, a.number, channel.receiver, m) for m in ids
                }, rate))
                sent = set(sender.accepted)
                final: set[str] = set()
                got: dict[str, int] = {}

                async def done() -> bool:
                    final.update(await a.messages_at(channel.final))
                    got.update(await channel.received(box, state, session))
                    answered = not channel.answers or len(answers.taken) >= len(sent)
                    return sent <= final and all(got.get(m) for m in sent) and answered

                async def progress() -> tuple[int, int, int]:
                    return len(final), len(got), len(answers.taken)

                finished = await wait_until_final(done, progress)
                await asyncio.sleep(SETTLE_SECONDS)
            finally:
                taking.cancel()
                await asyncio.gather(taking, return_exceptions=True)
            failed = (await a.messages_at("FEIL")) | (await a.messages_at("LEVETID_UTLOPT"))
            got = await channel.received(box, state, session)
            duplicated = {m for m, n in got.items() if n > 1}
            duplicated |= {m for m, n in answers.taken.items() if n > 1} | set(answers.duplicated)
            errors = [*tally.errors, *(f"{m} ended FEIL or LEVETID_UTLOPT"
                                       for m in sorted(failed & sent))]
            if channel.answers and len(answers.taken) != len(sent):
                errors.append(f"A's client took {len(answers.taken)} answers to {len(sent)} "
                              f"messages")
            outcome = Outcome(
                lost=sorted(m for m in ids if m not in final or not got.get(m)),
                duplicated=sorted(duplicated),
                errors=errors,
                recovery_seconds=max(0.0, finished - last_ready) if finished else None,
            )
            for message_id in outcome.lost[:10]:
                print(f"faults: lost {message_id}: statuses at A "
                      f"{await a.statuses(message_id)}, received {got.get(message_id)}")
    finally:
        a_process.close()
        await box.stop()
    conclude(report, f"crash {service}: A killed", count, outcome, tally, chaos, seed)
