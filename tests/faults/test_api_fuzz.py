"""schemathesis over ipunkt's own ``/api/openapi.json``, against a real ``ipunkt serve`` with
authentication on: every operation, with data that fits its schemas and data that breaks them,
then stateful runs along the links that schemathesis infers between the operations.

No answer may be a 5xx, contradict the document (status, Content-Type, headers, the body's
schema, the error body of every refusal) or let a request through without credentials, and
each must come within :data:`BOUND` seconds (a request whose generated headers are not valid
HTTP is refused with a plain 400 before the API, as the original's Tomcat refuses it: see
:meth:`Run.judge`); afterwards the same process must still be alive
and report itself healthy. Its channel sends every message back in as an incoming one, so the
listings, peek, pop and delete have rows to work on.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition
from ipunkt.testing import ADMINISTRASJON, ARKIVMELDING_STANDARD, ServerProcess, free_port, sbd
from schemathesis import Case, GenerationMode
from schemathesis.errors import FailureGroup

BOUND = 10.0
"""Seconds within which every answer must come: more is a hang."""
USER, PASSWORD = "fuzz", "fuzz-secret"
ORG, RECEIVER = "910077473", "910075918"
PUSH_SINK = "http://127.0.0.1:9/ipunkt-fuzz"
"""Where generated subscriptions push: the fuzzer picks no host for the server to call."""
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance",
          "missing_required_header", "ignored_auth", "use_after_free",
          "ensure_resource_availability")
"""Left out: negative_data_rejection and positive_data_acceptance, since reading is liberal
(the document says so) and business rules refuse schema-valid SBDs; unsupported_method and
allow_header_conformance, since ``/api/statuses/peek`` and ``/api/statuses/{id}`` (and the
like) share a path template, as in the original."""

LOOPBACK_CHANNEL = '''
import copy
import hashlib
import uuid
from datetime import timedelta

from ipunkt.plugin import Channel, ChannelInfo, IncomingMessage, SendResult, hookimpl


class Loopback(Channel):
    """Every message sent comes back as an incoming one, from its receiver."""

    incoming_poll_interval = 0.2

    def __init__(self, context):
        super().__init__(context)
        self.returning = []

    async def send(self, message):
        digest = hashlib.sha256()
        for attachment in message.attachments:
            async for chunk in attachment.open():
                digest.update(chunk)
        self.returning.append((reply(message.sbd), digest.digest()))
        return SendResult()

    async def poll_incoming(self, sink):
        while self.returning:
            sbd, payload = self.returning.pop(0)
            await sink.receive(IncomingMessage(sbd, payload=once(payload)))


async def once(data):
    yield data


def reply(sbd):
    sbd = copy.deepcopy(dict(sbd))
    header = sbd["standardBusinessDocumentHeader"]
    header["sender"], header["receiver"] = header["receiver"], header["sender"]
    header["documentIdentification"]["instanceIdentifier"] = str(uuid.uuid4())
    for scope in header["businessScope"]["scope"]:
        scope["instanceIdentifier"] = str(uuid.uuid4())
    return sbd


@hookimpl
def register_channels(register):
    register(ChannelInfo(service="DPL", name="loopback", max_size=1024 * 1024,
                         message_types=frozenset({"arkivmelding"}), factory=Loopback,
                         default_ttl=timedelta(hours=1)))
'''


def install_loopback(site: Path) -> Path:
    """The loopback channel as a plugin distribution in ``site``, for the process to load."""
    info = site / "loopback_channel-1.0.0.dist-info"
    info.mkdir(parents=True)
    (site / "loopback_channel.py").write_text(LOOPBACK_CHANNEL)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: loopback-channel\nVersion: 1.0.0\n"
        "Requires-Dist: ipunkt>=0.1\n")
    (info / "entry_points.txt").write_text("[ipunkt]\nloopback_channel = loopback_channel\n")
    return site


def write_config(folder: Path) -> Path:
    registry = folder / "registry.toml"
    registry.write_text(
        f'[[receiver]]\nidentifier = "{RECEIVER}"\n[[receiver.record]]\nservice = "DPL"\n'
        f'processes = ["{ADMINISTRASJON}"]\ndocument_types = ["{ARKIVMELDING_STANDARD}"]\n')
    config = folder / "ipunkt.toml"
    config.write_text(
        f'[organisation]\nnumber = "{ORG}"\n[plugins]\nallow = ["loopback-channel"]\n'
        f'[lookup]\nsources = ["local"]\n[lookup.local]\npath = "{registry}"\n'
        f'[api]\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
        '[delivery]\noutbox_poll_seconds = 0.1\n[channels.dpl]\nenabled = true\n')
    return config


def seed(url: str) -> None:
    """Messages at each step (created, with a file, sent, and so come back in), for the run
    to find in listings, statuses and conversations."""
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    for step in ("create", "upload", "send", "send", "send"):
        message_id = str(uuid.uuid4())
        out = f"{url}/api/messages/out"
        session.post(out, json=sbd(RECEIVER, message_id), timeout=BOUND).raise_for_status()
        if step == "create":
            continue
        session.put(f"{out}/{message_id}", data=b"Hei", timeout=BOUND, headers={
            "Content-Type": "text/plain",
            "Content-Disposition": 'attachment; name="Brev"; filename="brev.txt"'},
        ).raise_for_status()
        if step == "send":
            session.post(f"{out}/{message_id}", timeout=BOUND).raise_for_status()
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        incoming = session.get(f"{url}/api/messages/in", timeout=BOUND).json()
        if incoming["totalElements"] == 3:
            return
        time.sleep(0.1)
    raise AssertionError("the sent messages did not come back in")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("fuzz")
    site = install_loopback(folder / "site")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(write_config(folder), free_port(), env=env) as process:
        seed(process.url)
        yield process


@pytest.fixture(scope="module")
def schema(server: ServerProcess) -> Any:
    config = schemathesis.Config.from_dict({
        "auth": {"basic": {"username": USER, "password": PASSWORD}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    })
    return schemathesis.openapi.from_url(f"{server.url}/api/openapi.json", config=config,
                                         auth=(USER, PASSWORD), timeout=BOUND)


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP field name (RFC 9110, 5.1)."""


