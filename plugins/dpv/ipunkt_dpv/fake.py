"""A fake of Altinn 3 correspondence, faithful enough to test the DPV channel against.

It implements the operations DPV uses (``POST /correspondence/upload``, ``GET /correspondence``,
``GET /correspondence/{id}``, the attachment download) with Altinn's rules as its source shows
them: idempotency keys (409 error 1034), content and notification checks, resource and
confidentiality checks, the file/metadata match, reserved persons, ProblemDetails errors with
``errorCode``, 401 without a bearer token and 406 for a wrong Accept. Given the published
OpenAPI document it checks every request against it (answering 400 like ASP.NET's model
validation) and every answer it gives, and records what it found in :attr:`violations`.

A correspondence's life is scripted: published ``publish_after`` seconds after creation and
read ``read_after`` seconds after that (:class:`Lifecycle`), or any status set at any time
(:meth:`FakeCorrespondence.set_status`, :meth:`purge`, :meth:`forget`). Faults are injected
on demand (:class:`Fault`): an error status, Retry-After, a slow answer, a truncated body, a
dropped connection, before or after the operation took effect.

Uploaded files stream to disk; nothing holds a file in memory. ``GET /_fake/correspondences``
(no token; ``?recipient=<number>`` to narrow it) shows what Altinn holds, so that a sandbox
user sees the business's inbox. Run it alone with
``python -m ipunkt_dpv.fake --port 8092 --specs ../shared/specs``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import BodyPartReader, web

from ipunkt_dpv.spec_check import SPEC_FILE, CorrespondenceSpec, Operation

log = structlog.get_logger(__name__)

API = "/correspondence/api/v1"
HEALTH = "/health-probe"
INBOX = "/_fake/correspondences"
MAX_FIELD_BYTES = 64 << 10
MAX_FILE_BYTES = 2_000_000_000
ALLOWED_FILE_TYPES = frozenset({
    ".doc", ".xls", ".docx", ".xlsx", ".ppt", ".pps", ".zip", ".pdf", ".html", ".txt", ".xml",
    ".jpg", ".jpeg", ".gif", ".bmp", ".png", ".json", ".csv", ".dcm", ".dicom",
})
_INVALID_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_RESERVED_NAME = re.compile(r"^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\.|$)", re.IGNORECASE)
_RECIPIENT = re.compile(r"^(?:urn:altinn:(?:organization|person):identifier-no:)?(\d{9}|\d{11})$")

_TITLES = {
    400: ("https://tools.ietf.org/html/rfc9110#section-15.5.1", "Bad Request"),
    401: ("https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"),
    403: ("https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"),
    404: ("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"),
    409: ("https://tools.ietf.org/html/rfc9110#section-15.5.10", "Conflict"),
    410: ("https://tools.ietf.org/html/rfc9110#section-15.5.11", "Gone"),
    422: ("https://tools.ietf.org/html/rfc9110#section-15.5.21", "Unprocessable Entity"),
    429: ("https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"),
    500: ("https://tools.ietf.org/html/rfc9110#section-15.6.1", "Internal Server Error"),
    501: ("https://tools.ietf.org/html/rfc9110#section-15.6.2", "Not Implemented"),
    502: ("https://tools.ietf.org/html/rfc9110#section-15.6.3", "Bad Gateway"),
    503: ("https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"),
}

Clock = Callable[[], datetime]
_RECORDED = web.RequestKey("recorded", bool)


class ManualClock:
    """Real time, moved forward by hand, so that lifecycles need no sleeping (and timestamps
    the client sends, such as requestedPublishTime, still mean what they say)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Lifecycle:
    """When a new correspondence is published and read, in seconds (None: never)."""

    publish_after: float | None = 0.0
    """After creation (and not before its requestedPublishTime)."""
    read_after: float | None = None
    """After publication."""


@dataclass
class Fault:
    """Misbehaviour on the next ``times`` requests to ``operation`` (or ``"*"``).

    Operations: ``upload``, ``list``, ``overview``, ``download``.
    """

    operation: str = "*"
    status: int | None = None
    """Answer with this status and a ProblemDetails body (None: the normal answer)."""
    retry_after: float | None = None
    delay: float = 0.0
    """Seconds to wait before answering (with ``after_processing``: after the operation took
    effect, as when the process that waits for the answer is killed meanwhile)."""
    truncate: bool = False
    """Send half of the answer's body, then close the connection."""
    disconnect: bool = False
    """Close the connection without answering."""
    after_processing: bool = False
    """Let the operation take effect first: the answer is what gets lost."""
    times: int = 1


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    display_name: str | None
    senders_reference: str
    is_encrypted: bool
    data_type: str
    path: Path
    size: int
    md5: str
    sha256: str


