"""The plugin contract: everything a channel plugin may import from the core.

A plugin is a Python distribution with an entry point in the group ``ipunkt``::

    [project.entry-points.ipunkt]
    dpo = "ipunkt_dpo"

The module it names implements hooks marked with :data:`hookimpl`. Hooks are *registration*
hooks: the plugin hands the core objects (a :class:`ChannelInfo`, a lookup source) and the
asyncio core awaits their ``async`` methods. A plugin imports only this module and the sealing
toolkit (:mod:`ipunkt.package`), never the store, the delivery engine or the HTTP app.

The plugin declares the core versions it supports as the version range of its ``ipunkt``
requirement (``dependencies = ["ipunkt>=0.1,<0.2"]``); the core refuses a plugin whose range
excludes it. Every hook is documented in ``docs/plugin-hooks.md``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pluggy
import structlog
from pydantic import BaseModel, ConfigDict

from ipunkt.lookup.records import IdentifierResource as IdentifierResource
from ipunkt.lookup.records import InfoRecord as InfoRecord
from ipunkt.lookup.records import PostAddress as PostAddress
from ipunkt.lookup.records import Service as Service
from ipunkt.lookup.records import ServiceRecord as ServiceRecord
from ipunkt.lookup.source import AddressLookupError as AddressLookupError
from ipunkt.lookup.source import LookupNotFound as LookupNotFound
from ipunkt.lookup.source import LookupQuery as LookupQuery
from ipunkt.lookup.source import LookupRejected as LookupRejected
from ipunkt.lookup.source import LookupSource as LookupSource
from ipunkt.lookup.source import LookupSourceConfig as LookupSourceConfig
from ipunkt.lookup.source import LookupSourceContext as LookupSourceContext
from ipunkt.lookup.source import LookupSourceInfo as LookupSourceInfo
from ipunkt.lookup.source import LookupUnavailable as LookupUnavailable
from ipunkt.upload_deadline import UploadDeadline as UploadDeadline
from ipunkt.upload_deadline import upload_deadline as upload_deadline

PROJECT = "ipunkt"
"""The entry-point group and the pluggy project name."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's hook implementations: ``@hookimpl def register_channels(register): ...``."""


class ReceiptStatus(enum.StrEnum):
    """The statuses of a conversation, exactly as the integrasjonspunkt names them."""

    OPPRETTET = "OPPRETTET"
    SENDT = "SENDT"
    MOTTATT = "MOTTATT"
    LEVERT = "LEVERT"
    LEST = "LEST"
    FEIL = "FEIL"
    ANNET = "ANNET"
    INNKOMMENDE_MOTTATT = "INNKOMMENDE_MOTTATT"
    INNKOMMENDE_LEVERT = "INNKOMMENDE_LEVERT"
    LEVETID_UTLOPT = "LEVETID_UTLOPT"


class ChannelConfig(BaseModel):
    """The base of every channel's config section (``[channels.<service>]`` in the TOML file).

    A plugin subclasses it and adds typed fields with descriptions and defaults; mark secrets
    with :class:`pydantic.SecretStr`, so that they are masked in logs and listings and may be
    given as ``{env = "VAR"}`` or ``{file = "/path"}`` in the config file. Unknown keys are
    errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool = False
    """Whether ipunkt routes messages to this channel and runs its pollers."""


@dataclass(frozen=True)
class Attachment:
    """One file of an outgoing message; ``open()`` streams its (decrypted) bytes."""

    filename: str
    mime_type: str
    size: int
    open: Callable[[], AsyncIterator[bytes]]
    title: str | None = None
    primary: bool = False


@dataclass(frozen=True)
class OutgoingMessage:
    """A message the delivery engine hands a channel's :meth:`Channel.send`."""

    message_id: str
    conversation_id: str
    sender: str
    receiver: str
    process: str
    document_type: str
    """``documentIdentification.standard``, e.g. ``urn:no:difi:arkivmelding:xsd::arkivmelding``."""
    sbd: Mapping[str, Any]
    expires_at: datetime
    attachments: Sequence[Attachment] = ()
    service_record: Mapping[str, Any] | None = None
    """The receiver's Service Registry record, in the registry's JSON shape."""
    attempt: int = 1
    """Which try this is (1 the first): from 2 on, an earlier try may have reached the remote
    side before a crash, so look for it there (by the channel's idempotency key) first."""


@dataclass(frozen=True)
class SendResult:
    """What a successful send achieved.

    ``statuses`` are registered on the conversation in order (SvarUt, for example, guarantees
    delivery, so DPF reports SENDT and LEVERT at once); ``external_reference`` is the remote
    id (Altinn correspondence id, SvarUt forsendelse id) kept for status polling.
    """

    statuses: tuple[ReceiptStatus, ...] = (ReceiptStatus.SENDT,)
    external_reference: str | None = None


