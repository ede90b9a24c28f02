"""Send and receive one large document through DPF against a plain HTTP upload and download.

The fake SvarUt/SvarInn runs in a child process (``python -m ipunkt_dpf.fake``). The sending
organisation's channel encrypts the document to SvarUt's certificate as it uploads it; the fake
decrypts, zips and encrypts it for the receiver; the receiving channel downloads, decrypts,
unzips and re-seals it (ASiC-E, CAdES, CMS) for its core, which writes it to disk. The baseline
moves the same bytes up and back down over HTTP to a child process that only stores them, with
no cryptography at all. Peak RSS of this process (both channels) is measured above its idle RSS
from /proc: it must stay flat whatever the size.

Usage: ``python bench/run.py dpf [--size-mib N] [--rounds N] [--dir PATH]``. Targets: peak RSS
< 64 MiB above idle; ratio (baseline time / DPF time) reported, expected well above 0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.testcerts import make_ca
from ipunkt.plugin import Attachment, ChannelContext, IncomingMessage, OutgoingMessage
from ipunkt.testing import free_port
from ipunkt_dpf.channel import DPFChannel
from ipunkt_dpf.config import DPFConfig

SENDER, RECEIVER = "910077473", "910075918"
MIB = 1 << 20
ARKIVMELDING = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <basisregistrering>
    <tittel>Stor plan</tittel>
    <dokumentbeskrivelse>
      <tilknyttetRegistreringSom>Hoveddokument</tilknyttetRegistreringSom>
      <dokumentobjekt><referanseDokumentfil>plan.pdf</referanseDokumentfil></dokumentobjekt>
    </dokumentbeskrivelse>
  </basisregistrering>
</arkivmelding>"""


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def make_input(path: Path, size: int) -> None:
    """A 'PDF' of incompressible bytes (scans mostly are)."""
    block = os.urandom(16 * MIB)
    with path.open("wb") as out:
        out.write(b"%PDF-1.7\n")
        written = 9
        while written < size:
            piece = block[: min(len(block), size - written)]
            out.write(piece)
            written += len(piece)


def file_attachment(path: Path, name: str, mime: str) -> Attachment:
    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as source:
            while chunk := await asyncio.to_thread(source.read, MIB):
                yield chunk

    return Attachment(name, mime, path.stat().st_size, chunks)


def bytes_attachment(data: bytes, name: str, mime: str) -> Attachment:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return Attachment(name, mime, len(data), chunks)


class Tokens:
    async def token(self, scopes: Any, *, altinn: bool = False) -> str:
        return f"bench-{uuid.uuid4()}"


