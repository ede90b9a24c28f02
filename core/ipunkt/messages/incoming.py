"""Incoming messages: taking them in from channels, and peek, pop, delete for the client.

A message a channel delivers is stored (its ASiC-E sealed to disk first) before the channel may
confirm it; a message id already stored is dropped. The client peeks (locking the oldest
message for ``lock_timeout``), pops the ASiC-E as a stream, and deletes the message to confirm
it, which registers INNKOMMENDE_LEVERT. Where the channel answers senders (``replies``: DPO's
MOTTATT and LEVERT), the reply is queued in the same transaction as the store or the delete, so
that a crash cannot lose it.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from ipunkt.messages import errors
from ipunkt.messages.parties import part_or_primary, primary
from ipunkt.messages.sealed import decrypted
from ipunkt.messages.statuses import Statuses
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.plugin import ReceiptStatus
from ipunkt.sbd import StandardBusinessDocument
from ipunkt.sbd.times import now_oslo
from ipunkt.store import base as store
from ipunkt.store.blobs import BlobMissing
from ipunkt.store.encryption import DecryptionError, UnknownKey

log = structlog.get_logger(__name__)

NO_REPLY_TYPES = frozenset({"status"})
"""Message types never answered with a status reply (a status answering a status would loop)."""


@dataclass
class Asic:
    """A popped message's ASiC-E: its size and its bytes as a stream."""

    size: int | None
    """The size when it is known before streaming (not for a package decrypted on the fly)."""
    chunks: AsyncIterator[bytes]


