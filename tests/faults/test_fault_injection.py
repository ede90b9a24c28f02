"""The sandbox's fault injector, seen from a client: each kind of fault does what it says, to
a small app that counts what it was asked to do; and ``ipunkt sandbox --faults`` reads its
plan, refuses a bad one, and writes it into the state file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from ipunkt.fault_injection import HEADER, FaultKind, FaultPlan, FaultSpecError
from ipunkt.plugins import PluginHost
from ipunkt.sandbox import Sandbox
from ipunkt.testing import free_port

BODY = bytes(range(256)) * 400
"""A streamed answer's body: 100 KiB, written in chunks."""


@dataclass
class Fake:
    """A fake remote service that counts the requests it acted on."""

    effects: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/things", self.create)
        app.router.add_get("/download", self.download)
        app.router.add_get("/_fake/effects", self.inspect)
        return app

    async def create(self, request: web.Request) -> web.Response:
        self.effects.append((await request.read()).decode())
        return web.json_response({"id": len(self.effects), "padding": "x" * 200})

    async def download(self, request: web.Request) -> web.StreamResponse:
        self.effects.append("download")
        response = web.StreamResponse()
        response.content_length = len(BODY)
        await response.prepare(request)
        for start in range(0, len(BODY), 4096):
            await response.write(BODY[start:start + 4096])
        await response.write_eof()
        return response

    async def inspect(self, request: web.Request) -> web.Response:
        return web.json_response(self.effects)


@dataclass
class Served:
    fake: Fake
    sandbox: Sandbox
    url: str
    session: aiohttp.ClientSession


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator:
    """``await serve({kind: rate, ...})``: the fake behind an injector with those rates."""
    boxes: list[Sandbox] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=1)) as session:

        async def start(rates: dict[str, float]) -> Served:
            plan = FaultPlan({"fake": {FaultKind(k): v for k, v in rates.items()}},
                             seed=7, slow_seconds=0.3, retry_after_seconds=4)
            box = Sandbox(tmp_path, PluginHost(), faults=plan)
            boxes.append(box)
            fake = Fake()
            url = await box.serve("fake", fake.app())
            return Served(fake, box, url, session)

        yield start
    for box in boxes:
        await box.stop()


async def test_5xx_and_429_answer_before_the_request_has_any_effect(serve) -> None:
    served = await serve({"5xx": 1.0})
    for _ in range(5):
        async with served.session.post(f"{served.url}/things", data=b"x" * 100_000) as response:
            assert response.status in (500, 502, 503)
            assert response.headers[HEADER] == "5xx"
            assert (await response.json())["status"] == response.status
    served = await serve({"429": 1.0})
    async with served.session.post(f"{served.url}/things", data=b"y") as response:
        assert response.status == 429 and response.headers["Retry-After"] == "4"
    assert served.fake.effects == []


async def test_a_timeout_never_answers_and_has_no_effect_and_stopping_ends_it(serve) -> None:
    served = await serve({"timeout": 1.0})
    with pytest.raises(TimeoutError):
        async with served.session.post(f"{served.url}/things", data=b"z"):
            pass
    hanging = asyncio.create_task(served.session.post(
        f"{served.url}/things", data=b"z", timeout=aiohttp.ClientTimeout(total=30)))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await served.sandbox.stop()
    assert time.monotonic() - started < 3, "a hanging request kept the fake from stopping"
    with pytest.raises(aiohttp.ClientError):
        await hanging
    assert served.fake.effects == []


async def test_slow_answers_late_but_whole(serve) -> None:
    served = await serve({"slow": 1.0})
    started = time.monotonic()
    async with served.session.post(f"{served.url}/things", data=b"s") as response:
        assert response.status == 200 and (await response.json())["id"] == 1
    assert time.monotonic() - started >= 0.3
    assert served.fake.effects == ["s"]


async def test_truncate_acts_then_cuts_the_body_it_promised_in_full(serve) -> None:
    served = await serve({"truncate": 1.0})
    async with served.session.post(f"{served.url}/things", data=b"t") as response:
        assert response.status == 200
        whole = response.content_length
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert whole is not None and whole > 200
    async with served.session.get(f"{served.url}/download") as response:
        assert response.content_length == len(BODY)
        received = b""
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in response.content.iter_any():
                received += chunk
    assert 0 < len(received) < len(BODY) and BODY.startswith(received)
    assert served.fake.effects == ["t", "download"]


