"""End-to-end DPO round trips: two integration points and the fake broker, as processes.

Usage: python bench/run.py e2e_dpo [--messages N] [--concurrency C]

The sandbox's fakes run in one process (``ipunkt sandbox --fakes-only``) and organisations A
and B in one ``ipunkt serve`` process each. A round trip: create, upload arkivmelding.xml and a
small document, and send at A; B's client peeks, pops and deletes it; LEVERT comes back to A,
which pushes it to this script through a webhook. The figures: round trips per second, p50
and p99 from send to LEVERT, each process's peak RSS, and the CPU time each process (this
script's clients too) spends per round trip: what the two cores pay for one. The baseline is
a bare aiohttp server answering the same number of requests per round trip (25; 23.7 were
counted on 2026-12-06: A 4, B 3.4, the fakes 15.2, the webhook 1) on this machine in the same
run, so the ratio is comparable across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _processes import cpu_seconds, free_port, peak_rss_mib, wait_until_ready  # noqa: E402

PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
REQUESTS_PER_ROUND_TRIP = 25
EMPTY_PEEK_PAUSE = 0.25
"""How long a receiving client waits after a peek found nothing, as a fagsystem polling B
would: at 0.05 s the eight clients made nearly three empty peeks per round trip."""
ARKIVMELDING = b"""<?xml version="1.0" encoding="utf-8"?>
<arkivmelding xmlns="http://www.arkivverket.no/standarder/noark5/arkivmelding">
  <mappe><systemID>sak</systemID><registrering><systemID>jp</systemID>
    <offentligTittel>Benchmark</offentligTittel><journalpostnummer>1</journalpostnummer>
    <dokumentbeskrivelse><dokumentobjekt><referanseDokumentfil>brev.txt</referanseDokumentfil>
    </dokumentobjekt></dokumentbeskrivelse></registrering></mappe>
</arkivmelding>"""


def sbd(sender: str, receiver: str, message_id: str) -> dict:
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"value": f"0192:{sender}",
                                       "authority": "iso6523-actorid-upis"}}],
            "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {"standard": "urn:no:difi:arkivmelding:xsd::arkivmelding",
                                       "typeVersion": "1.0", "instanceIdentifier": message_id,
                                       "type": "arkivmelding"},
            "businessScope": {"scope": [{"type": "ConversationId",
                                         "instanceIdentifier": str(uuid.uuid4()),
                                         "identifier": PROCESS}]},
        },
        "arkivmelding": {"hoveddokument": "brev.txt"},
    }


def auth(party: dict) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(party["username"], party["password"])}


async def baseline(seconds: float) -> float:
    """Round trips per second a bare aiohttp server allows at the same requests per trip."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_echo_server.py"),
                               str(port)])
    try:
        url = f"http://127.0.0.1:{port}/"
        await wait_until_ready(url)
        done = 0
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as session:
            async def worker() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    async with session.post(url, json={"ping": 1}) as response:
                        await response.read()
                    done += 1

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(32)))
            elapsed = time.monotonic() - started
        return done / elapsed / REQUESTS_PER_ROUND_TRIP
    finally:
        server.terminate()
        server.wait()


