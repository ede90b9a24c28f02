"""DPI send of a large letter through the channel to the fake access point vs sealing it alone.

The fake access point runs in its own process and, before it answers 201, verifies the
business message's JWS, decrypts the package with the mailbox's key and checks its XAdES
signature and digests. The baseline, measured in the same run, is sealing the same document
(ASiC-E + XAdES + CMS, with the fingerprint) to a file and nothing else: the send adds the
signing, the streamed multipart upload and the access point's work. The document is generated
as it streams and never held whole, so the peak RSS shows whether anything buffers it.

    python bench/run.py dpi_send [--mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ipunkt.package.asic import SignatureFormat
from ipunkt.package.seal import Document, seal
from ipunkt.package.testcerts import make_ca
from ipunkt.plugin import Attachment, ChannelContext, OutgoingMessage
from ipunkt.testing import free_port
from ipunkt_dpi.channel import DPIChannel
from ipunkt_dpi.config import DPIConfig
from ipunkt_dpi.shipment import plan

CHUNK = 1 << 20
ORG = "910077473"


def _chunks(mib: int) -> Iterator[bytes]:
    """Incompressible bytes, one MiB at a time (the same MiB, shifted, so it is cheap)."""
    block = os.urandom(CHUNK + 256)
    for n in range(mib):
        yield block[n % 256 : n % 256 + CHUNK]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Tokens:
    async def token(
        self, scopes: Sequence[str], *, altinn: bool = False, organisation: str | None = None
    ) -> str:
        return f"bench-token-{uuid.uuid4()}"


def _message(mib: int, certificate_pem: str, mailbox: str) -> OutgoingMessage:
    async def stream() -> AsyncIterator[bytes]:
        for chunk in _chunks(mib):
            yield chunk

    message_id, conversation_id = str(uuid.uuid4()), str(uuid.uuid4())
    return OutgoingMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender=f"0192:{ORG}",
        receiver="06068700602",
        process="urn:no:difi:profile:digitalpost:vedtak:ver1.0",
        document_type="urn:no:difi:digitalpost:xsd:digital::digital",
        sbd={
            "standardBusinessDocumentHeader": {"documentIdentification": {"type": "digital"}},
            "digital": {
                "sikkerhetsnivaa": 3,
                "tittel": "Stort brev",
                "spraak": "NO",
                "digitalPostInfo": {"virkningsdato": "2027-01-01", "aapningskvittering": False},
            },
        },
        expires_at=datetime.now(UTC) + timedelta(days=1),
        attachments=(Attachment("brev.pdf", "application/pdf", mib * CHUNK, stream, primary=True),),
        service_record={
            "pemCertificate": certificate_pem,
            "orgnrPostkasse": mailbox,
            "postkasseAdresse": "ola.nordmann#9YDT",
        },
    )


async def _send(url: str, anchors: Path, message: OutgoingMessage, key: Any, spool: Path) -> float:
    config = DPIConfig(
        enabled=True,
        access_point_url=url,
        trust_anchors=(anchors,),
        upload_size_limit=1 << 40,
        spool_directory=spool,
        read_timeout=600,
    )
    channel = DPIChannel(ChannelContext(organisation=ORG, config=config, key=key, tokens=_Tokens()))
    await channel.start()
    try:
        started = time.perf_counter()
        await channel.send(message)
        return time.perf_counter() - started
    finally:
        await channel.stop()


def _wait_for(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    key = make_ca("bench CA").issue(ORG)
    with tempfile.TemporaryDirectory(prefix="ipunkt-bench-dpi-") as folder:
        work = Path(folder)
        port = free_port()
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ipunkt_dpi.fake",
                "--port",
                str(port),
                "--certs",
                str(work / "certs"),
                "--step-delay",
                "0",
                "--max-package-mib",
                str(args.mib + 16),
            ],
            stdout=subprocess.PIPE,
        )
        try:
            assert fake.stdout is not None
            started = json.loads(fake.stdout.readline())
            certificate = Path(started["mailbox_certificate"]).read_text()
            _wait_for(port)
            message = _message(args.mib, certificate, started["mailbox_orgnr"])
            rss_start = _peak_rss_mib()

            shipment = plan(message, size_limit=1 << 40)
            begun = time.perf_counter()
            with (work / "baseline.asic.cms").open("wb") as out:
                seal(
                    [Document("brev.pdf", "application/pdf", lambda: _chunks(args.mib))],
                    key=key,
                    recipient=shipment.recipient,
                    out=out,
                    manifest=shipment.manifest,
                    signature=SignatureFormat.XADES,
                    fingerprint=True,
                )
            seal_seconds = time.perf_counter() - begun
            (work / "baseline.asic.cms").unlink()
            rss_after_seal = _peak_rss_mib()

            send_seconds = asyncio.run(
                _send(started["url"], Path(started["ca"]), message, key, work)
            )
            rss_after_send = _peak_rss_mib()
        finally:
            fake.terminate()
            fake.wait(30)
    figures = {
        "mib": args.mib,
        "seal_seconds": round(seal_seconds, 2),
        "send_seconds": round(send_seconds, 2),
        "send_over_seal": round(send_seconds / seal_seconds, 2),
        "seal_mib_per_s": round(args.mib / seal_seconds, 1),
        "send_mib_per_s": round(args.mib / send_seconds, 1),
        "peak_rss_mib_before": round(rss_start, 1),
        "peak_rss_mib_after_seal": round(rss_after_seal, 1),
        "peak_rss_mib_after_send": round(rss_after_send, 1),
    }
    print(
        f"sealing alone: {figures['seal_mib_per_s']} MiB/s; send through the channel to the "
        f"fake access point: {figures['send_mib_per_s']} MiB/s "
        f"({figures['send_over_seal']}x the time); peak RSS {figures['peak_rss_mib_before']} -> "
        f"{figures['peak_rss_mib_after_send']} MiB for a {args.mib} MiB letter"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