class DiskSink:
    """The core's side: the payload streamed to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0

    async def receive(self, message: IncomingMessage) -> bool:
        assert message.payload is not None
        with self.path.open("wb") as out:
            async for chunk in message.payload:
                await asyncio.to_thread(out.write, chunk)
                self.size += len(chunk)
        return True


def serve_blobs(port: int, directory: Path) -> None:
    """The baseline's server: stores an upload, streams it back."""

    async def upload(request: web.Request) -> web.Response:
        with (directory / "blob").open("wb") as out:
            while chunk := await request.content.read(MIB):
                out.write(chunk)
        return web.json_response({"ok": True})

    async def download(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(directory / "blob")

    app = web.Application(client_max_size=1 << 40)
    app.router.add_post("/blob", upload)
    app.router.add_get("/blob", download)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def baseline(source: Path, url: str, target: Path) -> float:
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()

        async def chunks() -> AsyncIterator[bytes]:
            with source.open("rb") as data:
                while chunk := await asyncio.to_thread(data.read, MIB):
                    yield chunk

        async with session.post(url, data=chunks()) as response:
            response.raise_for_status()
        async with session.get(url) as response:
            with target.open("wb") as out:
                async for chunk in response.content.iter_chunked(MIB):
                    await asyncio.to_thread(out.write, chunk)
        return time.perf_counter() - started


def channel(started: dict[str, Any], key: OrganisationKey, organisation: str,
            work: Path, *, digital_only: bool = False) -> DPFChannel:
    account = next(a for a in started["accounts"] if a["organisation"] == organisation)
    mailbox = next(m for m in started["mailboxes"] if m["organisation"] == organisation)
    work.mkdir(exist_ok=True)
    config = DPFConfig(
        enabled=True, svarut_url=started["url"], account_id=account["konto_id"],
        integration_id=account["integration_id"],
        integration_password=account["integration_password"],
        svarinn_username=mailbox["username"], svarinn_password=mailbox["password"],
        work_dir=str(work), request_timeout=600, digital_only=digital_only,
    )
    return DPFChannel(ChannelContext(organisation, config, key=key, tokens=Tokens()))


def message(source: Path, certificate: str) -> OutgoingMessage:
    message_id, conversation_id = str(uuid.uuid4()), str(uuid.uuid4())
    party = {"authority": "iso6523-actorid-upis"}
    sbd = {
        "standardBusinessDocumentHeader": {
            "sender": [{"identifier": {**party, "value": f"0192:{SENDER}"}}],
            "receiver": [{"identifier": {**party, "value": f"0192:{RECEIVER}"}}],
            "documentIdentification": {"type": "arkivmelding", "instanceIdentifier": message_id},
            "businessScope": {"scope": [{"type": "ConversationId",
                                         "instanceIdentifier": conversation_id}]},
        },
        "arkivmelding": {"sikkerhetsnivaa": 3},
    }
    return OutgoingMessage(
        message_id, conversation_id, f"0192:{SENDER}", f"0192:{RECEIVER}",
        "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0",
        "urn:no:difi:arkivmelding:xsd::arkivmelding", sbd,
        datetime.now(UTC) + timedelta(days=1),
        [bytes_attachment(ARKIVMELDING, "arkivmelding.xml", "application/xml"),
         file_attachment(source, "plan.pdf", "application/pdf")],
        {"pemCertificate": certificate},
    )


async def dpf_round(source: Path, started: dict[str, Any], keys: dict[str, OrganisationKey],
                    work: Path, idle_kib: int) -> tuple[float, float, float, int]:
    # SvarUt prints at most 350 MB: larger forsendelser must be digital only.
    digital_only = source.stat().st_size > 350 * 1000 * 1000
    sending = channel(started, keys[SENDER], SENDER, work / "sender", digital_only=digital_only)
    receiving = channel(started, keys[RECEIVER], RECEIVER, work / "receiver")
    await sending.start()
    await receiving.start()
    certificate = Path(started["certificate"]).read_text()
    sink = DiskSink(work / "stored.cms")
    try:
        Path("/proc/self/clear_refs").write_text("5")
        started_at = time.perf_counter()
        await sending.send(message(source, certificate))
        sent_at = time.perf_counter()
        await receiving.poll_incoming(sink)
        done_at = time.perf_counter()
    finally:
        await sending.stop()
        await receiving.stop()
    peak = status_kib("VmHWM") - idle_kib
    if sink.size <= source.stat().st_size:
        raise SystemExit("the receiving side stored less than was sent")
    return sent_at - started_at, done_at - sent_at, done_at - started_at, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the test files.")
    parser.add_argument("--serve-blobs", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_blobs:
        serve_blobs(int(args.serve_blobs[0]), Path(args.serve_blobs[1]))
        return
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ipunkt-bench-dpf-") as folder:
        work = Path(folder)
        ca = make_ca("bench CA")
        keys = {SENDER: ca.issue(SENDER), RECEIVER: ca.issue(RECEIVER)}
        for organisation, key in keys.items():
            (work / f"{organisation}.pem").write_bytes(key.certificate.public_bytes(Encoding.PEM))
        source = work / "plan.pdf"
        make_input(source, size)

        fake_port, blob_port = free_port(), free_port()
        (work / "fake").mkdir()
        (work / "blobs").mkdir()
        fake = subprocess.Popen(
            [sys.executable, "-m", "ipunkt_dpf.fake", "--port", str(fake_port),
             "--dir", str(work / "fake"),
             "--account", SENDER, "--account", RECEIVER,
             "--mailbox", f"{SENDER}:{work / f'{SENDER}.pem'}",
             "--mailbox", f"{RECEIVER}:{work / f'{RECEIVER}.pem'}"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        blobs = subprocess.Popen(
            [sys.executable, __file__, "--serve-blobs", str(blob_port), str(work / "blobs")]
        )
        try:
            assert fake.stdout is not None
            started = json.loads(fake.stdout.readline())
            wait_for(f"http://127.0.0.1:{blob_port}/blob", accept=(404, 200))
            idle_kib = asyncio.run(warm_up(started, keys, work))
            best_base = best_total = float("inf")
            best_send = best_receive = float("inf")
            peak_kib = 0
            for number in range(args.rounds):
                base = asyncio.run(baseline(source, f"http://127.0.0.1:{blob_port}/blob",
                                            work / "back.bin"))
                (work / "back.bin").unlink()
                sent, received, total, peak = asyncio.run(
                    dpf_round(source, started, keys, work, idle_kib)
                )
                (work / "stored.cms").unlink()
                print(f"round {number + 1}: baseline {base:6.2f} s   dpf {total:6.2f} s "
                      f"(send {sent:.2f}, receive {received:.2f})   peak {peak / 1024:.1f} MiB")
                best_base, best_total = min(best_base, base), min(best_total, total)
                best_send, best_receive = min(best_send, sent), min(best_receive, received)
                peak_kib = max(peak_kib, peak)
        finally:
            for process in (fake, blobs):
                process.terminate()
                process.wait(10)

    ratio = best_base / best_total
    mib = size / MIB
    print()
    print(f"plain HTTP up and down          {best_base:6.2f} s  {2 * mib / best_base:7.1f} MiB/s")
    print(f"DPF send + receive (with fake)  {best_total:6.2f} s  {2 * mib / best_total:7.1f} MiB/s")
    print(f"  send (encrypt + upload)       {best_send:6.2f} s")
    print(f"  receive (download + re-seal)  {best_receive:6.2f} s")
    print(f"ratio, baseline time / DPF time: {ratio:.2f}")
    print(f"peak RSS above idle: {peak_kib / 1024:.1f} MiB (target < 64, idle "
          f"{idle_kib / 1024:.0f} MiB)")
    print(json.dumps({
        "bench": "dpf",
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "baseline_s": round(best_base, 3),
        "dpf_s": round(best_total, 3),
        "send_s": round(best_send, 3),
        "receive_s": round(best_receive, 3),
        "ratio": round(ratio, 3),
        "peak_rss_above_idle_mib": round(peak_kib / 1024, 1),
    }))


def wait_for(url: str, accept: tuple[int, ...]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as error:
            if error.code in accept:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


async def warm_up(started: dict[str, Any], keys: dict[str, OrganisationKey], work: Path) -> int:
    """One small round trip, so that imports and threads exist before idle RSS is read."""
    small = work / "small.pdf"
    make_input(small, 64 * 1024)
    await dpf_round(small, started, keys, work, 0)
    (work / "stored.cms").unlink()
    small.unlink()
    return status_kib("VmRSS")


if __name__ == "__main__":
    main()
