"""Durable create rate of POST /api/messages/out vs a bare aiohttp JSON echo; RSS in a 2 GiB upload.

Each server runs alone in its own process on this machine; the load (32 concurrent
connections, small arkivmelding SBDs with fresh message ids) comes from another process. The
servers are measured in several rounds (``BENCH_ROUNDS``, ``BENCH_SECONDS`` each) and the
median ratio printed. Every create the server answers is committed and fsync'd (group commit).
Each round also measures the durable floor (``_nextmove_server.floor_app``: the same group
commit of one row, and nothing else a create does), so that the figures say how much of the
gap to the echo is the stack's and how much ipunkt's. Then a 2 GiB attachment is streamed to
the Next Move server while its resident memory is sampled from /proc.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from _processes import free_port, rss_kib

HERE = Path(__file__).resolve().parent
SERVER = HERE / "_nextmove_server.py"
CONNECTIONS = 32
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
"""Rounds of echo then ipunkt, each round's ratio taken from its own pair: this machine's
speed drifts by half between minutes, so a single pair's ratio is mostly noise."""
UPLOAD_BYTES = 2 * 1024**3


def sbd() -> bytes:
    message_id, conversation_id = str(uuid.uuid4()), str(uuid.uuid4())
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat(timespec="seconds")
    return json.dumps({
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"value": "0192:910077473",
                                       "authority": "iso6523-actorid-upis"}}],
            "receiver": [{"identifier": {"value": "0192:910075918",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {
                "standard": "urn:no:difi:arkivmelding:xsd::arkivmelding", "typeVersion": "1.0",
                "instanceIdentifier": message_id, "type": "arkivmelding"},
            "businessScope": {"scope": [{
                "type": "ConversationId", "instanceIdentifier": conversation_id,
                "identifier": "urn:no:difi:profile:arkivmelding:planByggOgGeodata:ver1.0",
                "scopeInformation": [{"expectedResponseDateTime": expires}]}]},
        },
        "arkivmelding": {"hoveddokument": "before_the_law.txt"},
    }).encode()


# --- the load, run in its own process ---------------------------------------------------------


async def load(port: int, seconds: float) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/api/messages/out"
    headers = {"Content-Type": "application/json"}
    done = failed = 0
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(until: float, count: bool) -> None:
            nonlocal done, failed
            while time.perf_counter() < until:
                async with session.post(url, data=sbd(), headers=headers) as response:
                    await response.read()
                    if count:
                        if response.status == 200:
                            done += 1
                        else:
                            failed += 1
        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(warm, False) for _ in range(CONNECTIONS)))
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + seconds, True) for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
    return {"rate": done / elapsed, "failed": failed}


# --- servers --------------------------------------------------------------------------------------


def start(target: str, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(port), target, *extra],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return process, port


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def measure_rate(target: str, *extra: str) -> dict[str, float]:
    process, port = start(target, *extra)
    try:
        loader = subprocess.run(
            [sys.executable, __file__, "--load", str(port), str(SECONDS)],
            capture_output=True, text=True, check=True,
        )
        return json.loads(loader.stdout.strip().splitlines()[-1])
    finally:
        stop(process)


async def upload(port: int, size: int) -> int:
    body = json.loads(sbd())
    message_id = body["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"]
    block = os.urandom(1024 * 1024)

    async def chunks():
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            sent += len(piece)
            yield piece

    async with aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{port}/api/messages/out"
        async with session.post(base, json=body) as response:
            assert response.status == 200, await response.text()
        async with session.put(
            f"{base}/{message_id}", data=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size),
                     "Content-Disposition": "attachment; filename=big.bin; name=Big"},
        ) as response:
            return response.status


def measure_upload_memory() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        process, port = start(folder)
        try:
            time.sleep(0.5)
            idle = rss_kib(process.pid)
            peak = idle
            stop_sampling = threading.Event()

            def sample() -> None:
                nonlocal peak
                while not stop_sampling.is_set():
                    peak = max(peak, rss_kib(process.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            status = asyncio.run(upload(port, UPLOAD_BYTES))
            elapsed = time.perf_counter() - started
            stop_sampling.set()
            sampler.join()
            assert status == 200, status
        finally:
            stop(process)
    return {"idle_rss_mib": idle / 1024, "peak_rss_mib": peak / 1024,
            "growth_mib": (peak - idle) / 1024, "upload_mib_per_s": UPLOAD_BYTES / 2**20 / elapsed}


def main() -> None:
    echo_rates: list[float] = []
    floor_rates: list[float] = []
    create_rates: list[float] = []
    ratios: list[float] = []
    floor_ratios: list[float] = []
    failed = 0
    for round_number in range(1, ROUNDS + 1):
        echo = measure_rate("echo")
        with tempfile.TemporaryDirectory() as folder:
            floor = measure_rate("floor", folder)
        with tempfile.TemporaryDirectory() as folder:
            ipunkt = measure_rate(folder)
        echo_rates.append(echo["rate"])
        floor_rates.append(floor["rate"])
        create_rates.append(ipunkt["rate"])
        ratios.append(ipunkt["rate"] / echo["rate"])
        floor_ratios.append(floor["rate"] / echo["rate"])
        failed += int(ipunkt["failed"] + floor["failed"])
        print(f"round {round_number}: echo {echo['rate']:6.0f} req/s, durable floor "
              f"{floor['rate']:6.0f} req/s (ratio {floor_ratios[-1]:.2f}), create "
              f"{ipunkt['rate']:6.0f} req/s, ratio {ratios[-1]:.2f}", flush=True)
    ratio = statistics.median(ratios)
    print(f"bare aiohttp JSON echo:       {statistics.median(echo_rates):8.0f} req/s (median)")
    print(f"durable floor (one row):      {statistics.median(floor_rates):8.0f} req/s "
          f"(median), ratio {statistics.median(floor_ratios):.2f}")
    print(f"ipunkt durable create (SBD):  {statistics.median(create_rates):8.0f} req/s "
          f"(median, {failed:.0f} failed)")
    print(f"ratio:                        {ratio:8.2f}  (median of {ROUNDS} rounds; "
          "target >= 0.5)")
    memory = measure_upload_memory()
    print(f"2 GiB upload: idle RSS {memory['idle_rss_mib']:.0f} MiB, peak "
          f"{memory['peak_rss_mib']:.0f} MiB, growth {memory['growth_mib']:.0f} MiB "
          f"(target < 100), {memory['upload_mib_per_s']:.0f} MiB/s")
    print(json.dumps({
        "echo_rate": round(statistics.median(echo_rates), 1),
        "floor_rate": round(statistics.median(floor_rates), 1),
        "floor_ratio": round(statistics.median(floor_ratios), 3),
        "create_rate": round(statistics.median(create_rates), 1),
        "ratio": round(ratio, 3), "ratios": [round(r, 3) for r in ratios],
        "create_failures": failed,
        "upload_rss_growth_mib": round(memory["growth_mib"], 1),
        "upload_peak_rss_mib": round(memory["peak_rss_mib"], 1),
        "upload_mib_per_s": round(memory["upload_mib_per_s"], 1),
    }))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        print(json.dumps(asyncio.run(load(int(sys.argv[2]), float(sys.argv[3])))))
    else:
        main()
