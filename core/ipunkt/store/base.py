"""The message store's interface: what the API and the delivery engine need from storage.

One interface, two implementations (SQLite now, PostgreSQL later), so that neither the HTTP
API nor the workers know which database is underneath. Every method is one atomic change.
Times are aware datetimes; the store keeps them exactly to the microsecond.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from ipunkt.store.blobs import BlobStore

T = TypeVar("T")


class Direction(enum.StrEnum):
    OUTGOING = "OUTGOING"
    INCOMING = "INCOMING"


# --- errors ----------------------------------------------------------------------------------


class StoreError(Exception):
    """Base of the store's refusals; each says what was refused."""


class AlreadyExists(StoreError):
    """A message or conversation with this message id is already stored."""


class NotFound(StoreError):
    """No such message (or it is gone)."""


class DuplicateFilename(StoreError):
    """The message already has a file of this name."""


class MultiplePrimaryDocuments(StoreError):
    """The message already has its primary document."""


class TotalSizeExceeded(StoreError):
    """The message's files together would pass the channel's limit."""

    def __init__(self, total: int, limit: int) -> None:
        super().__init__(f"{total} bytes exceed the limit of {limit}")
        self.total = total
        self.limit = limit


class AlreadyQueued(StoreError):
    """The message has been sent; its files can no longer change."""


class NotLocked(StoreError):
    """The incoming message is not locked by a peek (or its lock has run out)."""


# --- paging ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SortOrder:
    prop: str
    descending: bool = False


@dataclass(frozen=True)
class PageRequest:
    """Spring's ``Pageable``: a 0-based page of ``size`` rows, sorted by ``sort``."""

    page: int = 0
    size: int = 10
    sort: tuple[SortOrder, ...] = ()

    @property
    def offset(self) -> int:
        return self.page * self.size


@dataclass(frozen=True)
class Page(Generic[T]):
    content: list[T]
    request: PageRequest
    total: int
    sorted: bool


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMessage:
    """A message to store, outgoing (from the API) or incoming (from a channel)."""

    direction: Direction
    message_id: str
    conversation_id: str
    process: str
    message_type: str
    document_type: str
    sender: str | None
    sender_identifier: str | None
    receiver: str | None
    receiver_identifier: str | None
    service: str
    sbd: str
    """The SBD as JSON text."""
    expiry: datetime
    service_code: str | None = None
    service_edition_code: str | None = None


@dataclass(frozen=True)
class NewFile:
    """A file already sealed into the blob store, to attach to a message."""

    blob_id: str
    filename: str
    mime_type: str
    size: int
    title: str | None = None
    primary: bool = False
    references: tuple[str, ...] = ()
    """Files this one names (``arkivmelding.xml``'s ``referanseDokumentfil``)."""


@dataclass(frozen=True)
class FileRecord:
    dokumentnummer: int
    blob_id: str
    filename: str
    mime_type: str
    size: int
    title: str | None
    primary: bool
    references: tuple[str, ...]


@dataclass(frozen=True)
class MessageRecord:
    id: int
    direction: Direction
    message_id: str
    conversation_id: str
    process: str
    message_type: str
    sender_identifier: str | None
    receiver_identifier: str | None
    service: str
    sbd: str
    created: datetime
    last_updated: datetime
    expiry: datetime
    lock_until: datetime | None
    queued: bool
    asic_blob: str | None
    asic_size: int | None


@dataclass(frozen=True)
class StatusRecord:
    id: int
    conv_id: int
    conversation_id: str
    message_id: str
    status: str
    description: str | None
    raw_receipt: str | None
    last_update: datetime


@dataclass(frozen=True)
class ConversationRecord:
    id: int
    conversation_id: str
    message_id: str
    direction: Direction
    sender: str | None
    sender_identifier: str | None
    receiver: str | None
    receiver_identifier: str | None
    process: str
    document_identifier: str
    message_reference: str | None
    message_title: str | None
    service_code: str | None
    service_edition_code: str | None
    service: str
    external_reference: str | None
    last_update: datetime
    finished: bool
    pollable: bool
    expiry: datetime
    statuses: tuple[StatusRecord, ...] = ()


@dataclass(frozen=True)
class StatusChange:
    """A status to register and what it does to its conversation's flags (None: unchanged)."""

    status: str
    at: datetime
    description: str | None = None
    raw_receipt: str | None = None
    finished: bool | None = None
    pollable: bool | None = None
    queue: bool = False
    """Also put it on the status queue (``/api/statuses/peek``)."""