@dataclass(frozen=True)
class ChannelHealth:
    """A channel's own view of its health, shown on ``/manage/health``."""

    ok: bool
    detail: str = ""


class ChannelError(Exception):
    """Base of the errors a channel raises; the delivery engine decides what follows."""


class TransientError(ChannelError):
    """Worth retrying: network errors, timeouts, 5xx, 429 (``retry_after`` in seconds)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(ChannelError):
    """Never worth retrying: 4xx, unknown receiver, certificate problems. Becomes FEIL."""


class ConfigurationError(ChannelError):
    """The channel cannot run with the config it was given (raised at start-up)."""


@dataclass(frozen=True)
class IncomingMessage:
    """A message a channel took in: its SBD and, unless it is a receipt, its sealed package.

    ``payload`` streams the package exactly as received (still encrypted to this integration
    point); the core stores it durably before the channel confirms it to the remote side.
    """

    sbd: Mapping[str, Any]
    payload: AsyncIterator[bytes] | None = None


class IncomingSink(Protocol):
    """Where a channel hands incoming messages during :meth:`Channel.poll_incoming`."""

    async def receive(self, message: IncomingMessage) -> bool:
        """Store the message durably; True if it is new, False if its messageId was seen."""
        ...


@dataclass(frozen=True)
class PollableConversation:
    """An outgoing conversation whose status a channel fetches from its remote service."""

    message_id: str
    conversation_id: str
    receiver: str
    external_reference: str | None
    statuses: tuple[ReceiptStatus, ...]
    document_type: str = ""
    """The message's ``documentIdentification.standard`` (a URN ending in ``::<type>``)."""


@dataclass(frozen=True)
class StatusUpdate:
    """A status a channel learned for one of its conversations."""

    message_id: str
    status: ReceiptStatus
    description: str | None = None
    raw_receipt: str | None = None
    stop_polling: bool = False
    """Set when the remote side will never say more (the Altinn correspondence is gone)."""
    incoming: IncomingMessage | None = None
    """A message to store with the status, e.g. the ``arkivmelding_kvittering`` that DPV and
    DPF make on LEVERT when configured to, as the original does."""
    conversation_id: str | None = None
    """Names the conversation instead, when ``message_id`` is empty (DPI's receipts)."""
    at: datetime | None = None
    """When the remote side says it happened (a receipt's ``tidspunkt``); default: now."""


class TokenProvider(Protocol):
    """Bearer tokens for remote services (filled by the core's Maskinporten client)."""

    async def token(
        self, scopes: Sequence[str], *, altinn: bool = False, organisation: str | None = None
    ) -> str:
        """A Maskinporten access token for ``scopes``; exchanged for an Altinn token if asked.

        ``organisation`` acts for another organisation (a reportee) instead of our own. Tokens
        are cached until shortly before they expire, so call this before each request. Raises
        :class:`TransientError` (Maskinporten unreachable) or :class:`PermanentError`.
        """
        ...


ARKIVMELDING_STANDARD = "urn:no:difi:arkivmelding:xsd::arkivmelding"


def arkivmelding_receipt(
    conversation: PollableConversation,
    organisation: str,
    now: datetime,
    *,
    receipt_id: str,
    lifetime: timedelta = timedelta(hours=24),
) -> IncomingMessage:
    """The OK ``arkivmelding_kvittering`` the original makes for channels with no application
    receipts (DPV on LEVERT, DPF on LEST): from the conversation's receiver to
    ``organisation``, for its own fagsystem. Hand it over as :attr:`StatusUpdate.incoming`.

    ``receipt_id`` must be the same each time for one conversation, so that the core drops a
    receipt made twice as a duplicate.
    """
    kind = "arkivmelding_kvittering"
    sbd = {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [_partner(conversation.receiver)],
            "receiver": [_partner(organisation)],
            "documentIdentification": {
                "standard": f"urn:no:difi:arkivmelding:xsd::{kind}",
                "typeVersion": "2.0",
                "instanceIdentifier": receipt_id,
                "type": kind,
                "creationDateAndTime": (now - timedelta(seconds=5)).isoformat(),
            },
            "businessScope": {"scope": [{
                "type": "ConversationId",
                "instanceIdentifier": conversation.conversation_id,
                "identifier": "urn:no:difi:profile:arkivmelding:response:ver1.0",
                "scopeInformation": [{"expectedResponseDateTime": (now + lifetime).isoformat()}],
            }]},
        },
        kind: {"receiptType": "OK", "relatedToMessageId": conversation.message_id,
               "messages": []},
    }
    return IncomingMessage(sbd=sbd)


