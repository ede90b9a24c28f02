"""Peek locks: 20 clients peeking at once never get the same message; locks run out."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from conftest import Gateway
from ipunkt.sbd import parse_sbd
from ipunkt.store.base import Direction

SBD: dict[str, Any] = {
    "standardBusinessDocumentHeader": {
        "headerVersion": "1.0",
        "sender": [{"identifier": {"value": "0192:910075918",
                                   "authority": "iso6523-actorid-upis"}}],
        "receiver": [{"identifier": {"value": "0192:910077473",
                                     "authority": "iso6523-actorid-upis"}}],
        "documentIdentification": {"standard": "urn:no:difi:arkivmelding:xsd::arkivmelding",
                                   "typeVersion": "1.0", "instanceIdentifier": "",
                                   "type": "arkivmelding"},
        "businessScope": {"scope": [{"type": "ConversationId",
                                     "instanceIdentifier": "b4567a25-672c-4c2e-9a0f-08c52c54254b",
                                     "identifier": "urn:no:difi:profile:arkivmelding:"
                                                   "administrasjon:ver1.0"}]},
    },
    "arkivmelding": {"hoveddokument": "a.pdf"},
}


def incoming_sbd(message_id: str) -> Any:
    sbd = copy.deepcopy(SBD)
    sbd["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"] = message_id
    return parse_sbd(sbd)


async def store_messages(gw: Gateway, count: int) -> set[str]:
    ids = set()
    for number in range(count):
        message_id = f"00000000-0000-4000-8000-{number:012d}"
        assert await gw.nextmove.incoming.receive(incoming_sbd(message_id), "DPO")
        ids.add(message_id)
    return ids


async def payload_of(data: bytes) -> Any:
    yield data


async def receive(gw: Gateway, message_id: str, payload: bytes) -> None:
    assert await gw.nextmove.incoming.receive(incoming_sbd(message_id), "DPO", payload_of(payload))


async def peek_id(gw: Gateway) -> str | None:
    response = await gw.client.get("/api/messages/in/peek")
    if response.status == 204:
        return None
    assert response.status == 200
    body = await response.json()
    return str(body["standardBusinessDocumentHeader"]["documentIdentification"][
        "instanceIdentifier"])


async def test_twenty_clients_never_get_the_same_message(gateway: Gateway) -> None:
    stored = await store_messages(gateway, 30)
    got = await asyncio.gather(*(peek_id(gateway) for _ in range(20)))
    assert None not in got
    assert len(set(got)) == 20
    more = await asyncio.gather(*(peek_id(gateway) for _ in range(20)))
    locked = [m for m in more if m is not None]
    assert len(locked) == 10 and more.count(None) == 10
    assert set(got) | set(locked) == stored


async def test_a_duplicate_incoming_message_is_dropped(gateway: Gateway) -> None:
    await store_messages(gateway, 1)
    assert not await gateway.nextmove.incoming.receive(
        incoming_sbd("00000000-0000-4000-8000-000000000000"), "DPO")
    listed = await (await gateway.client.get("/api/messages/in")).json()
    assert listed["totalElements"] == 1


async def test_a_lock_runs_out_and_delete_then_needs_a_new_peek(gateway: Gateway) -> None:
    await store_messages(gateway, 1)
    first = await peek_id(gateway)
    assert first is not None and await peek_id(gateway) is None
    gateway.clock.offset = timedelta(minutes=5, seconds=1)
    response = await gateway.client.delete(f"/api/messages/in/{first}")
    assert response.status == 400
    assert (await response.json())["message"] == f"Message with messageId = {first} was not locked"
    assert await peek_id(gateway) == first
    response = await gateway.client.delete(f"/api/messages/in/{first}")
    assert response.status == 200
    assert await peek_id(gateway) is None


async def test_a_receive_cancelled_while_its_change_waits_keeps_the_payload_it_stored(
    gateway: Gateway,
) -> None:
    """A channel's poller is cancelled at shutdown while its change waits for the commit: the
    change still commits, so the payload it refers to must stay (the channel redelivers the
    message, which is then a duplicate; a lost payload would lose the message)."""
    payload = b"PK" + bytes(range(256)) * 64
    message_id = "00000000-0000-4000-8000-00000000c0de"
    other = sqlite3.connect(gateway.path / "ipunkt.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the change has to wait for this lock
    receiving = asyncio.ensure_future(
        gateway.nextmove.incoming.receive(incoming_sbd(message_id), "DPO", payload_of(payload)))
    await asyncio.sleep(0.3)
    receiving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await receiving
    other.execute("COMMIT")
    other.close()
    for _ in range(100):
        listed = await (await gateway.client.get("/api/messages/in")).json()
        if listed["totalElements"]:
            break
        await asyncio.sleep(0.05)
    assert listed["totalElements"] == 1
    assert await peek_id(gateway) == message_id
    popped = await gateway.client.get(f"/api/messages/in/pop/{message_id}")
    assert popped.status == 200
    assert await popped.read() == payload


async def test_a_payload_sealed_with_a_key_not_configured_is_kept_not_given_up(
    make_gateway: Any, tmp_path: Any
) -> None:
    """A restored backup without its key, or a key rotated without ``previous_keys``: pop
    answers 500 and says so, and the message waits for the key (it was deleted as corrupt)."""
    folder = tmp_path / "shared-store"
    first = await make_gateway(path=folder, key=b"a" * 32)
    payload = b"PK" + b"sealed" * 100
    message_id = "00000000-0000-4000-8000-0000000000ee"
    await receive(first, message_id, payload)
    await first.client.close()

    wrong = await make_gateway(path=folder, key=b"b" * 32)
    assert await peek_id(wrong) == message_id
    refused = await wrong.client.get(f"/api/messages/in/pop/{message_id}")
    assert refused.status == 500
    assert "not configured" in (await refused.json())["message"]
    await wrong.client.close()

    right = await make_gateway(path=folder, key=b"a" * 32)
    right.clock.offset = timedelta(minutes=6)  # the wrong one's peek lock has run out
    assert await peek_id(right) == message_id
    popped = await right.client.get(f"/api/messages/in/pop/{message_id}")
    assert popped.status == 200 and await popped.read() == payload
    statuses = await (await right.client.get(f"/api/statuses/{message_id}")).json()
    assert "FEIL" not in [s["status"] for s in statuses["content"]]


async def test_a_pop_found_damaged_halfway_is_cut_off_not_answered_twice(
    gateway: Gateway,
) -> None:
    """The 200 and its length are on their way when the stored payload fails its check: the
    connection is closed short of that length (the client sees it broken), never a second
    answer written into the first's body."""
    import aiohttp

    payload = bytes(range(256)) * 4096 * 3  # 3 MiB: three sealed chunks
    message_id = "00000000-0000-4000-8000-00000000bad1"
    await receive(gateway, message_id, payload)
    record = await gateway.nextmove.incoming.store.message(
        Direction.INCOMING, message_id)
    assert record is not None and record.asic_blob is not None
    blob = gateway.nextmove.incoming.store.blobs.path(record.asic_blob)
    damaged = bytearray(blob.read_bytes())
    damaged[2_500_000] ^= 1  # in the third
    blob.write_bytes(bytes(damaged))
    assert await peek_id(gateway) == message_id
    response = await gateway.client.get(f"/api/messages/in/pop/{message_id}")
    assert response.status == 200 and response.content_length == len(payload)
    received = bytearray()

    async def read() -> None:
        async for piece in response.content.iter_any():
            received.extend(piece)

    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(read(), 10)  # the answer must not hang, either
    assert len(received) < len(payload)
    assert b"HTTP/1.1" not in received and b'"status"' not in received


