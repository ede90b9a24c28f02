"""The faults, load and attack suite: each scenario reports one row of the suite's table.

``python3 dev.py faults`` runs this folder at full size (``IPUNKT_FAULTS_FULL=1``) and prints
the rows as a table; the normal test run runs the same scenarios at the small size that fits
CI's time. A row says how many messages the scenario sent and how many were lost, delivered
twice, or answered with an error, and how long recovery took where something was killed.

The crash and soak scenarios drive real processes (``ipunkt sandbox --fakes-only`` and
``ipunkt serve``) through fagsystem clients that behave as a careful real one does: a request
that got no answer is retried, and after an uncertain create, upload or send the client asks
where the message got before it goes on. The ``kit`` fixture hands these pieces to the test
modules (which cannot import a conftest).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import aiohttp
import pytest
import tomli_w
from ipunkt.testing import ServerProcess, free_port

sys.path.append(str(Path(__file__).parent))  # the scenarios' shared samples (noark.py)

REPORT_ENV = "IPUNKT_FAULTS_REPORT"
"""A file the scenarios append their rows to (JSON lines), set by ``dev.py faults``."""
FULL_ENV = "IPUNKT_FAULTS_FULL"
"""Set to 1 for the full sizes the issue asks for (2,000 messages, five minutes' soak)."""
SEED_ENV = "IPUNKT_FAULTS_SEED"
"""The seed of the random kills (a failing run is repeated with the seed it printed)."""
ANSWER_WAIT = 180.0
"""How long a client waits for a killed process to answer again before the scenario fails."""


@dataclass(frozen=True)
class Row:
    scenario: str
    messages: int
    lost: int
    duplicated: int
    errors: int
    recovery_seconds: float | None = None
    details: str | None = None
    """What the table's columns do not show (the seed, the kills, memory, latency), printed
    below it."""


@pytest.fixture
def size() -> Callable[[float, float], float]:
    """``size(small, full)``: the scenario's size, ``full`` under ``dev.py faults``."""
    return lambda small, full: full if os.environ.get(FULL_ENV) == "1" else small


@pytest.fixture
def report() -> Callable[..., None]:
    """``report(scenario=..., messages=..., lost=..., duplicated=..., errors=...,
    recovery_seconds=..., details=...)`` records the scenario's row (printed, and kept for
    the table)."""

    def record(**fields: object) -> None:
        row = Row(**fields)  # type: ignore[arg-type]
        print("faults:", json.dumps(asdict(row)))
        target = os.environ.get(REPORT_ENV)
        if target:
            with Path(target).open("a") as sink:
                sink.write(json.dumps(asdict(row)) + "\n")

    return record


@pytest.fixture
def seed() -> int:
    """The seed of this run's random kills: ``IPUNKT_FAULTS_SEED``, else a new one, printed."""
    chosen = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1 << 32))
    print(f"faults: {SEED_ENV}={chosen}")
    return chosen


# --- what went wrong, as the clients see it ---------------------------------------------------


@dataclass
class Tally:
    """Errors the clients met: answers a working integration point never gives (a 5xx other
    than 503, a refusal of a valid request, a wrong payload, a final FEIL), and processes that
    died without being killed. Connection errors while a process is down are not errors."""

    errors: list[str] = field(default_factory=list)
    unavailable: int = 0
    """503 answers (a lookup source is down): a fagsystem waits and tries again."""

    def error(self, what: str) -> None:
        self.errors.append(what[:500])
        print(f"faults: error: {what[:500]}", flush=True)


class Unanswered(Exception):
    """The request got no answer (the process was killed, or the connection broke)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def says(self, text: str) -> bool:
        """The error body's message contains ``text``."""
        try:
            return text in str(self.json().get("message", ""))
        except (ValueError, AttributeError):
            return False


