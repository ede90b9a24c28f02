"""Group commit: many changes share one commit, yet one refusal never spoils the others."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ipunkt.store.base import (
    AlreadyExists,
    Direction,
    MessageFilter,
    NewMessage,
    PageRequest,
    StatusChange,
    StoreError,
)
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import Keyring, MasterKey
from ipunkt.store.sqlite import SqliteStore

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def new_store(folder: Path) -> SqliteStore:
    return SqliteStore(folder / "db.sqlite3",
                       BlobStore(folder / "payloads", Keyring(MasterKey(b"g" * 32))))


def message(message_id: str, direction: Direction = Direction.OUTGOING) -> NewMessage:
    return NewMessage(direction, message_id, "c-" + message_id, "p", "arkivmelding",
                      "urn:no:difi:arkivmelding:xsd::arkivmelding", "0192:910077473",
                      "910077473", "0192:910075918", "910075918", "DPO", "{}",
                      NOW + timedelta(days=1))


@pytest.fixture
async def store(tmp_path: Path):
    s = new_store(tmp_path)
    await s.open()
    yield s
    await s.close()


async def test_concurrent_creates_share_commits_and_a_duplicate_fails_alone(
    store: SqliteStore,
) -> None:
    await store.create_message(message("taken"), StatusChange("OPPRETTET", NOW))
    groups_before, _ = store.commit_groups
    ids = [f"m{n}" for n in range(40)]
    results = await asyncio.gather(
        *(store.create_message(message(i), StatusChange("OPPRETTET", NOW)) for i in ids[:20]),
        store.create_message(message("taken"), StatusChange("OPPRETTET", NOW)),
        *(store.create_message(message(i), StatusChange("OPPRETTET", NOW)) for i in ids[20:]),
        return_exceptions=True,
    )
    assert isinstance(results[20], AlreadyExists)
    assert all(isinstance(r, int) for r in results[:20] + results[21:])
    page = await store.find_messages(Direction.OUTGOING, MessageFilter(), PageRequest(size=100))
    assert page.total == 41
    groups, _ = store.commit_groups
    assert groups - groups_before < 41  # they shared commits
    for message_id in ids:
        conversation = await store.conversation_by_message_id(message_id)
        assert conversation is not None
        assert [s.status for s in conversation.statuses] == ["OPPRETTET"]


async def test_an_incoming_duplicate_is_dropped_and_an_outgoing_one_refused(
    store: SqliteStore,
) -> None:
    assert await store.create_message(message("in", Direction.INCOMING),
                                      StatusChange("OPPRETTET", NOW)) is not None
    assert await store.create_message(message("in", Direction.INCOMING),
                                      StatusChange("OPPRETTET", NOW)) is None
    with pytest.raises(AlreadyExists):  # an incoming conversation blocks the same id outgoing
        await store.create_message(message("in"), StatusChange("OPPRETTET", NOW))
    first = await store.create_message(message("status"), StatusChange("OPPRETTET", NOW))
    await store.delete_message(Direction.OUTGOING, "status")
    again = await store.create_message(message("status"), StatusChange("SENDT", NOW),
                                       unique_conversation=False)
    assert again == first  # a status message re-uses its conversation
    conversation = await store.conversation(first)  # type: ignore[arg-type]
    assert conversation is not None
    assert [s.status for s in conversation.statuses] == ["OPPRETTET", "SENDT"]


async def test_closing_commits_what_was_submitted_and_refuses_what_comes_after(
    tmp_path: Path,
) -> None:
    store = new_store(tmp_path)
    await store.open()
    pending = [asyncio.ensure_future(store.create_message(message(f"p{n}"),
                                                          StatusChange("OPPRETTET", NOW)))
               for n in range(10)]
    await asyncio.sleep(0)  # submitted, not yet committed
    await store.close()
    assert all(isinstance(conv_id, int) for conv_id in await asyncio.gather(*pending))
    with pytest.raises(StoreError):
        await asyncio.wait_for(
            store.create_message(message("late"), StatusChange("OPPRETTET", NOW)), 5)
    reopened = new_store(tmp_path)
    await reopened.open()
    page = await reopened.find_messages(Direction.OUTGOING, MessageFilter(), PageRequest())
    assert page.total == 10
    await reopened.close()


async def test_a_change_waits_for_another_process_write_lock_without_stalling_the_loop(
    store: SqliteStore, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    created = asyncio.ensure_future(
        store.create_message(message("waits"), StatusChange("OPPRETTET", NOW)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(20):  # the loop keeps running while the change waits
        await asyncio.sleep(0.01)
    assert loop.time() - started < 1.5  # a wait on the loop holds it up to the busy timeout
    assert not created.done()
    other.execute("COMMIT")
    other.close()
    assert isinstance(await asyncio.wait_for(created, 10), int)
    conversation = await store.conversation_by_message_id("waits")
    assert conversation is not None


async def test_a_store_busy_on_one_event_loop_refuses_a_change_from_another(
    store: SqliteStore, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # keeps this loop's change waiting
    waiting = asyncio.ensure_future(
        store.create_message(message("here"), StatusChange("OPPRETTET", NOW)))
    await asyncio.sleep(0.05)

    def from_another_loop() -> BaseException | None:
        try:
            asyncio.run(store.create_message(message("there"), StatusChange("OPPRETTET", NOW)))
        except StoreError as exc:
            return exc
        return None

    refused = await asyncio.to_thread(from_another_loop)
    other.execute("COMMIT")
    other.close()
    assert isinstance(refused, StoreError) and "another event loop" in str(refused)
    assert isinstance(await asyncio.wait_for(waiting, 10), int)
    assert await store.conversation_by_message_id("there") is None