async def test_a_pop_overtaken_by_the_delete_of_its_message_registers_no_feil(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client deletes the message while another of its requests pops it: the payload is
    gone because it was delivered, not because it was damaged."""
    message_id = "00000000-0000-4000-8000-0000000000de"
    await receive(gateway, message_id, b"PK" + b"x" * 1000)
    assert await peek_id(gateway) == message_id
    blobs = gateway.nextmove.incoming.store.blobs
    check, checking, deleted = blobs.check, asyncio.Event(), asyncio.Event()

    async def check_after_the_delete(blob_id: str) -> int:
        checking.set()
        await deleted.wait()
        return await check(blob_id)

    monkeypatch.setattr(blobs, "check", check_after_the_delete)
    popping = asyncio.ensure_future(gateway.client.get(f"/api/messages/in/pop/{message_id}"))
    await asyncio.wait_for(checking.wait(), 5)
    assert (await gateway.client.delete(f"/api/messages/in/{message_id}")).status == 200
    deleted.set()
    assert (await popping).status == 404
    statuses = await (await gateway.client.get(f"/api/statuses/{message_id}")).json()
    assert [s["status"] for s in statuses["content"]] == [
        "OPPRETTET", "INNKOMMENDE_MOTTATT", "INNKOMMENDE_LEVERT"]
