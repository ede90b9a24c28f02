"""A fake Altinn 3 broker: the ``/filetransfer`` API that DPO uses, with the real rules.

It models what the DPO channel meets in Altinn (read from Altinn/altinn-broker's handlers):

- a file transfer's status history: Initialized -> UploadStarted -> UploadProcessing ->
  Published (the virus scan takes ``scan_seconds``) -> AllConfirmedDownloaded, or Failed when
  an upload breaks off or is too large; each recipient's own history: Initialized ->
  DownloadStarted -> DownloadConfirmed;
- who may do what: only the sender uploads, only a recipient downloads and confirms, sender
  and recipients see the overview; a list shows the caller's transfers (as recipient with the
  given ``recipientStatus``, else as sender or recipient), newest first, at most 100;
- bearer tokens checked on every call (the scope, and which organisation's system user the
  token acts for);
- errors as ProblemDetails (RFC 7807) with Altinn's codes and texts, and ASP.NET's validation
  problems for bad bodies and parameters;
- faults on demand (:class:`Fault`): an error status (429 with ``Retry-After``, 5xx), a slow
  answer, a body cut short, or the connection dropped after the work was done.

Files are kept on disk while they stream in and out. Given a ``storage`` folder, the broker
also keeps its transfers there (``transfers.sqlite3``: each transfer's state, written durably at
every change, read when its app starts), so a broker killed and started again on the folder
carries on where it was: an upload cut off by the kill has failed, as in Altinn, and a virus
scan under way finishes. Every
request is journalled
(:attr:`FakeBroker.journal`) so that tests can check each one against the published OpenAPI
document.

Run it alone with ``python -m ipunkt_dpo.fake --port 8095``; it then also serves
``POST /_fake/tokens`` (``{"organisation": "910077473", "scopes": [...]}`` -> a token),
``GET /_fake/transfers`` and ``POST /_fake/faults``, for scripts and the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import secrets
import shutil
import sqlite3
import tempfile
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

BASE = "/broker/api/v1"
CHUNK = 1 << 20
LIST_LIMIT = 100
MAX_UPLOAD_SIZE = 2 * 1024 * 1024 * 1024
STATE_FILE = "transfers.sqlite3"
"""The broker's transfers in its storage folder."""
UPLOAD_ABORTED = "File upload failed and was aborted"
READ = "altinn:broker.read"
WRITE = "altinn:broker.write"
ORG_NUMBER = re.compile(r"^(?:\d{4}:|urn:altinn:organization:identifier-no:)(\d{9})$")
ORG_MESSAGE = (
    "Organization numbers should be on the form countrycode:organizationnumber "
    "(e.g. 0192:910753614) or urn:altinn:organization:identifier-no:organizationnumber"
)
RECIPIENT_MESSAGE = (
    "Each recipient should be on the form countrycode:organizationnumber "
    "(e.g. 0192:910753614) or urn:altinn:organization:identifier-no:organizationnumber"
)
MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
CALLER = web.RequestKey("caller", str)
BODY_SIZE = web.RequestKey("body_size", int)
FAULT = web.RequestKey("fault", str)
TRUNCATE = web.RequestKey("truncate", bool)


class TransferStatus(StrEnum):
    """``FileTransferStatusExt``, in the order Altinn compares them."""

    INITIALIZED = "Initialized"
    UPLOAD_STARTED = "UploadStarted"
    UPLOAD_PROCESSING = "UploadProcessing"
    PUBLISHED = "Published"
    CANCELLED = "Cancelled"
    ALL_CONFIRMED_DOWNLOADED = "AllConfirmedDownloaded"
    PURGED = "Purged"
    FAILED = "Failed"


STATUS_ORDER = list(TransferStatus)
FINISHED = frozenset({TransferStatus.ALL_CONFIRMED_DOWNLOADED, TransferStatus.CANCELLED,
                      TransferStatus.PURGED, TransferStatus.FAILED})
"""A transfer in one of these changes no more (but a recipient may download it again)."""
_FINISHED_SQL = ", ".join(f"'{status.value}'" for status in sorted(FINISHED))
STATUS_TEXT = {
    TransferStatus.INITIALIZED: "Ready for upload",
    TransferStatus.UPLOAD_STARTED: "Upload started",
    TransferStatus.UPLOAD_PROCESSING: "Processing upload",
    TransferStatus.PUBLISHED: "Ready for download",
    TransferStatus.CANCELLED: "FileTransfer cancelled",
    TransferStatus.ALL_CONFIRMED_DOWNLOADED: "All downloaded",
    TransferStatus.PURGED: "FileTransfer has been purged",
    TransferStatus.FAILED: "Upload failed",
}


class RecipientStatus(StrEnum):
    """``RecipientFileTransferStatusExt``."""

    INITIALIZED = "Initialized"
    DOWNLOAD_STARTED = "DownloadStarted"
    DOWNLOAD_CONFIRMED = "DownloadConfirmed"


RECIPIENT_TEXT = {
    RecipientStatus.INITIALIZED: "Initialized",
    RecipientStatus.DOWNLOAD_STARTED: "Recipient has attempted to download fileTransfer",
    RecipientStatus.DOWNLOAD_CONFIRMED: "Recipient has downloaded fileTransfer",
}


@dataclass(frozen=True)
class AltinnError:
    """One of Altinn broker's errors (``Altinn.Broker.Application.Errors``)."""

    code: int
    message: str
    status: int


