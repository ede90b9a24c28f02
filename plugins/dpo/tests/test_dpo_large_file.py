"""A 1 GiB message (DPO's limit) from A to B, with A and B as real ``ipunkt serve``
processes: the memory of each stays flat while it seals, uploads, downloads, stores and pops
the file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from ipunkt.testing import ServerProcess, free_port

GIB = 1024**3
CHUNK = 1024 * 1024
ARKIVMELDING = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>s</systemID><registrering><systemID>r</systemID>
    <offentligTittel>Stor fil</offentligTittel><journalpostnummer>1</journalpostnummer>
    <dokumentbeskrivelse><dokumentobjekt><referanseDokumentfil>stor.bin</referanseDokumentfil>
    </dokumentobjekt></dokumentbeskrivelse></registrering></mappe>
</arkivmelding>"""


def rss_mib(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


async def generated(size: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        digest.update(piece)
        sent += len(piece)
        yield piece


@pytest.mark.slow
async def test_a_1_gib_file_keeps_both_integration_points_flat(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    ports = (free_port(), free_port())
    fakes = subprocess.Popen(
        [sys.executable, "-m", "ipunkt", "sandbox", "--fakes-only", "--folder",
         str(tmp_path / "box"), "--state", str(state_file), "--port-a", str(ports[0]),
         "--port-b", str(ports[1])],
        stdout=subprocess.DEVNULL, env={**os.environ, "IPUNKT_DISABLE_PLUGINS": "dpf,dpi,dpv"},
    )
    servers: list[ServerProcess] = []
    try:
        while not state_file.exists():
            assert fakes.poll() is None, "the sandbox stopped"
            await asyncio.sleep(0.1)
        a, b = json.loads(state_file.read_text())["organisations"]
        for party, port in zip((a, b), ports, strict=True):
            config = Path(party["config"])
            config.write_text(config.read_text() + '\n[logging]\nlevel = "warning"\n')
            servers.append(ServerProcess(config, port).start())
        idle = [rss_mib(s.process.pid, "VmRSS") for s in servers]  # type: ignore[union-attr]
        headers = {p["letter"]: {"Authorization": aiohttp.encode_basic_auth(p["username"],
                                                                           p["password"])}
                   for p in (a, b)}
        message_id = str(uuid.uuid4())
        sent = hashlib.sha256()
        timeout = aiohttp.ClientTimeout(total=1200)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            out = f"{a['url']}/api/messages/out"
            sbd = {
                "standardBusinessDocumentHeader": {
                    "headerVersion": "1.0",
                    "receiver": [{"identifier": {"value": f"0192:{b['organisation']}",
                                                 "authority": "iso6523-actorid-upis"}}],
                    "documentIdentification": {
                        "standard": "urn:no:difi:arkivmelding:xsd::arkivmelding",
                        "typeVersion": "2.0", "instanceIdentifier": message_id,
                        "type": "arkivmelding"},
                    "businessScope": {"scope": [{
                        "type": "ConversationId",
                        "identifier": "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"}]},
                },
                "arkivmelding": {"hoveddokument": "stor.bin"},
            }
            async with session.post(out, json=sbd, headers=headers["A"]) as response:
                assert response.status == 200, await response.text()
            for name, mime, body in (
                ("arkivmelding.xml", "application/xml", ARKIVMELDING),
                ("stor.bin", "application/octet-stream", generated(GIB - CHUNK, sent)),
            ):
                async with session.put(f"{out}/{message_id}", data=body, headers={
                    **headers["A"], "Content-Type": mime,
                    "Content-Disposition": f'attachment; filename="{name}"'}) as response:
                    assert response.status == 200, await response.text()
            async with session.post(f"{out}/{message_id}", headers=headers["A"]) as response:
                assert response.status == 200
            inbox = f"{b['url']}/api/messages/in"
            for _ in range(1200):
                async with session.get(f"{inbox}/peek", headers=headers["B"]) as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("the 1 GiB message never arrived at B")
            received = hashlib.sha256()
            async with session.get(f"{inbox}/pop/{message_id}", headers=headers["B"]) as response:
                assert response.status == 200
                spool = tmp_path / "asic.zip"
                with spool.open("wb") as sink:
                    async for chunk in response.content.iter_chunked(CHUNK):
                        sink.write(chunk)
            with zipfile.ZipFile(spool) as package, package.open("stor.bin") as stored:
                while piece := stored.read(CHUNK):
                    received.update(piece)
        assert received.hexdigest() == sent.hexdigest()
        peaks = [rss_mib(s.process.pid, "VmHWM") for s in servers]  # type: ignore[union-attr]
        growth = [peak - base for peak, base in zip(peaks, idle, strict=True)]
        print(f"1 GiB over DPO: RSS growth A {growth[0]:.1f} MiB, B {growth[1]:.1f} MiB")
        assert max(growth) < 100, f"memory grew {growth} MiB"
    finally:
        for server in servers:
            server.stop()
        fakes.send_signal(signal.SIGTERM)
        fakes.wait(30)
