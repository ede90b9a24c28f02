"""DPV through ``ipunkt sandbox``: the fagsystem drives integration point A over the Next Move
API, exactly as it would in production, and the message reaches the sample business's Altinn
inbox (the fake) through the DPV channel, while a message to B goes over DPO."""

from __future__ import annotations

import asyncio
import hashlib
import io
import signal
import tomllib
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tomli_w
from ipunkt.plugin import SandboxPart
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox
from ipunkt.testing import ServerProcess, free_port
from ipunkt_dpv.fake import FakeCorrespondence, Fault, Lifecycle
from ipunkt_dpv.receipts import receipt_id
from ipunkt_dpv.sandbox import BUSINESS, DPVSandbox

from .conftest import ADMINISTRASJON, ARKIVMELDING_XML, DIGITAL_INFO

BUSINESS_NUMBER, BUSINESS_NAME = BUSINESS
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
DIGITAL_DPV = "urn:no:difi:digitalpost:xsd:digital::digital_dpv"
VEDTAK = b"%PDF-1.7 vedtak om rammetillatelse\n" + bytes(range(256)) * 40
KART = b"\x89PNG\r\n\x1a\n kart over Storgata 5" * 300
FILES = {
    "arkivmelding.xml": ("Arkivmelding", "application/xml", ARKIVMELDING_XML.encode()),
    "vedtak.pdf": ("Vedtak om rammetillatelse", "application/pdf", VEDTAK),
    "kart.png": ("Situasjonskart", "image/png", KART),
}
"""Each file's title (DPV wants one, as the original), media type and bytes."""


class Fagsystem:
    """A case-management system calling one sandbox integration point over HTTP."""

    def __init__(self, session: aiohttp.ClientSession, state: dict[str, Any]) -> None:
        self.session = session
        self.url = state["url"]
        self.number = state["organisation"]
        self.auth = {"Authorization": aiohttp.encode_basic_auth(state["username"],
                                                               state["password"])}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        async with self.session.request(method, f"{self.url}{path}", headers=headers,
                                        **kwargs) as response:
            body = await response.read()
            if response.content_type.endswith("json") and body:
                return response.status, await response.json()
            return response.status, body

    async def send(self, receiver: str, *, files: dict[str, tuple[str, str, bytes]] = FILES,
                   kind: str = "arkivmelding", process: str = ADMINISTRASJON,
                   body: dict[str, Any] | None = None) -> str:
        """Create, upload each file, send: the same calls whatever the receiver's channel."""
        message_id = str(uuid.uuid4())
        standard = ARKIVMELDING if kind == "arkivmelding" else DIGITAL_DPV
        sbd = {
            "standardBusinessDocumentHeader": {
                "headerVersion": "1.0",
                "sender": [{"identifier": {"value": f"0192:{self.number}",
                                           "authority": "iso6523-actorid-upis"}}],
                "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                             "authority": "iso6523-actorid-upis"}}],
                "documentIdentification": {"standard": standard, "typeVersion": "2.0",
                                           "instanceIdentifier": message_id, "type": kind},
                "businessScope": {"scope": [{"type": "ConversationId",
                                             "instanceIdentifier": str(uuid.uuid4()),
                                             "identifier": process}]},
            },
            kind: body if body is not None else {"hoveddokument": "vedtak.pdf"},
        }
        status, answer = await self.call("POST", "/api/messages/out", json=sbd)
        assert status == 200, answer
        for name, (title, mime, data) in files.items():
            status, answer = await self.call(
                "PUT", f"/api/messages/out/{message_id}", data=data,
                headers={"Content-Type": mime, "Content-Disposition":
                         f'attachment; name="{title}"; filename="{name}"'})
            assert status == 200, answer
        status, answer = await self.call("POST", f"/api/messages/out/{message_id}")
        assert status == 200, answer
        return message_id

    async def statuses(self, message_id: str) -> list[str]:
        status, answer = await self.call("GET", f"/api/statuses/{message_id}",
                                         params={"size": 50})
        assert status == 200, answer
        return [s["status"] for s in answer["content"]]

    async def wait_for(self, message_id: str, wanted: str, timeout: float = 30) -> list[str]:
        names: list[str] = []
        for _ in range(int(timeout * 10)):
            names = await self.statuses(message_id)
            if wanted in names:
                return names
            await asyncio.sleep(0.1)
        raise AssertionError(f"{message_id} never reached {wanted}: {names}")

    async def conversation(self, message_id: str) -> dict[str, Any]:
        status, answer = await self.call("GET", "/api/conversations",
                                         params={"messageId": message_id})
        assert status == 200 and len(answer["content"]) == 1, answer
        return dict(answer["content"][0])

    async def take(self, timeout: float = 30) -> tuple[dict[str, Any], bytes | None]:
        """Peek, pop and delete the next incoming message."""
        for _ in range(int(timeout * 10)):
            status, sbd = await self.call("GET", "/api/messages/in/peek")
            if status == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("nothing arrived")
        message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"]
        status, package = await self.call("GET", f"/api/messages/in/pop/{message_id}")
        asic = package if status == 200 and package else None
        status, _ = await self.call("DELETE", f"/api/messages/in/{message_id}")
        assert status == 200
        return sbd, asic

    async def inbox_is_empty(self) -> bool:
        status, _ = await self.call("GET", "/api/messages/in/peek")
        return status == 204


