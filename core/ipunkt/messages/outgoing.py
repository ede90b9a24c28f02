"""Outgoing messages: create, upload files, send (enqueue), list, get, delete.

The rules are the integrasjonspunkt's (``NextMoveMessageService``, ``NextMoveValidator``,
``NextMoveOutMessageFactory``): defaults are filled in, the receiver is routed to a channel at
create time, files are checked as they arrive (duplicates, the primary document, titles, the
channel's size limit) and again before sending (files present, every file ``arkivmelding.xml``
names uploaded, lifetime not passed). Sending only enqueues: the delivery engine takes it from
the outbox.

A request's message is bound to the log context (message_id, conversation_id, channel), so the
request's log line names it; the per-message lines themselves are at debug level.
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from ipunkt.messages import errors, filenames
from ipunkt.messages.arkivmelding import FILENAME as ARKIVMELDING_XML
from ipunkt.messages.arkivmelding import ArkivmeldingError, ArkivmeldingSummary, summarise
from ipunkt.messages.parties import (
    NORWEGIAN_ORG_ICD,
    ORG_AUTHORITY,
    part_or_primary,
    party,
    primary,
)
from ipunkt.messages.routes import ChannelLimits, Resolver, RouteLike
from ipunkt.messages.statuses import EXPIRED_DESCRIPTION, Statuses
from ipunkt.plugin import ReceiptStatus
from ipunkt.sbd import (
    StandardBusinessDocument,
    business_violations,
    header_violations,
    parse_sbd_text,
)
from ipunkt.sbd.model import (
    MESSAGE_TYPES,
    ArkivmeldingMessage,
    CorrelationInformation,
    DpiDigitalMessage,
    DpiPrintMessage,
    MailReturn,
    Partner,
    PartnerIdentification,
    PostAddress,
    PostalCategory,
    PrintColor,
    ReturnHandling,
    ScopeType,
    StatusMessage,
)
from ipunkt.sbd.times import format_datetime, now_oslo
from ipunkt.sbd.violations import Violation, path
from ipunkt.store import base as store
from ipunkt.store.blobs import BlobTooLarge

log = structlog.get_logger(__name__)

MULTIPART_FILE_LIMIT = 5 * 1024 * 1024
"""The original's cap on each file of a multipart create-and-send."""
OCTET_STREAM = "application/octet-stream"
ARKIVMELDING_REQUIRED = frozenset({"DPO", "DPF"})
"""Channels that carry an arkivmelding's Noark metadata and so need ``arkivmelding.xml``
(as the original's message says, "DPO message type requires arkivmelding.xml attachment")."""


@dataclass
class Upload:
    """One file arriving: its name, type, title and a stream of its bytes."""

    filename: str
    mime_type: str | None
    title: str | None
    chunks: AsyncIterable[bytes]
    declared_size: int | None = None


@dataclass
class StagedFile:
    """A file sealed into the blob store but not yet attached to a message."""

    filename: str
    mime_type: str
    title: str | None
    blob_id: str
    size: int
    summary: ArkivmeldingSummary | None = None


@dataclass
class _Checked:
    sbd: StandardBusinessDocument
    route: RouteLike
    new: store.NewMessage