@dataclass
class StoredCorrespondence:
    """One correspondence, with the form it was made from."""

    id: str
    form: dict[str, str]
    """The upload's fields, names in lower case (ASP.NET binds them case-insensitively)."""
    fields: tuple[tuple[str, str], ...]
    """The upload's fields as sent."""
    recipient: str
    created: datetime
    requested_publish_time: datetime
    lifecycle: Lifecycle
    files: list[StoredFile]
    notification_order: str
    events: list[tuple[datetime, str]] = field(default_factory=list)
    """Statuses set by the script, with when."""
    forgotten: bool = False

    @property
    def resource_id(self) -> str:
        return self.form["correspondence.resourceid"]

    @property
    def senders_reference(self) -> str:
        return self.form["correspondence.sendersreference"]

    def history(self, now: datetime) -> list[tuple[datetime, str]]:
        """The statuses so far: the lifecycle's, cut off by the first scripted one."""
        auto = [(self.created, "Initialized"), (self.created, "ReadyForPublish")]
        if self.lifecycle.publish_after is not None:
            published = max(self.requested_publish_time,
                            self.created + timedelta(seconds=self.lifecycle.publish_after))
            auto.append((published, "Published"))
            if self.lifecycle.read_after is not None:
                read = published + timedelta(seconds=self.lifecycle.read_after)
                auto += [(read, "Fetched"), (read, "Read")]
        if self.events:
            first = min(when for when, _ in self.events)
            auto = [(when, status) for when, status in auto if when <= first]
        merged = sorted(auto + self.events, key=lambda item: item[0])
        return [(when, status) for when, status in merged if when <= now]


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the fake saw it, for tests to inspect."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    operation: str | None
    form: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str, int], ...] = ()
    """(field name, file name, size) of each file part."""