def _partner(identifier: str) -> dict[str, dict[str, str]]:
    """An SBD partner: a bare organisation number gets its ``0192:`` prefix."""
    value = identifier.strip()
    if value.isdigit() and len(value) == 9:
        value = f"0192:{value}"
    return {"identifier": {"authority": "iso6523-actorid-upis", "value": value}}


@dataclass
class ChannelContext:
    """What the core gives a channel when it creates it."""

    organisation: str
    """The integration point's own organisation number (9 digits)."""
    config: ChannelConfig
    """The channel's validated config section, an instance of its ``config_schema``."""
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: structlog.get_logger())
    key: Any = None
    """The organisation's :class:`ipunkt.package.keys.OrganisationKey` (private key and
    certificate chain) for signing and decrypting, or None when none is configured."""
    tokens: TokenProvider | None = None
    """Maskinporten (and Altinn) tokens, or None when Maskinporten is not configured."""
    organisation_name: str = ""
    """The organisation's name from the config (``[organisation] name``), may be empty."""


class Channel(abc.ABC):
    """A running message channel. Only :meth:`send` is required.

    A channel that receives messages sets :attr:`incoming_poll_interval` and implements
    :meth:`poll_incoming`; one whose statuses must be fetched sets
    :attr:`status_poll_interval` and implements :meth:`poll_statuses`; one that answers the
    senders of incoming messages with statuses sets :attr:`replies` and implements
    :meth:`send_reply`.
    """

    incoming_poll_interval: ClassVar[float | None] = None
    status_poll_interval: ClassVar[float | None] = None
    replies: ClassVar[frozenset[ReceiptStatus]] = frozenset()
    """The statuses whose reply :meth:`send_reply` sends to the senders of incoming messages
    (DPO: MOTTATT and LEVERT, as the original)."""

    def __init__(self, context: ChannelContext) -> None:
        self.context = context

    @abc.abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver one message; raise :class:`TransientError` or :class:`PermanentError`."""

    async def poll_incoming(self, sink: IncomingSink) -> None:
        """Fetch new incoming messages, hand each to ``sink``, then confirm it remotely.

        Called every :attr:`incoming_poll_interval` seconds when that is set. Confirm a
        message to the remote side only after ``sink.receive`` returned: it is durable then.
        """

    async def poll_statuses(
        self, conversations: Sequence[PollableConversation]
    ) -> Sequence[StatusUpdate]:
        """Fetch the statuses of these conversations; called when status polling is set.

        Called every :attr:`status_poll_interval` seconds, with the pollable conversations
        that are due (possibly none). An update may also name any other outgoing conversation
        of this channel (a receipt that arrives on its own, as DPI's do).
        """
        return ()

    async def send_reply(self, message: Mapping[str, Any], status: ReceiptStatus) -> None:
        """Tell the sender of this incoming message (its SBD) that it reached ``status``.

        Called only for the statuses in :attr:`replies`: MOTTATT once the message is stored,
        LEVERT once the fagsystem took it. The core queues each reply durably with the event
        (in the same transaction) and calls this until it returns, so a reply may come twice
        after a crash. Raise :class:`TransientError` to be called again later, or
        :class:`PermanentError` to give the reply up.
        """

    async def start(self) -> None:
        """Open connections and sessions; called once before the first send or poll."""

    async def stop(self) -> None:
        """Release what :meth:`start` opened; called once at shutdown."""

    async def health(self) -> ChannelHealth:
        """Report whether the remote service is usable."""
        return ChannelHealth(ok=True)


ChannelFactory = Callable[[ChannelContext], Channel]


@dataclass(frozen=True)
class ChannelInfo:
    """What a plugin registers: a channel's declaration and how to make it.

    ``factory`` is ``None`` while a plugin has no transport; the core lists such a channel
    as ``transport: not implemented`` and refuses to route to it.
    """

    service: str
    """The service identifier: DPO, DPV, DPF, DPI or a new one (2-10 capitals and digits)."""
    name: str
    message_types: frozenset[str]
    """The business-message types (``arkivmelding``, ``digital``...) the channel carries."""
    max_size: int
    """The largest total size of one message's files, in bytes."""
    config_schema: type[ChannelConfig] = ChannelConfig
    factory: ChannelFactory | None = None
    default_ttl: timedelta = timedelta(hours=24)
    """The lifetime given to messages that do not set ``expectedResponseDateTime``."""

    @property
    def has_transport(self) -> bool:
        return self.factory is not None


class TokenVerifier(Protocol):
    """Checks bearer tokens that the sandbox's fake Maskinporten (or Altinn) issued."""

    def verify_access_token(self, token: str, *, scope: str | None = None) -> dict[str, Any]:
        """The token's claims; raises if the fake did not issue it or it lacks ``scope``."""
        ...

    def verify_altinn_token(self, token: str, *, scope: str | None = None) -> dict[str, Any]:
        """The same for an Altinn token from the fake's token exchange."""
        ...


@dataclass(frozen=True)
class SandboxParty:
    """An organisation of the sandbox with a throwaway key and certificate."""

    number: str
    name: str
    key_file: Path
    """PEM: the private key, then the certificate and its chain."""
    certificate_pem: str
    """The organisation's certificate alone, PEM (for registry records)."""


@dataclass(frozen=True)
class SandboxEnvironment:
    """What ``ipunkt sandbox`` gives each plugin's sandbox part."""

    folder: Path
    """A folder of the sandbox the part may write into."""
    organisations: tuple[SandboxParty, ...]
    """The organisations whose integration points the sandbox runs (A, B)."""
    trust_anchor: Path
    """The sandbox CA's certificate (PEM): every sandbox certificate chains to it."""
    tokens: TokenVerifier
    """The fake Maskinporten, for fakes that check bearer tokens."""
    specs: Path | None
    """The published specs (``IPUNKT_SPECS``), for fakes that check requests; may be None."""
    serve: Callable[[str, Any], Awaitable[str]]
    """``await serve(name, app)`` runs an ``aiohttp.web.Application``; returns its base URL."""
    issue: Callable[[str, str], SandboxParty]
    """``issue(number, name)`` makes a key and certificate for another party (a mailbox
    provider, SvarUt, a municipality)."""


@dataclass(frozen=True)
class SandboxChannel:
    """What a plugin's sandbox part set up: its fakes run, and how the sandbox uses them."""

    service: str
    channel_configs: Mapping[str, Mapping[str, Any]]
    """Each organisation's ``[channels.<service>]`` table, by organisation number."""
    receivers: Sequence[Mapping[str, Any]] = ()
    """``[[receiver]]`` tables for the sandbox's registry (records for A and B included)."""
    scopes: Sequence[str] = ()
    """Maskinporten scopes the organisations' clients need for this channel."""
    samples: Sequence[Mapping[str, str]] = ()
    """Sample receivers to print: ``{"identifier", "name", "note"}``."""
    fakes: Mapping[str, str] = field(default_factory=dict)
    """The fakes' base URLs by name, written to the sandbox's state file."""
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Further config tables merged into each organisation's config, e.g. ``{"lookup":
    {"allow_synthetic_identifiers": True}}`` for sample citizens with synthetic numbers. Two
    parts that give one key different values are refused."""


@dataclass(frozen=True)
class SandboxPart:
    """A plugin's part of ``ipunkt sandbox``: starts its fakes, says how to reach them."""

    service: str
    setup: Callable[[SandboxEnvironment], Awaitable[SandboxChannel]]