class NextMove:
    """One integration point's Next Move API, as a fagsystem calls it."""

    def __init__(self, session: aiohttp.ClientSession, state: Mapping[str, Any],
                 tally: Tally) -> None:
        self.session = session
        self.url = state["url"]
        self.number = state["organisation"]
        self.tally = tally
        self.auth = {"Authorization": aiohttp.encode_basic_auth(state["username"],
                                                               state["password"])}

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request; :class:`Unanswered` when no whole answer came back."""
        headers = {**self.auth, **kwargs.pop("headers", {})}
        try:
            async with self.session.request(method, f"{self.url}{path}", headers=headers,
                                            **kwargs) as response:
                return Answer(response.status, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unanswered(f"{method} {path}: {exc!r}") from None

    async def answered(self, method: str, path: str, **kwargs: Any) -> Answer:
        """A request that may be repeated (a read, or a retry the API makes safe), repeated
        until it gets an answer other than 503; a 5xx answer is counted as an error."""
        deadline = time.monotonic() + ANSWER_WAIT
        while True:
            try:
                answer = await self.call(method, path, **kwargs)
            except Unanswered:
                pass
            else:
                if not self.transient(answer, method, path):
                    return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.url} gave no answer to {method} {path} for "
                                     f"{ANSWER_WAIT:.0f} s")
            await asyncio.sleep(0.2)

    def transient(self, answer: Answer, method: str, path: str) -> bool:
        """A 5xx: to be tried again. Only 503 (a source is down, retry later) is no error."""
        if answer.status == 503:
            self.tally.unavailable += 1
            return True
        if answer.status >= 500:
            self.tally.error(f"{method} {self.url}{path}: {answer.status} {answer.body[:300]!r}")
            return True
        return False

    async def statuses(self, message_id: str) -> list[str]:
        answer = await self.answered("GET", f"/api/statuses/{message_id}", params={"size": 100})
        return [s["status"] for s in answer.json()["content"]]

    async def messages_at(self, status: str) -> set[str]:
        """The ids of the messages that have ``status`` (every page)."""
        found: set[str] = set()
        page = 0
        while True:
            answer = await self.answered("GET", "/api/statuses", params={
                "status": status, "size": 2000, "page": page})
            body = answer.json()
            found |= {s["messageId"] for s in body["content"]}
            if body["last"]:
                return found
            page += 1


class Sender:
    """A fagsystem's sending side: create, upload each file, send; whatever gets killed."""

    def __init__(self, api: NextMove) -> None:
        self.api = api
        self.accepted: dict[str, float] = {}
        """Message id -> when the integration point took the send (monotonic clock)."""

    async def send(self, message_id: str, sbd: Mapping[str, Any],
                   files: Sequence[tuple[str, str, bytes]]) -> bool:
        """Create, upload ``files`` ((name, media type, bytes)) and send; False when the
        integration point refused the message for good (counted as an error)."""
        if not await self._create(message_id, sbd):
            return False
        for name, mime, data in files:
            if not await self._upload(message_id, name, mime, data):
                return False
        if not await self._send(message_id):
            return False
        self.accepted[message_id] = time.monotonic()
        return True

    async def _create(self, message_id: str, sbd: Mapping[str, Any]) -> bool:
        path = "/api/messages/out"
        while True:
            try:
                answer = await self.api.call("POST", path, json=sbd)
            except Unanswered:
                # Did the create get through before the answer was lost?
                found = await self.api.answered("GET", f"{path}/{message_id}")
                if found.status == 200:
                    return True
                continue
            if answer.status == 200:
                return True
            if not self.api.transient(answer, "POST", path):
                self.api.tally.error(f"create {message_id}: {answer.status} {answer.body!r}")
                return False
            await asyncio.sleep(0.2)

    async def _upload(self, message_id: str, name: str, mime: str, data: bytes) -> bool:
        path = f"/api/messages/out/{message_id}"
        headers = {"Content-Type": mime,
                   "Content-Disposition": f'attachment; name="{name}"; filename="{name}"'}
        uncertain = False
        while True:
            try:
                answer = await self.api.call("PUT", path, data=data, headers=headers)
            except Unanswered:
                uncertain = True  # a repeat stores it, or says the first one did
                continue
            if answer.status == 200:
                return True
            if uncertain and answer.status == 400 and answer.says("Filename already exists"):
                return True
            if not self.api.transient(answer, "PUT", path):
                self.api.tally.error(f"upload {name} to {message_id}: {answer.status} "
                                     f"{answer.body!r}")
                return False
            await asyncio.sleep(0.2)

    async def _send(self, message_id: str) -> bool:
        path = f"/api/messages/out/{message_id}"
        while True:
            try:
                answer = await self.api.call("POST", path)
            except Unanswered:
                # Sending again is safe while it waits in the outbox; once delivered the
                # message is gone from /messages/out and its statuses say how far it got.
                continue
            if answer.status == 200:
                return True
            if answer.status == 404:
                names = await self.api.statuses(message_id)
                if any(n not in ("OPPRETTET", "FEIL") for n in names):
                    return True
                self.api.tally.error(f"send {message_id}: gone, with statuses {names}")
                return False
            if not self.api.transient(answer, "POST", path):
                self.api.tally.error(f"send {message_id}: {answer.status} {answer.body!r}")
                return False
            await asyncio.sleep(0.2)


