"""``ipunkt sandbox``: fakes and two integration points that really exchange a message."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
import zipfile
from pathlib import Path

import aiohttp
import pytest
from ipunkt.plugin import SandboxChannel, SandboxPart
from ipunkt.plugins import PluginHost, load_plugins
from ipunkt.sandbox import ORGANISATIONS, Sandbox
from ipunkt.testing import Fagsystem, ServerProcess, free_port, sbd

HERE = Path(__file__).parent
A, B = (number for number, _ in ORGANISATIONS)


@pytest.fixture
def relay_site(install_plugin) -> Path:
    """The relay test channel, whose sandbox part runs a fake receiving side."""
    return install_plugin("relay-channel", (HERE / "delivery" / "relay_channel.py").read_text())


def avtalt(receiver: str) -> dict:
    return sbd(receiver, str(uuid.uuid4()), sender=A, conversation_id=str(uuid.uuid4()),
               kind="avtalt", standard="urn:no:difi:avtalt:xsd::avtalt",
               process="urn:no:difi:profile:avtalt:avtalt:ver1.0",
               body={"identifier": "sandbox", "content": {"text": "hei"}})


async def test_hook_register_sandbox(tmp_path: Path, relay_site: Path) -> None:
    host = load_plugins(allow=["relay-channel"])
    assert "DPR" in host.sandbox_parts
    sandbox = Sandbox(tmp_path, host, (free_port(), free_port()))
    state = await sandbox.start()
    try:
        assert {"maskinporten", "service-registry", "relay-receiver"} <= set(state["fakes"])
        assert state["receivers"]["DPR"] == [{"identifier": B, "name": "Sandkasse B",
                                              "note": "relay"}]
        a, b = state["organisations"]
        assert (a["organisation"], b["organisation"]) == (A, B)
        auth = {"Authorization": aiohttp.encode_basic_auth(a["username"], a["password"])}
        async with aiohttp.ClientSession(headers=auth) as session:
            document = avtalt(B)
            message_id = document["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"]
            async with session.post(f"{a['url']}/api/messages/out", json=document) as response:
                assert response.status == 200, await response.text()
            async with session.post(f"{a['url']}/api/messages/out/{message_id}") as response:
                assert response.status == 200
            for _ in range(100):
                async with session.get(f"{a['url']}/api/statuses/{message_id}") as response:
                    names = [s["status"] for s in (await response.json())["content"]]
                if "LEVERT" in names:
                    break
                await asyncio.sleep(0.1)
            assert names == ["OPPRETTET", "SENDT", "MOTTATT", "LEVERT"]
            async with session.get(f"{a['url']}/api/capabilities/{B}") as response:
                capabilities = await response.json()
            assert capabilities["capabilities"][0]["serviceIdentifier"] == "DPR"
        relay = sys.modules["relay_channel"]
        assert relay.RECEIVER.delivered == {message_id: 1}
    finally:
        await sandbox.stop()


def test_fakes_only_writes_configs_that_ipunkt_serve_runs(tmp_path: Path, relay_site: Path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(relay_site),
                                                        os.environ.get("PYTHONPATH", "")])}
    state_file = tmp_path / "state.json"
    ports = [free_port(), free_port()]
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "ipunkt", "sandbox", "--fakes-only", "--folder",
         str(tmp_path / "box"), "--state", str(state_file), "--port-a", str(ports[0]),
         "--port-b", str(ports[1])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not state_file.exists():
            assert sandbox.poll() is None, sandbox.stdout.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        state = json.loads(state_file.read_text())
        assert state["fakes_only"] is True
        a = state["organisations"][0]
        serve = subprocess.Popen(
            [sys.executable, "-m", "ipunkt", "serve", "--config", a["config"]],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    with urllib.request.urlopen(f"{a['url']}/manage/health") as response:
                        health = json.load(response)
                    break
                except OSError:
                    time.sleep(0.1)
            assert health["components"]["channels"]["details"]["DPR"]["enabled"] is True
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(30) == 0
    finally:
        sandbox.send_signal(signal.SIGTERM)
        output, _ = sandbox.communicate(timeout=30)
    assert sandbox.returncode == 0, output
    assert f"A: Sandkasse A, organisation {A}" in output
    assert "DPR: 910075918 Sandkasse B - relay" in output


def _part(service: str, settings: dict) -> SandboxPart:
    async def setup(environment):  # type: ignore[no-untyped-def]
        return SandboxChannel(service, {}, settings=settings)

    return SandboxPart(service, setup)


async def test_parts_add_config_tables_and_may_not_contradict_each_other(tmp_path: Path) -> None:
    host = PluginHost()
    host.sandbox_parts = {
        "DPX": _part("DPX", {"lookup": {"allow_synthetic_identifiers": True}}),
        "DPY": _part("DPY", {"lookup": {"allow_synthetic_identifiers": True, "cache_ttl": 1}}),
    }
    sandbox = Sandbox(tmp_path / "agree", host, (free_port(), free_port()), fakes_only=True)
    state = await sandbox.start()
    await sandbox.stop()
    lookup = tomllib.loads(Path(state["organisations"][0]["config"]).read_text())["lookup"]
    assert lookup["allow_synthetic_identifiers"] is True and lookup["cache_ttl"] == 1
    assert lookup["sources"] == ["service-registry"]
    host.sandbox_parts["DPY"] = _part("DPY", {"lookup": {"allow_synthetic_identifiers": False}})
    sandbox = Sandbox(tmp_path / "disagree", host, (free_port(), free_port()), fakes_only=True)
    try:
        with pytest.raises(ValueError, match=r"lookup\.allow_synthetic_identifiers"):
            await sandbox.start()
    finally:
        await sandbox.stop()


def _resume_sandbox(folder: Path) -> Sandbox:
    return Sandbox(folder, load_plugins(allow=["dpo"]), (free_port(), free_port()),
                   fakes_only=True)


async def test_started_again_on_its_folder_the_sandbox_resumes(tmp_path: Path) -> None:
    """Same CA, keys, ports and Maskinporten signing keys: the configs come out the same."""
    folder = tmp_path / "box"
    first = _resume_sandbox(folder)
    state = await first.start()
    if "altinn-broker" not in state["fakes"]:
        await first.stop()
        pytest.skip("the DPO plugin is not installed")
    try:
        written = {path.name: path.read_bytes() for path in _kept(folder)}
        jwk = await _jwk(state)
    finally:
        await first.stop()

    again = Sandbox(folder, load_plugins(allow=["dpo"]), first.ports, fakes_only=True)
    resumed = await again.start()
    try:
        assert resumed == state
        assert {path.name: path.read_bytes() for path in _kept(folder)} == written
        assert await _jwk(resumed) == jwk, "what they signed before still verifies"
    finally:
        await again.stop()

    elsewhere = _resume_sandbox(tmp_path / "other")
    fresh = await elsewhere.start()
    await elsewhere.stop()
    assert (tmp_path / "other" / "sandbox-ca.pem").read_bytes() != written["sandbox-ca.pem"]
    assert fresh["fakes"] != state["fakes"]


async def _jwk(state: dict) -> dict:
    """The keys (``kid``, ``n``, ``e``) the fake Maskinporten and Service Registry publish for
    what they sign."""
    keys = {}
    async with aiohttp.ClientSession() as session:
        for fake in ("maskinporten", "service-registry"):
            async with session.get(f"{state['fakes'][fake]}/jwk") as response:
                keys[fake] = [(k["kid"], k["n"], k["e"]) for k in (await response.json())["keys"]]
    return keys


def _kept(folder: Path) -> list[Path]:
    """The files a resume must leave as they were: CA, keys, configs, registry."""
    return sorted([*folder.glob("*.toml"), folder / "sandbox-ca.pem", *folder.glob("keys/*")])


@pytest.mark.slow
async def test_fakes_killed_and_started_again_deliver_the_message_in_flight(
    tmp_path: Path,
) -> None:
    """A's message waits at the fake broker while B is down; the fakes' process is killed and
    started again on its folder; B comes up, takes the message, and A sees it LEVERT."""
    load = load_plugins(allow=["dpo"])
    if "DPO" not in load.sandbox_parts:
        pytest.skip("the DPO plugin is not installed")
    env = {"IPUNKT_DISABLE_PLUGINS": "dpv,dpf,dpi"}
    folder, state_file = tmp_path / "box", tmp_path / "state.json"
    ports = (free_port(), free_port())
    command = [sys.executable, "-m", "ipunkt", "sandbox", "--fakes-only", "--folder", str(folder),
               "--state", str(state_file), "--port-a", str(ports[0]), "--port-b", str(ports[1])]

    async def start_fakes() -> subprocess.Popen[bytes]:
        state_file.unlink(missing_ok=True)
        with (tmp_path / "fakes.log").open("ab") as log:
            fakes = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=log)
        for _ in range(600):
            if state_file.exists():
                return fakes
            assert fakes.poll() is None, (tmp_path / "fakes.log").read_text()
            await asyncio.sleep(0.1)
        raise AssertionError("the sandbox's fakes did not start")

    fakes = await start_fakes()
    state = json.loads(state_file.read_text())
    a_state, b_state = state["organisations"]
    a = ServerProcess(Path(a_state["config"]), ports[0], env)
    b = ServerProcess(Path(b_state["config"]), ports[1], env)
    try:
        await asyncio.to_thread(a.start)
        async with aiohttp.ClientSession() as session:
            sender, receiver = Fagsystem(session, a_state), Fagsystem(session, b_state)
            document = arkivmelding(A, B)
            message_id = document["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"]
            assert (await sender.call("POST", "/api/messages/out", json=document)).status == 200
            for name, data in (("arkivmelding.xml", ARKIVMELDING), ("brev.txt", b"Hei B\n")):
                response = await sender.call(
                    "PUT", f"/api/messages/out/{message_id}", data=data,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
                assert response.status == 200, await response.text()
            assert (await sender.call("POST", f"/api/messages/out/{message_id}")).status == 200
            assert "SENDT" in await _wait_for(sender, message_id, "SENDT")

            fakes.send_signal(signal.SIGKILL)
            fakes.wait(10)
            fakes = await start_fakes()
            assert json.loads(state_file.read_text()) == state

            await asyncio.to_thread(b.start)
            for _ in range(300):
                peeked = await receiver.call("GET", "/api/messages/in/peek")
                if peeked.status == 200:
                    break
                await asyncio.sleep(0.1)
            header = (await peeked.json())["standardBusinessDocumentHeader"]
            assert header["documentIdentification"]["instanceIdentifier"] == message_id
            popped = await receiver.call("GET", f"/api/messages/in/pop/{message_id}")
            assert popped.status == 200
            with zipfile.ZipFile(io.BytesIO(await popped.read())) as package:
                assert package.read("brev.txt") == b"Hei B\n"
            assert (await receiver.call("DELETE", f"/api/messages/in/{message_id}")).status == 200
            assert (await _wait_for(sender, message_id, "LEVERT"))[-1] == "LEVERT"
    finally:
        for server in (a, b):
            server.__exit__()
        fakes.kill()
        fakes.wait(10)


ARKIVMELDING = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>sak</systemID><registrering><systemID>jp</systemID>
    <offentligTittel>Resume</offentligTittel><journalpostnummer>1</journalpostnummer>
    <dokumentbeskrivelse><dokumentobjekt><referanseDokumentfil>brev.txt</referanseDokumentfil>
    </dokumentobjekt></dokumentbeskrivelse></registrering></mappe>
</arkivmelding>"""


def arkivmelding(sender: str, receiver: str) -> dict:
    return sbd(receiver, str(uuid.uuid4()), sender=sender, conversation_id=str(uuid.uuid4()))


async def _wait_for(party: Fagsystem, message_id: str, wanted: str) -> list[str]:
    names: list[str] = []
    for _ in range(600):
        response = await party.call("GET", f"/api/statuses/{message_id}")
        names = [s["status"] for s in (await response.json())["content"]]
        if wanted in names:
            return names
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {wanted}: {names}")
