"""The DPO channel: SBDs to and from the Altinn 3 broker, as the integrasjonspunkt does it.

Sending: the SBD's sender picks the Altinn system user (our own, or a reportee's; a part
identifier ``0192:<own>:<other>`` sends as ``<other>``); ``POST /filetransfer`` with the
original's initialize body; then ``sbd.zip`` streamed to ``/upload`` while its package is
sealed. The transfer's ``sendersFileTransferReference`` is derived from the message, so a send
repeated after a crash or an unanswered request first looks for the transfer its earlier
attempt made: one already uploaded counts as sent, one still open gets the upload, and only
otherwise is a new transfer made.

Receiving: for our organisation and each reportee, list the Published transfers whose
recipient status is still Initialized, keep those of our message channel, oldest first; for
each, stream the download into the core's sink (which stores it durably) and only then confirm
the download. On the way the file is held to its limits (:mod:`ipunkt_dpo.broker_file`) and its
package is opened and verified as it streams to the store (:class:`PackageScreen`): decrypted
with our key, unpacked within limits, its XML checked and its signature verified. A file that
is broken or hostile is discarded, nothing of it kept, with the reason in the log; when its SBD
names a sender that the broker confirms sent it, that sender is first answered with a
``status`` FEIL carrying the reason, and the download is confirmed only once that answer went
out (a reply that fails for now leaves the file to be taken, and refused, again). The core
queues a ``status`` MOTTATT reply when it stores a message and LEVERT when its client took it,
durably, and hands each to :meth:`DPOChannel.send_reply`.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import aiohttp
from ipunkt.package.asic import Limits
from ipunkt.package.errors import CertificateProblem, PackageError
from ipunkt.package.screen import PackageScreen
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import (
    Attachment,
    Channel,
    ChannelContext,
    ChannelError,
    ChannelHealth,
    ConfigurationError,
    IncomingMessage,
    IncomingSink,
    OutgoingMessage,
    PermanentError,
    ReceiptStatus,
    SendResult,
    TransientError,
)

from ipunkt_dpo import message_channel, sbd_header, status_messages
from ipunkt_dpo.broker_file import (
    FILE_NAME,
    BrokenFile,
    FileLimits,
    IncomingFile,
    write_broker_file,
)
from ipunkt_dpo.client import (
    BrokerClient,
    BrokerRefused,
    BrokerUnavailable,
    FileTransferInitialize,
    Scope,
)
from ipunkt_dpo.config import DPOConfig
from ipunkt_dpo.sbd_header import Party, UnusableSbd
from ipunkt_dpo.sealing import main_document, receiver_certificate, sealer

DONE_STATUSES = frozenset({"UploadProcessing", "Published", "AllConfirmedDownloaded"})
"""An earlier transfer in one of these has its file: the message was sent."""
OPEN_STATUSES = frozenset({"Initialized", "UploadStarted"})
"""An earlier transfer in one of these still takes an upload."""
CREATION_SKEW = timedelta(minutes=15)
"""How much earlier than the SBD's creation time a resend looks for its transfer."""
TAKE_CONCURRENCY = 16
"""Files taken from the broker at once during one poll."""
LIST_LIMIT = 100
"""The most ids the broker lists at once (the newest)."""
SEARCH_PAGES = 10
"""Pages of 100 transfers a resend looks through before it gives up and sends anew."""
MAX_ROUNDS = 50
"""Full lists (of 100 new files) one poll works through before it leaves the rest for later."""
SEEN_LIMIT = 100_000
"""Transfers whose identity a search remembers (the oldest are forgotten first)."""


@dataclass(frozen=True)
class _Identity:
    """What never changes in a transfer, and tells which send made it."""

    reference: str | None
    sender: str | None
    created: datetime | None


PACKAGE_OPTIONAL = frozenset({status_messages.STATUS_TYPE, "avtalt"})
"""Message types that may come without ``asic.zip`` (besides every ``*_kvittering``)."""
MAX_REASON = 1000
"""The most characters of a refusal's reason that a FEIL reply carries."""


@dataclass(frozen=True)
class _Earlier:
    transfer_id: str
    sent: bool


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def _creation_time(sbd: Mapping[str, Any]) -> datetime | None:
    identification = sbd_header.header(sbd).get("documentIdentification")
    if not isinstance(identification, Mapping):
        return None
    return _parse_time(identification.get("creationDateAndTime"))