@dataclass
class Box:
    sandbox: Sandbox
    state: dict[str, Any]
    altinn: FakeCorrespondence
    session: aiohttp.ClientSession

    def fagsystem(self, letter: str) -> Fagsystem:
        organisation = next(o for o in self.state["organisations"] if o["letter"] == letter)
        return Fagsystem(self.session, organisation)

    async def business_inbox(self) -> list[dict[str, Any]]:
        """The business's inbox as the fake shows it to a sandbox user."""
        url = self.state["fakes"]["altinn-inbox"]
        async with self.session.get(url, params={"recipient": BUSINESS_NUMBER}) as response:
            assert response.status == 200
            return list(await response.json())


def sandbox_with(folder: Path, part: DPVSandbox, plugins: list[str], *,
                 fakes_only: bool = False) -> Sandbox:
    """A sandbox whose DPV part is ``part`` (a lifecycle short enough for a test)."""
    host = load_plugins(allow=plugins)
    assert "DPV" in host.sandbox_parts, [r.error for r in host.records]
    host.sandbox_parts["DPV"] = SandboxPart("DPV", part.setup)
    return Sandbox(folder, host, (free_port(), free_port()), fakes_only=fakes_only)


@pytest.fixture
async def box(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Box]:
    plugins = getattr(request, "param", ["dpv"])
    part = DPVSandbox(Lifecycle(publish_after=1.0, read_after=2.0), status_poll_interval=0.2)
    sandbox = sandbox_with(tmp_path / "sandbox", part, plugins)
    state = await sandbox.start()
    assert part.fake is not None
    try:
        async with aiohttp.ClientSession() as session:
            yield Box(sandbox, state, part.fake, session)
        assert part.fake.violations == [], "traffic broke the published correspondence spec"
    finally:
        await sandbox.stop()


async def test_the_sandbox_offers_the_business_over_dpv(box: Box) -> None:
    assert box.state["receivers"]["DPV"] == [{
        "identifier": BUSINESS_NUMBER, "name": BUSINESS_NAME,
        "note": "a business's Altinn inbox: published after 1 s, read 2 s later"}]
    a = box.fagsystem("A")
    status, capabilities = await a.call("GET", f"/api/capabilities/{BUSINESS_NUMBER}")
    assert status == 200, capabilities
    offered = {(c["serviceIdentifier"], c["process"]) for c in capabilities["capabilities"]}
    assert ("DPV", ADMINISTRASJON) in offered
    assert ("DPV", DIGITAL_INFO) in offered
    assert {c["serviceIdentifier"] for c in capabilities["capabilities"]} == {"DPV"}
    status, health = await a.call("GET", "/manage/health")
    assert health["components"]["channels"]["details"]["DPV"]["enabled"] is True
    assert await box.business_inbox() == []


@pytest.mark.slow
async def test_levert_then_lest_as_altinn_moves_with_the_generated_receipt(box: Box) -> None:
    a = box.fagsystem("A")
    message_id = await a.send(BUSINESS_NUMBER)
    digital_id = await a.send(
        BUSINESS_NUMBER, kind="digital_dpv", process=DIGITAL_INFO,
        files={"brev.pdf": ("Vedtak", "application/pdf", VEDTAK)},
        body={"tittel": "Vedtak om bostøtte", "sammendrag": "Svar på søknaden",
              "innhold": "Søknaden er innvilget."})

    # The core puts MOTTATT before a LEVERT that comes without one.
    levert = await a.wait_for(message_id, "LEVERT")
    assert levert == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"], "LEST came with LEVERT"
    [held] = [c for c in await box.business_inbox() if c["sendersReference"] == message_id]
    assert held["status"] == "Published" and held["read"] is None

    receipt, package = await a.take()
    header = receipt["standardBusinessDocumentHeader"]
    assert header["documentIdentification"]["type"] == "arkivmelding_kvittering"
    assert header["documentIdentification"]["instanceIdentifier"] == receipt_id(message_id)
    assert header["sender"][0]["identifier"]["value"] == f"0192:{BUSINESS_NUMBER}"
    assert header["receiver"][0]["identifier"]["value"] == f"0192:{a.number}"
    conversation = await a.conversation(message_id)
    assert header["businessScope"]["scope"][0]["instanceIdentifier"] == conversation[
        "conversationId"]
    assert receipt["arkivmelding_kvittering"]["receiptType"] == "OK"
    assert receipt["arkivmelding_kvittering"]["relatedToMessageId"] == message_id
    assert package is None

    read_out = ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT", "LEST"]
    assert await a.wait_for(message_id, "LEST") == read_out
    assert await a.wait_for(digital_id, "LEST") == read_out
    [read] = [c for c in await box.business_inbox() if c["sendersReference"] == message_id]
    assert read["status"] == "Read" and read["published"] <= read["read"]
    await asyncio.sleep(0.5)  # more polls: still one receipt, and none for the digital_dpv
    assert await a.inbox_is_empty()