async def test_lost_acts_but_the_answer_never_comes(serve) -> None:
    served = await serve({"lost": 1.0})
    outcomes = set()
    for index in range(12):
        try:
            async with served.session.post(f"{served.url}/things", data=str(index)) as response:
                assert response.status in (500, 502, 503), "a lost answer arrived"
                assert response.headers[HEADER] == "lost"
                outcomes.add("5xx")
        except aiohttp.ClientError:
            outcomes.add("dropped")
    with pytest.raises(aiohttp.ClientError):
        async with served.session.get(f"{served.url}/download") as response:
            await response.read()
    assert outcomes == {"5xx", "dropped"}
    assert served.fake.effects == [*map(str, range(12)), "download"]


async def test_control_paths_are_never_faulted_and_rates_hold(serve) -> None:
    served = await serve({"5xx": 0.2, "truncate": 0.1})
    async with served.session.get(f"{served.url}/_fake/effects") as response:
        assert response.status == 200
    ok = 0
    for _ in range(200):
        try:
            async with served.session.post(f"{served.url}/things", data=b"r") as response:
                await response.read()
                ok += response.status == 200
        except aiohttp.ClientError:
            pass
    injector = served.sandbox.injectors["fake"]
    assert injector.requests == 200
    assert ok == 200 - sum(injector.injected.values())
    assert 20 <= injector.injected[FaultKind.SERVER_ERROR] <= 60
    assert 5 <= injector.injected[FaultKind.TRUNCATE] <= 35
    assert len(served.fake.effects) == 200 - injector.injected[FaultKind.SERVER_ERROR]


def test_a_seed_repeats_the_draws_for_each_fake() -> None:
    plan = FaultPlan.parse(["*:5xx=0.3,lost=0.2"], seed=11)

    def draws(name: str) -> list[FaultKind | None]:
        injector = plan.injector(name)
        assert injector is not None
        return [injector._pick() for _ in range(50)]

    assert draws("a") == draws("a")
    assert draws("a") != draws("b")
    assert {FaultKind.SERVER_ERROR, FaultKind.LOST, None} == set(draws("a"))


def test_a_fakes_own_rates_win_over_the_star_kind_by_kind() -> None:
    plan = FaultPlan.parse(["*:5xx=0.02,slow=0.1", "altinn-broker:5xx=0.05,lost=0.02",
                            "svarut:slow=0"])
    assert plan.rates_for("altinn-broker") == {
        FaultKind.SERVER_ERROR: 0.05, FaultKind.SLOW: 0.1, FaultKind.LOST: 0.02}
    assert plan.rates_for("maskinporten") == {FaultKind.SERVER_ERROR: 0.02, FaultKind.SLOW: 0.1}
    assert plan.rates_for("svarut") == {FaultKind.SERVER_ERROR: 0.02}
    assert FaultPlan.parse(["svarut:5xx=0.1"]).injector("maskinporten") is None


@pytest.mark.parametrize(("spec", "says"), [
    ("altinn-broker", "expected NAME:KIND=RATE"),
    ("altinn-broker:", "expected NAME:KIND=RATE"),
    ("x:503=0.1", "unknown fault '503'"),
    ("x:5xx", "needs a rate"),
    ("x:5xx=lots", "needs a rate"),
    ("x:5xx=1.5", "fraction from 0 to 1"),
    ("x:5xx=0.6,lost=0.6", "add up to 1.2"),
])
def test_a_bad_plan_is_refused_saying_why(spec: str, says: str) -> None:
    with pytest.raises(FaultSpecError, match=says.replace("(", r"\(")):
        FaultPlan.parse([spec])


def test_the_cli_refuses_a_bad_plan_and_documents_the_kinds() -> None:
    run = subprocess.run([sys.executable, "-m", "ipunkt", "sandbox", "--faults", "x:nope=1"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "unknown fault 'nope'" in run.stderr
    helped = subprocess.run([sys.executable, "-m", "ipunkt", "sandbox", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert "--faults" in helped.stdout and "truncate" in helped.stdout
    assert "--fault-seed" in helped.stdout


def test_the_state_file_shows_the_plan(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "ipunkt", "sandbox", "--fakes-only", "--folder",
         str(tmp_path / "box"), "--state", str(state_file), "--port-a", str(free_port()),
         "--port-b", str(free_port()), "--faults", "*:5xx=0.02",
         "--faults", "maskinporten:lost=0.1,5xx=0", "--fault-seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists() and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        state = json.loads(state_file.read_text())
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert state["faults"] == {
        "rates": {"*": {"5xx": 0.02}, "maskinporten": {"lost": 0.1, "5xx": 0.0}},
        "seed": 3, "slow_seconds": 1.0, "retry_after_seconds": 1,
    }
    assert "Faults (seed 3):" in output and "maskinporten: lost=0.1" in output