class IncomingMessages:
    def __init__(
        self,
        message_store: store.MessageStore,
        statuses: Statuses,
        *,
        lock_timeout: timedelta = timedelta(minutes=5),
        default_ttl: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = now_oslo,
        key: OrganisationKey | None = None,
    ) -> None:
        self.key = key
        """Decrypts packages at pop; without it they are handed out as stored."""
        self.store = message_store
        self.statuses = statuses
        self.lock_timeout = lock_timeout
        self.default_ttl = default_ttl
        self.clock = clock
        self.replies: dict[str, frozenset[ReceiptStatus]] = {}
        """Which status replies each channel (by service) sends the senders of its messages."""
        self.on_reply_queued: list[Callable[[], None]] = []

    async def receive(
        self, sbd: StandardBusinessDocument, service: str,
        asic: AsyncIterable[bytes] | None = None,
    ) -> bool:
        """Store a message a channel received; False if its message id was already stored."""
        now = self.clock()
        blob = await self.store.blobs.write(asic) if asic is not None else None
        expiry = sbd.expected_response or now + self.default_ttl
        new = store.NewMessage(
            direction=store.Direction.INCOMING,
            message_id=str(sbd.message_id),
            conversation_id=str(sbd.conversation_id),
            process=str(sbd.process),
            message_type=str(sbd.body_key),
            document_type=str(sbd.standard),
            sender=sbd.sender,
            sender_identifier=part_or_primary(sbd.sender),
            receiver=sbd.receiver,
            receiver_identifier=primary(sbd.receiver),
            service=service,
            sbd=sbd.to_text(),
            expiry=expiry,
        )
        rules = self.statuses.rules
        try:
            stored = await self.store.create_message(
                new,
                rules.change(ReceiptStatus.OPPRETTET, now, service),
                extra_statuses=[rules.change(ReceiptStatus.INNKOMMENDE_MOTTATT, now, service)],
                asic=(blob.blob_id, blob.size) if blob else None,
                reply=self._reply(service, new.message_type, ReceiptStatus.MOTTATT),
            )
        except Exception:
            # Refused: the payload is nobody's. Not on cancellation, though: the change may
            # still commit, and the sweep at start removes the payload if it did not.
            if blob:
                await self.store.blobs.delete([blob.blob_id])
            raise
        if stored is None:
            if blob:
                await self.store.blobs.delete([blob.blob_id])
            log.info("duplicate incoming message dropped", message_id=new.message_id,
                     channel=service)
            return False
        log.info("incoming message stored", message_id=new.message_id,
                 conversation_id=new.conversation_id, channel=service)
        self._replies_queued()
        return True

    async def find(self, where: store.MessageFilter,
                   page: store.PageRequest) -> store.Page[store.MessageRecord]:
        return await self.store.find_messages(store.Direction.INCOMING, _normalised(where), page)

    async def peek(self, where: store.MessageFilter) -> store.MessageRecord | None:
        """Lock and return the oldest unlocked message, or None when there is none."""
        now = self.clock()
        record = await self.store.lock_next(_normalised(where), now, now + self.lock_timeout)
        if record is not None:
            structlog.contextvars.bind_contextvars(
                message_id=record.message_id, conversation_id=record.conversation_id,
                channel=record.service,
            )
            log.debug("message locked",
                      until=record.lock_until.isoformat() if record.lock_until else None)
        return record

    async def pop(self, message_id: str) -> Asic | None:
        """The locked message's ASiC-E, or None for a receipt (which has none)."""
        record = await self._locked(message_id)
        if record.asic_blob is None:
            if record.message_type.endswith("_kvittering") or record.message_type == "status":
                return None
            await self._corrupt(record, "it has no ASiC")
        try:
            size = await self.store.blobs.check(record.asic_blob)  # type: ignore[arg-type]
        except UnknownKey as exc:  # the configuration is wrong, not the message: keep it
            log.error("a payload is sealed with a store key that is not configured",
                      error=str(exc))
            raise errors.StoreKeyMissing(str(exc)) from None
        except (BlobMissing, DecryptionError) as exc:
            await self._corrupt(record, str(exc) or type(exc).__name__)
        if self.key is None:
            return Asic(size, self._stream(record))
        plaintext = decrypted(lambda: self._stream(record), self.key)
        try:
            first = await anext(plaintext, b"")
        except PackageError as exc:
            await self._corrupt(record, f"cannot decrypt it: {exc}")
        return Asic(None, _after(first, plaintext))

    async def _stream(self, record: store.MessageRecord) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.store.blobs.read(record.asic_blob):  # type: ignore[arg-type]
                yield chunk
        except (BlobMissing, DecryptionError) as exc:
            await self._remove_corrupt(record, str(exc))
            raise

    async def delete(self, message_id: str) -> store.MessageRecord:
        """Confirm a locked message: delete it and register INNKOMMENDE_LEVERT."""
        now = self.clock()
        record = await self.store.message(store.Direction.INCOMING, message_id)
        if record is None:
            raise errors.MessageNotFound(message_id)
        try:
            delivered = await self.store.delete_locked(
                message_id, now,
                self.statuses.rules.change(ReceiptStatus.INNKOMMENDE_LEVERT, now, record.service),
                reply=self._reply(record.service, record.message_type, ReceiptStatus.LEVERT),
            )
        except store.NotFound:
            raise errors.MessageNotFound(message_id) from None
        except store.NotLocked:
            raise errors.MessageNotLocked(message_id) from None
        await self.store.blobs.delete(delivered.blob_ids)
        assert delivered.message is not None
        self._replies_queued()
        structlog.contextvars.bind_contextvars(message_id=message_id,
                                               channel=delivered.message.service)
        log.debug("incoming message delivered to the client")
        return delivered.message

    def _reply(self, service: str, message_type: str, status: ReceiptStatus) -> str | None:
        """The status reply to queue with this event, if the channel sends one."""
        if message_type in NO_REPLY_TYPES or status not in self.replies.get(service, ()):
            return None
        return status.value

    def _replies_queued(self) -> None:
        for nudge in self.on_reply_queued:
            nudge()

    async def _locked(self, message_id: str) -> store.MessageRecord:
        record = await self.store.message(store.Direction.INCOMING, message_id)
        if record is None:
            raise errors.MessageNotFound(message_id)
        if record.lock_until is None or record.lock_until <= self.clock():
            raise errors.MessageNotLocked(message_id)
        return record

    async def _corrupt(self, record: store.MessageRecord, reason: str) -> None:
        """As the original's pop: the message is removed, FEIL registered, and 404 answered."""
        await self._remove_corrupt(record, reason)
        raise errors.FileNotFound(["asic.zip"])

    async def _remove_corrupt(self, record: store.MessageRecord, reason: str) -> None:
        """An unreadable message is removed and FEIL registered with the reason, as the
        original does (its text, then why)."""
        current = await self.store.message(store.Direction.INCOMING, record.message_id)
        if current is None or current.asic_blob != record.asic_blob:
            log.info("incoming message deleted while it was read", message_id=record.message_id)
            return  # its client took it meanwhile: nothing is wrong with it
        message = (f'Can not read file "asic.zip" for message [messageId={record.message_id}, '
                   f"sender={record.sender_identifier}], removing from queue. Reason: {reason}")
        log.error("incoming message unreadable", message_id=record.message_id, reason=reason)
        deleted = await self.store.delete_message(store.Direction.INCOMING, record.message_id)
        await self.store.blobs.delete(deleted.blob_ids)
        await self.statuses.register(record.message_id, ReceiptStatus.FEIL, self.clock(),
                                     record.service, direction=store.Direction.INCOMING,
                                     description=message)


def _normalised(where: store.MessageFilter) -> store.MessageFilter:
    return store.MessageFilter(
        conversation_id=where.conversation_id,
        message_id=where.message_id,
        process=where.process,
        receiver_identifier=primary(where.receiver_identifier),
        sender_identifier=part_or_primary(where.sender_identifier),
        service=where.service.upper() if where.service else None,
    )


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