@dataclass(frozen=True)
class EventFilter:
    """The status events a subscription wants, in a form the store applies as it registers a
    status, so that it queues no delivery its dispatcher would only drop.

    Each field holds the casefolded values it lets through (empty: none), or None for any.
    """

    statuses: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None
    directions: tuple[str, ...] | None = None

    def admits(self, status: str, service: str, direction: str) -> bool:
        return all(
            allowed is None or value.casefold() in allowed
            for allowed, value in ((self.statuses, status), (self.services, service),
                                   (self.directions, direction))
        )


@dataclass(frozen=True)
class NewSubscription:
    """A webhook subscription as the API creates it."""

    name: str
    push_endpoint: str
    resource: str
    event: str
    filter: str | None = None
    wants: EventFilter | None = None
    """What its resource, event and filter let through; None: every status is queued to it
    (its dispatcher decides)."""


@dataclass(frozen=True)
class SubscriptionRecord:
    id: int
    name: str
    push_endpoint: str
    resource: str
    event: str
    filter: str | None
    failures: int
    """Deliveries that failed in a row since the last one that succeeded."""
    last_error: str | None


@dataclass(frozen=True)
class WebhookDelivery:
    """A status event to push to one subscription, leased by the dispatcher."""

    id: int
    subscription: SubscriptionRecord
    status: StatusRecord
    direction: Direction
    service: str
    created: datetime
    attempts: int


@dataclass(frozen=True)
class OutboxClaim:
    """A due message a delivery worker has leased; the lease runs out at ``lease_until``."""

    message: MessageRecord
    attempts: int
    lease_until: datetime
    last_error: str | None


@dataclass(frozen=True)
class ReplyClaim:
    """A status reply owed to the sender of an incoming message, leased by the reply sender."""

    id: int
    service: str
    message_id: str
    status: str
    sbd: str
    """The incoming message's SBD (JSON text) that the reply answers."""
    attempts: int


# --- filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageFilter:
    conversation_id: str | None = None
    message_id: str | None = None
    process: str | None = None
    receiver_identifier: str | None = None
    sender_identifier: str | None = None
    service: str | None = None


@dataclass(frozen=True)
class StatusFilter:
    id: int | None = None
    message_id: str | None = None
    conversation_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class ConversationFilter:
    conversation_id: str | None = None
    message_id: str | None = None
    receiver: str | None = None
    receiver_identifier: str | None = None
    sender: str | None = None
    sender_identifier: str | None = None
    service: str | None = None
    message_reference: str | None = None
    message_title: str | None = None
    pollable: bool | None = None
    finished: bool | None = None
    direction: Direction | None = None
    updated_from: datetime | None = None
    updated_before: datetime | None = None


MESSAGE_SORTS = frozenset({"id", "lastUpdated", "messageId", "conversationId", "processIdentifier",
                           "receiverIdentifier", "senderIdentifier", "serviceIdentifier"})
STATUS_SORTS = frozenset({"id", "lastUpdate", "status", "convId", "messageId", "conversationId"})
CONVERSATION_SORTS = frozenset({"id", "lastUpdate", "conversationId", "messageId", "expiry",
                                "messageReference", "messageTitle", "serviceIdentifier",
                                "direction", "finished", "senderIdentifier",
                                "receiverIdentifier"})
"""The properties each kind of row can be sorted by (Spring's property names)."""


@dataclass
class Deleted:
    """What a delete removed; its blobs are for the caller to delete once it committed."""

    blob_ids: list[str] = field(default_factory=list)
    message: MessageRecord | None = None