@pytest.mark.parametrize("box", [["dpv", "dpo"]], indirect=True)
async def test_the_same_call_reaches_b_over_dpo_and_the_business_over_dpv(box: Box) -> None:
    if "DPO" not in box.state["receivers"]:
        pytest.skip("the DPO plugin has no sandbox part here, so no receiver is on DPO")
    a, b = box.fagsystem("A"), box.fagsystem("B")
    to_b = await a.send(b.number)
    to_business = await a.send(BUSINESS_NUMBER)

    assert (await a.conversation(to_b))["serviceIdentifier"] == "DPO"
    sbd, asic = await b.take()
    assert sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"] == to_b
    assert asic is not None
    with zipfile.ZipFile(io.BytesIO(asic)) as package:
        assert package.read("vedtak.pdf") == VEDTAK
        assert package.read("kart.png") == KART
        assert package.read("arkivmelding.xml") == ARKIVMELDING_XML.encode()
    assert (await a.wait_for(to_b, "LEVERT"))[-1] == "LEVERT"

    await a.wait_for(to_business, "SENDT")
    conversation = await a.conversation(to_business)
    assert conversation["serviceIdentifier"] == "DPV"
    [held] = await box.business_inbox()
    assert held["correspondenceId"] == conversation["externalSystemReference"]
    assert held["sendersReference"] == to_business
    assert held["recipient"] == f"urn:altinn:organization:identifier-no:{BUSINESS_NUMBER}"
    assert held["title"] == "Vedtak i byggesak Storgata 5"
    assert [(f["fileName"], f["sha256"]) for f in held["files"]] == [
        ("vedtak.pdf", hashlib.sha256(VEDTAK).hexdigest()),
        ("kart.png", hashlib.sha256(KART).hexdigest())]
    assert await b.inbox_is_empty()


@pytest.mark.slow
async def test_killed_between_the_upload_and_its_record_the_restart_finds_the_first(
    tmp_path: Path,
) -> None:
    """Altinn made the correspondence, but A was killed before it recorded the answer: the
    restarted A sends again, gets 409, finds the correspondence by sendersReference and goes
    on with it; the business got one correspondence."""
    part = DPVSandbox(Lifecycle(publish_after=0.5, read_after=None), status_poll_interval=0.2)
    sandbox = sandbox_with(tmp_path / "sandbox", part, ["dpv"], fakes_only=True)
    state = await sandbox.start()
    assert part.fake is not None
    altinn = part.fake
    organisation = state["organisations"][0]
    config = Path(organisation["config"])
    settings = tomllib.loads(config.read_text())
    settings["delivery"]["lease_seconds"] = 2
    config.write_text(tomli_w.dumps(settings))
    server = ServerProcess(config, int(organisation["url"].rsplit(":", 1)[1]))
    try:
        await asyncio.to_thread(server.start)
        async with aiohttp.ClientSession() as session:
            a = Fagsystem(session, organisation)
            altinn.inject(Fault("upload", after_processing=True, delay=5))  # killed meanwhile
            message_id = await a.send(BUSINESS_NUMBER)
            for _ in range(300):
                if altinn.by_senders_reference(message_id):
                    break
                await asyncio.sleep(0.1)
            [first] = altinn.by_senders_reference(message_id)
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL

            await asyncio.to_thread(server.start)
            names = await a.wait_for(message_id, "LEVERT")
            assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
            conversation = await a.conversation(message_id)
            assert conversation["externalSystemReference"] == first.id
        assert [c.id for c in altinn.correspondences.values()] == [first.id]
        uploads = [r for r in altinn.requests if r.operation == "upload"]
        lookups = [r for r in altinn.requests if r.operation == "list"]
        assert len(uploads) == 2
        assert [dict(r.query)["sendersReference"] for r in lookups] == [message_id]
        assert altinn.violations == []
    finally:
        server.stop()
        await sandbox.stop()
