"""The DPF channel: eFormidling messages out through SvarUt, in through SvarInn.

Sending maps the SBD and ``arkivmelding.xml`` to a SvarUt forsendelse, encrypts each document
to SvarUt's certificate (from the receiver's service record) as it streams into the multipart
upload, and registers SENDT and LEVERT, since SvarUt guarantees delivery. A resend (after a
crash or a lost answer) first asks SvarUt for a forsendelse with the message's
``eksternReferanse``, so nothing is sent twice.

Statuses are searched in batches; LEST and the failures are all that SvarUt adds.

Receiving takes each forsendelse waiting in SvarInn, re-seals its documents for this
organisation, hands the message to the core, and only then confirms it (``kvitterMottak``). One
that cannot be taken in is reported back with ``mottakFeilet``: permanent when its content is
at fault (SvarUt then delivers it another way), not permanent when we are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import aiohttp
from cryptography import x509
from ipunkt.package.cms import CmsWriter
from ipunkt.package.errors import CertificateProblem
from ipunkt.package.trust import check_rsa, check_usage, check_validity, describe
from ipunkt.plugin import (
    Attachment,
    Channel,
    ChannelContext,
    ChannelHealth,
    ConfigurationError,
    IncomingMessage,
    IncomingSink,
    OutgoingMessage,
    PermanentError,
    PollableConversation,
    ReceiptStatus,
    SendResult,
    StatusUpdate,
    TransientError,
)

from ipunkt_dpf import forsendelse as mapping
from ipunkt_dpf import incoming, receipts, statuses
from ipunkt_dpf.arkivmelding import (
    FILENAME,
    MAX_BYTES,
    ArkivmeldingInvalid,
    Journalpost,
    read_journalpost,
)
from ipunkt_dpf.client import Hendelse, SvarInnClient, SvarUtClient, UploadDocument
from ipunkt_dpf.config import DPFConfig

SERVICE = "DPF"
CHUNK = 1 << 20
MAX_INCOMING = 1 << 30
"""The most bytes an incoming forsendelse may unpack to: the channel's size limit."""
RECEIPT_TYPES = frozenset({"arkivmelding_kvittering", "status"})
SENT = (ReceiptStatus.SENDT, ReceiptStatus.LEVERT)
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"

T = TypeVar("T")


class _Buffer:
    """Collects what a CmsWriter writes, to be yielded as it comes."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> list[bytes]:
        parts, self._parts = self._parts, []
        return parts


async def _encrypted(
    attachment: Attachment, recipient: x509.Certificate
) -> AsyncIterator[bytes]:
    """The attachment's bytes as a CMS EnvelopedData to ``recipient``, streamed."""
    buffer = _Buffer()
    writer = CmsWriter(buffer, recipient)
    for part in buffer.drain():
        yield part
    async for chunk in attachment.open():
        writer.write(chunk)
        for part in buffer.drain():
            yield part
    writer.close()
    for part in buffer.drain():
        yield part


async def _read_all(attachment: Attachment, limit: int) -> bytes:
    data = bytearray()
    async for chunk in attachment.open():
        data += chunk
        if len(data) > limit:
            raise PermanentError(f"{attachment.filename} is larger than {limit} bytes")
    return bytes(data)


async def _starts_with(attachment: Attachment, magic: bytes) -> bool:
    stream = attachment.open()
    head = b""
    try:
        async for chunk in stream:
            head += chunk
            if len(head) >= len(magic):
                break
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    return head.startswith(magic)


def receiver_certificate(message: OutgoingMessage) -> x509.Certificate:
    """SvarUt's certificate from the receiver's DPF service record, checked for encryption."""
    record = message.service_record or {}
    text = str(record.get("pemCertificate") or "").strip()
    if not text:
        raise PermanentError(
            "the receiver's DPF service record has no pemCertificate (SvarUt's certificate), "
            "so the documents cannot be encrypted"
        )
    if PEM_BEGIN not in text:
        text = f"{PEM_BEGIN}\n{text}\n-----END CERTIFICATE-----"
    try:
        certificate = x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise PermanentError(
            f"the service record's pemCertificate is not a certificate: {exc}"
        ) from exc
    try:
        check_rsa(certificate)
        check_validity(certificate)
        check_usage(certificate, ("key_encipherment",))
    except CertificateProblem as exc:
        raise PermanentError(
            f"SvarUt's certificate {describe(certificate)} cannot be encrypted to: {exc}"
        ) from exc
    return certificate


