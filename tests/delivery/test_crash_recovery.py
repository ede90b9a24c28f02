"""A real ipunkt process, killed with SIGKILL in the middle of a burst, loses nothing and
delivers nothing twice; SIGTERM lets it stop gracefully without losing anything either."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from delivery_harness import OWN, RECEIVER, avtalt
from ipunkt.testing import ServerProcess, free_port

HERE = Path(__file__).parent
BURST = 500


class Receiver:
    """The relay channel's receiving side: counts POSTs and effects per idempotency key."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.posts: Counter[str] = Counter()
        self.effects: Counter[str] = Counter()

    async def deliver(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        self.posts[key] += 1
        await asyncio.sleep(self.delay)
        if key not in self.effects:
            self.effects[key] += 1
        return web.json_response({"accepted": key})


def write_config(folder: Path, receiver_url: str) -> Path:
    registry = folder / "registry.toml"
    registry.write_text(f"""
[[receiver]]
identifier = "{RECEIVER}"

[[receiver.record]]
service = "DPR"
processes = ["urn:no:difi:profile:avtalt:avtalt:ver1.0"]
document_types = ["urn:no:difi:avtalt:xsd::avtalt"]
""")
    config = folder / "ipunkt.toml"
    config.write_text(f"""
[organisation]
number = "{OWN}"

[store]
path = "{folder / 'data'}"

[lookup]
sources = ["local"]

[lookup.local]
path = "{registry}"

[delivery]
concurrency = 16
lease_seconds = 3
retry_initial_seconds = 0.2
retry_max_seconds = 1
outbox_poll_seconds = 0.1
shutdown_grace_seconds = 5

[channels.dpr]
enabled = true
receiver_url = "{receiver_url}"
""")
    return config


@pytest.fixture
def relay_env(install_plugin) -> dict[str, str]:
    site = install_plugin("relay-channel", (HERE / "relay_channel.py").read_text())
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


async def submit(session: aiohttp.ClientSession, url: str, message_id: str) -> bool:
    """Create and send one message as a fagsystem would; False if ipunkt did not answer."""
    sbd = avtalt("ok", message_id=message_id)
    try:
        async with session.post(f"{url}/api/messages/out", json=sbd) as response:
            if response.status not in (200, 400):
                return False
        async with session.post(f"{url}/api/messages/out/{message_id}") as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


async def levert(session: aiohttp.ClientSession, url: str) -> set[str]:
    done: set[str] = set()
    page = 0
    while True:
        async with session.get(f"{url}/api/statuses", params={
            "status": "LEVERT", "size": 500, "page": page}) as response:
            body = await response.json()
        done.update(s["messageId"] for s in body["content"])
        if body["last"]:
            return done
        page += 1


async def run_burst(config: Path, env: dict[str, str], receiver: Receiver) -> dict[str, float]:
    ids = [str(uuid.uuid4()) for _ in range(BURST)]
    port = free_port()
    server = ServerProcess(config, port, env=env).start()
    accepted: set[str] = set()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            semaphore = asyncio.Semaphore(20)

            async def one(message_id: str) -> None:
                async with semaphore:
                    if await submit(session, server.url, message_id):
                        accepted.add(message_id)

            tasks = [asyncio.create_task(one(i)) for i in ids]
            while len(accepted) < BURST // 2:
                await asyncio.sleep(0.01)
            server.stop(signal.SIGKILL)
            await asyncio.gather(*tasks)
            killed_with = len(accepted)
            started = time.monotonic()
            server = ServerProcess(config, port, env=env).start()
            for message_id in ids:
                if message_id not in accepted and await submit(session, server.url, message_id):
                    accepted.add(message_id)
            while await levert(session, server.url) != set(ids):
                assert time.monotonic() - started < 120, "messages did not all reach LEVERT"
                await asyncio.sleep(0.2)
            recovery = time.monotonic() - started
    finally:
        server.stop(signal.SIGKILL)
    assert accepted == set(ids)
    assert set(receiver.effects) == set(ids), "a message never reached the receiving side"
    assert max(receiver.effects.values()) == 1, "a message took effect twice"
    return {"accepted_before_kill": killed_with, "recovery_seconds": recovery,
            "repeated_posts": sum(receiver.posts.values()) - BURST}


async def test_sigkill_in_a_burst_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, relay_env, aiohttp_server
) -> None:
    receiver = Receiver(delay=0.01)
    app = web.Application()
    app.router.add_post("/deliver", receiver.deliver)
    server = await aiohttp_server(app)
    config = write_config(tmp_path, str(server.make_url("")).rstrip("/"))
    figures = await run_burst(config, relay_env, receiver)
    print("crash recovery:", figures)


async def test_sigterm_lets_sends_in_flight_finish_or_come_back(
    tmp_path: Path, relay_env, aiohttp_server
) -> None:
    receiver = Receiver(delay=0.5)
    app = web.Application()
    app.router.add_post("/deliver", receiver.deliver)
    server = await aiohttp_server(app)
    config = write_config(tmp_path, str(server.make_url("")).rstrip("/"))
    ids = [str(uuid.uuid4()) for _ in range(40)]
    gateway = ServerProcess(config, free_port(), env=relay_env).start()
    async with aiohttp.ClientSession() as session:
        for message_id in ids:
            assert await submit(session, gateway.url, message_id)
        while not receiver.posts:
            await asyncio.sleep(0.01)
        assert gateway.stop(signal.SIGTERM, timeout=30) == 0
        assert "released unfinished sends" in gateway.output() or len(receiver.effects) == 40
        gateway = ServerProcess(config, gateway.port, env=relay_env).start()
        try:
            deadline = time.monotonic() + 60
            while await levert(session, gateway.url) != set(ids):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.2)
        finally:
            gateway.stop()
    assert set(receiver.effects) == set(ids)
    assert max(receiver.effects.values()) == 1
