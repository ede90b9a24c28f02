"""The SQLite message store: WAL mode, versioned migrations, group commit, fsync'd commits.

All writes go through one writer that takes every change waiting and commits them together,
one fsync for the whole group; a change that raises is rolled back alone (see
:class:`_Writer`), so one refusal never spoils the others. A change's caller is answered only
after that commit, so an answer means the change is on disk, and under load many requests share
each fsync. Reads run on a small pool of reader threads with their own connections; WAL lets
them read while the writer writes.

The standard library's ``sqlite3`` is used directly because a group's changes run on the event
loop and only its commit in a thread, where ``aiosqlite`` hops to its thread for every statement.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from ipunkt.store.base import (
    AlreadyExists,
    AlreadyQueued,
    ConversationFilter,
    ConversationRecord,
    Deleted,
    Direction,
    DuplicateFilename,
    EventFilter,
    FileRecord,
    MessageFilter,
    MessageRecord,
    MessageStore,
    MultiplePrimaryDocuments,
    NewFile,
    NewMessage,
    NewSubscription,
    NotFound,
    NotLocked,
    OutboxClaim,
    Page,
    PageRequest,
    ReplyClaim,
    StatusChange,
    StatusFilter,
    StatusRecord,
    StoreError,
    SubscriptionRecord,
    TotalSizeExceeded,
    WebhookDelivery,
)
from ipunkt.store.blobs import BlobStore
from ipunkt.store.sqlite_schema import MIGRATIONS

log = structlog.get_logger(__name__)
T = TypeVar("T")
MAX_BATCH = 512
BUSY_TIMEOUT_MS = 30_000
"""How long a connection waits for another process's lock before it gives up."""
Op = Callable[[sqlite3.Connection], Any]


class SchemaTooNew(StoreError):
    """The database was written by a newer ipunkt; refuse rather than damage it."""


# --- time --------------------------------------------------------------------------------------


