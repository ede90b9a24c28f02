"""The DPI channel: Next Move ``digital`` and ``print`` messages to the DPI access point.

Sending: plan the shipment from the message and the receiver's service record, seal the
package to the provider's certificate on disk, sign the business message (with the package's
fingerprint and the Maskinporten token) as a JWS, and upload both in one multipart request.

Statuses and receipts both come in through :meth:`DPIChannel.poll_statuses`, because both are
statuses of conversations this integration point sent, and a receipt names only its
conversation: the access point's status list per message (until the receiver's access point has
it), then the receipts in this integration point's ``kanal``, matched to the conversations the
core passes in. A receipt is marked read at the start of the *next* poll, once the core has
stored what the previous poll returned, so that a crash never loses one; a receipt seen twice
maps to a status the conversation already has and is dropped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
from cryptography import x509
from ipunkt.package import jws
from ipunkt.package.errors import CertificateProblem
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import (
    Channel,
    ChannelContext,
    ChannelError,
    ChannelHealth,
    ConfigurationError,
    OutgoingMessage,
    PermanentError,
    PollableConversation,
    ReceiptStatus,
    SendResult,
    StatusUpdate,
    TransientError,
)

from ipunkt_dpi.client import SCOPE, AccessPointClient
from ipunkt_dpi.config import DPIConfig
from ipunkt_dpi.dokumentpakke import sealed
from ipunkt_dpi.receipts import ACCESS_POINT_STATUSES, ReceiptRefused, open_receipt
from ipunkt_dpi.shipment import plan

SERVICE = "DPI"
FINAL = frozenset({ReceiptStatus.LEST, ReceiptStatus.FEIL, ReceiptStatus.LEVETID_UTLOPT})
PAST_ACCESS_POINT = frozenset({ReceiptStatus.MOTTATT, ReceiptStatus.LEVERT}) | FINAL
"""Once a conversation has one of these, its access point statuses have nothing more to say
(the original stops polling them at MOTTATT or LEVERT)."""


class _Statuses:
    """The statuses a poll found, each at most once per conversation, in order."""

    def __init__(self, conversations: Sequence[PollableConversation]) -> None:
        self._known = {c.message_id: set(c.statuses) for c in conversations}
        self.updates: list[StatusUpdate] = []

    def has_any(
        self, conversation: PollableConversation, statuses: frozenset[ReceiptStatus]
    ) -> bool:
        return bool(self._known[conversation.message_id] & statuses)

    def add(self, update: StatusUpdate) -> None:
        known = self._known[update.message_id]
        if update.status not in known:
            known.add(update.status)
            self.updates.append(update)


class DPIChannel(Channel):
    status_poll_interval = 10.0

    def __init__(
        self, context: ChannelContext, *, trace_configs: Sequence[aiohttp.TraceConfig] = ()
    ) -> None:
        """``trace_configs`` observe the requests to the access point (metrics, tests)."""
        super().__init__(context)
        if not isinstance(context.config, DPIConfig):
            raise ConfigurationError("the DPI channel needs its [channels.dpi] config")
        self.config: DPIConfig = context.config
        self.status_poll_interval = self.config.receipt_poll_interval  # type: ignore[misc]
        self.log = context.log.bind(channel=SERVICE)
        self.client = AccessPointClient(
            self.config.access_point_url,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            trace_configs=trace_configs,
        )
        self._trust: TrustStore | None = None
        self._print_provider: dict[str, str] | None = None
        self._unacknowledged: list[str] = []
        self._refused: set[str] = set()
        self._unmatched: dict[str, float] = {}
        self._problem: str | None = None

    # --- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        if not isinstance(self.context.key, OrganisationKey):
            raise ConfigurationError(
                "DPI signs business messages and packages with the organisation's key: configure it"
            )
        if self.context.tokens is None:
            raise ConfigurationError("DPI needs Maskinporten tokens: configure Maskinporten")
        self.trust()
        self._print_provider = self._configured_print_provider()
        await self.client.start()

    async def stop(self) -> None:
        await self.client.close()

    async def health(self) -> ChannelHealth:
        if self._problem is not None:
            return ChannelHealth(ok=False, detail=self._problem)
        return ChannelHealth(ok=True, detail=f"access point {self.config.access_point_url}")

    def trust(self) -> TrustStore:
        """The anchors that receipt signers' certificates must chain to (from the config)."""
        if self._trust is None:
            if not self.config.trust_anchors:
                raise ConfigurationError(
                    "channels.dpi.trust_anchors is empty: receipts could not be verified; give "
                    "the PEM files of the CAs that issue the providers' certificates"
                )
            try:
                self._trust = TrustStore.load(*self.config.trust_anchors)
            except CertificateProblem as exc:
                raise ConfigurationError(f"channels.dpi.trust_anchors: {exc}") from exc
        return self._trust

    def _configured_print_provider(self) -> dict[str, str] | None:
        """The record of the configured print provider, for print without a receiver."""
        path = self.config.print_certificate
        if self.config.print_provider is None or path is None:
            return None
        try:
            text = path.read_text(encoding="ascii")
            x509.load_pem_x509_certificate(text.encode("ascii"))
        except (OSError, UnicodeError, ValueError) as exc:
            raise ConfigurationError(f"channels.dpi.print_certificate: {path}: {exc}") from exc
        return {"orgnrPostkasse": self.config.print_provider, "pemCertificate": text}

    async def _token(self, organisation: str | None = None) -> str:
        """A token for ``organisation`` (``consumer_org``, sending on its behalf) or our own."""
        tokens = self.context.tokens
        if tokens is None:
            raise ConfigurationError("DPI needs Maskinporten tokens: configure Maskinporten")
        try:
            if organisation is None:
                return await tokens.token([SCOPE])
            return await tokens.token([SCOPE], organisation=organisation)
        except ChannelError:
            raise
        except Exception as exc:
            raise TransientError(f"DPI: no Maskinporten token: {exc}") from exc

    # --- sending -----------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        log = self.log.bind(message_id=message.message_id, conversation_id=message.conversation_id)
        key = self.context.key
        if not isinstance(key, OrganisationKey):
            raise ConfigurationError("DPI needs the organisation's key")
        shipment = plan(
            message,
            organisation=self.context.organisation,
            language=self.config.language,
            size_limit=self.config.upload_size_limit,
            print_provider=self._print_provider,
        )
        async with sealed(shipment, key, spool=self.config.spool_directory) as package:
            token = await self._token(shipment.consumer)
            document = shipment.business_document(package.sha256, token)
            signed = jws.sign(document.wire(), key)
            await self.client.send(
                jwt=signed, package=package.path, kanal=self.config.kanal, token=token
            )
        log.info(
            "DPI message handed to the access point",
            type=shipment.kind,
            provider=shipment.provider,
            package_bytes=package.size,
            kanal=self.config.kanal,
        )
        return SendResult(statuses=(ReceiptStatus.SENDT,), external_reference=message.message_id)

    # --- statuses and receipts ---------------------------------------------------------

    async def poll_statuses(
        self, conversations: Sequence[PollableConversation]
    ) -> Sequence[StatusUpdate]:
        """Access point statuses of the given conversations, then the receipts in our kanal.

        Receipts name only their conversation, so a receipt for a conversation not in
        ``conversations`` stays unread until a poll that has it (the core polls in batches of
        due conversations); after ``unmatched_receipt_hours`` it is marked read and dropped
        with a warning, as the original drops receipts of unknown conversations. Conversations
        at LEVERT must stay pollable: LEST and returned mail come after LEVERT.
        """
        problems: list[str] = []
        token = await self._token()
        await self._acknowledge(token, problems)
        found = _Statuses(conversations)
        for conversation in conversations:
            if found.has_any(conversation, PAST_ACCESS_POINT):
                continue
            reference = conversation.external_reference or conversation.message_id
            try:
                entries = await self.client.statuses(reference, token=token)
            except ChannelError as exc:
                problems.append(str(exc))
                self.log.warning(
                    "DPI statuses not fetched", message_id=conversation.message_id, error=str(exc)
                )
                continue
            for entry in entries:
                mapped = ACCESS_POINT_STATUSES.get(entry.status)
                if mapped is None:
                    continue
                status, text = mapped
                description = f"{text}: {entry.beskrivelse}" if entry.beskrivelse else text
                found.add(
                    StatusUpdate(
                        conversation.message_id,
                        status,
                        description,
                        stop_polling=status is ReceiptStatus.FEIL,
                    )
                )

        await self._receipts(conversations, token, found, problems)
        self._problem = "; ".join(problems) or None
        return found.updates

    async def _receipts(
        self,
        conversations: Sequence[PollableConversation],
        token: str,
        found: _Statuses,
        problems: list[str],
    ) -> None:
        by_conversation = {c.conversation_id: c for c in conversations}
        seen: set[str] = set()
        queries: list[str | None] = list(self.config.avsenderidentifikatorer)
        if self.config.poll_without_avsenderidentifikator:
            queries.insert(0, None)
        trust = self.trust()
        for avsenderidentifikator in queries:
            try:
                items = await self.client.inbox(
                    token=token,
                    kanal=self.config.kanal,
                    avsenderidentifikator=avsenderidentifikator,
                    page_size=self.config.page_size,
                )
            except ChannelError as exc:
                problems.append(str(exc))
                self.log.warning("DPI receipts not fetched", error=str(exc))
                continue
            for item in items:
                try:
                    receipt = open_receipt(item.forretningsmelding, trust)
                except ReceiptRefused as exc:
                    fingerprint = hashlib.sha256(item.forretningsmelding.encode()).hexdigest()
                    if fingerprint not in self._refused:
                        self._refused.add(fingerprint)
                        self.log.error(
                            "DPI receipt refused and left unread",
                            reason=str(exc),
                            receipt_sha256=fingerprint,
                        )
                    continue
                if receipt.message_id in seen:
                    continue
                seen.add(receipt.message_id)
                conversation = by_conversation.get(receipt.conversation_id)
                log = self.log.bind(
                    conversation_id=receipt.conversation_id,
                    receipt=receipt.kind,
                    receipt_id=receipt.message_id,
                )
                if conversation is None:
                    self._unmatched_receipt(receipt.message_id, log)
                    continue
                self._unmatched.pop(receipt.message_id, None)
                self._unacknowledged.append(receipt.message_id)
                log.info(
                    "DPI receipt", status=receipt.status.value, message_id=conversation.message_id
                )
                if receipt.status is ReceiptStatus.LEVERT:
                    found.add(StatusUpdate(conversation.message_id, ReceiptStatus.MOTTATT))
                found.add(
                    StatusUpdate(
                        conversation.message_id,
                        receipt.status,
                        receipt.description,
                        raw_receipt=receipt.raw,
                        stop_polling=receipt.status in FINAL,
                    )
                )

    def _unmatched_receipt(self, receipt_id: str, log: Any) -> None:
        """A receipt for a conversation not in this poll waits unread for the poll that has
        its conversation; one no poll claims for ``unmatched_receipt_hours`` is dropped."""
        now = time.monotonic()
        first_seen = self._unmatched.setdefault(receipt_id, now)
        if now - first_seen >= self.config.unmatched_receipt_hours * 3600:
            del self._unmatched[receipt_id]
            self._unacknowledged.append(receipt_id)
            log.warning("DPI receipt for a conversation no poll claimed; marked read and dropped")

    async def _acknowledge(self, token: str, problems: list[str]) -> None:
        """Mark read the receipts the previous poll returned (the core has stored them)."""
        pending, self._unacknowledged = self._unacknowledged, []
        for index, receipt_id in enumerate(pending):
            try:
                await self.client.mark_read(receipt_id, token=token)
            except TransientError as exc:
                self._unacknowledged.extend(pending[index:])
                problems.append(str(exc))
                self.log.warning("DPI receipts not marked read yet", error=str(exc))
                return
            except PermanentError as exc:
                problems.append(str(exc))
                self.log.error(
                    "DPI receipt cannot be marked read", receipt_id=receipt_id, error=str(exc)
                )