def not_http(headers: dict[str, Any]) -> bool:
    """Whether generated headers make the request malformed HTTP: a field name that is not a
    token, a Content-Length that is not digits, or a Transfer-Encoding (no request here has
    one)."""
    for name, value in headers.items():
        if not _TOKEN.match(name) or name.lower() == "transfer-encoding":
            return True
        if name.lower() == "content-length" and not str(value).strip().isdigit():
            return True
    return False


class Run:
    """The requests of one run: how many, and every answer that broke a rule."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.requests = 0
        self.problems: list[str] = []

    def call(self, case: Case) -> requests.Response | None:
        if isinstance(case.body, dict) and "pushEndpoint" in case.body:
            case.body["pushEndpoint"] = PUSH_SINK
        self.requests += 1
        started = time.monotonic()
        try:
            response = case.call(base_url=self.url, session=self.session, timeout=BOUND)
        except requests.RequestException as exc:
            self.problems.append(f"{case.operation.label}: no answer ({exc}):\n"
                                 f"{case.as_curl_command(base_url=self.url)}")
            return None
        took = time.monotonic() - started
        if took > BOUND:
            self.problems.append(f"{case.operation.label}: answered after {took:.1f} s:\n"
                                 f"{case.as_curl_command(base_url=self.url)}")
        return response

    def validate(self, check: Callable[[], None]) -> None:
        try:
            check()
        except FailureGroup as failures:
            self.problems.append(str(failures))

    def judge(self, case: Case, response: requests.Response,
              check: Callable[[], None]) -> None:
        """Hold the answer to the document, unless the request was not valid HTTP: then the
        HTTP layer refuses it before the API (aiohttp's parser here, Tomcat's connector for the
        original) with a plain 400 that no handler saw."""
        if not not_http(case.headers or {}):
            self.validate(check)
        elif response.status_code != 400 or "X-Request-Id" in response.headers:
            self.problems.append(
                f"{case.operation.label}: a malformed request was answered "
                f"{response.status_code}:\n{case.as_curl_command(base_url=self.url)}")

    def exchange(self, case: Case) -> None:
        response = self.call(case)
        if response is not None:
            self.judge(case, response, lambda: case.validate_response(
                response, transport_kwargs={"base_url": self.url}))

    def fuzz(self, schema: Any, examples: int) -> None:
        """Each operation, with data that fits its schemas and with data that breaks them."""
        for result in schema.get_all_operations():
            operation = result.ok()
            takes_input = any((operation.path_parameters, operation.query, operation.headers,
                               operation.body))
            modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE][:2 if takes_input else 1]
            for mode in modes:
                @settings(max_examples=examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck),
                          phases=[Phase.explicit, Phase.generate])
                @given(case=operation.as_strategy(generation_mode=mode))
                def exchange(case: Case) -> None:
                    self.exchange(case)

                exchange()

    def healthy(self, server: ServerProcess) -> None:
        assert server.process is not None and server.process.poll() is None, server.output()
        health = requests.get(f"{server.url}/manage/health", timeout=BOUND)
        assert health.status_code == 200 and health.json()["status"] == "UP", health.text

    def verdict(self) -> str:
        shown = "\n\n".join(self.problems[:10])
        return f"{len(self.problems)} answers of {self.requests} broke the rules:\n{shown}"


def test_every_operation_answers_within_the_document(
    server: ServerProcess, schema: Any, size: Callable[[float, float], float],
    report: Callable[..., None],
) -> None:
    run = Run(server.url)
    run.fuzz(schema, examples=int(size(12, 150)))
    run.healthy(server)
    report(scenario="api fuzz: schemathesis", messages=run.requests, lost=0, duplicated=0,
           errors=len(run.problems))
    assert not run.problems, run.verdict()


MAX_FRESH_SESSIONS = 20
"""The stateful run draws along links whose values come from the server's answers, and the
server's state moves on between scenarios (a message peeked, popped or deleted), so a scenario
hypothesis replays can draw differently and it stops with ``FlakyStrategyDefinition``. As
schemathesis' own engine does, the run then goes on in a fresh session, this many times at
most: it is the harness that is flaky there, not an answer of the server."""


def test_stateful_runs_along_the_inferred_links(
    server: ServerProcess, schema: Any, size: Callable[[float, float], float],
    report: Callable[..., None],
) -> None:
    run = Run(server.url)
    wanted = int(size(25, 400))
    scenarios = 0

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

        def call(self, case: Case, **kwargs: Any) -> Any:
            response = run.call(case)
            if response is None:
                raise AssertionError("\n".join(run.problems[-1:]))
            return response

        def validate_response(self, response: Any, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            run.judge(case, response, lambda: super(Workflow, self).validate_response(
                response, case, additional_checks, base_url=run.url))

    fresh_sessions = 0
    while scenarios < wanted:
        try:
            Workflow.run(settings=settings(
                max_examples=wanted - scenarios, stateful_step_count=8, deadline=None,
                database=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate]))
        except FlakyStrategyDefinition:
            fresh_sessions += 1
            assert fresh_sessions <= MAX_FRESH_SESSIONS, "hypothesis found every session flaky"
            continue
        break
    run.healthy(server)
    report(scenario="api fuzz: schemathesis stateful", messages=run.requests, lost=0,
           duplicated=0, errors=len(run.problems))
    assert not run.problems, run.verdict()