class MessageStore(abc.ABC):
    """Durable messages, files, conversations, statuses, the status queue and the outbox."""

    blobs: BlobStore

    @abc.abstractmethod
    async def open(self) -> None:
        """Create or migrate the schema and start serving."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release the database."""

    # -- messages ---------------------------------------------------------------------------

    @abc.abstractmethod
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
        """Store a message and its conversation with its first statuses, atomically.

        Returns the conversation's id.

        Outgoing: raises :class:`AlreadyExists` when the message id is taken (by a message,
        or by a conversation when ``unique_conversation``). Incoming: a duplicate message id
        is dropped and None returned. ``files`` and ``queue_at`` (enqueue for delivery) let
        a create-and-send be one transaction; ``asic`` is an incoming message's sealed ASiC-E
        (blob id and size); ``reply`` queues that status reply to its sender (MOTTATT) in the
        same transaction, when the incoming message is new.
        """

    @abc.abstractmethod
    async def message(self, direction: Direction, message_id: str) -> MessageRecord | None: ...

    @abc.abstractmethod
    async def find_messages(
        self, direction: Direction, where: MessageFilter, page: PageRequest
    ) -> Page[MessageRecord]: ...

    @abc.abstractmethod
    async def files(self, message: MessageRecord) -> list[FileRecord]:
        """The message's files, primary document first, then by dokumentnummer."""

    @abc.abstractmethod
    async def add_file(self, message_id: str, file: NewFile, *, limit: int) -> FileRecord:
        """Attach a sealed file to an outgoing message not yet sent.

        Raises :class:`NotFound`, :class:`AlreadyQueued`, :class:`DuplicateFilename`,
        :class:`MultiplePrimaryDocuments` or :class:`TotalSizeExceeded` (``limit`` bytes for
        all the message's files together).
        """

    @abc.abstractmethod
    async def describe_conversation(
        self, message_id: str, *, title: str | None, reference: str | None
    ) -> None:
        """Set the outgoing conversation's ``messageTitle`` and ``messageReference``."""

    @abc.abstractmethod
    async def enqueue(self, message_id: str, due: datetime) -> bool:
        """Queue an outgoing message for delivery; False if it already was (no duplicate)."""

    @abc.abstractmethod
    async def delete_message(self, direction: Direction, message_id: str) -> Deleted:
        """Delete the message, its files and outbox entry; its conversation stays."""

    # -- incoming ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def lock_next(
        self, where: MessageFilter, now: datetime, until: datetime
    ) -> MessageRecord | None:
        """Lock the oldest unlocked incoming message; no two callers ever get the same one."""

    @abc.abstractmethod
    async def delete_locked(
        self, message_id: str, now: datetime, delivered: StatusChange, *,
        reply: str | None = None,
    ) -> Deleted:
        """Delete a locked incoming message and register ``delivered``, atomically; ``reply``
        queues that status reply to its sender (LEVERT) in the same transaction.

        Raises :class:`NotFound` or :class:`NotLocked`.
        """

    # -- statuses and conversations ------------------------------------------------------------

    @abc.abstractmethod
    async def register_status(
        self, message_id: str, change: StatusChange, direction: Direction | None = None
    ) -> StatusRecord | None:
        """Register a status once per conversation; None if it had it or there is none."""

    @abc.abstractmethod
    async def find_statuses(self, where: StatusFilter, page: PageRequest) -> Page[StatusRecord]: ...

    @abc.abstractmethod
    async def peek_status_queue(self) -> StatusRecord | None: ...

    @abc.abstractmethod
    async def remove_from_status_queue(self, status_id: int) -> bool: ...

    @abc.abstractmethod
    async def find_conversations(
        self, where: ConversationFilter, page: PageRequest
    ) -> Page[ConversationRecord]: ...

    @abc.abstractmethod
    async def conversation(self, conv_id: int) -> ConversationRecord | None: ...

    @abc.abstractmethod
    async def conversation_by_message_id(self, message_id: str) -> ConversationRecord | None:
        """The outgoing conversation of this message id, else the incoming one."""

    @abc.abstractmethod
    async def delete_conversation(
        self, conv_id: int | None = None, message_id: str | None = None
    ) -> int:
        """Delete conversations (and their statuses); returns how many."""

    # -- the outbox, for delivery workers ---------------------------------------------------------

    @abc.abstractmethod
    async def claim_due(
        self, worker: str, now: datetime, lease_until: datetime, limit: int,
        services: Sequence[str] | None = None,
    ) -> list[OutboxClaim]:
        """Lease up to ``limit`` due messages; a lease that ran out can be claimed again."""

    @abc.abstractmethod
    async def retry_later(self, message_id: str, worker: str, due: datetime, error: str) -> bool:
        """Release the lease and try again at ``due``; False if the lease was lost."""

    @abc.abstractmethod
    async def extend_lease(self, message_id: str, worker: str, until: datetime) -> bool:
        """Keep a long send's lease; False if the lease was lost to another worker."""

    @abc.abstractmethod
    async def release_leases(self, worker: str) -> int:
        """Give back every lease ``worker`` holds (a graceful stop); due again at once."""

    @abc.abstractmethod
    async def complete_delivery(
        self,
        message_id: str,
        worker: str,
        changes: Sequence[StatusChange],
        *,
        external_reference: str | None = None,
        poll_at: datetime | None = None,
    ) -> Deleted:
        """The channel took the message: register ``changes``, keep the remote reference,
        make the conversation pollable from ``poll_at`` (if given) and remove the message,
        its files and its outbox entry, atomically. Raises StoreError if the lease was lost."""

    @abc.abstractmethod
    async def fail_delivery(self, message_id: str, worker: str, change: StatusChange) -> Deleted:
        """The message will never go (FEIL, LEVETID_UTLOPT): register it and remove it."""

    @abc.abstractmethod
    async def outbox_depth(self) -> dict[str, int]:
        """Queued outgoing messages per service."""

    # -- status replies owed to senders -------------------------------------------------------

    @abc.abstractmethod
    async def claim_replies(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ReplyClaim]:
        """Lease up to ``limit`` due status replies; a lease that ran out can be claimed again."""

    @abc.abstractmethod
    async def reply_sent(self, reply_id: int) -> None:
        """The channel sent the reply (or will never): forget it."""

    @abc.abstractmethod
    async def retry_reply(self, reply_id: int, due: datetime, error: str) -> None:
        """Release the reply's lease and try again at ``due``."""

    # -- status polling and lifetime ---------------------------------------------------------

    @abc.abstractmethod
    async def due_for_polling(
        self, service: str, now: datetime, limit: int
    ) -> list[ConversationRecord]:
        """Pollable outgoing conversations of ``service`` whose next poll is due."""

    @abc.abstractmethod
    async def schedule_polls(self, when: Sequence[tuple[int, datetime]]) -> None:
        """Set each conversation's next status poll: ``(conversation id, at)``."""

    @abc.abstractmethod
    async def stop_polling(self, conv_id: int) -> None:
        """The remote side will say no more about this conversation."""

    @abc.abstractmethod
    async def register_statuses(
        self, message_id: str, changes: Sequence[StatusChange], direction: Direction
    ) -> list[StatusRecord]:
        """Register several statuses in order, atomically; repeats are ignored."""

    @abc.abstractmethod
    async def expired(self, now: datetime, limit: int) -> list[ConversationRecord]:
        """Unfinished conversations, either direction, whose lifetime has passed, but for those
        whose message is being sent now (its outbox lease runs at ``now``)."""

    @abc.abstractmethod
    async def expire(self, conv_id: int, change: StatusChange) -> Deleted | None:
        """Register ``change`` (LEVETID_UTLOPT) and remove the conversation's message copy;
        None when it is not to expire after all: finished meanwhile, or its message is being
        sent (the sender checks the lifetime itself; a send cut off would be sent again)."""

    # -- webhooks -------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_subscription(self, subscription: NewSubscription) -> SubscriptionRecord:
        """Raises AlreadyExists for the same name and push endpoint."""

    @abc.abstractmethod
    async def subscriptions(self, page: PageRequest) -> Page[SubscriptionRecord]: ...

    @abc.abstractmethod
    async def subscription(self, subscription_id: int) -> SubscriptionRecord | None: ...

    @abc.abstractmethod
    async def update_subscription(
        self, subscription_id: int, subscription: NewSubscription
    ) -> SubscriptionRecord | None:
        """Replace the subscription's fields; None if there is no such subscription."""

    @abc.abstractmethod
    async def delete_subscription(self, subscription_id: int) -> bool: ...

    @abc.abstractmethod
    async def delete_subscriptions(self) -> int: ...

    @abc.abstractmethod
    async def claim_webhook_deliveries(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[WebhookDelivery]:
        """Lease due webhook deliveries (one row per status and subscription)."""

    @abc.abstractmethod
    async def webhook_delivered(self, delivery_id: int, subscription_id: int | None) -> None:
        """The push succeeded: drop the delivery, reset the subscription's failure count.

        ``subscription_id`` None drops a delivery that the subscription's filter excludes."""

    @abc.abstractmethod
    async def webhook_failed(
        self, delivery_id: int, subscription_id: int, error: str, retry_at: datetime | None
    ) -> None:
        """The push failed: count it, and retry at ``retry_at`` (None: give up)."""
