"""Receiver lookups per second through the Service Registry client: cached vs asking the registry.

The fake Service Registry runs in its own process, serving a registry file of 1,000 receivers
and signing every answer (RS256). The client asks for receivers by process, as routing does:
first with the cache off, so each lookup is an HTTP request plus a JWS verification (the
baseline), then unsigned (what signing and verifying cost together; the registry signs in its
own process, on the same two cores), then with the cache on over a working set
of 100 receivers (what a busy gateway sees). Last, 200 concurrent lookups of one receiver show
how many reach the registry (one: the cache lets one request through per key).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import tomli_w
from ipunkt.lookup.service_registry import ServiceRegistryClient, ServiceRegistryConfig
from ipunkt.lookup.source import LookupQuery
from ipunkt.testing import free_port

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
RECEIVERS = 1000
WORKING_SET = 100
CONCURRENCY = 8
ADMIN = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"

SERVER = """
import sys
from pathlib import Path
from aiohttp import web
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.service_registry_fake import FakeServiceRegistry
registry = LocalRegistry(Path(sys.argv[1]))
registry.load()
web.run_app(FakeServiceRegistry(registry).app(), host="127.0.0.1", port=int(sys.argv[2]),
            print=lambda *_: print("ready", flush=True), access_log=None)
"""


def organisation_numbers(count: int) -> list[str]:
    numbers: list[str] = []
    candidate = 910_000_000
    while len(numbers) < count:
        candidate += 1
        digits = str(candidate)[:8]
        total = sum(int(d) * w for d, w in zip(digits, (3, 2, 7, 6, 5, 4, 3, 2), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            numbers.append(digits + str(check))
            candidate = int(digits + "9")
    return numbers


def registry_file(folder: Path, numbers: list[str]) -> Path:
    path = folder / "registry.toml"
    receivers = [
        {
            "identifier": number,
            "name": f"Kommune {number}",
            "record": [{
                "service": "DPO",
                "processes": [ADMIN, "urn:no:difi:profile:arkivmelding:response:ver1.0"],
                "document_types": ["urn:no:difi:arkivmelding:xsd::arkivmelding"],
                "endpoint": "http://broker.example",
            }],
        }
        for number in numbers
    ]
    path.write_text(tomli_w.dumps({"receiver": receivers}))
    return path


async def rate(lookup: Callable[[str], Awaitable[object]], numbers: list[str]) -> float:
    """Lookups per second over ``SECONDS``, from ``CONCURRENCY`` concurrent askers."""
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def asker(offset: int) -> None:
        nonlocal done
        index = offset
        while time.perf_counter() < deadline:
            await lookup(numbers[index % len(numbers)])
            index += CONCURRENCY
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(asker(i) for i in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


def asking(made: ServiceRegistryClient) -> Callable[[str], Awaitable[object]]:
    async def ask(number: str) -> object:
        return await made.lookup(LookupQuery(number, ADMIN))

    return ask


def client(url: str, *, signed: bool, cache_ttl: float) -> ServiceRegistryClient:
    return ServiceRegistryClient(
        ServiceRegistryConfig(url=url, verify_signatures=signed, cache_ttl=cache_ttl)
    )


async def measure(url: str, numbers: list[str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for name, signed, ttl, pool in (
        ("uncached_signed_per_s", True, 0, numbers),
        ("uncached_unsigned_per_s", False, 0, numbers),
        ("cached_signed_per_s", True, 300, numbers[:WORKING_SET]),
    ):
        made = client(url, signed=signed, cache_ttl=ttl)
        await made.start()
        try:
            figures[name] = await rate(asking(made), pool)
        finally:
            await made.stop()
    burst = client(url, signed=True, cache_ttl=300)
    await burst.start()
    try:
        await asyncio.gather(*(burst.lookup(LookupQuery(numbers[0], ADMIN)) for _ in range(200)))
        figures["registry_requests_for_200_concurrent"] = burst.cache.loads
    finally:
        await burst.stop()
    return figures


def main() -> None:
    numbers = organisation_numbers(RECEIVERS)
    with tempfile.TemporaryDirectory() as folder:
        path = registry_file(Path(folder), numbers)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(path), str(port)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("the fake Service Registry did not start")
            figures = asyncio.run(measure(f"http://127.0.0.1:{port}", numbers))
        finally:
            server.terminate()
            server.wait(timeout=10)
    base = figures["uncached_signed_per_s"]
    figures["cache_speedup"] = figures["cached_signed_per_s"] / base
    figures["signature_cost"] = figures["uncached_unsigned_per_s"] / base
    print(f"uncached, signed (baseline): {base:10.0f} lookups/s")
    print(f"uncached, unsigned:          {figures['uncached_unsigned_per_s']:10.0f} lookups/s "
          f"({figures['signature_cost']:.2f}x)")
    print(f"cached, signed:              {figures['cached_signed_per_s']:10.0f} lookups/s "
          f"({figures['cache_speedup']:.1f}x)")
    print(f"200 concurrent lookups of one receiver reached the registry "
          f"{figures['registry_requests_for_200_concurrent']:.0f} time(s)")
    print(json.dumps({key: round(value, 2) for key, value in figures.items()}))


if __name__ == "__main__":
    main()
