"""The SQLite store: survives reopening, refuses tampered payloads, migrates forward only."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ipunkt.store.base import Direction, NewMessage, StatusChange
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