NOT_FOUND = AltinnError(1, "The requested file transfer was not found", 404)
NO_FILE_UPLOADED = AltinnError(3, "No file uploaded yet", 400)
ALREADY_UPLOADED = AltinnError(
    4,
    "A file transfer has already been, or attempted to be, created. Create a new file "
    "transfer resource to try again.",
    409,
)
NO_ACCESS = AltinnError(
    6,
    "You must use a bearer token that represents a system user with access to the resource "
    "in the Resource Rights Registry",
    401,
)
NOT_AVAILABLE = AltinnError(
    7,
    "The requested file transfer's file is not ready for download. See file transfer status.",
    403,
)
UPLOAD_FAILED = AltinnError(
    8, "Error occurred while uploading file See /details for more information.", 500
)
CHECKSUM_MISMATCH = AltinnError(
    9, "The checksum of uploaded file did not match the checksum specified in initialize call.", 400
)
NOT_PUBLISHED = AltinnError(
    10,
    "A file transfer can only be confirmed to be downloaded when it is published. See file "
    "transfer status.",
    400,
)
TOO_BIG = AltinnError(16, "File size exceeds maximum", 400)
CONFIRM_BEFORE_DOWNLOAD = AltinnError(
    19, "Cannot confirm before the files have been downloaded", 400
)
RESOURCE_NOT_CONFIGURED = AltinnError(25, "The resource has not been configured.", 400)

TITLES = {
    400: ("https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"),
    401: ("https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"),
    403: ("https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"),
    404: ("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"),
    409: ("https://tools.ietf.org/html/rfc9110#section-15.5.10", "Conflict"),
    429: ("https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"),
    500: ("https://tools.ietf.org/html/rfc9110#section-15.6.1", "Internal Server Error"),
    502: ("https://tools.ietf.org/html/rfc9110#section-15.6.3", "Bad Gateway"),
    503: ("https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"),
    504: ("https://tools.ietf.org/html/rfc9110#section-15.6.5", "Gateway Timeout"),
}


def _trace_id() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def problem(
    status: int,
    detail: str,
    *,
    code: int | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A ProblemDetails answer, as Altinn's ``ProblemDetailsHelper`` shapes it."""
    kind, title = TITLES.get(status, ("about:blank", "Error"))
    body: dict[str, Any] = {"type": kind, "title": title, "status": status, "detail": detail}
    if code is not None:
        body["code"] = f"BRO-{code:05d}"
    body.update(extra)
    body["traceId"] = _trace_id()
    return web.Response(
        text=json.dumps(body),
        status=status,
        content_type="application/problem+json",
        headers=headers,
    )


def altinn_error(error: AltinnError) -> web.Response:
    return problem(error.status, error.message, code=error.code)


def validation_problem(errors: Mapping[str, list[str]]) -> web.Response:
    """ASP.NET's answer to a body or parameter that fails model validation."""
    kind, _ = TITLES[400]
    body = {
        "type": kind,
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": dict(errors),
        "traceId": _trace_id(),
    }
    return web.Response(text=json.dumps(body), status=400, content_type="application/problem+json")


def _now() -> datetime:
    return datetime.now(UTC)


def _time(moment: datetime) -> str:
    return moment.isoformat()


def actor(value: str) -> str | None:
    """``0192:<orgnr>`` for an organisation in either of Altinn's forms, else None."""
    match = ORG_NUMBER.match(value) if isinstance(value, str) else None
    return f"0192:{match[1]}" if match else None


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Whom a bearer token speaks for: an organisation's system user, with its scopes."""

    organisation: str
    """``0192:<orgnr>``."""
    scopes: frozenset[str]


class TokenCheck(Protocol):
    def __call__(self, token: str) -> Caller | None:
        """The caller a token speaks for, or None when the broker must refuse it."""
        ...


class IssuedTokens:
    """Opaque tokens that the fake hands out itself (``issue``), for tests and scripts."""

    def __init__(self) -> None:
        self._tokens: dict[str, Caller] = {}

    def issue(self, organisation: str, scopes: tuple[str, ...] = (READ, WRITE)) -> str:
        party = actor(organisation) or actor(f"0192:{organisation}")
        if party is None:
            raise ValueError(f"{organisation!r} is not an organisation number")
        token = secrets.token_urlsafe(24)
        self._tokens[token] = Caller(party, frozenset(scopes))
        return token

    def __call__(self, token: str) -> Caller | None:
        return self._tokens.get(token)


class AltinnTokens:
    """Altinn tokens (JWTs) verified by ``verify``, e.g. the core's fake token exchange.

    The organisation is the system user's (``authorization_details[].systemuser_org.ID``),
    else the token's ``consumer``, as Altinn reads a system-user or an organisation token.
    """

    def __init__(self, verify: Callable[[str], Mapping[str, Any]]) -> None:
        self._verify = verify

    def __call__(self, token: str) -> Caller | None:
        try:
            claims = self._verify(token)
        except Exception:  # any refusal by the verifier means: not a token we accept
            return None
        organisation = None
        details = claims.get("authorization_details")
        if isinstance(details, list) and details and isinstance(details[0], Mapping):
            owner = details[0].get("systemuser_org")
            if isinstance(owner, Mapping):
                organisation = actor(str(owner.get("ID", "")))
        if organisation is None:
            consumer = claims.get("consumer")
            if isinstance(consumer, Mapping):
                organisation = actor(str(consumer.get("ID", "")))
        if organisation is None:
            return None
        return Caller(organisation, frozenset(str(claims.get("scope", "")).split()))


# --- faults ----------------------------------------------------------------------------------


class FaultKind(StrEnum):
    ERROR = "error"
    """Answer ``status`` (a ProblemDetails body; ``Retry-After`` when given) without acting."""
    SLOW = "slow"
    """Wait ``delay`` seconds, then act and answer normally."""
    TRUNCATE = "truncate"
    """Act, then send only half of the answer's body and close the connection."""
    DROP = "drop"
    """Act (an upload is stored, a confirmation recorded), then close without answering."""


@dataclass
class Fault:
    """A scripted misbehaviour for the next ``times`` requests matching ``method`` and ``path``."""

    kind: FaultKind = FaultKind.ERROR
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    method: str | None = None
    path: str | None = None
    """A regular expression searched for in the request path."""
    times: int = 1

    def matches(self, request: web.Request) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return not self.path or re.search(self.path, request.path) is not None


# --- the model -------------------------------------------------------------------------------


@dataclass
class StatusEvent:
    status: TransferStatus
    at: datetime
    text: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fileTransferStatus": self.status.value,
            "fileTransferStatusText": self.text or STATUS_TEXT[self.status],
            "fileTransferStatusChanged": _time(self.at),
        }