def _us(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(
        microsecond=value % 1_000_000
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- the database: one writer with group commit, a pool of readers ----------------------------


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA synchronous = FULL")
    return conn


class _Writer:
    """Group commit: the changes submitted while a commit is on its way form the next group.

    A group's statements run on the event loop that submitted them: a point change costs SQLite
    microseconds, while running it in a thread meant winning the interpreter lock back from
    the busy loop after every statement. Only what waits runs in the writer's thread: ``BEGIN
    IMMEDIATE`` (it may wait for another process's write lock) and ``COMMIT`` (the fsync). A
    group runs first without savepoints; only if one of its changes raises is it rolled back
    and run again with a savepoint around each change, so that the refusal stays that change's
    alone. Changes must be short point changes, as every change of the store is. The writer
    serves one event loop at a time.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ipunkt-sqlite-writer")
        self._pending: list[_Change] = []
        self._running: asyncio.Task[None] | None = None
        self._stopped = False
        self.groups = 0
        self.changes = 0

    def open(self) -> None:
        self._conn = _connect(self._path, readonly=False)
        self._conn.execute("PRAGMA busy_timeout = 0")  # see _begin

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._stopped or self._conn is None:
            future.set_exception(StoreError("the store is closed"))
            return future
        if self._running is None:
            self._running = loop.create_task(self._run())
        elif self._running.get_loop() is not loop:
            future.set_exception(StoreError("the store is busy on another event loop"))
            return future
        self._pending.append((op, future))
        return future

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._commit(batch)
        finally:
            self._running = None

    async def stop(self) -> None:
        """Commit what was submitted, refuse what comes after, close the connection."""
        self._stopped = True
        if self._running is not None:
            await asyncio.shield(self._running)
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, conn.close)
        self._thread.shutdown(wait=False)

    async def _commit(self, batch: list[_Change]) -> None:
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[bool, Any]]
        try:
            await self._begin(conn)
            try:
                outcomes = _run_changes(conn, batch, savepoints=False)
            except _Refused as refused:
                conn.execute("ROLLBACK")
                if len(batch) == 1:
                    outcomes = [(False, refused.error)]
                else:
                    await self._begin(conn)
                    outcomes = _run_changes(conn, batch, savepoints=True)
                    await self._aside(conn, "COMMIT")
            else:
                await self._aside(conn, "COMMIT")
        except sqlite3.Error as exc:
            log.error("commit failed", error=str(exc), changes=len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, StoreError(f"the database refused the change: {exc}"))] * len(batch)
        self.groups += 1
        self.changes += len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _begin(self, conn: sqlite3.Connection) -> None:
        """Take the write lock: at once on the loop when it is free (it nearly always is),
        else waiting for it in the thread, up to the busy timeout every connection has."""
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            await asyncio.get_running_loop().run_in_executor(self._thread, _begin_waiting, conn)

    async def _aside(self, conn: sqlite3.Connection, statement: str) -> None:
        """Run a statement that waits (on the disk, or on another process) in the thread."""
        await asyncio.get_running_loop().run_in_executor(self._thread, conn.execute, statement)


_Change = tuple[Op, "asyncio.Future[Any]"]


def _begin_waiting(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


class _Refused(Exception):
    """A change of a group run without savepoints raised; the group is to be rolled back."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _run_changes(
    conn: sqlite3.Connection, batch: list[_Change], *, savepoints: bool
) -> list[tuple[bool, Any]]:
    """Run the group's changes in the open transaction: (succeeded, result or error) each."""
    outcomes: list[tuple[bool, Any]] = []
    for op, _ in batch:
        if savepoints:
            conn.execute("SAVEPOINT change")
        try:
            result = op(conn)
        except Exception as exc:
            if not savepoints:
                raise _Refused(exc) from exc
            conn.execute("ROLLBACK TO change")
            outcomes.append((False, exc))
        else:
            outcomes.append((True, result))
        if savepoints:
            conn.execute("RELEASE change")
    return outcomes


class _Database:
    def __init__(self, path: Path, readers: int = 2) -> None:
        self.path = path
        self._writer = _Writer(path)
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="ipunkt-sqlite-reader")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._loop_conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def migrate(self) -> None:
        conn = _connect(self.path, readonly=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise SchemaTooNew(
                    f"{self.path} has schema version {version}; this ipunkt knows up to "
                    f"{len(MIGRATIONS)}: upgrade ipunkt or use another store path"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                log.info("store schema migrated", path=str(self.path), version=number)
        finally:
            conn.close()
        self._writer.open()

    async def write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        return await self._writer.submit(op)  # type: ignore[no-any-return]

    async def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, op)

    def read_by_key(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """A read of a few rows found by key, run on the event loop's own connection.

        Such a read costs SQLite microseconds; handing it to a reader thread costs waking that
        thread and winning the interpreter lock back, several times more. In WAL mode a reader
        does not wait for the writer. Lists, pages and scans stay with :meth:`read`, whose time
        grows with the data.
        """
        conn = self._loop_conn
        if conn is None:
            conn = self._loop_conn = _connect(self.path, readonly=True)
        return _read_in_transaction(conn, op)

    def _run_read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return _read_in_transaction(conn, op)

    async def close(self) -> None:
        """Commit what was submitted, then close every connection."""
        await self._writer.stop()
        await asyncio.to_thread(self._close_readers)

    def _close_readers(self) -> None:
        self._readers.shutdown(wait=True)
        for conn in self._reader_conns:
            conn.close()
        if self._loop_conn is not None:
            self._loop_conn.close()

    @property
    def commit_groups(self) -> tuple[int, int]:
        return self._writer.groups, self._writer.changes


def _read_in_transaction(conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``op`` on one snapshot: a read of several statements sees one state of the data."""
    conn.execute("BEGIN")
    try:
        return op(conn)
    finally:
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# --- rows -> records ----------------------------------------------------------------------------


def _message(row: sqlite3.Row) -> MessageRecord:
    return MessageRecord(
        id=row["id"], direction=Direction(row["direction"]), message_id=row["message_id"],
        conversation_id=row["conversation_id"], process=row["process"],
        message_type=row["message_type"], sender_identifier=row["sender_identifier"],
        receiver_identifier=row["receiver_identifier"], service=row["service"], sbd=row["sbd"],
        created=_dt(row["created"]), last_updated=_dt(row["last_updated"]),  # type: ignore[arg-type]
        expiry=_dt(row["expiry"]), lock_until=_dt(row["lock_until"]),  # type: ignore[arg-type]
        queued=bool(row["queued"]), asic_blob=row["asic_blob"], asic_size=row["asic_size"],
    )


def _file(row: sqlite3.Row) -> FileRecord:
    return FileRecord(
        dokumentnummer=row["dokumentnummer"], blob_id=row["blob"], filename=row["filename"],
        mime_type=row["mime_type"], size=row["size"], title=row["title"],
        primary=bool(row["primary_document"]), references=tuple(json.loads(row["refs"])),
    )


_STATUS_COLUMNS = (
    "s.id AS id, s.conversation AS conv_id, c.conversation_id AS conversation_id, "
    "c.message_id AS message_id, s.status AS status, s.description AS description, "
    "s.raw_receipt AS raw_receipt, s.last_update AS last_update"
)


def _status(row: sqlite3.Row) -> StatusRecord:
    return StatusRecord(
        id=row["id"], conv_id=row["conv_id"], conversation_id=row["conversation_id"],
        message_id=row["message_id"], status=row["status"], description=row["description"],
        raw_receipt=row["raw_receipt"], last_update=_dt(row["last_update"]),  # type: ignore[arg-type]
    )


def _conversation(row: sqlite3.Row, statuses: Sequence[StatusRecord]) -> ConversationRecord:
    return ConversationRecord(
        id=row["id"], conversation_id=row["conversation_id"], message_id=row["message_id"],
        direction=Direction(row["direction"]), sender=row["sender"],
        sender_identifier=row["sender_identifier"], receiver=row["receiver"],
        receiver_identifier=row["receiver_identifier"], process=row["process"],
        document_identifier=row["document_identifier"],
        message_reference=row["message_reference"], message_title=row["message_title"],
        service_code=row["service_code"], service_edition_code=row["service_edition_code"],
        service=row["service"], external_reference=row["external_reference"],
        last_update=_dt(row["last_update"]), finished=bool(row["finished"]),  # type: ignore[arg-type]
        pollable=bool(row["pollable"]), expiry=_dt(row["expiry"]),  # type: ignore[arg-type]
        statuses=tuple(statuses),
    )


def _with_statuses(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[ConversationRecord]:
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    marks = ",".join("?" * len(ids))
    by_conv: dict[int, list[StatusRecord]] = defaultdict(list)
    for srow in conn.execute(
        f"SELECT {_STATUS_COLUMNS} FROM message_status s JOIN conversation c "
        f"ON c.id = s.conversation WHERE s.conversation IN ({marks}) ORDER BY s.id",
        ids,
    ):
        by_conv[srow["conv_id"]].append(_status(srow))
    return [_conversation(row, by_conv[row["id"]]) for row in rows]


# --- query building -------------------------------------------------------------------------


_BEING_SENT = (
    "SELECT 1 FROM message m JOIN outbox o ON o.message = m.id WHERE m.direction = c.direction "
    "AND m.message_id = c.message_id AND o.lease_until > ?"
)
"""Whether conversation ``c``'s message is in a send now (its outbox lease runs at ``?``)."""

_EITHER_DIRECTION = "direction IN ('OUTGOING', 'INCOMING')"
"""Lets a lookup by message id alone use UNIQUE (direction, message_id), one probe per
direction (the store has no other index on a conversation's message id)."""


class _Where:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[Any] = []

    def eq(self, column: str, value: Any) -> None:
        if value is not None:
            self.clauses.append(f"{column} = ?")
            self.params.append(value)

    def add(self, clause: str, *params: Any) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


def _order(page: PageRequest, columns: dict[str, str], default: str) -> str:
    parts = []
    for order in page.sort:
        column = columns.get(order.prop)
        if column is None:
            raise ValueError(f"cannot sort by {order.prop!r}")
        parts.append(f"{column} {'DESC' if order.descending else 'ASC'}")
    parts.append(default)
    return " ORDER BY " + ", ".join(parts)


def _page(conn: sqlite3.Connection, select: str, count: str, where: _Where, order: str,
          page: PageRequest) -> tuple[list[sqlite3.Row], int]:
    total = conn.execute(count + where.sql, where.params).fetchone()[0]
    rows = conn.execute(
        select + where.sql + order + " LIMIT ? OFFSET ?", [*where.params, page.size, page.offset]
    ).fetchall()
    return rows, total


_MESSAGE_SORT = {
    "id": "id", "lastUpdated": "last_updated", "messageId": "message_id",
    "conversationId": "conversation_id", "processIdentifier": "process",
    "receiverIdentifier": "receiver_identifier", "senderIdentifier": "sender_identifier",
    "serviceIdentifier": "service",
}
_STATUS_SORT = {
    "id": "s.id", "lastUpdate": "s.last_update", "status": "s.status", "convId": "s.conversation",
    "messageId": "c.message_id", "conversationId": "c.conversation_id",
}
_CONVERSATION_SORT = {
    "id": "id", "lastUpdate": "last_update", "conversationId": "conversation_id",
    "messageId": "message_id", "expiry": "expiry", "messageReference": "message_reference",
    "messageTitle": "message_title", "serviceIdentifier": "service", "direction": "direction",
    "finished": "finished", "senderIdentifier": "sender_identifier",
    "receiverIdentifier": "receiver_identifier",
}


def _message_where(direction: Direction, where: MessageFilter) -> _Where:
    clause = _Where()
    clause.eq("direction", direction.value)
    clause.eq("conversation_id", where.conversation_id)
    clause.eq("message_id", where.message_id)
    clause.eq("process", where.process)
    clause.eq("receiver_identifier", where.receiver_identifier)
    clause.eq("sender_identifier", where.sender_identifier)
    clause.eq("service", where.service)
    return clause


# --- the store ------------------------------------------------------------------------------


class SqliteStore(MessageStore):
    """The embedded store: one SQLite file and a folder of encrypted payloads."""

    def __init__(self, path: Path, blobs: BlobStore, *, readers: int = 2) -> None:
        self.path = path
        self.blobs = blobs
        self._db = _Database(path, readers)

    @property
    def commit_groups(self) -> tuple[int, int]:
        """(commits, changes) so far: how well group commit is batching."""
        return self._db.commit_groups

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.blobs.prepare)
        await asyncio.to_thread(self._db.migrate)
        await self._remove_orphan_blobs()

    async def close(self) -> None:
        await self._db.close()

    async def _remove_orphan_blobs(self) -> None:
        def referenced(conn: sqlite3.Connection) -> set[str]:
            found = {r[0] for r in conn.execute("SELECT blob FROM message_file")}
            found |= {r[0] for r in conn.execute(
                "SELECT asic_blob FROM message WHERE asic_blob IS NOT NULL")}
            return found

        keep = await self._db.read(referenced)
        stored = await asyncio.to_thread(self.blobs.stored_ids)
        orphans = [blob for blob in stored if blob not in keep]
        if orphans:
            log.info("removing payload files no message refers to", count=len(orphans))
            await self.blobs.delete(orphans)

    # -- messages ---------------------------------------------------------------------------

    async def create_message(
        self,
        message: NewMessage,
        created: StatusChange,
        *,
        unique_conversation: bool = True,
        files: Sequence[NewFile] = (),
        queue_at: datetime | None = None,
        extra_statuses: Sequence[StatusChange] = (),
        asic: tuple[str, int] | None = None,
        reply: str | None = None,
    ) -> int | None:
        incoming = message.direction is Direction.INCOMING
        # Conversations of this message id that block it: an incoming message is dropped when
        # its incoming conversation exists; an outgoing one is refused when any does, unless
        # it is a status message re-using its conversation's id.
        if incoming:
            blocking = (Direction.INCOMING.value, Direction.INCOMING.value)
        elif unique_conversation:
            blocking = (Direction.OUTGOING.value, Direction.INCOMING.value)
        else:
            blocking = ("", "")

        def op(conn: sqlite3.Connection) -> int | None:
            now = _us(created.at)
            cur = conn.execute(
                "INSERT INTO message (direction, message_id, conversation_id, process, "
                "message_type, sender_identifier, receiver_identifier, service, sbd, created, "
                "last_updated, expiry, queued, asic_blob, asic_size) "
                "SELECT ?,?,?,?,?,?,?,?,?,?,?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM "
                "conversation WHERE message_id = ? AND direction IN (?, ?)) "
                "ON CONFLICT (direction, message_id) DO NOTHING",
                (message.direction.value, message.message_id, message.conversation_id,
                 message.process, message.message_type, message.sender_identifier,
                 message.receiver_identifier, message.service, message.sbd, now, now,
                 _us(message.expiry), int(queue_at is not None),
                 asic[0] if asic else None, asic[1] if asic else None,
                 message.message_id, *blocking),
            )
            if cur.rowcount == 0:  # the message id is taken, or blocked by a conversation
                if incoming:
                    return None
                raise AlreadyExists(message.message_id)
            row_id = cur.lastrowid
            for number, file in enumerate(files, start=1):
                _insert_file(conn, row_id, number, file)  # type: ignore[arg-type]
            if queue_at is not None:
                conn.execute(
                    "INSERT INTO outbox (message, service, due_at, created) VALUES (?,?,?,?)",
                    (row_id, message.service, _us(queue_at), now),
                )
            existing = None if blocking[0] else conn.execute(
                "SELECT id FROM conversation WHERE direction = ? AND message_id = ?",
                (message.direction.value, message.message_id),
            ).fetchone()
            if existing is not None:  # a status message re-using its conversation's id
                conv_id = existing["id"]
            else:
                conv_id = conn.execute(
                    "INSERT INTO conversation (conversation_id, message_id, direction, sender, "
                    "sender_identifier, receiver, receiver_identifier, process, "
                    "document_identifier, message_reference, message_title, service_code, "
                    "service_edition_code, service, last_update, finished, pollable, expiry) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (message.conversation_id, message.message_id, message.direction.value,
                     message.sender, message.sender_identifier, message.receiver,
                     message.receiver_identifier, message.process, message.document_type,
                     message.conversation_id, "", message.service_code,
                     message.service_edition_code, message.service, now,
                     int(bool(created.finished)), int(bool(created.pollable)),
                     _us(message.expiry)),
                ).lastrowid
            _register(conn, conv_id, created, new_conversation=None if existing else (
                message.direction.value, message.service))
            for change in extra_statuses:
                _register(conn, conv_id, change)
            if reply is not None:
                _queue_reply(conn, message.service, message.message_id, reply, message.sbd, now)
            return int(conv_id)

        return await self._db.write(op)

    async def message(self, direction: Direction, message_id: str) -> MessageRecord | None:
        def op(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(
                "SELECT * FROM message WHERE direction = ? AND message_id = ?",
                (direction.value, message_id),
            ).fetchone()
            return _message(row) if row else None

        return self._db.read_by_key(op)

    async def find_messages(
        self, direction: Direction, where: MessageFilter, page: PageRequest
    ) -> Page[MessageRecord]:
        order = _order(page, _MESSAGE_SORT, "id ASC")

        def op(conn: sqlite3.Connection) -> Page[MessageRecord]:
            rows, total = _page(conn, "SELECT * FROM message", "SELECT count(*) FROM message",
                                _message_where(direction, where), order, page)
            return Page([_message(r) for r in rows], page, total, bool(page.sort))

        return await self._db.read(op)

    async def files(self, message: MessageRecord) -> list[FileRecord]:
        def op(conn: sqlite3.Connection) -> list[FileRecord]:
            rows = conn.execute(
                "SELECT * FROM message_file WHERE message = ? "
                "ORDER BY primary_document DESC, dokumentnummer",
                (message.id,),
            ).fetchall()
            return [_file(r) for r in rows]

        return self._db.read_by_key(op)

    async def add_file(self, message_id: str, file: NewFile, *, limit: int) -> FileRecord:
        def op(conn: sqlite3.Connection) -> FileRecord:
            row = conn.execute(
                "SELECT id, queued FROM message WHERE direction = 'OUTGOING' AND message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(message_id)
            if row["queued"]:
                raise AlreadyQueued(message_id)
            if conn.execute(
                "SELECT 1 FROM message_file WHERE message = ? AND filename = ?",
                (row["id"], file.filename),
            ).fetchone():
                raise DuplicateFilename(file.filename)
            if file.primary and conn.execute(
                "SELECT 1 FROM message_file WHERE message = ? AND primary_document = 1",
                (row["id"],),
            ).fetchone():
                raise MultiplePrimaryDocuments(file.filename)
            count, total = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM message_file WHERE message = ?",
                (row["id"],),
            ).fetchone()
            if total + file.size > limit:
                raise TotalSizeExceeded(total + file.size, limit)
            return _insert_file(conn, row["id"], count + 1, file)

        return await self._db.write(op)

    async def describe_conversation(
        self, message_id: str, *, title: str | None, reference: str | None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE conversation SET message_title = coalesce(?, message_title), "
                "message_reference = coalesce(?, message_reference) "
                "WHERE direction = 'OUTGOING' AND message_id = ?",
                (title, reference, message_id),
            )

        await self._db.write(op)

    async def enqueue(self, message_id: str, due: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT id, service, queued FROM message "
                "WHERE direction = 'OUTGOING' AND message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(message_id)
            if row["queued"]:
                return False
            conn.execute("UPDATE message SET queued = 1, last_updated = ? WHERE id = ?",
                         (_us(due), row["id"]))
            conn.execute(
                "INSERT INTO outbox (message, service, due_at, created) VALUES (?,?,?,?)",
                (row["id"], row["service"], _us(due), _us(due)),
            )
            return True

        return await self._db.write(op)

    async def delete_message(self, direction: Direction, message_id: str) -> Deleted:
        def op(conn: sqlite3.Connection) -> Deleted:
            row = conn.execute(
                "SELECT * FROM message WHERE direction = ? AND message_id = ?",
                (direction.value, message_id),
            ).fetchone()
            if row is None:
                return Deleted()
            return _delete_row(conn, row)

        return await self._db.write(op)

    # -- incoming ---------------------------------------------------------------------------

    async def lock_next(
        self, where: MessageFilter, now: datetime, until: datetime
    ) -> MessageRecord | None:
        clause = _message_where(Direction.INCOMING, where)
        clause.add("(lock_until IS NULL OR lock_until <= ?)", _us(now))

        def op(conn: sqlite3.Connection) -> MessageRecord | None:
            row = conn.execute(
                "UPDATE message SET lock_until = ? WHERE id = (SELECT id FROM message"
                + clause.sql + " ORDER BY last_updated, id LIMIT 1) RETURNING *",
                [_us(until), *clause.params],
            ).fetchone()
            return _message(row) if row else None

        return await self._db.write(op)

    async def delete_locked(
        self, message_id: str, now: datetime, delivered: StatusChange, *,
        reply: str | None = None,
    ) -> Deleted:
        def op(conn: sqlite3.Connection) -> Deleted:
            row = conn.execute(
                "SELECT * FROM message WHERE direction = 'INCOMING' AND message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(message_id)
            if row["lock_until"] is None or row["lock_until"] <= _us(now):
                raise NotLocked(message_id)
            deleted = _delete_row(conn, row)
            conv = conn.execute(
                "SELECT id FROM conversation WHERE direction = 'INCOMING' AND message_id = ?",
                (message_id,),
            ).fetchone()
            if conv is not None:
                _register(conn, conv["id"], delivered)
            if reply is not None:
                _queue_reply(conn, row["service"], message_id, reply, row["sbd"], _us(now))
            return deleted

        return await self._db.write(op)

    # -- statuses and conversations ------------------------------------------------------------

    async def register_status(
        self, message_id: str, change: StatusChange, direction: Direction | None = None
    ) -> StatusRecord | None:
        def op(conn: sqlite3.Connection) -> StatusRecord | None:
            if direction is None:
                row = conn.execute(
                    f"SELECT id FROM conversation WHERE {_EITHER_DIRECTION} AND message_id = ? "
                    "ORDER BY direction = 'INCOMING', id LIMIT 1",
                    (message_id,),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT id FROM conversation WHERE message_id = ? AND direction = ?",
                    (message_id, direction.value),
                ).fetchone()
            if row is None:
                log.warning("no conversation to register a status on", message_id=message_id,
                            status=change.status)
                return None
            return _status_by_id(conn, _register(conn, row["id"], change))

        return await self._db.write(op)

    async def find_statuses(self, where: StatusFilter, page: PageRequest) -> Page[StatusRecord]:
        clause = _Where()
        clause.eq("s.id", where.id)
        if where.message_id is not None:
            clause.add(f"c.{_EITHER_DIRECTION}")
        clause.eq("c.message_id", where.message_id)
        clause.eq("c.conversation_id", where.conversation_id)
        clause.eq("s.status", where.status)
        if where.since is not None:
            clause.add("s.last_update >= ?", _us(where.since))
        if where.until is not None:
            clause.add("s.last_update <= ?", _us(where.until))
        order = _order(page, _STATUS_SORT, "s.id ASC")
        joined = " FROM message_status s JOIN conversation c ON c.id = s.conversation"

        def op(conn: sqlite3.Connection) -> Page[StatusRecord]:
            rows, total = _page(conn, f"SELECT {_STATUS_COLUMNS}{joined}",
                                f"SELECT count(*){joined}", clause, order, page)
            return Page([_status(r) for r in rows], page, total, True)

        return await self._db.read(op)

    async def peek_status_queue(self) -> StatusRecord | None:
        def op(conn: sqlite3.Connection) -> StatusRecord | None:
            row = conn.execute(
                f"SELECT {_STATUS_COLUMNS} FROM status_queue q "
                "JOIN message_status s ON s.id = q.status "
                "JOIN conversation c ON c.id = s.conversation ORDER BY q.status LIMIT 1"
            ).fetchone()
            return _status(row) if row else None

        return await self._db.read(op)

    async def remove_from_status_queue(self, status_id: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM status_queue WHERE status = ?", (status_id,))
            return cur.rowcount == 1

        return await self._db.write(op)

    async def find_conversations(
        self, where: ConversationFilter, page: PageRequest
    ) -> Page[ConversationRecord]:
        clause = _Where()
        clause.eq("conversation_id", where.conversation_id)
        if where.message_id is not None:
            clause.add(_EITHER_DIRECTION)
        clause.eq("message_id", where.message_id)
        clause.eq("receiver", where.receiver)
        clause.eq("receiver_identifier", where.receiver_identifier)
        clause.eq("sender", where.sender)
        clause.eq("sender_identifier", where.sender_identifier)
        clause.eq("service", where.service)
        clause.eq("message_reference", where.message_reference)
        clause.eq("message_title", where.message_title)
        if where.pollable is not None:
            clause.eq("pollable", int(where.pollable))
        if where.finished is not None:
            clause.eq("finished", int(where.finished))
        if where.direction is not None:
            clause.eq("direction", where.direction.value)
        if where.updated_from is not None:
            clause.add("last_update >= ?", _us(where.updated_from))
        if where.updated_before is not None:
            clause.add("last_update < ?", _us(where.updated_before))
        order = _order(page, _CONVERSATION_SORT, "id ASC")

        def op(conn: sqlite3.Connection) -> Page[ConversationRecord]:
            rows, total = _page(conn, "SELECT * FROM conversation",
                                "SELECT count(*) FROM conversation", clause, order, page)
            return Page(_with_statuses(conn, rows), page, total, True)

        return await self._db.read(op)

    async def conversation(self, conv_id: int) -> ConversationRecord | None:
        return self._db.read_by_key(lambda conn: _conversation_by_id(conn, conv_id))

    async def conversation_by_message_id(self, message_id: str) -> ConversationRecord | None:
        def op(conn: sqlite3.Connection) -> ConversationRecord | None:
            row = conn.execute(
                f"SELECT id FROM conversation WHERE {_EITHER_DIRECTION} AND message_id = ? "
                "ORDER BY direction = 'INCOMING', id LIMIT 1",
                (message_id,),
            ).fetchone()
            return _conversation_by_id(conn, row["id"]) if row else None

        return self._db.read_by_key(op)

    async def delete_conversation(
        self, conv_id: int | None = None, message_id: str | None = None
    ) -> int:
        def op(conn: sqlite3.Connection) -> int:
            if conv_id is not None:
                return conn.execute("DELETE FROM conversation WHERE id = ?", (conv_id,)).rowcount
            return conn.execute(
                f"DELETE FROM conversation WHERE {_EITHER_DIRECTION} AND message_id = ?",
                (message_id,),
            ).rowcount

        return await self._db.write(op)

    # -- the outbox ---------------------------------------------------------------------------

    async def claim_due(
        self, worker: str, now: datetime, lease_until: datetime, limit: int,
        services: Sequence[str] | None = None,
    ) -> list[OutboxClaim]:
        clause = _Where()
        clause.add("due_at <= ?", _us(now))
        clause.add("(lease_until IS NULL OR lease_until <= ?)", _us(now))
        if services is not None:
            clause.add(f"service IN ({','.join('?' * len(services))})", *services)

        def op(conn: sqlite3.Connection) -> list[OutboxClaim]:
            claimed = conn.execute(
                "UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM outbox" + clause.sql
                + " ORDER BY due_at, id LIMIT ?) RETURNING message, attempts, last_error",
                [worker, _us(lease_until), *clause.params, limit],
            ).fetchall()
            claims = []
            for row in claimed:
                message = conn.execute("SELECT * FROM message WHERE id = ?",
                                       (row["message"],)).fetchone()
                claims.append(OutboxClaim(_message(message), row["attempts"], lease_until,
                                          row["last_error"]))
            return claims

        return await self._db.write(op)

    async def retry_later(self, message_id: str, worker: str, due: datetime, error: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE outbox SET due_at = ?, lease_owner = NULL, lease_until = NULL, "
                "last_error = ? WHERE lease_owner = ? AND message = (SELECT id FROM message "
                "WHERE direction = 'OUTGOING' AND message_id = ?)",
                (_us(due), error, worker, message_id),
            ).rowcount == 1

        return await self._db.write(op)


    async def extend_lease(self, message_id: str, worker: str, until: datetime) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE outbox SET lease_until = ? WHERE lease_owner = ? AND message = "
                "(SELECT id FROM message WHERE direction = 'OUTGOING' AND message_id = ?)",
                (_us(until), worker, message_id),
            ).rowcount == 1

        return await self._db.write(op)

    async def release_leases(self, worker: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until = NULL, "
                "attempts = max(attempts - 1, 0) WHERE lease_owner = ?",
                (worker,),
            ).rowcount

        return await self._db.write(op)

    async def complete_delivery(
        self,
        message_id: str,
        worker: str,
        changes: Sequence[StatusChange],
        *,
        external_reference: str | None = None,
        poll_at: datetime | None = None,
    ) -> Deleted:
        def op(conn: sqlite3.Connection) -> Deleted:
            row = _leased(conn, message_id, worker)
            conv = _outgoing_conversation(conn, message_id)
            if conv is not None:
                # Pollable before the send's own statuses are registered: a LEVERT at send
                # (DPF) finishes the conversation but must not stop its polling; LEST does.
                conn.execute(
                    "UPDATE conversation SET external_reference = coalesce(?, "
                    "external_reference), pollable = CASE WHEN ? AND finished = 0 THEN 1 "
                    "ELSE pollable END, next_poll = ? WHERE id = ?",
                    (external_reference, poll_at is not None,
                     None if poll_at is None else _us(poll_at), conv),
                )
                for change in changes:
                    _register(conn, conv, change)
            return _delete_row(conn, row)

        return await self._db.write(op)

    async def fail_delivery(self, message_id: str, worker: str, change: StatusChange) -> Deleted:
        def op(conn: sqlite3.Connection) -> Deleted:
            row = _leased(conn, message_id, worker)
            conv = _outgoing_conversation(conn, message_id)
            if conv is not None:
                _register(conn, conv, change)
            return _delete_row(conn, row)

        return await self._db.write(op)

    async def outbox_depth(self) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT service, count(*) FROM outbox GROUP BY service")
            return {row[0]: row[1] for row in rows}

        return await self._db.read(op)

    # -- status polling and lifetime ----------------------------------------------------------

    async def due_for_polling(
        self, service: str, now: datetime, limit: int
    ) -> list[ConversationRecord]:
        def op(conn: sqlite3.Connection) -> list[ConversationRecord]:
            rows = conn.execute(
                "SELECT * FROM conversation WHERE pollable = 1 AND service = ? AND "
                "direction = 'OUTGOING' AND coalesce(next_poll, 0) <= ? "
                "ORDER BY coalesce(next_poll, 0), id LIMIT ?",
                (service, _us(now), limit),
            ).fetchall()
            return _with_statuses(conn, rows)

        return await self._db.read(op)

    async def schedule_polls(self, when: Sequence[tuple[int, datetime]]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE conversation SET next_poll = ? WHERE id = ?",
                             [(_us(at), conv) for conv, at in when])

        await self._db.write(op)

    async def stop_polling(self, conv_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE conversation SET pollable = 0 WHERE id = ?", (conv_id,))

        await self._db.write(op)

    async def register_statuses(
        self, message_id: str, changes: Sequence[StatusChange], direction: Direction
    ) -> list[StatusRecord]:
        def op(conn: sqlite3.Connection) -> list[StatusRecord]:
            row = conn.execute(
                "SELECT id FROM conversation WHERE message_id = ? AND direction = ?",
                (message_id, direction.value),
            ).fetchone()
            if row is None:
                return []
            registered = [_status_by_id(conn, _register(conn, row["id"], c)) for c in changes]
            return [status for status in registered if status is not None]

        return await self._db.write(op)

    async def expired(self, now: datetime, limit: int) -> list[ConversationRecord]:
        def op(conn: sqlite3.Connection) -> list[ConversationRecord]:
            rows = conn.execute(
                "SELECT * FROM conversation c WHERE finished = 0 AND expiry < ? AND NOT EXISTS ("
                f"{_BEING_SENT}) ORDER BY expiry, id LIMIT ?",
                (_us(now), _us(now), limit),
            ).fetchall()
            return _with_statuses(conn, rows)

        return await self._db.read(op)

    async def expire(self, conv_id: int, change: StatusChange) -> Deleted | None:
        def op(conn: sqlite3.Connection) -> Deleted | None:
            conv = conn.execute("SELECT * FROM conversation c WHERE id = ? AND NOT EXISTS ("
                                f"{_BEING_SENT})", (conv_id, _us(change.at))).fetchone()
            if conv is None or conv["finished"]:
                return None
            _register(conn, conv_id, change)
            conn.execute("UPDATE conversation SET finished = 1, pollable = 0 WHERE id = ?",
                         (conv_id,))
            row = conn.execute(
                "SELECT * FROM message WHERE direction = ? AND message_id = ?",
                (conv["direction"], conv["message_id"]),
            ).fetchone()
            return _delete_row(conn, row) if row is not None else Deleted()

        return await self._db.write(op)

    # -- webhooks -----------------------------------------------------------------------------

    async def add_subscription(self, subscription: NewSubscription) -> SubscriptionRecord:
        def op(conn: sqlite3.Connection) -> SubscriptionRecord:
            try:
                cur = conn.execute(
                    "INSERT INTO webhook_subscription (name, push_endpoint, resource, event, "
                    "filter, prefiltered, wants_status, wants_service, wants_direction) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (subscription.name, subscription.push_endpoint, subscription.resource,
                     subscription.event, subscription.filter, *_wants(subscription.wants)),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"a subscription named {subscription.name!r} already pushes to "
                    f"{subscription.push_endpoint}"
                ) from None
            return _subscription_by_id(conn, cur.lastrowid)  # type: ignore[arg-type, return-value]

        return await self._db.write(op)

    async def subscriptions(self, page: PageRequest) -> Page[SubscriptionRecord]:
        def op(conn: sqlite3.Connection) -> Page[SubscriptionRecord]:
            total = conn.execute("SELECT count(*) FROM webhook_subscription").fetchone()[0]
            rows = conn.execute(
                "SELECT * FROM webhook_subscription ORDER BY id LIMIT ? OFFSET ?",
                (page.size, page.offset),
            ).fetchall()
            return Page([_subscription(r) for r in rows], page, total, False)

        return await self._db.read(op)

    async def subscription(self, subscription_id: int) -> SubscriptionRecord | None:
        return self._db.read_by_key(lambda conn: _subscription_by_id(conn, subscription_id))

    async def update_subscription(
        self, subscription_id: int, subscription: NewSubscription
    ) -> SubscriptionRecord | None:
        def op(conn: sqlite3.Connection) -> SubscriptionRecord | None:
            try:
                conn.execute(
                    "UPDATE webhook_subscription SET name = ?, push_endpoint = ?, resource = ?, "
                    "event = ?, filter = ?, prefiltered = ?, wants_status = ?, "
                    "wants_service = ?, wants_direction = ? WHERE id = ?",
                    (subscription.name, subscription.push_endpoint, subscription.resource,
                     subscription.event, subscription.filter, *_wants(subscription.wants),
                     subscription_id),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"a subscription named {subscription.name!r} already pushes to "
                    f"{subscription.push_endpoint}"
                ) from None
            return _subscription_by_id(conn, subscription_id)

        return await self._db.write(op)

    async def delete_subscription(self, subscription_id: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM webhook_subscription WHERE id = ?",
                                (subscription_id,)).rowcount == 1

        return await self._db.write(op)

    async def delete_subscriptions(self) -> int:
        return await self._db.write(
            lambda conn: conn.execute("DELETE FROM webhook_subscription").rowcount
        )

    async def claim_webhook_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        def op(conn: sqlite3.Connection) -> list[WebhookDelivery]:
            rows = conn.execute(
                "UPDATE webhook_outbox SET lease_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM webhook_outbox WHERE due_at <= ? AND "
                "(lease_until IS NULL OR lease_until <= ?) ORDER BY due_at, id LIMIT ?) "
                "RETURNING id, subscription, status, attempts",
                (_us(lease_until), _us(now), _us(now), limit),
            ).fetchall()
            deliveries = []
            for row in sorted(rows, key=lambda r: r["id"]):
                status = _status_by_id(conn, row["status"])
                conv = conn.execute(
                    "SELECT direction, service FROM conversation c JOIN message_status s "
                    "ON s.conversation = c.id WHERE s.id = ?", (row["status"],),
                ).fetchone()
                subscription = _subscription_by_id(conn, row["subscription"])
                assert status is not None and subscription is not None and conv is not None
                deliveries.append(WebhookDelivery(
                    row["id"], subscription, status, Direction(conv["direction"]),
                    conv["service"], status.last_update, row["attempts"],
                ))
            return deliveries

        return await self._db.write(op)

    async def webhook_delivered(self, delivery_id: int, subscription_id: int | None) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (delivery_id,))
            if subscription_id is not None:
                conn.execute("UPDATE webhook_subscription SET failures = 0, last_error = NULL "
                             "WHERE id = ?", (subscription_id,))

        await self._db.write(op)

    async def webhook_failed(
        self, delivery_id: int, subscription_id: int, error: str, retry_at: datetime | None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if retry_at is None:
                conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (delivery_id,))
            else:
                conn.execute("UPDATE webhook_outbox SET due_at = ?, lease_until = NULL "
                             "WHERE id = ?", (_us(retry_at), delivery_id))
            conn.execute("UPDATE webhook_subscription SET failures = failures + 1, "
                         "last_error = ? WHERE id = ?", (error, subscription_id))

        await self._db.write(op)

    # -- status replies owed to senders -------------------------------------------------------

    async def claim_replies(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ReplyClaim]:
        def op(conn: sqlite3.Connection) -> list[ReplyClaim]:
            rows = conn.execute(
                "UPDATE reply_outbox SET lease_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM reply_outbox WHERE due_at <= ? AND "
                "(lease_until IS NULL OR lease_until <= ?) ORDER BY due_at, id LIMIT ?) "
                "RETURNING id, service, message_id, status, sbd, attempts",
                (_us(lease_until), _us(now), _us(now), limit),
            ).fetchall()
            return [ReplyClaim(r["id"], r["service"], r["message_id"], r["status"], r["sbd"],
                               r["attempts"]) for r in sorted(rows, key=lambda r: r["id"])]

        return await self._db.write(op)

    async def reply_sent(self, reply_id: int) -> None:
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM reply_outbox WHERE id = ?", (reply_id,))
        )

    async def retry_reply(self, reply_id: int, due: datetime, error: str) -> None:
        await self._db.write(lambda conn: conn.execute(
            "UPDATE reply_outbox SET due_at = ?, lease_until = NULL, last_error = ? "
            "WHERE id = ?", (_us(due), error, reply_id)))


# --- helpers run on the writer thread ------------------------------------------------------------


def _queue_reply(conn: sqlite3.Connection, service: str, message_id: str, status: str,
                 sbd: str, due: int) -> None:
    conn.execute(
        "INSERT INTO reply_outbox (service, message_id, status, sbd, due_at) "
        "VALUES (?,?,?,?,?) ON CONFLICT (service, message_id, status) DO NOTHING",
        (service, message_id, status, sbd, due),
    )


def _insert_file(conn: sqlite3.Connection, message: int, number: int, file: NewFile) -> FileRecord:
    conn.execute(
        "INSERT INTO message_file (message, dokumentnummer, blob, filename, mime_type, title, "
        "primary_document, size, refs) VALUES (?,?,?,?,?,?,?,?,?)",
        (message, number, file.blob_id, file.filename, file.mime_type, file.title,
         int(file.primary), file.size, json.dumps(list(file.references))),
    )
    return FileRecord(number, file.blob_id, file.filename, file.mime_type, file.size, file.title,
                      file.primary, file.references)


def _delete_row(conn: sqlite3.Connection, row: sqlite3.Row) -> Deleted:
    blobs = [r[0] for r in conn.execute("SELECT blob FROM message_file WHERE message = ?",
                                        (row["id"],))]
    if row["asic_blob"]:
        blobs.append(row["asic_blob"])
    conn.execute("DELETE FROM message WHERE id = ?", (row["id"],))
    return Deleted(blobs, _message(row))


def _register(conn: sqlite3.Connection, conv_id: int, change: StatusChange, *,
              new_conversation: tuple[str, str] | None = None) -> int | None:
    """Add the status to the conversation, and a webhook delivery for each subscription that
    wants it. ``new_conversation`` (its direction and service): the conversation was just
    inserted with the status's time and flags, so it needs no update."""
    at = _us(change.at)
    cur = conn.execute(
        "INSERT OR IGNORE INTO message_status (conversation, status, description, raw_receipt, "
        "last_update) VALUES (?,?,?,?,?)",
        (conv_id, change.status, change.description, change.raw_receipt, at),
    )
    if cur.rowcount == 0:
        return None
    status_id = cur.lastrowid
    conversation = new_conversation or conn.execute(
        "UPDATE conversation SET last_update = max(last_update, ?), "
        "finished = coalesce(?, finished), "
        "pollable = coalesce(?, pollable) WHERE id = ? RETURNING direction, service",
        (at, None if change.finished is None else int(change.finished),
         None if change.pollable is None else int(change.pollable), conv_id),
    ).fetchone()
    if change.queue:
        conn.execute("INSERT INTO status_queue (status) VALUES (?)", (status_id,))
    if conversation is not None:
        direction, service = conversation
        conn.execute(
            "INSERT INTO webhook_outbox (subscription, status, due_at) "
            "SELECT id, ?, ? FROM webhook_subscription WHERE prefiltered = 0 OR ("
            "(wants_status IS NULL OR instr(wants_status, ?) > 0) AND "
            "(wants_service IS NULL OR instr(wants_service, ?) > 0) AND "
            "(wants_direction IS NULL OR instr(wants_direction, ?) > 0))",
            (status_id, at, _listed_value(change.status), _listed_value(service),
             _listed_value(direction)),
        )
    return status_id


def _wants(wants: EventFilter | None) -> tuple[int, str | None, str | None, str | None]:
    """A subscription's prefiltered, wants_status, wants_service and wants_direction columns:
    each list as ``,a,b,`` (``,`` lets nothing through), NULL for any."""
    if wants is None:
        return 0, None, None, None
    return 1, *(None if values is None else "," + "".join(v + "," for v in values)
                for values in (wants.statuses, wants.services, wants.directions))


def _listed_value(value: str) -> str:
    """What a ``wants_*`` list holds when it lets ``value`` through."""
    return "," + value.casefold() + ","


def _status_by_id(conn: sqlite3.Connection, status_id: int | None) -> StatusRecord | None:
    if status_id is None:
        return None
    row = conn.execute(
        f"SELECT {_STATUS_COLUMNS} FROM message_status s JOIN conversation c "
        "ON c.id = s.conversation WHERE s.id = ?",
        (status_id,),
    ).fetchone()
    return _status(row)


def _conversation_by_id(conn: sqlite3.Connection, conv_id: int) -> ConversationRecord | None:
    row = conn.execute("SELECT * FROM conversation WHERE id = ?", (conv_id,)).fetchone()
    if row is None:
        return None
    return _with_statuses(conn, [row])[0]


def _leased(conn: sqlite3.Connection, message_id: str, worker: str) -> sqlite3.Row:
    row = conn.execute(
        "SELECT m.* FROM message m JOIN outbox o ON o.message = m.id "
        "WHERE m.direction = 'OUTGOING' AND m.message_id = ? AND o.lease_owner = ?",
        (message_id, worker),
    ).fetchone()
    if row is None:
        raise StoreError(f"{worker} holds no lease on message {message_id}")
    return row  # type: ignore[no-any-return]


def _outgoing_conversation(conn: sqlite3.Connection, message_id: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM conversation WHERE message_id = ? AND direction = 'OUTGOING'",
        (message_id,),
    ).fetchone()
    return row["id"] if row else None


def _subscription(row: sqlite3.Row) -> SubscriptionRecord:
    return SubscriptionRecord(row["id"], row["name"], row["push_endpoint"], row["resource"],
                              row["event"], row["filter"], row["failures"], row["last_error"])


def _subscription_by_id(
    conn: sqlite3.Connection, subscription_id: int
) -> SubscriptionRecord | None:
    row = conn.execute("SELECT * FROM webhook_subscription WHERE id = ?",
                       (subscription_id,)).fetchone()
    return _subscription(row) if row else None