class OutgoingMessages:
    def __init__(
        self,
        message_store: store.MessageStore,
        resolver: Resolver,
        channels: ChannelLimits,
        statuses: Statuses,
        *,
        organisation: str,
        default_ttl: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = now_oslo,
    ) -> None:
        self.store = message_store
        self.resolver = resolver
        self.channels = channels
        self.statuses = statuses
        self.organisation = organisation
        self.default_ttl = default_ttl
        self.clock = clock
        self.on_queued: list[Callable[[str], None]] = []
        """Told each message id queued here, so that delivery need not wait for its poll."""

    # -- create -------------------------------------------------------------------------------

    async def create(self, sbd: StandardBusinessDocument) -> str:
        """Route, fill defaults, validate and store a new message (status OPPRETTET).

        Returns the stored SBD: its wire form as the original writes it.
        """
        checked = await self._check_new(sbd)
        await self._store(checked)
        return checked.new.sbd

    async def create_and_send(
        self, sbd: StandardBusinessDocument, staged: Sequence[StagedFile]
    ) -> str:
        """The multipart call: create, attach and enqueue in one transaction, or nothing."""
        names = [f.filename for f in staged]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise errors.DuplicateFilename(", ".join(duplicates))
        checked = await self._check_new(sbd)
        files = self._check_files(checked.sbd, checked.route.service, staged, [])
        self._check_sendable(checked.sbd, checked.route.service, files, checked.new.expiry)
        await self._store(checked, files=files, queue=True)
        for listener in self.on_queued:
            listener(checked.new.message_id)
        return checked.new.sbd

    async def _check_new(self, sbd: StandardBusinessDocument) -> _Checked:
        now = self.clock()
        self._on_behalf_of(sbd)
        violations = header_violations(sbd, now) + self._sender_violations(sbd)
        if violations:
            raise errors.ConstraintViolation(violations)
        kind = sbd.message_type
        if kind is None:
            known = [name for name, cls in MESSAGE_TYPES.items() if not cls.receipt]
            raise errors.UnknownMessageType(str(sbd.type), known)
        route = await self.resolver.route(
            receiver=sbd.receiver,
            process=sbd.process,
            document_type=sbd.standard,
            message_type=kind.type_name,
            security_level=getattr(sbd.business, "sikkerhetsnivaa", None),
            conversation_id=sbd.conversation_id,
        )
        self._fill_defaults(sbd, route, now)
        violations = business_violations(sbd, route.service)
        if violations:
            raise errors.ConstraintViolation(violations)
        standard = sbd.standard or ""
        if not standard.endswith("::" + kind.type_name):
            raise errors.MessageTypeDoesNotFitDocumentType(kind.type_name, standard)
        return _Checked(sbd, route, self._new_message(sbd, route))

    def _new_message(self, sbd: StandardBusinessDocument, route: RouteLike) -> store.NewMessage:
        service_info = getattr(route.record, "service", None)
        return store.NewMessage(
            direction=store.Direction.OUTGOING,
            message_id=str(sbd.message_id),
            conversation_id=str(sbd.conversation_id),
            process=str(sbd.process),
            message_type=str(sbd.body_key),
            document_type=str(sbd.standard),
            sender=sbd.sender,
            sender_identifier=part_or_primary(sbd.sender),
            receiver=sbd.receiver,
            receiver_identifier=primary(sbd.receiver),
            service=route.service,
            sbd=sbd.to_text(),
            expiry=sbd.expected_response,
            service_code=getattr(service_info, "service_code", None),
            service_edition_code=getattr(service_info, "service_edition_code", None),
        )

    async def _store(self, checked: _Checked, *, files: Sequence[store.NewFile] = (),
                     queue: bool = False) -> None:
        now = self.clock()
        created = self.statuses.rules.change(ReceiptStatus.OPPRETTET, now, checked.route.service)
        try:
            await self.store.create_message(
                checked.new,
                created,
                unique_conversation=not isinstance(checked.sbd.body, StatusMessage),
                files=files,
                queue_at=now if queue else None,
            )
        except store.AlreadyExists:
            raise errors.MessageAlreadyExists(checked.new.message_id) from None
        structlog.contextvars.bind_contextvars(
            message_id=checked.new.message_id, conversation_id=checked.new.conversation_id,
            channel=checked.route.service,
        )
        log.debug("message created", queued=queue)

    def _on_behalf_of(self, sbd: StandardBusinessDocument) -> None:
        """A sender ``0192:X`` that is not this organisation becomes ``0192:<own>:X``."""
        sender = sbd.sender
        if sender is None:
            return
        who = party(sender)
        if who.icd is None or who.part is not None or who.primary == self.organisation:
            return
        ident = sbd.header.sender[0].identifier  # type: ignore[index]
        if ident is not None:
            ident.value = f"{who.icd}:{self.organisation}:{who.primary}"

    def _sender_violations(self, sbd: StandardBusinessDocument) -> list[Violation]:
        sender = sbd.sender
        if sender is None:
            return []
        who = party(sender)
        if who.icd is not None and who.primary != self.organisation:
            return [Violation(
                path("standardBusinessDocumentHeader", "sender", 0, "identifier", "value"),
                "SenderValue",
                f"Expected '{sender}' to be equal end with the same organization as specified "
                "in the difi.move.org.number application property.'",
                sender,
            )]
        return []

    def _fill_defaults(self, sbd: StandardBusinessDocument, route: RouteLike,
                       now: datetime) -> None:
        header = sbd.header
        if not sbd.sender:
            header.sender = [Partner(identifier=PartnerIdentification(
                value=f"{NORWEGIAN_ORG_ICD}:{self.organisation}", authority=ORG_AUTHORITY))]
        ident = header.document_identification
        assert ident is not None and header.business_scope is not None
        if ident.instance_identifier is None:
            ident.instance_identifier = str(uuid.uuid4())
        if ident.creation_date_and_time is None:
            ident.creation_date_and_time = now
        conversation = header.scope(ScopeType.CONVERSATION_ID)
        assert conversation is not None
        if sbd.expected_response is None:
            ttl = route.channel.default_ttl if route.channel else self.default_ttl
            expires = now + ttl
            if conversation.scope_information:
                conversation.scope_information[0].expected_response_date_time = expires
            else:
                conversation.scope_information = [
                    CorrelationInformation(expected_response_date_time=expires)
                ]
        for scope in header.business_scope.scope or []:
            if not scope.instance_identifier:
                scope.instance_identifier = str(uuid.uuid4())
        body = sbd.body
        if isinstance(body, DpiPrintMessage) and route.service == "DPI":
            self._print_defaults(sbd, body, route)

    @staticmethod
    def _print_defaults(sbd: StandardBusinessDocument, body: DpiPrintMessage,
                        route: RouteLike) -> None:
        if body.utskriftsfarge is None:
            body.utskriftsfarge = PrintColor.SORT_HVIT
        if body.posttype is None:
            body.posttype = PostalCategory.B_OEKONOMI
        if sbd.receiver is None or route.record is None:
            return
        if body.mottaker is None:
            body.mottaker = PostAddress()
        if body.retur is None:
            body.retur = MailReturn(mottaker=PostAddress(),
                                    returhaandtering=ReturnHandling.DIREKTE_RETUR)
        if body.retur.mottaker is None:
            body.retur.mottaker = PostAddress()
        _address_from_record(body.mottaker, getattr(route.record, "post_address", None))
        _address_from_record(body.retur.mottaker, getattr(route.record, "return_address", None))

    # -- files --------------------------------------------------------------------------------

    async def add_file(self, message_id: str, upload: Upload) -> None:
        """Check, seal and attach one uploaded file, streaming it to disk."""
        record = await self._outgoing(message_id)
        if record.queued:
            raise errors.MessageAlreadySent(message_id)
        sbd = _stored_sbd(record)
        existing = await self.store.files(record)
        limit = self._limit(record.service)
        used = sum(f.size for f in existing)
        if upload.declared_size is not None and used + upload.declared_size > limit:
            raise errors.MaxFileSizeExceeded(used + upload.declared_size, record.service, limit)
        staged_meta = self._staged_meta(upload)
        self._check_files(sbd, record.service, [staged_meta], existing)
        staged = await self._seal(upload, limit - used, lambda seen: errors.MaxFileSizeExceeded(
            used + seen, record.service, limit))
        try:
            new = self._check_files(sbd, record.service, [staged], existing)[0]
            await self.store.add_file(message_id, new, limit=limit)
        except Exception as exc:  # not on cancellation: the change may still commit
            await self.store.blobs.delete([staged.blob_id])
            if isinstance(exc, store.StoreError):
                raise _file_error(exc, record.service, staged.filename) from None
            raise
        if staged.summary is not None:
            await self.store.describe_conversation(
                message_id, title=staged.summary.title, reference=staged.summary.reference
            )

    async def stage(self, upload: Upload) -> StagedFile:
        """Seal a multipart file part (at most 5 MiB) before its message exists."""
        return await self._seal(upload, MULTIPART_FILE_LIMIT, lambda seen: errors.
                                MultipartFileToLarge(upload.filename, MULTIPART_FILE_LIMIT))

    async def discard(self, staged: Sequence[StagedFile]) -> None:
        await self.store.blobs.delete([f.blob_id for f in staged])

    async def _seal(self, upload: Upload, limit: int,
                    too_large: Callable[[int], Exception]) -> StagedFile:
        meta = self._staged_meta(upload)
        try:
            blob = await self.store.blobs.write(upload.chunks, limit=limit)
        except BlobTooLarge as exc:
            raise too_large(exc.seen) from None
        meta.blob_id, meta.size = blob.blob_id, blob.size
        if meta.filename == ARKIVMELDING_XML:
            try:
                meta.summary = await summarise(self.store.blobs.read(blob.blob_id))
            except ArkivmeldingError as exc:
                await self.store.blobs.delete([blob.blob_id])
                raise errors.UnmarshalArkivmelding(str(exc)) from None
        return meta

    @staticmethod
    def _staged_meta(upload: Upload) -> StagedFile:
        bad_name = filenames.problem(upload.filename)
        if bad_name is not None:
            raise errors.InvalidFilename(upload.filename, bad_name)
        mime = (upload.mime_type or "").strip()
        if not mime or mime.split(";")[0].strip().lower() == OCTET_STREAM:
            mime = mimetypes.guess_type(upload.filename)[0] or OCTET_STREAM
        title = upload.title if upload.title and upload.title.strip() else None
        return StagedFile(upload.filename, mime, title, "", 0)

    def _check_files(
        self,
        sbd: StandardBusinessDocument,
        service: str,
        staged: Sequence[StagedFile],
        existing: Sequence[store.FileRecord],
    ) -> list[store.NewFile]:
        """The rules on a message's files as they are added; the files to attach."""
        taken = {f.filename for f in existing}
        has_primary = any(f.primary for f in existing)
        business = sbd.business
        primary_name = business.primary_document if business else None
        metadata = business.metadata_filer if isinstance(business, DpiDigitalMessage) else {}
        limit = self._limit(service)
        total = sum(f.size for f in existing)
        files = []
        for file in staged:
            if file.filename in taken:
                raise errors.DuplicateFilename(file.filename)
            taken.add(file.filename)
            is_primary = primary_name is not None and file.filename == primary_name
            if is_primary and has_primary:
                raise errors.MultiplePrimaryDocumentsNotAllowed()
            has_primary = has_primary or is_primary
            if service == "DPV" and not file.title:
                raise errors.MissingFileTitle("DPV")
            if (service == "DPI" and not file.title and not is_primary
                    and file.filename not in metadata.values()):
                raise errors.MissingFileTitle("DPI")
            total += file.size
            if total > limit:
                raise errors.MaxFileSizeExceeded(total, service, limit)
            summary = file.summary
            files.append(store.NewFile(
                blob_id=file.blob_id, filename=file.filename, mime_type=file.mime_type,
                size=file.size, title=file.title, primary=is_primary,
                references=tuple(summary.files) if summary else (),
            ))
        return files

    def _limit(self, service: str) -> int:
        info = self.channels.info(service)
        return info.max_size if info is not None else 0

    # -- send ---------------------------------------------------------------------------------

    async def send(self, message_id: str) -> None:
        """Check the message is complete and enqueue it for delivery (durably, once)."""
        record = await self._outgoing(message_id)
        if record.queued:
            return
        sbd = _stored_sbd(record)
        files = await self.store.files(record)
        now = self.clock()
        if record.expiry <= now:
            await self.statuses.register(
                message_id, ReceiptStatus.LEVETID_UTLOPT, now, record.service,
                direction=store.Direction.OUTGOING, description=EXPIRED_DESCRIPTION,
            )
            raise errors.TimeToLive(format_datetime(sbd.expected_response or record.expiry))
        self._check_sendable(sbd, record.service, files, record.expiry)
        try:
            await self.store.enqueue(message_id, now)
        except store.NotFound:
            raise errors.MessageNotFound(message_id) from None
        structlog.contextvars.bind_contextvars(
            message_id=message_id, conversation_id=record.conversation_id, channel=record.service
        )
        log.debug("message queued")
        for listener in self.on_queued:
            listener(message_id)

    def _check_sendable(
        self,
        sbd: StandardBusinessDocument,
        service: str,
        files: Sequence[store.FileRecord | store.NewFile],
        expiry: datetime,
    ) -> None:
        if expiry <= self.clock():
            raise errors.TimeToLive(format_datetime(expiry))
        kind = sbd.message_type
        if kind is not None and kind.files_required and not files:
            raise errors.MissingFile()
        names = {f.filename for f in files}
        if isinstance(sbd.body, ArkivmeldingMessage):
            arkivmelding = next((f for f in files if f.filename == ARKIVMELDING_XML), None)
            if arkivmelding is None and service in ARKIVMELDING_REQUIRED:
                raise errors.MissingArkivmelding()
            references = arkivmelding.references if arkivmelding else ()
            missing = [name for name in references if name not in names]
            if missing:
                raise errors.MissingArkivmeldingFile(missing)
        if isinstance(sbd.body, DpiDigitalMessage):
            wanted = [*sbd.body.metadata_filer.keys(), *sbd.body.metadata_filer.values()]
            missing = list(dict.fromkeys(name for name in wanted if name not in names))
            if missing:
                raise errors.FileNotFound(missing)
        if service == "DPI" and not any(f.primary for f in files):
            raise errors.MissingPrimaryDocument()

    # -- read and delete ----------------------------------------------------------------------

    async def get(self, message_id: str) -> store.MessageRecord:
        return await self._outgoing(message_id)

    async def find(self, where: store.MessageFilter,
                   page: store.PageRequest) -> store.Page[store.MessageRecord]:
        return await self.store.find_messages(store.Direction.OUTGOING, _normalised(where), page)

    async def delete(self, message_id: str) -> None:
        """Delete the message and its files; its conversation and statuses stay."""
        deleted = await self.store.delete_message(store.Direction.OUTGOING, message_id)
        await self.store.blobs.delete(deleted.blob_ids)

    async def _outgoing(self, message_id: str) -> store.MessageRecord:
        record = await self.store.message(store.Direction.OUTGOING, message_id)
        if record is None:
            raise errors.MessageNotFound(message_id)
        return record


