"""A 200 MB file through send and download, with the process's memory staying flat."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package.seal import open_package
from ipunkt.plugin import Attachment

SIZE = 200 * 1024 * 1024
BLOCK = os.urandom(1 << 20)
CLEAR_REFS = Path("/proc/self/clear_refs")


def _peak_rss() -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> None:
    CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (Linux 4.0+)


@pytest.mark.slow
async def test_200_mb_goes_through_send_and_download_with_flat_memory(
    world: Any, kit: Any, make_sink: Any, tmp_path: Path
) -> None:
    if not CLEAR_REFS.exists():
        pytest.skip("needs Linux's /proc/self/clear_refs to measure the peak memory")
    a, b = await world.channel(kit.ORG_A), await world.channel(kit.ORG_B)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(SIZE // len(BLOCK)):
            yield BLOCK

    message = kit.outgoing(
        kit.arkivmelding_sbd(f"0192:{kit.ORG_A}", f"0192:{kit.ORG_B}"),
        [Attachment("stort.bin", "application/octet-stream", SIZE, chunks, primary=True)],
        world.service_record(kit.ORG_B),
    )
    sink = make_sink()
    _reset_peak()
    before = _peak_rss()
    started = time.monotonic()

    result = await a.send(message)
    sent = time.monotonic()
    await b.poll_incoming(sink)
    received = time.monotonic()

    growth = _peak_rss() - before
    print(
        f"\n200 MB: send {sent - started:.1f} s, download {received - sent:.1f} s, "
        f"peak RSS growth {growth / 2**20:.1f} MiB"
    )
    assert growth < 64 * 2**20, f"memory grew by {growth / 2**20:.0f} MiB for a 200 MB file"
    assert world.broker.transfers[result.external_reference].size > SIZE
    [(_, package)] = sink.received
    assert package.stat().st_size > SIZE
    opened = open_package(package.open("rb"), key=world.pki[kit.ORG_B], trust=world.pki.trust)
    [document] = [f for f in opened.contents.files if f.name == "stort.bin"]
    assert document.size == SIZE