Check = Callable[[str, Mapping[str, Any], bytes | None], str | None]
"""What a receiving client checks in a message it took (id, SBD, ASiC-E): a problem or None."""


class Receiver:
    """A fagsystem's receiving side: peek, pop, delete, as several workers at once.

    A message counts as taken at its successful DELETE (or a 404 to a DELETE repeated after
    one that got no answer: the first went through). A message peeked again after it was
    taken is a duplicate.
    """

    def __init__(self, api: NextMove, check: Check, workers: int = 4) -> None:
        self.api = api
        self.check = check
        self.workers = workers
        self.taken: Counter[str] = Counter()
        self.first_taken: dict[str, float] = {}
        self.duplicated: Counter[str] = Counter()
        self.seen: dict[str, Mapping[str, Any]] = {}
        """Each taken message's SBD by id."""

    async def run(self) -> None:
        """Take messages until cancelled."""
        await asyncio.gather(*(self._work() for _ in range(self.workers)))

    async def _work(self) -> None:
        while True:
            if not await self.take():
                await asyncio.sleep(0.2)

    async def take(self) -> bool:
        """Take the next message; False when there is none."""
        peeked = await self.api.answered("GET", "/api/messages/in/peek")
        if peeked.status == 204:
            return False
        if peeked.status != 200:
            self.api.tally.error(f"peek: {peeked.status} {peeked.body!r}")
            return False
        sbd = peeked.json()
        message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"]
        if message_id in self.taken:
            self.duplicated[message_id] += 1
            print(f"faults: {message_id} peeked again after it was taken", flush=True)
        popped = await self.api.answered("GET", f"/api/messages/in/pop/{message_id}")
        if popped.status == 400 and popped.says("was not locked"):
            return True  # its lock ran out meanwhile: peek again
        if popped.status not in (200, 204):
            self.api.tally.error(f"pop {message_id}: {popped.status} {popped.body!r}")
            return True
        problem = self.check(message_id, sbd, popped.body if popped.status == 200 else None)
        if problem:
            self.api.tally.error(f"{message_id}: {problem}")
        await self._delete(message_id)
        self.seen[message_id] = sbd
        return True

    async def _delete(self, message_id: str) -> None:
        path = f"/api/messages/in/{message_id}"
        uncertain = False
        while True:
            try:
                answer = await self.api.call("DELETE", path)
            except Unanswered:
                uncertain = True
                continue
            if answer.status == 200 or (uncertain and answer.status == 404):
                self.taken[message_id] += 1
                self.first_taken.setdefault(message_id, time.monotonic())
                return
            if not self.api.transient(answer, "DELETE", path):
                self.api.tally.error(f"delete {message_id}: {answer.status} {answer.body!r}")
                return
            await asyncio.sleep(0.2)


def asic_file(asic: bytes | None, name: str) -> bytes | None:
    """One file of a popped ASiC-E, or None when it has no such file."""
    if asic is None:
        return None
    with zipfile.ZipFile(io.BytesIO(asic)) as package:
        return package.read(name) if name in package.namelist() else None


# --- processes that get killed ------------------------------------------------------------------


class Victim(Protocol):
    name: str

    async def start(self) -> None: ...

    def kill(self) -> None: ...

    def exited(self) -> int | None:
        """The exit code, when the process ended (without being killed by us)."""
        ...


class FakesProcess:
    """``ipunkt sandbox --fakes-only`` on one folder: killed and started again, it resumes."""

    name = "fakes"

    def __init__(self, folder: Path, ports: tuple[int, int], env: Mapping[str, str],
                 log: Path) -> None:
        self.folder = folder
        self.state_file = folder.parent / f"{folder.name}-state.json"
        self.command = [
            sys.executable, "-m", "ipunkt", "sandbox", "--fakes-only", "--folder", str(folder),
            "--state", str(self.state_file), "--port-a", str(ports[0]),
            "--port-b", str(ports[1]), "--log-level", "info"]
        self.env = {**os.environ, **env}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}

    async def start(self) -> None:
        self.state_file.unlink(missing_ok=True)
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=sink, stderr=sink)
        deadline = time.monotonic() + 60
        while not self.state_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the sandbox's fakes did not start:\n{self.output()}")
            await asyncio.sleep(0.05)
        self.state = json.loads(self.state_file.read_text())

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def exited(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class IntegrationPoint:
    """``ipunkt serve`` on one config: killed and started again on its data."""

    def __init__(self, name: str, config: Path, port: int, env: Mapping[str, str]) -> None:
        self.name = name
        self.server = ServerProcess(config, port, dict(env), config.with_suffix(".log"))

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start, 120.0)

    def kill(self) -> None:
        self.server.stop(signal.SIGKILL)

    def exited(self) -> int | None:
        process = self.server.process
        return process.poll() if process is not None else None

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def close(self) -> None:
        if self.exited() is None and self.server.process is not None:
            self.server.stop()