class AltinnError(Exception):
    """An answer in Altinn's ProblemDetails shape."""

    def __init__(self, status: int, code: int | None, detail: str,
                 errors: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors = status, code, detail, errors


def problem(status: int, code: int | None, detail: str,
            errors: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """Altinn's ProblemDetails (``ProblemDetailsHelper``): type, title, status, detail,
    traceId, and for its own errors ``code`` and ``errorCode``."""
    kind, title = _TITLES.get(status, ("about:blank", "Error"))
    body: dict[str, Any] = {"type": kind, "title": title, "status": status, "detail": detail,
                            "traceId": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}
    if code is not None:
        body["code"] = f"CORR-{code:05d}"
        body["errorCode"] = code
    if errors:
        body["errors"] = {name: list(messages) for name, messages in errors.items()}
    return body


class FakeCorrespondence:
    """The fake service: its state, its script, and its aiohttp application (:attr:`app`)."""

    def __init__(
        self,
        *,
        spec: CorrespondenceSpec | None = None,
        lifecycle: Lifecycle | None = None,
        clock: Clock | None = None,
        storage: Path | None = None,
        resources: Mapping[str, bool] | None = None,
        recipients: Iterable[str] | None = None,
        reserved: Iterable[str] = (),
        accept_token: Callable[[str], bool] | None = None,
    ) -> None:
        """``resources`` maps each known Altinn resource to whether it is confidential (by
        default every ``eformidling-dpv-*`` resource is known, and only
        ``eformidling-dpv-taushetsbelagt`` is confidential); ``recipients``, when given, are
        the only organisation and person numbers Altinn's register knows; ``reserved`` are
        persons reserved against digital post in KRR."""
        self.spec = spec
        self.lifecycle = lifecycle or Lifecycle()
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self._own_storage = storage is None
        self.storage = storage or Path(tempfile.mkdtemp(prefix="ipunkt-dpv-fake-"))
        self.resources = dict(resources) if resources is not None else None
        self.recipients = set(recipients) if recipients is not None else None
        self.reserved = set(reserved)
        self.accept_token = accept_token or bool
        self.correspondences: dict[str, StoredCorrespondence] = {}
        self.idempotency: dict[str, str] = {}
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        """Requests that broke the published spec, and answers of the fake that would."""
        self.faults: list[Fault] = []
        self.app = self._make_app()

    @classmethod
    def from_specs(cls, specs: Path, **kwargs: Any) -> FakeCorrespondence:
        """A fake that checks traffic against ``specs``/altinn/altinn-correspondence-v1.json."""
        return cls(spec=CorrespondenceSpec.load(specs / SPEC_FILE), **kwargs)

    # The script -----------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def set_status(self, correspondence_id: str, status: str, at: datetime | None = None) -> None:
        """Give a correspondence any status (it stops following its lifecycle from then)."""
        self.correspondences[correspondence_id].events.append((at or self.clock(), status))

    def purge(self, correspondence_id: str, by_recipient: bool = True) -> None:
        self.set_status(correspondence_id, "PurgedByRecipient" if by_recipient
                        else "PurgedByAltinn")

    def forget(self, correspondence_id: str) -> None:
        """Altinn no longer knows the correspondence: its overview answers 404."""
        self.correspondences[correspondence_id].forgotten = True

    def by_senders_reference(self, reference: str) -> list[StoredCorrespondence]:
        return [c for c in self.correspondences.values() if c.senders_reference == reference]

    def overview(self, correspondence_id: str) -> dict[str, Any]:
        """The overview Altinn would give now (what ``GET /correspondence/{id}`` answers)."""
        return self._overview(self.correspondences[correspondence_id])

    # The application ------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_FIELD_BYTES)
        app.router.add_post(f"{API}/correspondence/upload", self._upload, name="upload")
        app.router.add_get(f"{API}/correspondence", self._list, name="list")
        app.router.add_get(f"{API}/correspondence/{{correspondenceId}}", self._overview_handler,
                           name="overview")
        app.router.add_get(
            f"{API}/correspondence/{{correspondenceId}}/attachment/{{attachmentId}}/download",
            self._download, name="download")
        app.router.add_get(HEALTH, self._health, name="health")
        app.router.add_get(INBOX, self._inbox, name="inbox")
        app.router.add_route("*", f"{API}/{{tail:.*}}", self._not_implemented, name="other")
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        if self._own_storage:
            await asyncio.to_thread(shutil.rmtree, self.storage, True)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.name
        operation = route if route not in (None, "other", "health", "inbox") else None
        fault = self._take_fault(operation)
        if fault is not None and fault.delay and not fault.after_processing:
            await asyncio.sleep(fault.delay)
        if fault is not None and not fault.after_processing:
            misbehaviour = await self._misbehave(request, fault, None)
            if misbehaviour is not None:
                self._record(request, operation)
                return misbehaviour
        if route in ("health", "inbox"):
            return await handler(request)
        spec_op: Operation | None = None
        try:
            self._authorise(request)
            spec_op = self._check_spec(request)
            response = await handler(request)
        except AltinnError as exc:
            response = _error_response(exc)
        if _RECORDED not in request:
            self._record(request, operation)
        if spec_op is not None and isinstance(response, web.Response):
            self._check_answer(spec_op, response)
        if fault is not None and fault.after_processing:
            await asyncio.sleep(fault.delay)
            misbehaviour = await self._misbehave(request, fault, response)
            if misbehaviour is not None:
                return misbehaviour
        return response

    def _take_fault(self, operation: str | None) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.operation in ("*", operation) and operation:
                fault.times -= 1
                return fault
        return None

    async def _misbehave(self, request: web.Request, fault: Fault,
                         answer: web.StreamResponse | None) -> web.StreamResponse | None:
        if fault.disconnect:
            await _drain(request)
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if fault.truncate:
            await _drain(request)
            body = answer.body if isinstance(answer, web.Response) and isinstance(
                answer.body, bytes) else json.dumps(problem(500, None, "cut short")).encode()
            truncated = web.StreamResponse(status=answer.status if answer else 200,
                                           headers={"Content-Type": "application/json"})
            truncated.content_length = len(body)
            await truncated.prepare(request)
            await truncated.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return truncated
        if fault.status is not None:
            await _drain(request)
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return web.json_response(
                problem(fault.status, None, f"injected fault: HTTP {fault.status}"),
                status=fault.status, headers=headers, content_type="application/problem+json",
            )
        return None

    def _authorise(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token or not self.accept_token(token):
            raise AltinnError(401, 4001, "You must use an Altinn token")
        accept = request.headers.get("Accept")
        if accept and request.match_info.route.name != "download":
            kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
            if not kinds & {"application/json", "*/*"}:
                raise AltinnError(406, None, "This endpoint does not support the requested "
                                  "Accept header. Supported Accept headers are: "
                                  "application/json, */*.")

    def _check_spec(self, request: web.Request) -> Operation | None:
        if self.spec is None:
            return None
        operation, problems = self.spec.find(request.method, request.path)
        if operation is None:
            self.violations += [f"{request.method} {request.path}: {p}" for p in problems]
            status = 405 if problems and "not an operation" in problems[0] else 404
            raise AltinnError(status, None, problems[0])
        problems = self.spec.check_request(operation, request.path, request.query.items())
        if problems:
            self._refuse(request, problems)
        return operation

    def _refuse(self, request: web.Request, problems: list[str]) -> None:
        """A 400 like ASP.NET's model validation; the violations are recorded."""
        self.violations += [f"{request.method} {request.path}: {p}" for p in problems]
        raise AltinnError(400, None, "One or more validation errors occurred.",
                          {"request": problems})

    def _check_answer(self, operation: Operation, response: web.Response) -> None:
        assert self.spec is not None
        body = response.body if isinstance(response.body, bytes) else None
        content_type = response.content_type if body is not None else None
        value: Any = None
        if body is not None and content_type in ("application/json", "application/problem+json"):
            value = json.loads(body)
            content_type = "application/json"
        problems = self.spec.check_response(operation, response.status, value, content_type)
        self.violations += [f"answer of {operation.method} {operation.template}: {p}"
                            for p in problems]

    def _record(self, request: web.Request, operation: str | None,
                form: Iterable[tuple[str, str]] = (),
                files: Iterable[tuple[str, str, int]] = ()) -> None:
        request[_RECORDED] = True
        self.requests.append(RecordedRequest(
            request.method, request.path, tuple(request.query.items()),
            dict(request.headers), operation, tuple(form), tuple(files)))

    # Handlers -------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/form-data"):
            raise AltinnError(415, None, "the upload is a multipart/form-data request")
        fields: list[tuple[str, str]] = []
        parts: list[tuple[str, str | None, StoredFile]] = []
        try:
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    raise AltinnError(400, None, "nested multipart is not accepted")
                if part.filename is None:
                    fields.append((part.name or "", await _field_text(part)))
                else:
                    parts.append((part.name or "", part.filename,
                                  await self._store(part, part.filename)))
        except AltinnError:
            _discard(file for _, _, file in parts)
            raise
        self._record(request, "upload", fields,
                     [(name, file.filename, file.size) for name, _, file in parts])
        try:
            if self.spec is not None:
                operation, _ = self.spec.find("POST", request.path)
                assert operation is not None
                _, problems = self.spec.check_form(operation, fields, [n for n, _, _ in parts])
                if problems:
                    self._refuse(request, problems)
            answer = self._create(fields, [file for _, _, file in parts])
        except AltinnError:
            _discard(file for _, _, file in parts)
            raise
        return web.json_response(answer)

    async def _store(self, part: BodyPartReader, filename: str) -> StoredFile:
        target = self.storage / uuid.uuid4().hex
        md5, sha256, size = hashlib.md5(usedforsecurity=False), hashlib.sha256(), 0
        with target.open("wb") as sink:
            while chunk := await part.read_chunk(1 << 16):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    sink.close()
                    target.unlink(missing_ok=True)
                    raise AltinnError(400, 2004, "File must have content and has a max file "
                                      "size of 2GB")
                md5.update(chunk)
                sha256.update(chunk)
                await asyncio.to_thread(sink.write, chunk)
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        return StoredFile(str(uuid.uuid4()), filename, None, "", False, content_type, target,
                          size, md5.hexdigest(), sha256.hexdigest())

    def _create(self, fields: list[tuple[str, str]], files: list[StoredFile]) -> dict[str, Any]:
        """Altinn's rules for a new correspondence, in its handler's order."""
        form = {name.lower(): value for name, value in fields}
        recipients = _indexed(form, "recipients") or [
            value for name, value in fields if name.lower() == "recipients"]
        key = form.get("idempotentkey")
        if key is not None:
            if not _is_guid(key) or uuid.UUID(key).int == 0:
                raise AltinnError(400, 1033, "The idempotency key must be a valid non-empty GUID")
            if len(recipients) > 1:
                raise AltinnError(400, 1047, "Idempotency key is not supported for requests "
                                  "with multiple recipients")
            if key.lower() in self.idempotency:
                raise AltinnError(409, 1034, "A correspondence with the same idempotent key "
                                  "already exists")
        self._check_content(form)
        now = self.clock()
        publish = _parse_time(form.get("correspondence.requestedpublishtime")) or now
        self._check_resource(form)
        self._check_recipients(form, recipients)
        due = _parse_time(form.get("correspondence.duedatetime"))
        if due is not None and due.date() < now.date():
            raise AltinnError(400, 1008, "DueDateTime cannot be prior to today")
        if due is not None and due < publish:
            raise AltinnError(400, 1009, "DueDateTime cannot be prior to RequestedPublishTime")
        self._check_notification(form)
        stored = self._match_files(form, files)
        correspondence = StoredCorrespondence(
            id=str(uuid.uuid4()), form=form, fields=tuple(fields),
            recipient=_urn(recipients[0]), created=now,
            requested_publish_time=publish, lifecycle=self.lifecycle, files=stored,
            notification_order=str(uuid.uuid4()),
        )
        self.correspondences[correspondence.id] = correspondence
        if key is not None:
            self.idempotency[key.lower()] = correspondence.id
        log.info("fake_altinn.correspondence_created", correspondence_id=correspondence.id,
                 senders_reference=correspondence.senders_reference, files=len(stored))
        return {
            "correspondences": [{
                "correspondenceId": correspondence.id,
                "status": "Initialized",
                "recipient": correspondence.recipient,
                "notifications": [{"orderId": correspondence.notification_order,
                                   "isReminder": False, "status": "Success"}],
            }],
            "attachmentIds": [file.id for file in stored],
        }

    def _check_content(self, form: Mapping[str, str]) -> None:
        required = {
            "correspondence.resourceid": "ResourceId",
            "correspondence.sendersreference": "SendersReference",
            "correspondence.notification.notificationtemplate": "Notification.NotificationTemplate",
        }
        missing = {f"Correspondence.{label}": [f"The {label} field is required."]
                   for name, label in required.items() if not form.get(name)}
        if missing:
            raise AltinnError(400, None, "One or more validation errors occurred.", missing)
        if not any(name.startswith("correspondence.content.") for name in form):
            raise AltinnError(400, 1019, "The Content field must be provided for the "
                              "correspondence")
        title = form.get("correspondence.content.messagetitle", "")
        body = form.get("correspondence.content.messagebody", "")
        summary = form.get("correspondence.content.messagesummary")
        if not title.strip():
            raise AltinnError(400, 1020, "Message title cannot be empty")
        if len(title) > 255:
            raise AltinnError(400, 1037, "Message title cannot exceed 255 characters")
        if not body.strip():
            raise AltinnError(400, 1021, "Message body cannot be empty")
        if len(body) > 30000:
            raise AltinnError(400, 1022, "Message body cannot exceed 30000 characters")
        if summary is not None and len(summary) > 255:
            raise AltinnError(400, 1042, "Message summary, if not null, must be between 0 and "
                              "255 characters long")
        if form.get("correspondence.content.language", "nb") not in ("nb", "nn", "en"):
            raise AltinnError(400, 1023, "Invalid language chosen. Supported languages is Norsk "
                              "bokmål (nb), Nynorsk (nn) and English (en)")

    def _check_resource(self, form: Mapping[str, str]) -> None:
        resource = form["correspondence.resourceid"]
        if self.resources is not None:
            known, confidential = resource in self.resources, self.resources.get(resource, False)
        else:
            known = resource.startswith("eformidling-dpv-")
            confidential = resource == "eformidling-dpv-taushetsbelagt"
        if not known:
            raise AltinnError(400, 1036, "ResourceId must match an existing resource in the "
                              "resource registry")
        flagged = form.get("correspondence.isconfidential", "false").lower() == "true"
        if confidential and not flagged:
            raise AltinnError(400, 1060, "Confidential correspondences (resources with the "
                              "access package post-til-virksomheten-med-taushetsbelagt-innhold) "
                              "cannot be initialized without setting the 'IsConfidential' flag "
                              "to true")
        if flagged and not confidential:
            raise AltinnError(400, 1061, "Correspondences cannot be initialized with "
                              "'IsConfidential' flag set to true if the resource is not "
                              "confidential")

    def _check_recipients(self, form: Mapping[str, str], recipients: list[str]) -> None:
        if not recipients:
            raise AltinnError(400, None, "One or more validation errors occurred.",
                              {"Recipients": ["The Recipients field is required."]})
        numbers = []
        for recipient in recipients:
            match = _RECIPIENT.match(recipient)
            if match is None:
                raise AltinnError(400, None, "One or more validation errors occurred.",
                                  {"Recipients": [f"{recipient} is not an organisation or "
                                                  "person URN"]})
            numbers.append(match.group(1))
        if len(set(numbers)) != len(numbers):
            raise AltinnError(400, 1006, "Recipients must be unique")
        unknown = [n for n in numbers if self.recipients is not None and n not in self.recipients]
        if unknown:
            raise AltinnError(404, 1029, "Could not find partyId for the following recipients: "
                              + ", ".join(unknown))
        ignore = form.get("correspondence.ignorereservation", "false").lower() == "true"
        reserved = [n for n in numbers if len(n) == 11 and n in self.reserved]
        if reserved and not ignore and len(numbers) == 1:
            raise AltinnError(422, 1030, f"Recipient {recipients[0]} has reserved themselves "
                              "from public correspondences. Can be overridden using the "
                              "'IgnoreReservation' flag.")

    def _check_notification(self, form: Mapping[str, str]) -> None:
        prefix = "correspondence.notification."
        if form.get(prefix + "notificationtemplate") != "CustomMessage":
            return
        channel = form.get(prefix + "notificationchannel", "Email")
        rounds = [("", channel)]
        if form.get(prefix + "sendreminder", "false").lower() == "true":
            rounds.append(("reminder", form.get(prefix + "remindernotificationchannel", channel)))
        for kind, used in rounds:
            email = bool(form.get(f"{prefix}{kind}emailsubject")) and bool(
                form.get(f"{prefix}{kind}emailbody"))
            sms = bool(form.get(f"{prefix}{kind}smsbody"))
            needs = {"Email": (email,), "Sms": (sms,)}.get(used, (email, sms))
            if not all(needs):
                code, message = _NOTIFICATION_ERRORS[(kind, used)]
                raise AltinnError(400, code, message)

    def _match_files(self, form: Mapping[str, str], files: list[StoredFile]) -> list[StoredFile]:
        """Each new attachment's metadata must name one uploaded file (error 1005)."""
        metadata = _indexed_objects(form, "correspondence.content.attachments")
        targets = []
        for index, item in enumerate(metadata):
            if not item.get("datalocationtype"):
                raise AltinnError(400, None, "One or more validation errors occurred.", {
                    f"Correspondence.Content.Attachments[{index}].DataLocationType":
                        ["The DataLocationType field is required."]})
            if item["datalocationtype"] == "NewCorrespondenceAttachment":
                targets.append(item)
        for item in targets:
            name = item.get("filename") or ""
            extension = os.path.splitext(name)[1].lower()
            if not name.strip():
                raise AltinnError(400, 2010, "Filename is missing")
            if len(name) > 255:
                raise AltinnError(400, 2011, "Filename is too long")
            if extension not in ALLOWED_FILE_TYPES:
                raise AltinnError(400, 2013, "Filetype not allowed")
            if _INVALID_NAME.search(name) or _RESERVED_NAME.match(name):
                raise AltinnError(400, 2012, "Filename contains invalid characters")
        if len(targets) != len(files):
            raise AltinnError(400, 1005, "Mismatch between uploaded files and attachment metadata")
        unused = list(files)
        stored = []
        for item in targets:
            file = next((f for f in unused if f.filename == item.get("filename")), None)
            if file is None:
                raise AltinnError(400, 1005, "Mismatch between uploaded files and attachment "
                                  "metadata")
            unused.remove(file)
            if file.size == 0:
                raise AltinnError(400, 2004, "File must have content and has a max file size "
                                  "of 2GB")
            stored.append(StoredFile(
                file.id, file.filename, item.get("displayname"),
                item.get("sendersreference", ""), item.get("isencrypted", "false") == "true",
                file.data_type, file.path, file.size, file.md5, file.sha256))
        return stored

    async def _list(self, request: web.Request) -> web.Response:
        query = request.query
        missing = {name: [f"The {name} field is required."]
                   for name in ("resourceId", "role") if not query.get(name)}
        if missing:  # Altinn binds both as required, though the spec marks them optional.
            raise AltinnError(400, None, "One or more validation errors occurred.", missing)
        start, end = _parse_time(query.get("from")), _parse_time(query.get("to"))
        if start and end and start > end:
            raise AltinnError(400, 1027, "From date cannot be after to date")
        now = self.clock()
        ids = []
        for item in sorted(self.correspondences.values(), key=lambda c: c.created):
            history = item.history(now)
            if item.forgotten or item.resource_id != query["resourceId"]:
                continue
            if "sendersReference" in query and item.senders_reference != query[
                    "sendersReference"]:
                continue
            if "status" in query and history[-1][1] != query["status"]:
                continue
            if (start and item.created < start) or (end and item.created > end):
                continue
            ids.append(item.id)
        return web.json_response({"ids": ids})

    async def _overview_handler(self, request: web.Request) -> web.Response:
        return web.json_response(self._overview(self._find(request)))

    async def _download(self, request: web.Request) -> web.StreamResponse:
        correspondence = self._find(request)
        file = next((f for f in correspondence.files
                     if f.id == request.match_info["attachmentId"]), None)
        if file is None:
            raise AltinnError(404, 2001, "The requested attachment was not found")
        return web.FileResponse(file.path, headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{file.filename}"'})

    async def _inbox(self, request: web.Request) -> web.Response:
        """What Altinn holds (for a recipient), oldest first: not Altinn's API, the fake's."""
        wanted = request.query.get("recipient")
        urn = _urn(wanted) if wanted else None
        items = sorted(self.correspondences.values(), key=lambda c: c.created)
        return web.json_response([
            {**{key: overview[key] for key in (
                "correspondenceId", "recipient", "sendersReference", "resourceId", "status",
                "published", "read", "isConfidential")},
             "title": overview["content"]["messageTitle"],
             "summary": overview["content"]["messageSummary"],
             "files": [{"fileName": f.filename, "size": f.size, "sha256": f.sha256}
                       for f in item.files]}
            for item in items if not item.forgotten and urn in (None, item.recipient)
            for overview in (self._overview(item),)
        ])

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def _not_implemented(self, request: web.Request) -> web.Response:
        raise AltinnError(501, None, f"the fake does not implement {request.method} "
                          f"{request.path}")

    def _find(self, request: web.Request) -> StoredCorrespondence:
        found = self.correspondences.get(request.match_info["correspondenceId"])
        if found is None or found.forgotten:
            raise AltinnError(404, 1001, "The requested correspondence was not found")
        return found

    def _overview(self, item: StoredCorrespondence) -> dict[str, Any]:
        """``CorrespondenceOverviewExt``, as Altinn's mapper fills it."""
        history = item.history(self.clock())
        changed, status = history[-1]
        first = {s: when for when, s in reversed(history)}
        form = item.form
        notification = {
            name: _typed(form[f"correspondence.notification.{name.lower()}"], name)
            for name in _NOTIFICATION_FIELDS if f"correspondence.notification.{name.lower()}"
            in form
        }
        overview: dict[str, Any] = {
            "resourceId": item.resource_id,
            "sender": form.get("correspondence.sender"),
            "sendersReference": item.senders_reference,
            "messageSender": form.get("correspondence.messagesender"),
            "content": {
                "language": form.get("correspondence.content.language", "nb"),
                "messageTitle": form.get("correspondence.content.messagetitle"),
                "messageSummary": form.get("correspondence.content.messagesummary", ""),
                "messageBody": form.get("correspondence.content.messagebody"),
                "attachments": [_attachment(file, item.created) for file in item.files],
            },
            "requestedPublishTime": _time(item.requested_publish_time),
            "allowSystemDeleteAfter": None,
            "dueDateTime": _time(due) if (due := _parse_time(
                form.get("correspondence.duedatetime"))) else None,
            "externalReferences": [],
            "propertyList": {
                name.rpartition(".")[2]: value for name, value in item.fields
                if name.lower().startswith("correspondence.propertylist.")},
            "replyOptions": [],
            "ignoreReservation": form.get("correspondence.ignorereservation", "false") == "true",
            "isConfirmationNeeded":
                form.get("correspondence.isconfirmationneeded", "false") == "true",
            "isConfidential": form.get("correspondence.isconfidential", "false") == "true",
            "recipient": item.recipient,
            "correspondenceId": item.id,
            "created": _time(item.created),
            "status": status,
            "statusText": status,
            "statusChanged": _time(changed),
            "notifications": [{"notificationOrderId": item.notification_order,
                               "isReminder": False}],
            "altinn2CorrespondenceId": None,
            "published": _time(first["Published"]) if "Published" in first else None,
            "read": _time(first["Read"]) if "Read" in first else None,
        }
        if notification:
            overview["notification"] = notification
        return overview


_NOTIFICATION_ERRORS = {
    ("", "Email"): (3002, "Email body and subject must be provided when sending email "
                    "notifications"),
    ("reminder", "Email"): (3003, "Reminder email body and subject must be provided when "
                            "sending reminder email notifications"),
    ("", "Sms"): (3004, "SMS body must be provided when sending SMS notifications"),
    ("reminder", "Sms"): (3005, "Reminder SMS body must be provided when sending reminder SMS "
                          "notifications"),
    ("", "EmailPreferred"): (3006, "Email body, subject and SMS body must be provided when "
                             "sending preferred notifications"),
    ("reminder", "EmailPreferred"): (3007, "Reminder email body, subject and SMS body must be "
                                     "provided when sending reminder preferred notifications"),
    ("", "EmailAndSms"): (3024, "Email body, subject and SMS body must be provided when "
                          "sending email and SMS notifications"),
    ("reminder", "EmailAndSms"): (3025, "Reminder email body, subject and SMS body must be "
                                  "provided when sending reminder email and SMS notifications"),
}
_NOTIFICATION_ERRORS[("", "SmsPreferred")] = _NOTIFICATION_ERRORS[("", "EmailPreferred")]
_NOTIFICATION_ERRORS[("reminder", "SmsPreferred")] = _NOTIFICATION_ERRORS[
    ("reminder", "EmailPreferred")]

_NOTIFICATION_FIELDS = (
    "notificationTemplate", "emailSubject", "emailBody", "emailContentType", "smsBody",
    "sendReminder", "reminderEmailSubject", "reminderEmailBody", "reminderEmailContentType",
    "reminderSmsBody", "notificationChannel", "reminderNotificationChannel", "sendersReference",
    "requestedSendTime",
)


def _attachment(file: StoredFile, created: datetime) -> dict[str, Any]:
    return {
        "fileName": file.filename, "displayName": file.display_name,
        "isEncrypted": file.is_encrypted, "checksum": file.md5,
        "sendersReference": file.senders_reference or file.filename, "id": file.id,
        "dataLocationType": "AltinnCorrespondenceAttachment", "created": _time(created),
        "status": "Published", "statusText": "Published", "statusChanged": _time(created),
        "expirationTime": _time(created + timedelta(days=365)), "dataType": file.data_type,
    }


def _typed(value: str, name: str) -> Any:
    if name == "sendReminder":
        return value.lower() == "true"
    if name == "requestedSendTime":
        moment = _parse_time(value)
        return _time(moment) if moment else None
    return value


def _error_response(exc: AltinnError) -> web.Response:
    if exc.status == 401:  # ASP.NET's JWT bearer handler answers with no body
        return web.Response(status=401, headers={"WWW-Authenticate": "Bearer"})
    if exc.status == 406:  # Altinn's Accept middleware answers in plain text
        return web.Response(status=406, text=exc.detail)
    return web.json_response(problem(exc.status, exc.code, exc.detail, exc.errors),
                             status=exc.status, content_type="application/problem+json")


async def _field_text(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(1 << 14):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise AltinnError(400, None, f"form field {part.name} is larger than "
                              f"{MAX_FIELD_BYTES} bytes")
    return data.decode(part.get_charset("utf-8"))


async def _drain(request: web.Request) -> None:
    """Read what the client sends, so that it sees our answer and not a reset."""
    if request.can_read_body:
        while await request.content.readany():
            pass


def _discard(files: Iterable[StoredFile]) -> None:
    for file in files:
        file.path.unlink(missing_ok=True)


def _indexed(form: Mapping[str, str], prefix: str) -> list[str]:
    pattern = re.compile(re.escape(prefix) + r"\[(\d+)\]$")
    found = sorted((int(m.group(1)), v) for k, v in form.items() if (m := pattern.match(k)))
    return [value for _, value in found]


def _indexed_objects(form: Mapping[str, str], prefix: str) -> list[dict[str, str]]:
    pattern = re.compile(re.escape(prefix) + r"\[(\d+)\]\.(\w+)$")
    items: dict[int, dict[str, str]] = {}
    for name, value in form.items():
        match = pattern.match(name)
        if match:
            items.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [items[index] for index in sorted(items)]


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _urn(recipient: str) -> str:
    if recipient.startswith("urn:"):
        return recipient
    kind = "person" if len(recipient) == 11 else "organization"
    return f"urn:altinn:{kind}:identifier-no:{recipient}"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise AltinnError(400, None, "One or more validation errors occurred.",
                          {"date": [f"{value!r} is not a date and time"]}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def main(argv: list[str] | None = None) -> None:
    """Run the fake alone: ``python -m ipunkt_dpv.fake --port 8092 --specs ../shared/specs``."""
    parser = argparse.ArgumentParser(prog="python -m ipunkt_dpv.fake", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    parser.add_argument("--specs", type=Path, default=os.environ.get("IPUNKT_SPECS"),
                        help="published specs folder, to check traffic against "
                             "(default: $IPUNKT_SPECS)")
    parser.add_argument("--publish-after", type=float, default=0.0,
                        help="seconds until a new correspondence is published")
    parser.add_argument("--read-after", type=float, default=None,
                        help="seconds after publication until it is read (default: never)")
    args = parser.parse_args(argv)
    spec = CorrespondenceSpec.load(args.specs / SPEC_FILE) if args.specs else None
    if spec is None:
        log.warning("fake_altinn.unchecked", reason="no --specs: requests are not checked "
                    "against the published OpenAPI document")
    fake = FakeCorrespondence(spec=spec, lifecycle=Lifecycle(args.publish_after, args.read_after))
    ready = f"fake Altinn correspondence on http://{args.host}:{args.port}{API}"
    # run_app prints once it listens: only then is the fake ready.
    web.run_app(fake.app, host=args.host, port=args.port,
                print=lambda _banner: print(ready, flush=True))


if __name__ == "__main__":
    main()