def _normalised(where: store.MessageFilter) -> store.MessageFilter:
    """Identifier filters compare bare numbers, whatever form the client gave."""
    return store.MessageFilter(
        conversation_id=where.conversation_id,
        message_id=where.message_id,
        process=where.process,
        receiver_identifier=primary(where.receiver_identifier),
        sender_identifier=part_or_primary(where.sender_identifier),
        service=where.service.upper() if where.service else None,
    )


def _stored_sbd(record: store.MessageRecord) -> StandardBusinessDocument:
    return parse_sbd_text(record.sbd)


def _address_from_record(address: PostAddress, record: object) -> None:
    """Fill the blanks of a print address from the registry's postal address."""
    if record is None:
        return
    if not (address.navn or "").strip():
        address.navn = getattr(record, "name", None)
    if not address.adresselinje1:
        lines = (getattr(record, "street", None) or "").split(";")
        for number, line in enumerate(lines[:4], start=1):
            setattr(address, f"adresselinje{number}", line)
    if not (address.postnummer or "").strip():
        address.postnummer = getattr(record, "postal_code", None)
    if not (address.poststed or "").strip():
        address.poststed = getattr(record, "postal_area", None)
    if not (address.land or "").strip():
        address.land = getattr(record, "country", None)


def _file_error(exc: store.StoreError, service: str, filename: str) -> Exception:
    if isinstance(exc, store.DuplicateFilename):
        return errors.DuplicateFilename(filename)
    if isinstance(exc, store.MultiplePrimaryDocuments):
        return errors.MultiplePrimaryDocumentsNotAllowed()
    if isinstance(exc, store.TotalSizeExceeded):
        return errors.MaxFileSizeExceeded(exc.total, service, exc.limit)
    if isinstance(exc, store.AlreadyQueued):
        return errors.MessageAlreadySent(str(exc))
    if isinstance(exc, store.NotFound):
        return errors.MessageNotFound(str(exc))
    return errors.MessagePersist(filename)
