"""Durable create rate of POST /api/messages/out vs a bare aiohttp JSON echo; RSS in a 2 GiB upload.

Each server runs alone in its own process on this machine; the load (32 concurrent
connections, small arkivmelding SBDs with fresh message ids) comes from another process. The
servers are measured in several rounds (``BENCH_ROUNDS``, ``BENCH_SECONDS`` each) and the
median ratio printed. Every create the server answers is committed and fsync'd (group commit).
Each round also measures the durable floor (``_nextmove_server.floor_app``: the same group
commit of one row, and nothing else a create does), so that the figures say how much of the
gap to the echo is the stack's and how much ipunkt's. The load process also reads, over its
measured window, the server's CPU time per request (all threads) and how busy the server's
event-loop thread was: a loop short of 100 % with the cores not full means the rate is bound
by how long a request waits (for its group's commit, under 32 connections), not by CPU.
Then a 2 GiB attachment is streamed to the Next Move server while its resident memory is
sampled from /proc.
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
from _processes import cpu_seconds, free_port, rss_kib

HERE = Path(__file__).resolve().parent
SERVER = HERE / "_nextmove_server.py"
CONNECTIONS = int(os.environ.get("CONN", "32"))
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


def _cpu_now(server_pid: int) -> tuple[float, float, float]:
    """CPU seconds so far of the server, of its event-loop thread, and of this process."""
    return (cpu_seconds(server_pid), cpu_seconds(server_pid, main_thread=True),
            time.process_time())


async def load(port: int, seconds: float, server_pid: int) -> dict[str, float]:
    """The rate over ``seconds`` after a second's warm-up, and what the measured window cost:
    CPU per request of the server (all threads) and of this process, and how busy the
    server's event loop thread and this process were (a fraction of one core each)."""
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
        before = _cpu_now(server_pid)
        await asyncio.gather(*(worker(started + seconds, True) for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - started
        server, server_loop, own = (
            end - begin for end, begin in zip(_cpu_now(server_pid), before, strict=True))
    answered = max(done + failed, 1)
    return {"rate": done / elapsed, "failed": failed,
            "server_cpu_us": server / answered * 1e6, "server_loop_busy": server_loop / elapsed,
            "load_cpu_us": own / answered * 1e6, "load_busy": own / elapsed}


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
            [sys.executable, __file__, "--load", str(port), str(SECONDS), str(process.pid)],
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


def _median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _costs(result: dict[str, float]) -> str:
    return (f"{result['server_cpu_us']:.0f} us CPU each, loop busy "
            f"{result['server_loop_busy']:.0%}, load busy {result['load_busy']:.0%}")


def main() -> None:
    echo: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    create: list[dict[str, float]] = []
    for round_number in range(1, ROUNDS + 1):
        echo.append(measure_rate("echo"))
        with tempfile.TemporaryDirectory() as folder:
            floor.append(measure_rate("floor", folder))
        with tempfile.TemporaryDirectory() as folder:
            create.append(measure_rate(folder))
        floor[-1]["ratio"] = floor[-1]["rate"] / echo[-1]["rate"]
        create[-1]["ratio"] = create[-1]["rate"] / echo[-1]["rate"]
        print(f"round {round_number}: echo {echo[-1]['rate']:6.0f} req/s; durable floor "
              f"{floor[-1]['rate']:6.0f} req/s, ratio {floor[-1]['ratio']:.2f} "
              f"({_costs(floor[-1])}); create {create[-1]['rate']:6.0f} req/s, ratio "
              f"{create[-1]['ratio']:.2f} ({_costs(create[-1])})", flush=True)
    failed = sum(r["failed"] for r in floor + create)
    ratio = _median(create, "ratio")
    print(f"bare aiohttp JSON echo:       {_median(echo, 'rate'):8.0f} req/s (median)")
    print(f"durable floor (one row):      {_median(floor, 'rate'):8.0f} req/s "
          f"(median), ratio {_median(floor, 'ratio'):.2f}")
    print(f"ipunkt durable create (SBD):  {_median(create, 'rate'):8.0f} req/s "
          f"(median, {failed:.0f} failed)")
    print(f"ratio:                        {ratio:8.2f}  (median of {ROUNDS} rounds; "
          "target >= 0.5)")
    print(f"server CPU per request:       floor {_median(floor, 'server_cpu_us'):.0f} us, "
          f"create {_median(create, 'server_cpu_us'):.0f} us (all threads); create's event "
          f"loop busy {_median(create, 'server_loop_busy'):.0%}, the load process "
          f"{_median(create, 'load_busy'):.0%} of a core")
    memory = measure_upload_memory()
    print(f"2 GiB upload: idle RSS {memory['idle_rss_mib']:.0f} MiB, peak "
          f"{memory['peak_rss_mib']:.0f} MiB, growth {memory['growth_mib']:.0f} MiB "
          f"(target < 100), {memory['upload_mib_per_s']:.0f} MiB/s")
    print(json.dumps({
        "echo_rate": round(_median(echo, "rate"), 1),
        "floor_rate": round(_median(floor, "rate"), 1),
        "floor_ratio": round(_median(floor, "ratio"), 3),
        "create_rate": round(_median(create, "rate"), 1),
        "ratio": round(ratio, 3), "ratios": [round(r["ratio"], 3) for r in create],
        "create_failures": failed,
        "floor_server_cpu_us": round(_median(floor, "server_cpu_us")),
        "create_server_cpu_us": round(_median(create, "server_cpu_us")),
        "create_loop_busy": round(_median(create, "server_loop_busy"), 2),
        "create_load_busy": round(_median(create, "load_busy"), 2),
        "upload_rss_growth_mib": round(memory["growth_mib"], 1),
        "upload_peak_rss_mib": round(memory["peak_rss_mib"], 1),
        "upload_mib_per_s": round(memory["upload_mib_per_s"], 1),
    }))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        print(json.dumps(asyncio.run(load(int(sys.argv[2]), float(sys.argv[3]),
                                          int(sys.argv[4])))))
    else:
        main()
