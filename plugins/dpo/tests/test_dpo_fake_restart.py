"""The fake broker killed (SIGKILL) and started again on its storage folder carries on: every
transfer as its clients last saw it, a virus scan under way finishes, an upload cut off by the
kill has failed (as in Altinn), and a transfer waiting for its file still takes it."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ipunkt.testing import free_port
from ipunkt_dpo.fake import FakeBroker

A, B = "0192:910077473", "0192:910075918"
RESOURCE = "eformidling-dpo-meldingsutveksling"
API = "/broker/api/v1/filetransfer"


class BrokerProcess:
    """``python -m ipunkt_dpo.fake`` on one storage folder and port, killable."""

    def __init__(self, storage: Path) -> None:
        self.storage = storage
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ipunkt_dpo.fake", "--port", str(self.port), "--storage",
             str(self.storage), "--scan-seconds", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                async with session.get(f"{self.url}/_fake/transfers") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("the fake broker did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Party:
    """One organisation calling the broker with a token from the fake's control route (the
    standalone fake's tokens live in its memory: a restarted broker hands out new ones)."""

    def __init__(self, session: aiohttp.ClientSession, broker: BrokerProcess, who: str) -> None:
        self.session, self.broker, self.who = session, broker, who
        self.token = ""

    async def log_in(self) -> None:
        async with self.session.post(f"{self.broker.url}/_fake/tokens",
                                     json={"organisation": self.who}) as response:
            self.token = (await response.json())["access_token"]

    async def call(self, method: str, path: str = "", **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        async with self.session.request(method, f"{self.broker.url}{API}{path}",
                                        headers=headers, **kwargs) as response:
            body = await response.read()
            if response.content_type.endswith("json"):
                return response.status, await response.json(content_type=None)
            return response.status, body

    async def initialize(self, reference: str) -> str:
        status, body = await self.call("POST", json={
            "fileName": "sbd.zip", "resourceId": RESOURCE, "sender": self.who,
            "recipients": [B], "sendersFileTransferReference": reference})
        assert status == 200, body
        return str(body["fileTransferId"])

    async def upload(self, transfer_id: str, data: bytes) -> int:
        status, _ = await self.call("POST", f"/{transfer_id}/upload", data=data,
                                    headers={"Content-Type": "application/octet-stream"})
        return status

    async def status(self, transfer_id: str) -> str:
        status, body = await self.call("GET", f"/{transfer_id}")
        assert status == 200, body
        return str(body["fileTransferStatus"])

    async def details(self, transfer_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/{transfer_id}/details")
        assert status == 200, body
        return dict(body)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path / "broker")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_killed_and_started_again_the_broker_carries_on(
    broker: BrokerProcess, session: aiohttp.ClientSession
) -> None:
    await broker.start(session)
    a, b = Party(session, broker, A), Party(session, broker, B)
    await a.log_in()
    await b.log_in()

    taken = await a.initialize("taken")
    assert await a.upload(taken, b"taken before") == 200
    for _ in range(50):
        if await a.status(taken) == "Published":
            break
        await asyncio.sleep(0.1)
    assert (await b.call("GET", f"/{taken}/download"))[1] == b"taken before"
    assert (await b.call("POST", f"/{taken}/confirmdownload"))[0] == 200
    waiting = await a.initialize("waiting for its file")
    scanning = await a.initialize("scanned across the kill")
    assert await a.upload(scanning, b"being scanned") == 200
    cut = await a.initialize("cut off")

    async def endless() -> AsyncIterator[bytes]:
        yield b"the first part of a file"
        await asyncio.Event().wait()

    upload = asyncio.create_task(a.upload(cut, endless()))  # type: ignore[arg-type]
    for _ in range(50):
        if await a.status(cut) == "UploadStarted":
            break
        await asyncio.sleep(0.05)
    before = {t: await a.details(t) for t in (taken, waiting)}
    assert await a.status(scanning) == "UploadProcessing"

    broker.kill()
    with pytest.raises(aiohttp.ClientError):
        await upload
    await broker.start(session)
    await a.log_in()
    await b.log_in()

    for transfer_id, details in before.items():
        assert await a.details(transfer_id) == details
    failed = await a.details(cut)
    assert failed["fileTransferStatus"] == "Failed"
    assert failed["fileTransferStatusText"] == "File upload failed and was aborted"
    assert not (broker.storage / cut).exists(), "the part of the file is gone"
    assert await a.upload(cut, b"again") == 409, "a failed transfer takes no new upload"

    assert await a.status(scanning) == "UploadProcessing"
    for _ in range(50):
        if await b.status(scanning) == "Published":
            break
        await asyncio.sleep(0.1)
    inbox = {"resourceId": RESOURCE, "status": "Published", "recipientStatus": "Initialized"}
    assert (await b.call("GET", params=inbox))[1] == [scanning]
    status, data = await b.call("GET", f"/{scanning}/download")
    assert (status, data) == (200, b"being scanned")

    assert await a.upload(waiting, b"after the restart") == 200
    assert (await a.details(waiting))["checksum"] == hashlib.md5(
        b"after the restart", usedforsecurity=False).hexdigest()


async def test_the_sandboxs_broker_keeps_finished_transfers_only_on_disk(
    tmp_path: Path, aiohttp_server: Any, session: aiohttp.ClientSession
) -> None:
    """A long-running broker holds in memory only the transfers under way; a finished one is
    still there for whoever asks for it, by id or in a listing, and still downloads."""
    fake = FakeBroker(storage=tmp_path / "broker", keep_finished=False)
    server = await aiohttp_server(fake.app())
    api = str(server.make_url(API))
    tokens = {who: fake.issued.issue(who) for who in (A, B)}

    async def call(who: str, method: str, path: str = "", **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {tokens[who]}", **kwargs.pop("headers", {})}
        async with session.request(method, f"{api}{path}", headers=headers,
                                   **kwargs) as response:
            body = await response.read()
            json_body = response.content_type.endswith("json")
            return response.status, await response.json() if json_body else body

    status, created = await call(A, "POST", json={
        "fileName": "sbd.zip", "resourceId": RESOURCE, "sender": A, "recipients": [B],
        "sendersFileTransferReference": "finished"})
    done = created["fileTransferId"]
    await call(A, "POST", f"/{done}/upload", data=b"the file",
               headers={"Content-Type": "application/octet-stream"})
    await call(B, "GET", f"/{done}/download")
    assert (await call(B, "POST", f"/{done}/confirmdownload"))[0] == 200
    status, created = await call(A, "POST", json={
        "fileName": "sbd.zip", "resourceId": RESOURCE, "sender": A, "recipients": [B],
        "sendersFileTransferReference": "under way"})
    open_id = created["fileTransferId"]

    assert set(fake.transfers) == {open_id}, "only the open transfer is held in memory"
    status, overview = await call(A, "GET", f"/{done}")
    assert (status, overview["fileTransferStatus"]) == (200, "AllConfirmedDownloaded")
    assert (await call(A, "GET", params={"resourceId": RESOURCE}))[1] == [open_id, done]
    listed = await call(B, "GET", params={"resourceId": RESOURCE,
                                          "recipientStatus": "DownloadConfirmed"})
    assert listed[1] == [done]
    finished = {"resourceId": RESOURCE, "status": "AllConfirmedDownloaded"}
    assert (await call(A, "GET", params=finished))[1] == [done]
    assert (await call(A, "GET", params={**finished, "to": overview["created"]}))[1] == []
    since = overview["created"]
    assert (await call(A, "GET", params={"resourceId": RESOURCE, "from": since}))[1] == [open_id]
    assert (await call(B, "GET", f"/{done}/download")) == (200, b"the file")
    assert set(fake.transfers) == {open_id}
