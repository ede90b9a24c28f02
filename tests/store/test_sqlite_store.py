"""The SQLite store: survives reopening, refuses tampered payloads, migrates forward only."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ipunkt.delivery.sweeper import LifetimeSweeper
from ipunkt.messages.statuses import StatusRules
from ipunkt.plugin import ReceiptStatus, StatusUpdate
from ipunkt.store.base import Direction, NewFile, NewMessage, StatusChange
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import DecryptionError, Keyring, MasterKey
from ipunkt.store.sqlite import SchemaTooNew, SqliteStore

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def store(folder: Path) -> SqliteStore:
    keys = Keyring(MasterKey(b"s" * 32))
    return SqliteStore(folder / "db.sqlite3", BlobStore(folder / "payloads", keys))


def message(message_id: str) -> NewMessage:
    return NewMessage(Direction.OUTGOING, message_id, "c", "p", "arkivmelding", "urn::arkivmelding",
                      "0192:910077473", "910077473", "0192:910075918", "910075918", "DPO", "{}",
                      NOW + timedelta(days=1))


async def chunks(data: bytes):
    yield data


async def test_a_created_message_survives_reopening(tmp_path: Path) -> None:
    first = store(tmp_path)
    await first.open()
    await first.create_message(message("m1"), StatusChange("OPPRETTET", NOW))
    await first.close()
    again = store(tmp_path)
    await again.open()
    assert (await again.message(Direction.OUTGOING, "m1")) is not None
    await again.close()


async def test_payloads_are_encrypted_and_tampering_is_detected(tmp_path: Path) -> None:
    s = store(tmp_path)
    await s.open()
    secret = b"sensitive case file " * 1000
    blob = await s.blobs.write(chunks(secret))
    on_disk = s.blobs.path(blob.blob_id).read_bytes()
    assert b"sensitive case file" not in on_disk
    assert b"".join([c async for c in s.blobs.read(blob.blob_id)]) == secret
    damaged = bytearray(on_disk)
    damaged[-5] ^= 1
    s.blobs.path(blob.blob_id).write_bytes(bytes(damaged))
    with pytest.raises(DecryptionError):
        _ = [c async for c in s.blobs.read(blob.blob_id)]
    s.blobs.path(blob.blob_id).write_bytes(on_disk[:-20])
    with pytest.raises(DecryptionError):
        _ = [c async for c in s.blobs.read(blob.blob_id)]
    await s.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    await s.open()
    await s.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew):
        await store(tmp_path).open()


async def test_a_message_being_sent_when_its_lifetime_runs_out_is_left_to_its_sender(
    tmp_path: Path,
) -> None:
    """The sweeper must not pull a message and its payload out from under a running send
    (the receiver would have it while ipunkt said LEVETID_UTLOPT); the sender checks the
    lifetime itself, and the sweeper takes the conversation once the send is over."""
    s = store(tmp_path)
    await s.open()
    rules = StatusRules()
    blob = await s.blobs.write(chunks(b"x" * 100_000))
    new = dataclasses.replace(message("m1"), expiry=NOW + timedelta(seconds=10))
    await s.create_message(
        new, rules.change(ReceiptStatus.OPPRETTET, NOW, "DPO"), queue_at=NOW,
        files=[NewFile(blob.blob_id, "brev.pdf", "application/pdf", blob.size, primary=True)])
    assert len(await s.claim_due("w1", NOW, NOW + timedelta(minutes=5), 1)) == 1
    later = NOW + timedelta(seconds=11)
    assert await LifetimeSweeper(s, rules, 60, clock=lambda: later).sweep() == 0
    assert s.blobs.path(blob.blob_id).exists()
    await s.complete_delivery("m1", "w1", rules.reported([ReceiptStatus.SENDT], later, "DPO"))
    conversation = await s.conversation_by_message_id("m1")
    assert conversation is not None
    assert [x.status for x in conversation.statuses] == ["OPPRETTET", "SENDT"]
    assert await LifetimeSweeper(s, rules, 60, clock=lambda: later).sweep() == 1
    conversation = await s.conversation_by_message_id("m1")
    assert conversation is not None and conversation.statuses[-1].status == "LEVETID_UTLOPT"
    await s.close()


async def test_a_levert_reported_with_its_own_time_keeps_mottatt_before_it(
    tmp_path: Path,
) -> None:
    """A channel that knows when its receipt came reports LEVERT with that time: the MOTTATT
    it implies is stamped the same, and the conversation's last update never goes back."""
    s = store(tmp_path)
    await s.open()
    rules = StatusRules()
    await s.create_message(message("m1"), rules.change(ReceiptStatus.OPPRETTET, NOW, "DPO"))
    sent = NOW + timedelta(hours=1)
    await s.register_statuses("m1", rules.reported([ReceiptStatus.SENDT], sent, "DPO"),
                              Direction.OUTGOING)
    delivered = NOW + timedelta(minutes=30)  # as the remote stamped it, before SENDT was seen
    polled = NOW + timedelta(hours=2)
    update = StatusUpdate("m1", ReceiptStatus.LEVERT, at=delivered)
    await s.register_statuses("m1", rules.reported([update], polled, "DPO"), Direction.OUTGOING)
    conversation = await s.conversation_by_message_id("m1")
    assert conversation is not None
    assert [(x.status, x.last_update) for x in conversation.statuses[2:]] == [
        ("MOTTATT", delivered), ("LEVERT", delivered)]
    assert conversation.last_update == sent
    await s.close()