@dataclass
class RecipientEvent:
    recipient: str
    status: RecipientStatus
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "recipient": self.recipient,
            "recipientFileTransferStatusCode": self.status.value,
            "recipientFileTransferStatusText": RECIPIENT_TEXT[self.status],
            "recipientFileTransferStatusChanged": _time(self.at),
        }


@dataclass
class Transfer:
    """One file transfer and everything that happened to it."""

    id: str
    resource: str
    file_name: str
    reference: str | None
    sender: str
    recipients: list[str]
    property_list: dict[str, str]
    checksum: str | None
    use_virus_scan: bool
    created: datetime
    expires: datetime
    history: list[StatusEvent] = field(default_factory=list)
    recipient_history: list[RecipientEvent] = field(default_factory=list)
    size: int = 0
    path: Path | None = None
    on_change: Callable[[Transfer], None] | None = field(default=None, repr=False, compare=False)
    """Told of every status change (the broker keeps the transfer durably)."""

    @property
    def status(self) -> TransferStatus:
        return self.history[-1].status

    def set_status(self, status: TransferStatus, text: str | None = None) -> None:
        self.history.append(StatusEvent(status, _now(), text))
        if self.on_change is not None:
            self.on_change(self)

    def recipient_event(self, recipient: str) -> RecipientEvent | None:
        events = [e for e in self.recipient_history if e.recipient == recipient]
        return events[-1] if events else None

    def recipient_status(self, recipient: str) -> RecipientStatus | None:
        event = self.recipient_event(recipient)
        return event.status if event else None

    def set_recipient_status(self, recipient: str, status: RecipientStatus) -> None:
        self.recipient_history.append(RecipientEvent(recipient, status, _now()))
        if self.on_change is not None:
            self.on_change(self)

    def status_changed(self, status: TransferStatus) -> datetime | None:
        times = [e.at for e in self.history if e.status is status]
        return max(times) if times else None

    def overview(self) -> dict[str, Any]:
        current = self.history[-1]
        return {
            "fileTransferId": self.id,
            "resourceId": self.resource,
            "fileName": self.file_name,
            "sendersFileTransferReference": self.reference,
            "checksum": self.checksum,
            "useVirusScan": self.use_virus_scan,
            "fileTransferSize": self.size,
            "fileTransferStatus": current.status.value,
            "fileTransferStatusText": current.text or STATUS_TEXT[current.status],
            "fileTransferStatusChanged": _time(current.at),
            "created": _time(self.created),
            "expirationTime": _time(self.expires),
            "sender": self.sender,
            "recipients": [
                {
                    "recipient": event.recipient,
                    "currentRecipientFileTransferStatusCode": event.status.value,
                    "currentRecipientFileTransferStatusText": RECIPIENT_TEXT[event.status],
                    "currentRecipientFileTransferStatusChanged": _time(event.at),
                }
                for event in map(self.recipient_event, self.recipients)
                if event is not None
            ],
            "propertyList": dict(self.property_list),
        }

    def details(self) -> dict[str, Any]:
        return {
            **self.overview(),
            "fileTransferStatusHistory": [e.to_json() for e in self.history],
            "recipientFileTransferStatusHistory": [e.to_json() for e in self.recipient_history],
        }

    def to_state(self) -> dict[str, Any]:
        """Everything about the transfer, as JSON, for :meth:`from_state`."""
        return {
            "id": self.id, "resource": self.resource, "file_name": self.file_name,
            "reference": self.reference, "sender": self.sender, "recipients": self.recipients,
            "property_list": self.property_list, "checksum": self.checksum,
            "use_virus_scan": self.use_virus_scan, "created": _time(self.created),
            "expires": _time(self.expires), "size": self.size,
            "path": str(self.path) if self.path else None,
            "history": [[e.status.value, _time(e.at), e.text] for e in self.history],
            "recipient_history": [[e.recipient, e.status.value, _time(e.at)]
                                  for e in self.recipient_history],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Transfer:
        return cls(
            id=state["id"], resource=state["resource"], file_name=state["file_name"],
            reference=state["reference"], sender=state["sender"],
            recipients=list(state["recipients"]), property_list=dict(state["property_list"]),
            checksum=state["checksum"], use_virus_scan=state["use_virus_scan"],
            created=datetime.fromisoformat(state["created"]),
            expires=datetime.fromisoformat(state["expires"]), size=state["size"],
            path=Path(state["path"]) if state["path"] else None,
            history=[StatusEvent(TransferStatus(status), datetime.fromisoformat(at), text)
                     for status, at, text in state["history"]],
            recipient_history=[
                RecipientEvent(recipient, RecipientStatus(status), datetime.fromisoformat(at))
                for recipient, status, at in state["recipient_history"]
            ],
        )


class TransferTable:
    """The broker's transfers on disk: one row per transfer, replaced at each change.

    Each change is committed before the broker answers, so a broker killed at any moment
    starts again with every transfer as its clients last saw it. A commit in WAL mode survives
    a killed process without an fsync of its own (``synchronous = NORMAL``; only the machine
    losing power could undo the last ones, which a test double need not survive): the fsync
    per change, on the event loop, was the fake's slowest step under load.
    Beside each transfer's state, the columns a listing filters and sorts on answer it for the
    finished transfers without reading them whole.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS transfer (id TEXT PRIMARY KEY, state TEXT NOT NULL, "
            "resource TEXT NOT NULL, parties TEXT NOT NULL, recipient_states TEXT NOT NULL, "
            "status TEXT NOT NULL, created REAL NOT NULL, changed REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS transfer_listing ON transfer (resource, status, created)"
        )

    def load(self, *, finished: bool = True) -> list[Transfer]:
        """Every transfer, or (``finished`` False) those still under way."""
        where = "" if finished else f" WHERE status NOT IN ({_FINISHED_SQL})"
        rows = self._db.execute(f"SELECT state FROM transfer{where} ORDER BY rowid").fetchall()
        return [Transfer.from_state(json.loads(state)) for (state,) in rows]

    def get(self, transfer_id: str) -> Transfer | None:
        row = self._db.execute("SELECT state FROM transfer WHERE id = ?", (transfer_id,)).fetchone()
        return Transfer.from_state(json.loads(row[0])) if row else None

    def finished(
        self, resource: str, party: str, status: TransferStatus | None,
        recipient_status: RecipientStatus | None, since: datetime | None,
        until: datetime | None,
    ) -> list[tuple[datetime, str]]:
        """The newest finished transfers a listing finds, as (its moment, id): the listing's
        rules (see :meth:`FakeBroker._list`) in SQL."""
        moment = "changed" if status is not None else "created"
        sql = (f"SELECT {moment}, id FROM transfer WHERE status IN ({_FINISHED_SQL}) "
               "AND resource = ?")
        params: list[Any] = [resource]
        if recipient_status is not None:
            sql += " AND instr(recipient_states, ?) > 0"
            params.append(f" {party}={recipient_status.value} ")
        else:
            sql += " AND instr(parties, ?) > 0"
            params.append(f" {party} ")
        if status is not None:
            sql += " AND status = ?"
            params.append(status.value)
        if since is not None:
            sql += f" AND {moment} > ?"
            params.append(since.timestamp())
        if until is not None:
            sql += f" AND {moment} < ?"
            params.append(until.timestamp())
        sql += f" ORDER BY {moment} DESC LIMIT {LIST_LIMIT}"
        return [(datetime.fromtimestamp(at, UTC), transfer_id)
                for at, transfer_id in self._db.execute(sql, params)]

    def save(self, transfer: Transfer) -> None:
        recipients = " ".join(f"{r}={s.value}" for r in transfer.recipients
                              if (s := transfer.recipient_status(r)) is not None)
        self._db.execute(
            "INSERT INTO transfer (id, state, resource, parties, recipient_states, status, "
            "created, changed) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "state = excluded.state, recipient_states = excluded.recipient_states, "
            "status = excluded.status, changed = excluded.changed",
            (transfer.id, json.dumps(transfer.to_state()), transfer.resource,
             f" {' '.join([transfer.sender, *transfer.recipients])} ", f" {recipients} ",
             transfer.status.value, transfer.created.timestamp(),
             transfer.history[-1].at.timestamp()),
        )

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class JournalEntry:
    """One request the fake answered, as tests check it against the OpenAPI document."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    content_type: str | None
    body: bytes | None
    """The request body when it is JSON (uploads are only counted, in ``body_size``)."""
    body_size: int | None
    status: int
    response_content_type: str | None
    response_body: bytes | None
    """The answer's body when it was not streamed."""
    caller: str | None
    fault: str | None
    """The kind of fault injected into this exchange, if any."""


# --- the service -----------------------------------------------------------------------------


class FakeBroker:
    """The fake's state and its aiohttp application (:meth:`app`)."""

    def __init__(
        self,
        *,
        tokens: TokenCheck | None = None,
        resources: tuple[str, ...] = ("eformidling-dpo-meldingsutveksling",),
        storage: Path | None = None,
        scan_seconds: float = 0.0,
        max_upload_size: int = MAX_UPLOAD_SIZE,
        time_to_live: timedelta = timedelta(days=30),
        journal_size: int = 10_000,
        keep_finished: bool = True,
    ) -> None:
        """``keep_finished`` False: with a ``storage`` folder, a finished transfer is kept only
        there, so a long-running broker (the sandbox's) holds in memory only the transfers
        under way; :attr:`transfers` then has only those."""
        self.issued = IssuedTokens()
        self.tokens: TokenCheck = tokens or self.issued
        self.resources = set(resources)
        self._own_storage = storage is None
        self.storage = Path(storage or tempfile.mkdtemp(prefix="ipunkt-fake-broker-"))
        self.scan_seconds = scan_seconds
        self.max_upload_size = max_upload_size
        self.time_to_live = time_to_live
        self.transfers: dict[str, Transfer] = {}
        self.faults: list[Fault] = []
        self.journal: deque[JournalEntry] = deque(maxlen=journal_size)
        self._scans: set[asyncio.Task[None]] = set()
        self._table: TransferTable | None = None
        self._keep_finished = keep_finished or self._own_storage

    def _open(self) -> None:
        """With a storage folder, carry on with the transfers kept there."""
        if self._own_storage or self._table is not None:
            return
        self.storage.mkdir(parents=True, exist_ok=True)
        self._table = TransferTable(self.storage / STATE_FILE)
        for transfer in self._table.load(finished=self._keep_finished):
            self._keep(transfer, save=False)
            if transfer.status is TransferStatus.UPLOAD_STARTED:
                # The upload's connection died with the broker that took it.
                transfer.set_status(TransferStatus.FAILED, UPLOAD_ABORTED)
                self._discard_file(transfer)
            elif transfer.status is TransferStatus.UPLOAD_PROCESSING:
                started = transfer.status_changed(TransferStatus.UPLOAD_PROCESSING) or _now()
                left = self.scan_seconds - (_now() - started).total_seconds()
                self._start_scan(transfer, max(left, 0.0))
        log.info("fake broker: transfers loaded", count=len(self.transfers))

    def _keep(self, transfer: Transfer, *, save: bool = True) -> None:
        """Hold ``transfer``; with a storage folder, keep it there at each of its changes."""
        self.transfers[transfer.id] = transfer
        if self._table is not None:
            transfer.on_change = self._changed
            if save:
                self._changed(transfer)

    def _changed(self, transfer: Transfer) -> None:
        assert self._table is not None
        self._table.save(transfer)
        if not self._keep_finished and transfer.status in FINISHED:
            self.transfers.pop(transfer.id, None)

    def _finished(self, transfer_id: str) -> Transfer | None:
        """A finished transfer that is kept only on disk."""
        if self._keep_finished or self._table is None:
            return None
        transfer = self._table.get(transfer_id)
        if transfer is not None:
            transfer.on_change = self._changed
        return transfer

    def _discard_file(self, transfer: Transfer) -> None:
        (self.storage / transfer.id).unlink(missing_ok=True)

    # -- scripting, for tests -----------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def transfers_with_reference(self, reference: str) -> list[Transfer]:
        return [t for t in self.transfers.values() if t.reference == reference]

    def file_of(self, transfer_id: str) -> Path:
        path = self.transfers[transfer_id].path
        if path is None:
            raise KeyError(f"transfer {transfer_id} has no file")
        return path

    def close(self) -> None:
        for task in self._scans:
            task.cancel()
        if self._table is not None:
            self._table.close()
            self._table = None
        if self._own_storage:
            shutil.rmtree(self.storage, ignore_errors=True)

    # -- the application ----------------------------------------------------------------------

    def app(self, *, control: bool = False) -> web.Application:
        """The broker API under ``/broker/api/v1``; ``control`` adds the ``/_fake`` routes."""
        app = web.Application(middlewares=[self._journal_middleware, self._fault_middleware])
        route = app.router
        route.add_post(f"{BASE}/filetransfer", self._initialize)
        route.add_post(f"{BASE}/filetransfer/", self._initialize)
        route.add_get(f"{BASE}/filetransfer", self._list)
        route.add_post(f"{BASE}/filetransfer/{{id}}/upload", self._upload)
        route.add_get(f"{BASE}/filetransfer/{{id}}", self._overview)
        route.add_get(f"{BASE}/filetransfer/{{id}}/details", self._details)
        route.add_get(f"{BASE}/filetransfer/{{id}}/download", self._download)
        route.add_post(f"{BASE}/filetransfer/{{id}}/confirmdownload", self._confirm)
        if control:
            route.add_post("/_fake/tokens", self._control_token)
            route.add_get("/_fake/transfers", self._control_transfers)
            route.add_post("/_fake/faults", self._control_fault)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _: web.Application) -> None:
        self._open()

    async def _cleanup(self, _: web.Application) -> None:
        self.close()

    @web.middleware
    async def _journal_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = None
        if request.content_type == "application/json" and request.can_read_body:
            body = await request.read()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        raw = response.body if isinstance(response, web.Response) else None
        self.journal.append(
            JournalEntry(
                method=request.method,
                path=request.path,
                query={k: request.query.getall(k) for k in request.query},
                headers=dict(request.headers),
                content_type=request.headers.get("Content-Type"),
                body=body,
                body_size=request.get(BODY_SIZE),
                status=response.status,
                response_content_type=response.headers.get("Content-Type"),
                response_body=raw if isinstance(raw, bytes) else None,
                caller=request.get(CALLER),
                fault=request.get(FAULT),
            )
        )
        if isinstance(response, web.HTTPException):
            raise response
        return response

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.matches(request):
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    @web.middleware
    async def _fault_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await handler(request)
        fault = self._take_fault(request)
        if fault is None:
            return await handler(request)
        log.info("fake broker fault", kind=fault.kind.value, path=request.path)
        request[FAULT] = fault.kind.value
        if fault.kind is FaultKind.ERROR:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return problem(fault.status, "Injected fault", headers=headers)
        if fault.kind is FaultKind.SLOW:
            await asyncio.sleep(fault.delay)
            return await handler(request)
        if fault.kind is FaultKind.TRUNCATE:
            request[TRUNCATE] = True
            response = await handler(request)
            if isinstance(response, web.Response) and response.body:
                return await self._truncated(request, response)
            return response
        # FaultKind.DROP: the work is done, the answer never arrives.
        response = await handler(request)
        if request.transport is not None:
            request.transport.close()
        return response

    @staticmethod
    async def _truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
        body = bytes(response.body)  # type: ignore[arg-type]
        cut = web.StreamResponse(status=response.status, headers=response.headers)
        cut.content_length = len(body)
        await cut.prepare(request)
        await cut.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return cut

    # -- authorisation ------------------------------------------------------------------------

    def _caller(self, request: web.Request, *scopes: str) -> Caller | web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        caller = self.tokens(token.strip()) if scheme.lower() == "bearer" and token else None
        if caller is None:
            return problem(
                401,
                "The bearer token is missing, expired or not issued to a system user",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request[CALLER] = caller.organisation
        if not caller.scopes.intersection(scopes):
            return problem(403, f"The token lacks the scope {' or '.join(scopes)}")
        return caller

    def _transfer(self, request: web.Request) -> Transfer | web.Response:
        raw = request.match_info["id"]
        try:
            transfer_id = str(uuid.UUID(raw))
        except ValueError:
            return validation_problem({"fileTransferId": [f"The value '{raw}' is not valid."]})
        transfer = self.transfers.get(transfer_id) or self._finished(transfer_id)
        return transfer if transfer is not None else altinn_error(NOT_FOUND)

    # -- handlers -----------------------------------------------------------------------------

    async def _initialize(self, request: web.Request) -> web.Response:
        caller = self._caller(request, WRITE)
        if isinstance(caller, web.Response):
            return caller
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            return validation_problem({"$": [f"The JSON value could not be converted: {exc}"]})
        errors = _check_initialize(body)
        if errors:
            return validation_problem(errors)
        sender = actor(body["sender"])
        assert sender is not None
        if sender != caller.organisation:
            return altinn_error(NO_ACCESS)
        if body["resourceId"] not in self.resources:
            return altinn_error(RESOURCE_NOT_CONFIGURED)
        now = _now()
        transfer = Transfer(
            id=str(uuid.uuid4()),
            resource=body["resourceId"],
            file_name=body["fileName"],
            reference=body.get("sendersFileTransferReference"),
            sender=sender,
            recipients=[r for r in (actor(x) for x in body["recipients"]) if r],
            property_list=dict(body.get("propertyList") or {}),
            checksum=body.get("checksum") or None,
            use_virus_scan=not body.get("disableVirusScan"),
            created=now,
            expires=now + self.time_to_live,
        )
        transfer.set_status(TransferStatus.INITIALIZED)
        for recipient in transfer.recipients:
            transfer.set_recipient_status(recipient, RecipientStatus.INITIALIZED)
        self._keep(transfer)
        log.info("fake broker: transfer initialized", transfer=transfer.id, sender=sender)
        return web.json_response({"fileTransferId": transfer.id})

    async def _upload(self, request: web.Request) -> web.Response:
        caller = self._caller(request, WRITE)
        if isinstance(caller, web.Response):
            return caller
        transfer = self._transfer(request)
        if isinstance(transfer, web.Response):
            return transfer
        if transfer.sender != caller.organisation:
            return altinn_error(NO_ACCESS)
        if STATUS_ORDER.index(transfer.status) > STATUS_ORDER.index(TransferStatus.UPLOAD_STARTED):
            return altinn_error(ALREADY_UPLOADED)
        if request.content_length is not None and request.content_length > self.max_upload_size:
            return altinn_error(TOO_BIG)
        transfer.set_status(TransferStatus.UPLOAD_STARTED)
        path = self.storage / transfer.id
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with path.open("wb") as sink:
                async for chunk in request.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > self.max_upload_size:
                        transfer.set_status(TransferStatus.FAILED, "File size exceeds maximum")
                        path.unlink(missing_ok=True)
                        return altinn_error(TOO_BIG)
                    digest.update(chunk)
                    sink.write(chunk)
        except (ConnectionError, asyncio.CancelledError, web.HTTPException, OSError) as exc:
            transfer.set_status(TransferStatus.FAILED, UPLOAD_ABORTED)
            path.unlink(missing_ok=True)
            log.info("fake broker: upload broke off", transfer=transfer.id, error=repr(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return altinn_error(UPLOAD_FAILED)
        request[BODY_SIZE] = size
        checksum = digest.hexdigest()
        if transfer.checksum and transfer.checksum.lower() != checksum:
            transfer.set_status(TransferStatus.FAILED, CHECKSUM_MISMATCH.message)
            path.unlink(missing_ok=True)
            return altinn_error(CHECKSUM_MISMATCH)
        transfer.path, transfer.size, transfer.checksum = path, size, checksum
        transfer.set_status(TransferStatus.UPLOAD_PROCESSING)
        if self.scan_seconds > 0:
            self._start_scan(transfer, self.scan_seconds)
        else:
            transfer.set_status(TransferStatus.PUBLISHED)
        log.info("fake broker: file uploaded", transfer=transfer.id, bytes=size)
        return web.json_response({"fileTransferId": transfer.id})

    def _start_scan(self, transfer: Transfer, seconds: float) -> None:
        task = asyncio.get_running_loop().create_task(self._scan(transfer, seconds))
        self._scans.add(task)
        task.add_done_callback(self._scans.discard)

    @staticmethod
    async def _scan(transfer: Transfer, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if transfer.status is TransferStatus.UPLOAD_PROCESSING:
            transfer.set_status(TransferStatus.PUBLISHED)

    async def _list(self, request: web.Request) -> web.Response:
        caller = self._caller(request, READ, WRITE)
        if isinstance(caller, web.Response):
            return caller
        query = request.query
        errors: dict[str, list[str]] = {}
        resource = query.get("resourceId")
        if not resource:
            errors["resourceId"] = ["The resourceId field is required."]
        status = _enum(query.get("status"), TransferStatus, "status", errors)
        recipient_status = _enum(
            query.get("recipientStatus"), RecipientStatus, "recipientStatus", errors
        )
        since = _moment(query.get("from"), "from", errors)
        until = _moment(query.get("to"), "to", errors)
        if errors:
            return validation_problem(errors)
        if resource not in self.resources:
            return problem(
                403,
                "The resource needs to be registered as an Altinn 3 resource and it has to be "
                "associated with a service owner",
                code=5,
            )
        who = caller.organisation
        found: list[tuple[datetime, str]] = []
        if not self._keep_finished and self._table is not None:
            found += self._table.finished(resource, who, status, recipient_status, since, until)
        for transfer in self.transfers.values():
            if transfer.resource != resource:
                continue
            if recipient_status is not None:
                if transfer.recipient_status(who) is not recipient_status:
                    continue
            elif who != transfer.sender and who not in transfer.recipients:
                continue
            if status is not None and transfer.status is not status:
                continue
            moment = transfer.status_changed(status) if status is not None else transfer.created
            if moment is None:
                continue
            if since is not None and moment <= since:
                continue
            if until is not None and moment >= until:
                continue
            found.append((moment, transfer.id))
        found.sort(reverse=True)
        return web.json_response([transfer_id for _, transfer_id in found[:LIST_LIMIT]])

    def _visible(self, request: web.Request) -> Transfer | web.Response:
        caller = self._caller(request, READ, WRITE)
        if isinstance(caller, web.Response):
            return caller
        transfer = self._transfer(request)
        if isinstance(transfer, web.Response):
            return transfer
        who = caller.organisation
        if who != transfer.sender and who not in transfer.recipients:
            return altinn_error(NO_ACCESS)
        return transfer

    async def _overview(self, request: web.Request) -> web.Response:
        transfer = self._visible(request)
        if isinstance(transfer, web.Response):
            return transfer
        return web.json_response(transfer.overview())

    async def _details(self, request: web.Request) -> web.Response:
        transfer = self._visible(request)
        if isinstance(transfer, web.Response):
            return transfer
        return web.json_response(transfer.details())

    def _as_recipient(self, request: web.Request) -> tuple[Transfer, str] | web.Response:
        caller = self._caller(request, READ)
        if isinstance(caller, web.Response):
            return caller
        transfer = self._transfer(request)
        if isinstance(transfer, web.Response):
            return transfer
        if caller.organisation not in transfer.recipients:
            return altinn_error(NO_ACCESS)
        return transfer, caller.organisation

    async def _download(self, request: web.Request) -> web.StreamResponse:
        found = self._as_recipient(request)
        if isinstance(found, web.Response):
            return found
        transfer, recipient = found
        if transfer.status not in (
            TransferStatus.PUBLISHED,
            TransferStatus.ALL_CONFIRMED_DOWNLOADED,
        ):
            return altinn_error(NOT_AVAILABLE)
        if transfer.path is None:
            return altinn_error(NO_FILE_UPLOADED)
        transfer.set_recipient_status(recipient, RecipientStatus.DOWNLOAD_STARTED)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{transfer.file_name}"',
                "Accept-Ranges": "bytes",
            }
        )
        response.content_length = transfer.size
        await response.prepare(request)
        limit = transfer.size // 2 if request.get(TRUNCATE) else transfer.size
        sent = 0
        with transfer.path.open("rb") as source:
            while sent < limit:
                chunk = source.read(min(CHUNK, limit - sent))
                if not chunk:
                    break
                await response.write(chunk)
                sent += len(chunk)
        if request.get(TRUNCATE) and request.transport is not None:
            request.transport.close()
            return response
        await response.write_eof()
        return response

    async def _confirm(self, request: web.Request) -> web.Response:
        found = self._as_recipient(request)
        if isinstance(found, web.Response):
            return found
        transfer, recipient = found
        if transfer.path is None:
            return altinn_error(NO_FILE_UPLOADED)
        if transfer.status not in (
            TransferStatus.PUBLISHED,
            TransferStatus.ALL_CONFIRMED_DOWNLOADED,
        ):
            return altinn_error(NOT_PUBLISHED)
        current = transfer.recipient_status(recipient)
        if current is RecipientStatus.DOWNLOAD_CONFIRMED:
            return web.Response(status=200)
        if current is not RecipientStatus.DOWNLOAD_STARTED:
            return altinn_error(CONFIRM_BEFORE_DOWNLOAD)
        transfer.set_recipient_status(recipient, RecipientStatus.DOWNLOAD_CONFIRMED)
        others = [r for r in transfer.recipients if r != recipient]
        if all(transfer.recipient_status(r) is RecipientStatus.DOWNLOAD_CONFIRMED for r in others):
            transfer.set_status(TransferStatus.ALL_CONFIRMED_DOWNLOADED)
        log.info("fake broker: download confirmed", transfer=transfer.id, recipient=recipient)
        return web.Response(status=200)

    # -- control routes (standalone use) ------------------------------------------------------

    async def _control_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        scopes = tuple(body.get("scopes") or (READ, WRITE))
        try:
            token = self.issued.issue(str(body.get("organisation", "")), scopes)
        except ValueError as exc:
            return problem(400, str(exc))
        return web.json_response({"access_token": token, "scope": " ".join(scopes)})

    async def _control_transfers(self, request: web.Request) -> web.Response:
        return web.json_response([t.details() for t in self.transfers.values()])

    async def _control_fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            fault = Fault(
                kind=FaultKind(body.get("kind", "error")),
                status=int(body.get("status", 503)),
                retry_after=body.get("retryAfter"),
                delay=float(body.get("delay", 0)),
                method=body.get("method"),
                path=body.get("path"),
                times=int(body.get("times", 1)),
            )
        except (ValueError, TypeError) as exc:
            return problem(400, f"not a fault: {exc}")
        self.inject(fault)
        return web.json_response({"queued": len(self.faults)})


def _check_initialize(body: Any) -> dict[str, list[str]]:
    """ASP.NET's model validation of ``FileTransferInitalizeExt``."""
    if not isinstance(body, Mapping):
        return {"$": ["The JSON value could not be converted to FileTransferInitalizeExt."]}
    errors: dict[str, list[str]] = {}

    def text(name: str, key: str, maximum: int, required: bool) -> None:
        value = body.get(key)
        if value is None:
            if required:
                errors[name] = [f"The {name} field is required."]
            return
        if not isinstance(value, str):
            errors[name] = [f"The JSON value could not be converted to System.String: {key}"]
        elif not 1 <= len(value) <= maximum:
            errors[name] = [
                f"The field {name} must be a string with a minimum length of 1 and a maximum "
                f"length of {maximum}."
            ]

    text("FileName", "fileName", 255, True)
    text("ResourceId", "resourceId", 255, True)
    text("SendersFileTransferReference", "sendersFileTransferReference", 4096, False)
    sender = body.get("sender")
    if sender is None:
        errors["Sender"] = ["The Sender field is required."]
    elif actor(sender) is None:
        errors["Sender"] = [ORG_MESSAGE]
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        errors["Recipients"] = ["One or more recipients are required"]
    elif any(actor(r) is None for r in recipients):
        errors["Recipients"] = [RECIPIENT_MESSAGE]
    properties = body.get("propertyList")
    if properties is not None:
        if not isinstance(properties, Mapping) or not all(
            isinstance(v, str) for v in properties.values()
        ):
            errors["PropertyList"] = ["PropertyList Object is not of proper type"]
        elif len(properties) > 10:
            errors["PropertyList"] = ["PropertyList can contain at most 10 properties"]
        elif any(len(k) > 50 for k in properties):
            errors["PropertyList"] = ["PropertyList Key can not be longer than 50."]
        elif any(len(v) > 3000 for v in properties.values()):
            errors["PropertyList"] = ["PropertyList Value can not be longer than 3000."]
    checksum = body.get("checksum")
    if checksum not in (None, "") and (not isinstance(checksum, str) or not MD5.match(checksum)):
        errors["Checksum"] = ["The checksum, if used, must be a MD5 hash value."]
    if body.get("disableVirusScan") not in (None, True, False):
        errors["DisableVirusScan"] = ["The JSON value could not be converted to System.Boolean."]
    return errors


def _enum(value: str | None, kind: type[StrEnum], name: str, errors: dict[str, list[str]]) -> Any:
    if value is None or value == "":
        return None
    for member in kind:
        if member.value.lower() == value.lower():
            return member
    errors[name] = [f"The value '{value}' is not valid."]
    return None


def _moment(value: str | None, name: str, errors: dict[str, list[str]]) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        errors[name] = [f"The value '{value}' is not valid."]
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- standalone ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """``python -m ipunkt_dpo.fake --port N``: the fake broker with its control routes."""
    parser = argparse.ArgumentParser(prog="python -m ipunkt_dpo.fake", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8095)
    parser.add_argument("--storage", help="folder for uploaded files (default: a temporary one)")
    parser.add_argument("--scan-seconds", type=float, default=0.0, help="virus scan duration")
    parser.add_argument(
        "--resource",
        action="append",
        help="Altinn resources served (default: eformidling-dpo-meldingsutveksling)",
    )
    args = parser.parse_args(argv)
    broker = FakeBroker(
        resources=tuple(args.resource or ("eformidling-dpo-meldingsutveksling",)),
        storage=Path(args.storage) if args.storage else None,
        scan_seconds=args.scan_seconds,
    )
    print(f"fake Altinn broker on http://{args.host}:{args.port}{BASE}", flush=True)
    web.run_app(broker.app(control=True), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