class Hooks:
    """The hook specifications. Each is a registration hook called once at start-up."""

    @hookspec
    def register_channels(self, register: Callable[[ChannelInfo], None]) -> None:
        """Register the message channels this plugin provides.

        Call ``register(ChannelInfo(...))`` once per channel. A service identifier already
        registered by another plugin makes this plugin fail to load.
        """

    @hookspec
    def register_lookup_sources(self, register: Callable[[LookupSourceInfo], None]) -> None:
        """Register the sources of receivers' addresses this plugin provides.

        Call ``register(LookupSourceInfo(...))`` once per source. The operator lists the
        sources to ask, in order, in ``lookup.sources``; each source's settings are the table
        ``[lookup.<name>]``, checked by its ``config_schema``. A name already registered by
        another plugin makes this plugin fail to load. The core registers its own sources,
        ``local`` (a registry file) and ``service-registry``, through this hook too.
        """

    @hookspec
    def register_sandbox(self, register: Callable[[SandboxPart], None]) -> None:
        """Register this plugin's part of ``ipunkt sandbox``: the fakes of its remote services.

        Call ``register(SandboxPart(service, setup))``. The sandbox awaits
        ``setup(environment)`` once, after its own fakes (Maskinporten, the Service Registry)
        run; the part starts its fakes with ``environment.serve`` and answers a
        :class:`SandboxChannel`: each organisation's channel config, registry receivers (at
        least one sample receiver) and the Maskinporten scopes it needs.
        """
