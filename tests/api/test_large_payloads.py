"""A 2 GiB upload and a 2 GiB pop keep the server's memory flat (``ipunkt serve`` as a process).

The bytes are made on the fly and hashed as they go; the server's resident memory is read from
/proc (VmRSS sampled, and VmHWM, its peak, after resetting the peak once the server is idle).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ipunkt.api.nextmove import build
from ipunkt.config import load_settings
from ipunkt.messages.settings import MessagesSettings
from ipunkt.sbd import parse_sbd
from ipunkt.store.base import Direction
from ipunkt.store.settings import create_store
from ipunkt.testing import ADMINISTRASJON, ARKIVMELDING_STANDARD, ServerProcess, free_port, sbd

GIB = 1024**3
SIZE = 2 * GIB
MIB = 1024 * 1024
ORG, RECEIVER = "910077473", "910075918"
INCOMING_ID = "aaaaaaaa-0000-4000-8000-000000000001"
OUTGOING_ID = "bbbbbbbb-0000-4000-8000-000000000002"

PLUGIN = '''
from datetime import timedelta

from ipunkt.plugin import Channel, ChannelInfo, TransientError, hookimpl


class Held(Channel):
    async def send(self, message):
        raise TransientError("this test never delivers")


@hookimpl
def register_channels(register):
    register(ChannelInfo(service="DPT", name="large payloads", max_size=3 * 1024**3,
                         message_types=frozenset({"arkivmelding"}), factory=Held,
                         default_ttl=timedelta(hours=1)))
'''


def big(message_id: str, sender: str, receiver: str) -> dict[str, Any]:
    """The SBD of a message whose one file is big.bin (its own conversation)."""
    return sbd(receiver, message_id, sender=sender, conversation_id=message_id,
               body={"hoveddokument": "big.bin"})


async def generated(size: int, digest: Any) -> AsyncIterator[bytes]:
    """``size`` bytes, varied from chunk to chunk, fed to ``digest`` as they go."""
    block = os.urandom(MIB)
    sent = number = 0
    while sent < size:
        chunk = number.to_bytes(8, "big") + block[: min(MIB, size - sent) - 8]
        digest.update(chunk)
        sent += len(chunk)
        number += 1
        yield chunk


class Memory:
    """The server's resident memory: idle, then the peak from there on."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.idle = self.read("VmRSS")
        self.peak = self.idle
        self.peak_reset = self._reset_peak()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def read(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for {self.pid}")

    def _reset_peak(self) -> bool:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS
        except OSError:
            return False
        return True

    def _sample(self) -> None:
        while not self._stop.is_set() and Path(f"/proc/{self.pid}/status").exists():
            self.peak = max(self.peak, self.read("VmRSS"))
            time.sleep(0.02)

    def growth(self) -> int:
        self._stop.set()
        self._sampler.join()
        if self.peak_reset:
            self.peak = max(self.peak, self.read("VmHWM"))
        return self.peak - self.idle


async def seed_incoming(config: Path, digest: Any) -> None:
    """A 2 GiB incoming message, stored as a channel would before the server starts."""
    settings = load_settings(config)
    store = create_store(settings.store)
    services = build(store, None, {}, organisation=ORG,  # type: ignore[arg-type]
                     settings=MessagesSettings())
    await store.open()
    try:
        assert await services.incoming.receive(parse_sbd(big(INCOMING_ID, RECEIVER, ORG)),
                                               "DPT", generated(SIZE, digest))
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_2_gib_upload_and_pop_keep_the_servers_memory_flat(
    tmp_path: Path, install_plugin: Callable[..., Path]
) -> None:
    site = install_plugin("ipunkt-large-payloads", PLUGIN)
    registry = tmp_path / "registry.toml"
    registry.write_text(
        f'[[receiver]]\nidentifier = "{RECEIVER}"\n[[receiver.record]]\nservice = "DPT"\n'
        f'processes = ["{ADMINISTRASJON}"]\ndocument_types = ["{ARKIVMELDING_STANDARD}"]\n')
    config = tmp_path / "ipunkt.toml"
    config.write_text(
        f'[organisation]\nnumber = "{ORG}"\n'
        f'[lookup]\nsources = ["local"]\n[lookup.local]\npath = "{registry}"\n'
        '[channels.dpt]\nenabled = true\n')
    incoming_digest = hashlib.sha256()
    asyncio.run(seed_incoming(config, incoming_digest))
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    with ServerProcess(config, free_port(), env=env) as server:
        assert server.process is not None
        time.sleep(1)
        memory = Memory(server.process.pid)
        uploaded = hashlib.sha256()
        popped = asyncio.run(upload_and_pop(server.url, uploaded))
        growth = memory.growth()
        assert server.stop() == 0
    assert popped == incoming_digest.hexdigest()
    assert growth < 100 * MIB, f"RSS grew {growth / MIB:.0f} MiB above idle"

    async def stored_size() -> int:
        store = create_store(load_settings(config).store)
        await store.open()
        try:
            record = await store.message(Direction.OUTGOING, OUTGOING_ID)
            assert record is not None
            return sum(f.size for f in await store.files(record))
        finally:
            await store.close()

    assert asyncio.run(stored_size()) == SIZE


async def upload_and_pop(url: str, uploaded: Any) -> str:
    """Create, upload 2 GiB, then peek and pop the incoming message; its SHA-256."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        created = await session.post(f"{url}/api/messages/out",
                                     json=big(OUTGOING_ID, ORG, RECEIVER))
        assert created.status == 200, await created.text()
        response = await session.put(
            f"{url}/api/messages/out/{OUTGOING_ID}", data=generated(SIZE, uploaded),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(SIZE),
                     "Content-Disposition": "attachment; name=Big; filename=big.bin"})
        assert response.status == 200, await response.text()
        peek = await session.get(f"{url}/api/messages/in/peek")
        assert peek.status == 200
        popped = hashlib.sha256()
        size = 0
        async with session.get(f"{url}/api/messages/in/pop/{INCOMING_ID}") as pop:
            assert pop.status == 200
            assert pop.headers["Content-Type"] == "application/vnd.etsi.asic-e+zip"
            async for chunk in pop.content.iter_chunked(MIB):
                popped.update(chunk)
                size += len(chunk)
        assert size == SIZE
        return popped.hexdigest()