class DPOChannel(Channel):
    """The ``DPO`` channel over the Altinn 3 broker."""

    incoming_poll_interval: ClassVar[float | None] = 15.0
    replies: ClassVar[frozenset[ReceiptStatus]] = frozenset(
        {ReceiptStatus.MOTTATT, ReceiptStatus.LEVERT}
    )

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        if not isinstance(context.config, DPOConfig):
            raise ConfigurationError("the DPO channel needs its DPOConfig section")
        self.config: DPOConfig = context.config
        # The configured interval; the core reads it from the channel it created.
        self.incoming_poll_interval = self.config.poll_interval  # type: ignore[misc]
        self.log = context.log.bind(channel="DPO")
        self._session: aiohttp.ClientSession | None = None
        self._client: BrokerClient | None = None
        self._started: dict[str, str] = {}
        """reference -> transfer id, for sends whose transfer exists but whose upload failed."""
        self._uncertain: set[str] = set()
        """References whose initialize went unanswered: the transfer may exist."""
        self._seen: OrderedDict[str, _Identity] = OrderedDict()
        """Transfers a search for an earlier attempt has looked at, by id."""
        self._untaken: set[tuple[str, str]] = set()
        """(organisation, transfer id) of files whose taking failed; tried at the next poll."""
        self._next_sweep: float | None = None
        """When to look again for downloads started but never confirmed (monotonic clock)."""
        self._last_error: str | None = None
        self._trust: TrustStore | None = None
        self._file_limits = FileLimits(
            max_bytes=self.config.incoming_size_limit, max_ratio=self.config.max_compression_ratio
        )
        self._package_limits = Limits(
            max_entries=self.config.package_max_entries,
            max_total_bytes=self.config.incoming_size_limit,
            max_ratio=self.config.max_compression_ratio,
        )

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def organisations(self) -> list[str]:
        """Whose files this integration point sends and receives: its own and its reportees'."""
        return [self.context.organisation, *self.config.reportees]

    async def start(self) -> None:
        if self.context.tokens is None:
            raise ConfigurationError(
                "DPO needs Maskinporten and the Altinn token exchange: configure [maskinporten]"
            )
        if self.context.key is None:
            raise ConfigurationError("DPO needs the organisation's key to sign its packages")
        if self.config.trust_anchors:
            try:
                self._trust = TrustStore.load(*self.config.trust_anchors)
            except CertificateProblem as exc:
                raise ConfigurationError(f"channels.dpo.trust_anchors: {exc}") from exc
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.config.connect_timeout,
            sock_connect=self.config.connect_timeout,
            sock_read=self.config.request_timeout,
        )
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._client = BrokerClient(self.config.broker_url, self._session, self._token,
                                    stall_timeout=self.config.request_timeout)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._client = None

    async def health(self) -> ChannelHealth:
        if self._client is None:
            return ChannelHealth(ok=False, detail="not started")
        if self._last_error is not None:
            return ChannelHealth(ok=False, detail=f"last broker call failed: {self._last_error}")
        return ChannelHealth(ok=True, detail=self.config.broker_url)

    @property
    def client(self) -> BrokerClient:
        if self._client is None:
            raise ConfigurationError("the DPO channel is used before start()")
        return self._client

    async def _token(self, organisation: str, scope: Scope) -> str:
        """An Altinn token for the organisation's system user (our own or a reportee's)."""
        tokens = self.context.tokens
        assert tokens is not None
        acting = None if organisation == self.context.organisation else organisation
        return await tokens.token([scope.value], altinn=True, organisation=acting)

    def _system_user(self, party: Party) -> str:
        organisation = party.organisation
        if organisation not in self.organisations:
            raise PermanentError(
                f"the sender {party.broker_id} is neither this organisation "
                f"({self.context.organisation}) nor one of its reportees"
            )
        return organisation

    # -- sending ------------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        transfer_id = await self._send_sbd(
            message.sbd,
            message.attachments,
            service_record=message.service_record,
            attempt=message.attempt,
        )
        return SendResult(statuses=(ReceiptStatus.SENDT,), external_reference=transfer_id)

    async def _send_sbd(
        self,
        original: Mapping[str, Any],
        attachments: Sequence[Attachment],
        *,
        service_record: Mapping[str, Any] | None,
        attempt: int,
    ) -> str:
        sbd = copy.deepcopy(dict(original))
        sender_text, receiver_text = sbd_header.sender(sbd), sbd_header.receiver(sbd)
        if not sender_text or not receiver_text:
            raise PermanentError("the SBD names no sender or no receiver")
        try:
            sender, receiver = Party.parse(sender_text).acting, Party.parse(receiver_text).acting
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
        if sender.broker_id != sender_text:
            # As the original: a part identifier is sent as the part itself.
            sbd["standardBusinessDocumentHeader"]["sender"][0]["identifier"]["value"] = (
                sender.broker_id
            )
        organisation = self._system_user(sender)
        documents_size = sum(a.size for a in attachments)
        if documents_size > self.config.upload_size_limit:
            raise PermanentError(
                f"the message's files are {documents_size} bytes; DPO takes at most "
                f"{self.config.upload_size_limit}"
            )
        reference = message_channel.senders_reference(sbd, self.config.message_channel)
        log = self.log.bind(
            message_id=sbd_header.message_id(sbd),
            conversation_id=sbd_header.conversation_id(sbd),
            reference=reference.value,
            sender=sender.broker_id,
            receiver=receiver.broker_id,
        )
        seal_into = None
        if attachments:
            key = self.context.key
            if key is None:
                raise ConfigurationError("DPO needs the organisation's key to sign its packages")
            named = sbd.get(sbd_header.document_type(sbd) or "", {})
            seal_into = await sealer(
                attachments,
                key=key,
                recipient=receiver_certificate(service_record),
                sender=sender.broker_id,
                receiver=receiver.broker_id,
                main=main_document(
                    attachments, named.get("hoveddokument") if isinstance(named, Mapping) else None
                ),
            )
        try:
            earlier = None
            if reference.unique:
                earlier = await self._earlier_transfer(
                    organisation, sender, reference.value, sbd, look=attempt > 1
                )
            if earlier is not None and earlier.sent:
                log.info("dpo: an earlier attempt already sent this", transfer=earlier.transfer_id)
                self._forget(reference.value)
                return earlier.transfer_id
            if earlier is not None:
                transfer_id = earlier.transfer_id
                log.info(
                    "dpo: uploading to the transfer of an earlier attempt", transfer=transfer_id
                )
            else:
                transfer_id = await self._initialize(organisation, sender, receiver, reference)
            self._started[reference.value] = transfer_id
            chunks = write_broker_file(sbd, seal_into, documents_size=documents_size)
            try:
                await self.client.upload(organisation, transfer_id, chunks)
            except PackageError as exc:
                raise PermanentError(f"the package cannot be sealed: {exc}") from exc
            except OSError as exc:
                raise TransientError(f"a document could not be read: {exc}") from exc
        except ChannelError as exc:
            if isinstance(exc, TransientError):
                self._last_error = str(exc)
            else:
                self._forget(reference.value)
            log.warning("dpo: send failed", error=str(exc), kind=type(exc).__name__)
            raise
        self._forget(reference.value)
        self._last_error = None
        log.info("dpo: sent", transfer=transfer_id, documents=len(attachments))
        return transfer_id

    async def _initialize(
        self,
        organisation: str,
        sender: Party,
        receiver: Party,
        reference: message_channel.Reference,
    ) -> str:
        request = FileTransferInitialize(
            file_name=FILE_NAME,
            resource_id=self.config.resource,
            sender=sender.broker_id,
            recipients=[receiver.broker_id],
            senders_file_transfer_reference=reference.value,
        )
        try:
            return await self.client.initialize(organisation, request)
        except TransientError:
            if reference.unique:
                self._uncertain.add(reference.value)
            raise

    def _forget(self, reference: str) -> None:
        self._started.pop(reference, None)
        self._uncertain.discard(reference)

    async def _earlier_transfer(
        self,
        organisation: str,
        sender: Party,
        reference: str,
        sbd: Mapping[str, Any],
        *,
        look: bool,
    ) -> _Earlier | None:
        """The transfer an earlier attempt at this send made, if any and still of use."""
        known = self._started.get(reference)
        if known is not None:
            try:
                overview = await self.client.overview(organisation, Scope.WRITE, known)
            except BrokerRefused as exc:
                if exc.status != 404:
                    raise
                self._started.pop(reference, None)  # purged: start afresh
                return None
            return self._usable([overview])
        if not (look or reference in self._uncertain):
            return None
        created = _creation_time(sbd)
        since = created - CREATION_SKEW if created else None
        until: datetime | None = None
        candidates: list[str] = []
        unseen = 0
        for _ in range(SEARCH_PAGES):
            ids = await self.client.list_transfers(
                organisation, Scope.WRITE, resource=self.config.resource, since=since, until=until
            )
            seen, missed = await self._identities(organisation, ids)
            unseen += missed
            candidates += [
                i for i in ids
                if i in seen and seen[i].reference == reference
                and seen[i].sender == sender.broker_id
            ]
            if len(ids) < LIST_LIMIT:
                break
            times = [t for t in (seen[i].created for i in ids if i in seen) if t]
            if not times:
                break
            until = min(times)
        else:
            self.log.warning("dpo: gave up looking for an earlier transfer", reference=reference)
        overviews = []
        for candidate in candidates:
            try:
                overviews.append(await self.client.overview(organisation, Scope.WRITE, candidate))
            except BrokerRefused:
                continue  # purged meanwhile: of no use
        usable = self._usable(overviews)
        if usable is None and unseen:
            # One of the transfers not looked at may be this send's: sending anew could send
            # it twice, so the send waits for its next try.
            raise BrokerUnavailable(
                f"could not look at {unseen} of the transfers that may be an earlier attempt "
                f"at this send (reference {reference})"
            )
        return usable

    async def _identities(
        self, organisation: str, ids: Sequence[str]
    ) -> tuple[dict[str, _Identity], int]:
        """What makes each transfer the one it is, and how many could not be looked at now.

        Identities are remembered, so that a search tried again looks only at the transfers
        it has not seen. A transfer the broker no longer shows us (purged) is no one's to use.
        """
        gate = asyncio.Semaphore(TAKE_CONCURRENCY)
        missed = 0

        async def look(transfer_id: str) -> None:
            nonlocal missed
            async with gate:
                try:
                    overview = await self.client.overview(organisation, Scope.WRITE, transfer_id)
                except BrokerRefused:
                    return
                except BrokerUnavailable as exc:
                    missed += 1
                    self.log.info("dpo: a transfer could not be looked at", error=str(exc))
                    return
            self._seen[transfer_id] = _Identity(
                overview.get("sendersFileTransferReference"), overview.get("sender"),
                _parse_time(overview.get("created")),
            )
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)

        await asyncio.gather(*(look(i) for i in ids if i not in self._seen))
        return {i: self._seen[i] for i in ids if i in self._seen}, missed

    @staticmethod
    def _usable(overviews: list[dict[str, Any]]) -> _Earlier | None:
        for overview in overviews:
            if overview.get("fileTransferStatus") in DONE_STATUSES:
                return _Earlier(str(overview["fileTransferId"]), sent=True)
        for overview in overviews:
            if overview.get("fileTransferStatus") in OPEN_STATUSES:
                return _Earlier(str(overview["fileTransferId"]), sent=False)
        return None

    # -- receiving ----------------------------------------------------------------------------

    async def poll_incoming(self, sink: IncomingSink) -> None:
        sweep = self._next_sweep is None or time.monotonic() >= self._next_sweep
        failures: list[str] = []
        for organisation in self.organisations:
            try:
                await self._poll_for(organisation, sink, failures, sweep=sweep)
            except ChannelError as exc:
                failures.append(f"{organisation}: {exc}")
                self.log.warning("dpo: polling failed", organisation=organisation, error=str(exc))
        if sweep and not failures:
            self._next_sweep = time.monotonic() + self.config.unconfirmed_sweep_interval
        self._last_error = failures[0] if failures else None
        if failures:
            raise TransientError(
                f"{len(failures)} problem(s) polling the broker; first: {failures[0]}"
            )

    async def _available(self, organisation: str, *, sweep: bool) -> tuple[list[str], bool]:
        """Published files for us: new ones, and (sweeping) ones never confirmed.

        Also says whether the list of new ones was full: the broker lists at most 100.
        """
        ids = await self.client.list_transfers(
            organisation,
            Scope.READ,
            resource=self.config.resource,
            status="Published",
            recipient_status="Initialized",
        )
        full = len(ids) >= LIST_LIMIT
        if sweep:
            ids += await self.client.list_transfers(
                organisation,
                Scope.READ,
                resource=self.config.resource,
                status="Published",
                recipient_status="DownloadStarted",
            )
        ids += [t for o, t in sorted(self._untaken) if o == organisation]
        return list(dict.fromkeys(ids)), full

    async def _poll_for(
        self, organisation: str, sink: IncomingSink, failures: list[str], *, sweep: bool
    ) -> None:
        """Take what is there; while the broker's list comes back full, list again."""
        for round_ in range(MAX_ROUNDS):
            ids, full = await self._available(organisation, sweep=sweep and round_ == 0)
            taken = await self._take_all(organisation, ids, sink, failures)
            if not full or not taken:
                return

    async def _take_all(
        self, organisation: str, ids: list[str], sink: IncomingSink, failures: list[str]
    ) -> int:
        """Take the files among ``ids`` that are ours, oldest first; returns how many.

        Up to ``TAKE_CONCURRENCY`` files are looked at and taken at once: each take is several
        round trips to the broker and a durable store, so one at a time would cap throughput.
        """
        gate = asyncio.Semaphore(TAKE_CONCURRENCY)

        async def overview(transfer_id: str) -> dict[str, Any] | None:
            async with gate:
                try:
                    return await self.client.overview(organisation, Scope.READ, transfer_id)
                except ChannelError as exc:
                    failures.append(f"{transfer_id}: {exc}")
                    if isinstance(exc, PermanentError):
                        self._untaken.discard((organisation, transfer_id))
                    return None

        overviews = [o for o in await asyncio.gather(*map(overview, ids)) if o is not None]
        me = f"0192:{organisation}"
        ours = [
            o
            for o in overviews
            if o.get("fileTransferStatus") == "Published"
            and any(
                r.get("recipient") == me
                and r.get("currentRecipientFileTransferStatusCode") != "DownloadConfirmed"
                for r in o.get("recipients") or ()
            )
            and message_channel.accepts(
                o.get("sendersFileTransferReference"), self.config.message_channel
            )
        ]
        ours.sort(key=lambda o: str(o.get("created") or ""))
        taking = [str(o.get("fileTransferId")) for o in ours]
        senders = {str(o.get("fileTransferId")): str(o.get("sender") or "") for o in ours}
        # What is no longer ours to take (another instance took it, or it is gone) is dropped.
        self._untaken = {(o, t) for o, t in self._untaken if o != organisation or t in taking}

        turns = [asyncio.Event() for _ in range(len(taking) + 1)]
        turns[0].set()

        async def take(index: int, transfer_id: str) -> bool:
            async with gate:
                try:
                    await self._take(organisation, transfer_id, senders[transfer_id], sink,
                                     (turns[index], turns[index + 1]))
                except Exception as exc:  # one file's trouble must not stop the others
                    self._untaken.add((organisation, transfer_id))
                    failures.append(f"{transfer_id}: {exc}")
                    self.log.warning(
                        "dpo: could not take a file",
                        file_transfer_id=transfer_id,
                        error=str(exc),
                        exc_info=not isinstance(exc, ChannelError),
                    )
                    return False
                self._untaken.discard((organisation, transfer_id))
                return True

        return sum(await asyncio.gather(*(take(i, t) for i, t in enumerate(taking))))

    async def _take(
        self,
        organisation: str,
        transfer_id: str,
        sender: str,
        sink: IncomingSink,
        turn: tuple[asyncio.Event, asyncio.Event],
    ) -> None:
        """Download, store and confirm one file that the broker says ``sender`` sent; ``turn``
        (mine, the next's) keeps the stores in the order the files were published, while
        downloads and replies overlap."""
        mine, following = turn
        try:
            await self._take_in_turn(organisation, transfer_id, sender, sink, turn)
        finally:
            await mine.wait()
            following.set()

    async def _take_in_turn(
        self,
        organisation: str,
        transfer_id: str,
        sender: str,
        sink: IncomingSink,
        turn: tuple[asyncio.Event, asyncio.Event],
    ) -> None:
        mine, following = turn
        log = self.log.bind(file_transfer_id=transfer_id, organisation=organisation)
        stored: dict[str, Any] | None = None
        refused: tuple[dict[str, Any] | None, str] | None = None
        new = False
        async with (
            self.client.download(organisation, transfer_id) as chunks,
            IncomingFile(chunks, limits=self._file_limits) as incoming,
        ):
            try:
                sbd, payload = await incoming.open()
                sbd_header.check_incoming(sbd)
                _check_sender(sbd, sender)
                log = log.bind(
                    message_id=sbd_header.message_id(sbd),
                    conversation_id=sbd_header.conversation_id(sbd),
                    document_type=sbd_header.document_type(sbd),
                )
                screen = self._screen(sbd, payload)
                if screen is not None and payload is not None:
                    payload = screen.stream(payload)
                await mine.wait()
                try:
                    new = await sink.receive(IncomingMessage(sbd=sbd, payload=payload))
                except Exception as exc:
                    # Whatever the sink made of it, a broken file or package is why it stopped.
                    reason = incoming.broken or (screen.refusal if screen else None)
                    if reason is not None:
                        raise reason from None
                    if isinstance(exc, PermanentError):  # the core can never store this SBD
                        raise UnusableSbd(str(exc)) from None
                    raise
                finally:
                    following.set()
                stored = sbd
            except (BrokenFile, UnusableSbd, PackageError) as exc:
                log.warning("dpo: discarding a broken file", reason=str(exc))
                refused = (incoming.sbd, str(exc))
        if refused is not None:
            # Before the confirmation: a reply that fails for now (TransientError) leaves the
            # file unconfirmed, to be taken, refused and answered again.
            await self._refuse(*refused, sender=sender, log=log)
        await self.client.confirm_download(organisation, transfer_id)
        log.info("dpo: file taken", stored=stored is not None, new=new)

    def _screen(
        self, sbd: Mapping[str, Any], payload: object | None
    ) -> PackageScreen | None:
        """The screen the package must pass; UnusableSbd when a package is missing."""
        kind = sbd_header.document_type(sbd) or ""
        if payload is None:
            if kind in PACKAGE_OPTIONAL or kind.endswith("_kvittering"):
                return None
            raise UnusableSbd(f"the file holds no asic.zip, which a {kind} message needs")
        key = self.context.key
        assert key is not None  # start() refuses to run without it
        return PackageScreen(key=key, trust=self._trust, limits=self._package_limits)

    async def _refuse(
        self, sbd: dict[str, Any] | None, reason: str, *, sender: str, log: Any
    ) -> None:
        """Tell the sender of a refused file why, with a ``status`` FEIL, where that is safe:
        its SBD must name us, ids and a sender that the broker confirms sent the file (else a
        forged SBD could make us send FEIL to someone else), and it is not itself a status."""
        if sbd is None:
            log.info("dpo: the sender of a refused file cannot be told: it has no readable SBD")
            return
        claimed = sbd_header.sender(sbd)
        try:
            acting = Party.parse(claimed or "").acting
            ours = Party.parse(sbd_header.receiver(sbd) or "").acting.organisation
        except ValueError:
            log.info("dpo: the sender of a refused file cannot be told: its SBD names no parties")
            return
        actual = Party.parse(sender).organisation if sender else None
        reasons = {
            "it is a status": sbd_header.document_type(sbd) == status_messages.STATUS_TYPE,
            "its ids are not UUIDs": not (
                sbd_header.is_uuid(sbd_header.message_id(sbd))
                and sbd_header.is_uuid(sbd_header.conversation_id(sbd))
            ),
            "it is not addressed to us": ours not in self.organisations,
            f"the broker says {sender}, not {acting.broker_id}, sent it": (
                acting.organisation != actual
            ),
        }
        why_not = [why for why, applies in reasons.items() if applies]
        if why_not:
            log.info("dpo: the sender of a refused file is not told", because=why_not[0])
            return
        description = f"refused by {self.context.organisation}: {reason}"[:MAX_REASON]
        reply = status_messages.status_reply(sbd, ReceiptStatus.FEIL, description=description)
        try:
            await self._send_sbd(reply, (), service_record=None, attempt=1)
        except PermanentError as exc:
            log.warning("dpo: the broker refuses the FEIL reply; the sender is not told",
                        error=str(exc))
            return
        log.info("dpo: told the sender the file was refused", receiver=acting.broker_id)

    # -- status replies -----------------------------------------------------------------------

    async def send_reply(self, message: Mapping[str, Any], status: ReceiptStatus) -> None:
        """Send the ``status`` reply (MOTTATT or LEVERT) to the sender of ``message``."""
        try:
            reply = status_messages.status_reply(message, status)
        except ValueError as exc:
            raise PermanentError(f"no status reply can answer this message: {exc}") from exc
        await self._send_sbd(reply, (), service_record=None, attempt=1)


def _check_sender(sbd: Mapping[str, Any], sender: str) -> None:
    """The SBD's sender must be the party the broker says put the file there: anyone on the
    broker can write any SBD, and a message stored under a sender it did not come from (an
    arkivmelding, a receipt, a status) would be believed."""
    if not sender:
        return
    claimed = Party.parse(sbd_header.sender(sbd) or "").acting
    if claimed.organisation != Party.parse(sender).organisation:
        raise UnusableSbd(f"the SBD says {claimed.broker_id} sent it; the broker says {sender}")