async def run(messages: int, concurrency: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="ipunkt-bench-e2e-"))
    state_file = folder / "state.json"
    ports = (free_port(), free_port())
    env = {**os.environ}
    fakes = subprocess.Popen(
        [sys.executable, "-m", "ipunkt", "sandbox", "--fakes-only", "--folder", str(folder / "box"),
         "--state", str(state_file), "--port-a", str(ports[0]), "--port-b", str(ports[1]),
         "--log-level", "error"],
        env=env, stdout=subprocess.DEVNULL,
    )
    while not state_file.exists():
        if fakes.poll() is not None:
            raise SystemExit("the sandbox did not start")
        await asyncio.sleep(0.1)
    state = json.loads(state_file.read_text())
    a, b = state["organisations"]
    servers = []
    for party in (a, b):
        config = Path(party["config"])
        config.write_text(config.read_text() + '\n[logging]\nlevel = "warning"\n')
        with (folder / f"{party['letter']}.log").open("w") as log:
            servers.append(subprocess.Popen(
                [sys.executable, "-m", "ipunkt", "serve", "--config", str(config)],
                env=env, stdout=subprocess.DEVNULL, stderr=log,
            ))
    for party in (a, b):
        await wait_until_ready(f"{party['url']}/manage/health/readiness")

    sent_at: dict[str, float] = {}
    levert_at: dict[str, float] = {}
    all_levert = asyncio.Event()

    async def webhook(request: web.Request) -> web.Response:
        event = await request.json()
        if event.get("status") == "LEVERT" and event["messageId"] in sent_at:
            levert_at.setdefault(event["messageId"], time.monotonic())
            if len(levert_at) == messages:
                all_levert.set()
        return web.Response()

    hook = web.Application()
    hook.router.add_post("/hook", webhook)
    runner = web.AppRunner(hook, access_log=None)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()

    taken = 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            async with session.post(f"{a['url']}/api/subscriptions", headers=auth(a), json={
                "name": "bench", "pushEndpoint": f"http://127.0.0.1:{hook_port}/hook",
                "resource": "messages", "event": "status", "filter": "status=LEVERT",
            }) as response:
                assert response.status == 200, await response.text()

            async def send_one() -> None:
                message_id = str(uuid.uuid4())
                base = f"{a['url']}/api/messages/out"
                async with session.post(base, headers=auth(a),
                                        json=sbd(a["organisation"], b["organisation"],
                                                 message_id)) as response:
                    assert response.status == 200, await response.text()
                for name, mime, data in (("arkivmelding.xml", "application/xml", ARKIVMELDING),
                                         ("brev.txt", "text/plain", b"Hei fra benchmark\n" * 20)):
                    async with session.put(f"{base}/{message_id}", data=data, headers={
                        **auth(a), "Content-Type": mime,
                        "Content-Disposition": f'attachment; filename="{name}"'}) as response:
                        assert response.status == 200, await response.text()
                async with session.post(f"{base}/{message_id}", headers=auth(a)) as response:
                    assert response.status == 200, await response.text()
                sent_at[message_id] = time.monotonic()

            queue = iter(range(messages))

            async def sender() -> None:
                for _ in queue:
                    await send_one()

            async def receiver() -> None:
                nonlocal taken
                while taken < messages:
                    async with session.get(f"{b['url']}/api/messages/in/peek",
                                           headers=auth(b)) as response:
                        if response.status != 200:
                            await asyncio.sleep(EMPTY_PEEK_PAUSE)
                            continue
                        peeked = await response.json()
                    message_id = peeked["standardBusinessDocumentHeader"][
                        "documentIdentification"]["instanceIdentifier"]
                    async with session.get(f"{b['url']}/api/messages/in/pop/{message_id}",
                                           headers=auth(b)) as response:
                        await response.read()
                    async with session.delete(f"{b['url']}/api/messages/in/{message_id}",
                                              headers=auth(b)) as response:
                        await response.read()
                        if response.status == 200:
                            taken += 1

            pids = {"fakes": fakes.pid, "A": servers[0].pid, "B": servers[1].pid,
                    "clients": os.getpid()}
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            started = time.monotonic()
            receivers = [asyncio.create_task(receiver()) for _ in range(8)]
            await asyncio.gather(*(sender() for _ in range(concurrency)))
            await asyncio.wait_for(all_levert.wait(), timeout=600)
            elapsed = time.monotonic() - started
            cpu_ms = {name: round((cpu_seconds(pid) - cpu_before[name]) * 1000 / messages, 1)
                      for name, pid in pids.items()}
            for task in receivers:
                task.cancel()
        latencies = sorted(levert_at[m] - sent_at[m] for m in levert_at)
        rss = {"fakes": peak_rss_mib(fakes.pid), "A": peak_rss_mib(servers[0].pid),
               "B": peak_rss_mib(servers[1].pid)}
    finally:
        await runner.cleanup()
        for process in (*servers, fakes):
            process.send_signal(signal.SIGTERM)
        for process in (*servers, fakes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    return {
        "messages": messages,
        "round_trips_per_second": round(messages / elapsed, 1),
        "p50_send_to_levert_seconds": round(statistics.median(latencies), 3),
        "p99_send_to_levert_seconds": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "peak_rss_mib": rss,
        "cpu_ms_per_round_trip": cpu_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=48)
    args = parser.parse_args()
    figures = asyncio.run(run(args.messages, args.concurrency))
    base = asyncio.run(baseline(5.0))
    figures["baseline_round_trips_per_second"] = round(base, 1)
    figures["ratio_to_baseline"] = round(figures["round_trips_per_second"] / base, 3)
    print(f"ipunkt: {figures['round_trips_per_second']} round trips/s, "
          f"p50 {figures['p50_send_to_levert_seconds']} s, "
          f"p99 {figures['p99_send_to_levert_seconds']} s, peak RSS {figures['peak_rss_mib']} MiB, "
          f"CPU per round trip {figures['cpu_ms_per_round_trip']} ms")
    print(f"baseline (bare aiohttp, {REQUESTS_PER_ROUND_TRIP} requests per trip): "
          f"{figures['baseline_round_trips_per_second']} round trips/s; "
          f"ratio {figures['ratio_to_baseline']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