class Chaos:
    """Kills each victim at random moments (seeded) and starts it again after a short random
    pause, until stopped; each victim has its own schedule, so kills may overlap."""

    def __init__(self, victims: Sequence[Victim], seed: int, tally: Tally, *,
                 every: tuple[float, float] = (2.0, 6.0),
                 pause: tuple[float, float] = (0.2, 1.5)) -> None:
        self.victims = victims
        self.tally = tally
        self.every, self.pause = every, pause
        master = random.Random(seed)
        self._schedules = [random.Random(master.getrandbits(64)) for _ in victims]
        self.kills: Counter[str] = Counter()
        self.last_ready: float | None = None
        """When the last restarted process was ready again (monotonic clock)."""
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(*(self._haunt(victim, schedule)
                               for victim, schedule in zip(self.victims, self._schedules,
                                                           strict=True)))

    def stop(self) -> None:
        self._stop.set()

    async def _haunt(self, victim: Victim, schedule: random.Random) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), schedule.uniform(*self.every))
            if self._stop.is_set():
                return
            code = victim.exited()
            if code is not None:
                self.tally.error(f"{victim.name} exited by itself with code {code}")
            else:
                victim.kill()
                self.kills[victim.name] += 1
            await asyncio.sleep(schedule.uniform(*self.pause))
            await victim.start()
            self.last_ready = time.monotonic()

    def check_alive(self) -> None:
        for victim in self.victims:
            code = victim.exited()
            if code is not None:
                self.tally.error(f"{victim.name} exited by itself with code {code}")


# --- the DPO exchange: fakes, A and B as processes ---------------------------------------------


ONLY_DPO = {"IPUNKT_DISABLE_PLUGINS": "dpv,dpf,dpi"}
"""The DPO scenarios run the DPO channel alone (fakes, A and B)."""


@dataclass
class Exchange:
    """The sandbox's fakes and integration points A and B, each its own process."""

    fakes: FakesProcess
    a: IntegrationPoint
    b: IntegrationPoint
    state: dict[str, Any]

    def organisation(self, letter: str) -> dict[str, Any]:
        return next(o for o in self.state["organisations"] if o["letter"] == letter)


def own_config(source: Path, target: Path, settings: Mapping[str, Mapping[str, Any]]) -> Path:
    """A copy of a sandbox config with ``settings`` merged in, kept apart from the sandbox's
    folder (a resumed sandbox writes its own configs again)."""
    config = tomllib.loads(source.read_text())
    for section, values in settings.items():
        config.setdefault(section, {}).update(values)
    target.write_text(tomli_w.dumps(config))
    return target


@contextlib.asynccontextmanager
async def dpo_exchange(
    folder: Path, settings: Mapping[str, Mapping[str, Any]]
) -> AsyncIterator[Exchange]:
    """Start the fakes (DPO only), then A and B on copies of their configs with ``settings``."""
    ports = (free_port(), free_port())
    fakes = FakesProcess(folder / "box", ports, ONLY_DPO, folder / "fakes.log")
    points: list[IntegrationPoint] = []
    try:
        await fakes.start()
        for organisation, port in zip(fakes.state["organisations"], ports, strict=True):
            letter = organisation["letter"]
            config = own_config(Path(organisation["config"]), folder / f"{letter}.toml",
                                settings)
            points.append(IntegrationPoint(letter, config, port, ONLY_DPO))
        await asyncio.gather(*(point.start() for point in points))
        yield Exchange(fakes, points[0], points[1], fakes.state)
    finally:
        for point in points:
            point.close()
        fakes.close()


@pytest.fixture
def kit() -> SimpleNamespace:
    """The pieces above, for the test modules (which cannot import conftest)."""
    return SimpleNamespace(
        Tally=Tally, NextMove=NextMove, Sender=Sender, Receiver=Receiver, Chaos=Chaos,
        IntegrationPoint=IntegrationPoint, dpo_exchange=dpo_exchange, own_config=own_config,
        asic_file=asic_file, Unanswered=Unanswered,
    )
