"""``ipunkt sandbox``: fakes and two integration points that really exchange a message."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from pathlib import Path

import aiohttp
import pytest
from ipunkt.plugin import SandboxChannel, SandboxPart
from ipunkt.plugins import PluginHost, load_plugins
from ipunkt.sandbox import ORGANISATIONS, Sandbox
from ipunkt.testing import free_port

HERE = Path(__file__).parent
A, B = (number for number, _ in ORGANISATIONS)


@pytest.fixture
def relay_site(install_plugin) -> Path:
    """The relay test channel, whose sandbox part runs a fake receiving side."""
    return install_plugin("relay-channel", (HERE / "delivery" / "relay_channel.py").read_text())


def avtalt(receiver: str) -> dict:
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"value": f"0192:{A}", "authority": "iso6523-actorid-upis"}}],
            "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {"standard": "urn:no:difi:avtalt:xsd::avtalt",
                                       "typeVersion": "1.0",
                                       "instanceIdentifier": str(uuid.uuid4()), "type": "avtalt"},
            "businessScope": {"scope": [{"type": "ConversationId",
                                         "instanceIdentifier": str(uuid.uuid4()),
                                         "identifier": "urn:no:difi:profile:avtalt:avtalt:ver1.0"}]},
        },
        "avtalt": {"identifier": "sandbox", "content": {"text": "hei"}},
    }


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
            sbd = avtalt(B)
            message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
                "instanceIdentifier"]
            async with session.post(f"{a['url']}/api/messages/out", json=sbd) as response:
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