class DPFChannel(Channel):
    """KS Fiks SvarUt (send, status) and SvarInn (receive)."""

    incoming_poll_interval: ClassVar[float | None] = 900.0
    status_poll_interval: ClassVar[float | None] = 60.0

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        if not isinstance(context.config, DPFConfig):
            raise ConfigurationError("the DPF channel needs its own config section (DPFConfig)")
        self.config: DPFConfig = context.config
        # The intervals are configurable, so each channel object carries its own.
        self.incoming_poll_interval = (  # type: ignore[misc]
            self.config.poll_interval if self.config.receive else None
        )
        self.status_poll_interval = self.config.status_poll_interval  # type: ignore[misc]
        self.log = context.log.bind(channel=SERVICE)
        self._session: aiohttp.ClientSession | None = None
        self._svarut: SvarUtClient | None = None
        self._svarinn: SvarInnClient | None = None

    # --- life cycle ---------------------------------------------------------------------

    def _check_config(self) -> None:
        config = self.config
        missing = [
            name
            for name, value in (
                ("account_id", config.account_id),
                ("integration_id", config.integration_id),
                ("integration_password", config.integration_password),
            )
            if not value
        ]
        if self.context.tokens is None:
            missing.append("Maskinporten (the [maskinporten] section), for SvarUt's token")
        if config.receive:
            missing += [
                name
                for name, value in (
                    ("svarinn_username", config.svarinn_username),
                    ("svarinn_password", config.svarinn_password),
                )
                if not value
            ]
            if self.context.key is None:
                missing.append("the organisation's key, to decrypt what SvarInn sends")
        if missing:
            raise ConfigurationError(
                "the DPF channel is not fully configured; missing: " + ", ".join(missing)
            )

    async def start(self) -> None:
        self._check_config()
        config = self.config
        timeout = aiohttp.ClientTimeout(
            total=None, connect=config.connect_timeout, sock_read=config.request_timeout
        )
        self._session = aiohttp.ClientSession(timeout=timeout, raise_for_status=False)
        assert self.context.tokens is not None and config.integration_password is not None
        self._svarut = SvarUtClient(
            self._session,
            base_url=config.svarut_url,
            account_id=str(config.account_id),
            integration_id=str(config.integration_id),
            integration_password=config.integration_password.get_secret_value(),
            tokens=self.context.tokens,
            stall_timeout=config.request_timeout,
        )
        if config.receive:
            assert config.svarinn_username is not None and config.svarinn_password is not None
            self._svarinn = SvarInnClient(
                self._session,
                base_url=config.svarinn_base,
                username=config.svarinn_username,
                password=config.svarinn_password.get_secret_value(),
            )
        self.log.info("DPF channel started", svarut=config.svarut_url, receive=config.receive)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def health(self) -> ChannelHealth:
        if self._session is None or self._session.closed:
            return ChannelHealth(ok=False, detail="not started")
        return ChannelHealth(ok=True, detail=f"SvarUt at {self.config.svarut_url}")

    @property
    def svarut(self) -> SvarUtClient:
        if self._svarut is None:
            raise TransientError("the DPF channel is not started")
        return self._svarut

    # --- sending ------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> SendResult:
        log = self.log.bind(message_id=message.message_id, conversation_id=message.conversation_id)
        header = message.sbd.get("standardBusinessDocumentHeader") or {}
        kind = (header.get("documentIdentification") or {}).get("type")
        if kind in RECEIPT_TYPES:
            log.info("receipts do not travel by SvarUt; registered as read", type=kind)
            return SendResult((*SENT, ReceiptStatus.LEST))
        plan = mapping.plan(message, await self._journalpost(message), self.config)
        for document in plan.documents:
            if document.mime_type == mapping.PDF and not await _starts_with(
                document.attachment, mapping.PDF_MAGIC
            ):
                raise mapping.ForsendelseRejected(
                    f"{document.filename} is declared application/pdf but is not a PDF; "
                    "SvarUt cannot print it"
                )
        certificate = receiver_certificate(message)
        known = await self.svarut.find_by_ekstern_ref(message.message_id)
        if known:
            log.info("SvarUt already has this message; not sending it again", forsendelse=known[0])
            return SendResult(SENT, known[0])
        documents = [
            UploadDocument(d.filename, d.mime_type, partial(_encrypted, d.attachment, certificate))
            for d in plan.documents
        ]
        forsendelse_id = await self.svarut.send(plan.forsendelse, documents)
        log.info(
            "sent to SvarUt",
            forsendelse=forsendelse_id,
            receiver=message.receiver,
            documents=len(documents),
        )
        return SendResult(SENT, forsendelse_id)

    async def _journalpost(self, message: OutgoingMessage) -> Journalpost:
        attachment = next((a for a in message.attachments if a.filename == FILENAME), None)
        if attachment is None:
            raise PermanentError(
                f"a DPF message needs {FILENAME}: SvarUt's title, documents and metadata come "
                "from its journalpost"
            )
        try:
            return read_journalpost(await _read_all(attachment, MAX_BYTES))
        except ArkivmeldingInvalid as exc:
            raise PermanentError(f"{FILENAME} cannot be used: {exc}") from exc

    # --- statuses -----------------------------------------------------------------------

    async def poll_statuses(
        self, conversations: Sequence[PollableConversation]
    ) -> Sequence[StatusUpdate]:
        updates: list[StatusUpdate] = []
        by_id: dict[str, PollableConversation] = {}
        for conversation in conversations:
            if conversation.external_reference:
                by_id[conversation.external_reference] = conversation
                continue
            known = await self.svarut.find_by_ekstern_ref(conversation.message_id)
            if known:
                by_id[known[0]] = replace(conversation, external_reference=known[0])
            else:
                updates.append(statuses.missing(conversation.message_id))
        ids = list(by_id)
        size = self.config.status_batch_size
        failure: TransientError | None = None
        answered = 0
        for start in range(0, len(ids), size):
            try:
                found = await self.svarut.statuses(ids[start : start + size])
            except TransientError as exc:
                self.log.warning("SvarUt status search failed", error=str(exc))
                failure = exc
                continue
            answered += 1
            for status in found:
                polled = by_id.get(status.id)
                if polled is None:
                    continue
                event = (
                    await self._last_event(status.id) if statuses.needs_reason(status.status)
                    else None
                )
                update = statuses.update_for(polled.message_id, status, polled.statuses, event)
                if update is None:
                    continue
                if (update.status is ReceiptStatus.LEST
                        and self.config.generate_arkivmelding_receipts
                        and receipts.wants_receipt(polled)):
                    update = replace(update, incoming=receipts.arkivmelding_kvittering(
                        polled, self.context.organisation, datetime.now(UTC)))
                updates.append(update)
        if failure is not None and not answered and not updates:
            raise failure
        return updates

    async def _last_event(self, forsendelse_id: str) -> Hendelse | None:
        try:
            events = await self.svarut.events(forsendelse_id)
        except (TransientError, PermanentError) as exc:
            self.log.warning("SvarUt event history unavailable", forsendelse=forsendelse_id,
                             error=str(exc))
            return None
        return events[-1] if events else None

    # --- receiving ----------------------------------------------------------------------

    async def poll_incoming(self, sink: IncomingSink) -> None:
        if self._svarinn is None:
            return
        waiting = await self._svarinn.new_forsendelser()
        if waiting:
            self.log.info("forsendelser waiting in SvarInn", count=len(waiting))
        for item in waiting:
            await self._take(item, sink)

    async def _take(self, item: dict[str, Any], sink: IncomingSink) -> None:
        assert self._svarinn is not None
        forsendelse_id = str(item.get("id") or "")
        log = self.log.bind(message_id=forsendelse_id, conversation_id=forsendelse_id)
        try:
            forsendelse = incoming.read_forsendelse(
                item, fallback_sender=self.config.fallback_sender
            )
            received = datetime.now(UTC)
            package = await self._package(forsendelse, received)
        except incoming.Unprocessable as exc:
            log.warning("forsendelse refused", reason=str(exc), permanent=exc.permanent)
            await self._report(forsendelse_id, str(exc), permanent=exc.permanent)
            return
        except TransientError as exc:
            log.warning("forsendelse not fetched; trying again at the next poll", error=str(exc))
            return
        try:
            sbd = incoming.incoming_sbd(
                forsendelse,
                process=self.config.incoming_process,
                ttl_hours=self.config.incoming_ttl_hours,
                now=received,
            )
            payload = _file_chunks(package)
            try:
                new = await sink.receive(IncomingMessage(sbd, payload))
            except Exception as exc:  # whatever keeps the core from storing it, SvarUt hears
                log.exception("the core could not store the forsendelse")
                await self._report(
                    forsendelse.id,
                    f"the integration point could not store the forsendelse: {exc}",
                    permanent=False,
                )
                return
            finally:
                await payload.aclose()
        finally:
            with contextlib.suppress(FileNotFoundError):
                package.unlink()
        log.info("forsendelse received", new=new, sender=forsendelse.sender)
        try:
            await self._svarinn.confirm(forsendelse.id)
        except (TransientError, PermanentError) as exc:
            log.warning("kvitterMottak failed; SvarInn will offer it again", error=str(exc))

    async def _report(self, forsendelse_id: str, reason: str, *, permanent: bool) -> None:
        assert self._svarinn is not None
        if not forsendelse_id:
            self.log.error("a SvarInn forsendelse without id cannot be reported", reason=reason)
            return
        try:
            await self._svarinn.report_failure(forsendelse_id, reason, permanent=permanent)
        except (TransientError, PermanentError) as exc:
            self.log.warning("mottakFeilet failed", forsendelse=forsendelse_id, error=str(exc))

    async def _package(self, forsendelse: incoming.Forsendelse, received: datetime) -> Path:
        """Download, decrypt and seal the forsendelse into a temporary file (encrypted)."""
        assert self.context.key is not None
        key = self.context.key
        handle, name = tempfile.mkstemp(prefix="ipunkt-dpf-", suffix=".cms",
                                        dir=self.config.work_dir)
        path = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                work = partial(incoming.seal_forsendelse, forsendelse, key=key, out=out,
                               received=received, limit=MAX_INCOMING)
                try:
                    await self._with_download(forsendelse, work)
                except incoming.OrderMismatch:
                    order = await self._with_download(
                        forsendelse, partial(incoming.scan_order, forsendelse=forsendelse,
                                             key=key, limit=MAX_INCOMING)
                    )
                    out.seek(0)
                    out.truncate()
                    await self._with_download(forsendelse, partial(work, order=order))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def _with_download(
        self, forsendelse: incoming.Forsendelse, work: Callable[[Iterable[bytes]], T]
    ) -> T:
        """Run ``work`` in a thread over the download's bytes, streamed from the event loop."""
        assert self._svarinn is not None
        loop = asyncio.get_running_loop()
        try:
            async with self._svarinn.download(forsendelse.download_url) as response:
                return await asyncio.to_thread(work, _bridge(response, loop))
        except PermanentError as exc:
            raise incoming.Unprocessable(str(exc)) from exc


def _bridge(response: aiohttp.ClientResponse, loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """The response body for a worker thread: each read runs on the event loop."""
    while True:
        chunk = asyncio.run_coroutine_threadsafe(response.content.readany(), loop).result()
        if not chunk:
            return
        yield chunk


async def _file_chunks(path: Path) -> AsyncGenerator[bytes, None]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK):
            yield chunk
