"""A client of the Altinn 3 broker's file-transfer API: the calls DPO makes, streamed.

Each call acts as one organisation's Altinn system user (the integration point's own, or a
reportee's), whose bearer token it asks for just before the request. Uploads and downloads
stream; nothing here holds a file. Failures become the plugin contract's errors: network
errors, timeouts, 5xx, 408 and 429 are :class:`BrokerUnavailable` (worth retrying, with the
broker's ``Retry-After``); any other 4xx is :class:`BrokerRefused`, carrying the broker's RFC
7807 ProblemDetails. A read (``GET``) that fails so is tried again at once, a few times: a
search or a poll makes many reads, and one failure among them would otherwise spoil them all.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiohttp
from ipunkt.plugin import PermanentError, TransientError, upload_deadline

CHUNK = 1 << 20
"""Bytes per chunk read from a download."""
READ_TRIES = 3
"""How often a read is tried before its failure is raised."""
READ_BACKOFF = 0.25
"""Seconds before the second try of a read; each further try waits twice as long ..."""
READ_WAIT_LIMIT = 5.0
"""... and a ``Retry-After`` longer than this is left to the caller's own retry."""


class Scope(StrEnum):
    """The Maskinporten scopes the broker asks for."""

    READ = "altinn:broker.read"
    WRITE = "altinn:broker.write"


TokenSource = Callable[[str, Scope], Awaitable[str]]
"""``(organisation number, scope) -> bearer token`` for that organisation's system user."""


class BrokerUnavailable(TransientError):
    """The broker could not be reached or asked us to come back later."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason, retry_after=retry_after)
        self.status = status


class BrokerRefused(PermanentError):
    """The broker refused a request (4xx); ``problem`` is its ProblemDetails body, if any."""

    def __init__(self, reason: str, *, status: int, problem: Mapping[str, Any] | None) -> None:
        super().__init__(reason)
        self.status = status
        self.problem = dict(problem or {})


@dataclass(frozen=True)
class FileTransferInitialize:
    """The body of ``POST /filetransfer`` (``FileTransferInitalizeExt``)."""

    file_name: str
    resource_id: str
    sender: str
    recipients: list[str]
    senders_file_transfer_reference: str | None = None
    property_list: dict[str, str] = field(default_factory=dict)
    checksum: str | None = None
    disable_virus_scan: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """Every field, nulls included, in the integrasjonspunkt's order."""
        return {
            "fileName": self.file_name,
            "resourceId": self.resource_id,
            "sendersFileTransferReference": self.senders_file_transfer_reference,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "propertyList": dict(self.property_list),
            "checksum": self.checksum,
            "disableVirusScan": self.disable_virus_scan,
        }


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _describe_problem(problem: Mapping[str, Any] | None, fallback: str) -> str:
    if not problem:
        return fallback
    parts = [str(problem[k]) for k in ("title", "detail") if problem.get(k)]
    errors = problem.get("errors")
    if isinstance(errors, Mapping):
        parts += [f"{name}: {'; '.join(map(str, msgs))}" for name, msgs in errors.items()]
    return " - ".join(parts) or fallback


class BrokerClient:
    """The broker's ``/filetransfer`` API at ``base_url`` (…/broker/api/v1)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        tokens: TokenSource,
        *,
        stall_timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.stall_timeout = stall_timeout
        """Seconds an upload may stand still (the broker not taking its bytes) before it
        fails; the session's read timeout starts only once the whole body is sent."""
        self._session = session
        self._tokens = tokens

    async def _headers(self, org: str, scope: Scope, accept: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {await self._tokens(org, scope)}"}
        if accept:
            headers["Accept"] = accept
        return headers

    async def _failure(self, what: str, response: aiohttp.ClientResponse) -> Exception:
        status = response.status
        try:
            body = await response.read()
            problem = json.loads(body) if body else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            problem = None
        if not isinstance(problem, Mapping):
            problem = None
        reason = f"{what}: HTTP {status} " + _describe_problem(problem, response.reason or "")
        if status in (408, 429) or status >= 500:
            retry = _retry_after(response.headers.get("Retry-After"))
            return BrokerUnavailable(reason.strip(), status=status, retry_after=retry)
        return BrokerRefused(reason.strip(), status=status, problem=problem)

    async def _json(
        self,
        method: str,
        path: str,
        org: str,
        scope: Scope,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        data: AsyncIterable[bytes] | None = None,
        content_type: str | None = None,
        expect_body: bool = True,
    ) -> Any:
        attempt = 1
        while True:
            try:
                return await self._json_once(
                    method, path, org, scope, params=params, body=body, data=data,
                    content_type=content_type, expect_body=expect_body,
                )
            except BrokerUnavailable as exc:
                wait = max(READ_BACKOFF * 2 ** (attempt - 1), exc.retry_after or 0.0)
                if method != "GET" or attempt == READ_TRIES or wait > READ_WAIT_LIMIT:
                    raise
            await asyncio.sleep(wait)
            attempt += 1

    async def _json_once(
        self,
        method: str,
        path: str,
        org: str,
        scope: Scope,
        *,
        params: Mapping[str, str] | None,
        body: Any,
        data: AsyncIterable[bytes] | None,
        content_type: str | None,
        expect_body: bool,
    ) -> Any:
        what = f"{method} {path}"
        headers = await self._headers(org, scope, "application/json")
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=body,
                data=data,
                headers=headers,
            ) as response:
                if response.status >= 400:
                    raise await self._failure(what, response)
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BrokerUnavailable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if not expect_body:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BrokerUnavailable(f"{what}: the broker's answer is not JSON: {exc}") from exc

    async def initialize(self, org: str, request: FileTransferInitialize) -> str:
        """Create a file transfer; returns its id."""
        answer = await self._json("POST", "/filetransfer", org, Scope.WRITE, body=request.to_json())
        transfer_id = answer.get("fileTransferId") if isinstance(answer, Mapping) else None
        if not isinstance(transfer_id, str):
            raise BrokerUnavailable(f"POST /filetransfer: no fileTransferId in {answer!r}")
        return transfer_id

    async def upload(self, org: str, transfer_id: str, chunks: AsyncIterable[bytes]) -> None:
        """Stream the file of an initialized transfer (chunked; its size need not be known).

        An error raised by ``chunks`` itself (the package could not be made) is raised as it
        is, not as the broken connection aiohttp reports for it.
        """
        failures: list[Exception] = []
        what = f"POST /filetransfer/{transfer_id}/upload"
        try:
            async with upload_deadline(self.stall_timeout) as deadline:

                async def body() -> AsyncIterator[bytes]:
                    try:
                        async for chunk in deadline.watch(chunks):
                            yield chunk
                    except Exception as exc:  # not CancelledError: aiohttp stops a body early
                        failures.append(exc)
                        raise

                await self._json(
                    "POST",
                    f"/filetransfer/{transfer_id}/upload",
                    org,
                    Scope.WRITE,
                    data=body(),
                    content_type="application/octet-stream",
                )
        except TimeoutError:
            raise BrokerUnavailable(
                f"{what}: the upload stood still for {self.stall_timeout:g} s"
            ) from None
        except BrokerUnavailable:
            if failures:
                raise failures[0] from None
            raise

    async def list_transfers(
        self,
        org: str,
        scope: Scope,
        *,
        resource: str,
        status: str | None = None,
        recipient_status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[str]:
        """Ids of the transfers the organisation sent or receives (at most the 100 newest)."""
        params = {"resourceId": resource}
        if status:
            params["status"] = status
        if recipient_status:
            params["recipientStatus"] = recipient_status
        if since:
            params["from"] = since.astimezone(UTC).isoformat()
        if until:
            params["to"] = until.astimezone(UTC).isoformat()
        answer = await self._json("GET", "/filetransfer", org, scope, params=params)
        if not isinstance(answer, list) or not all(isinstance(i, str) for i in answer):
            raise BrokerUnavailable(f"GET /filetransfer: not a list of ids: {answer!r}"[:300])
        return answer

    async def overview(self, org: str, scope: Scope, transfer_id: str) -> dict[str, Any]:
        """The transfer's ``FileTransferOverviewExt``."""
        answer = await self._json("GET", f"/filetransfer/{transfer_id}", org, scope)
        if not isinstance(answer, dict):
            raise BrokerUnavailable(f"GET /filetransfer/{transfer_id}: not an object")
        return answer

    @asynccontextmanager
    async def download(self, org: str, transfer_id: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """``async with client.download(...) as chunks``: the file, streamed."""
        path = f"/filetransfer/{transfer_id}/download"
        what = f"GET {path}"
        headers = await self._headers(org, Scope.READ, None)
        try:
            async with self._session.get(self.base_url + path, headers=headers) as response:
                if response.status >= 400:
                    raise await self._failure(what, response)
                yield self._chunks(what, response)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BrokerUnavailable(f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc

    @staticmethod
    async def _chunks(what: str, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BrokerUnavailable(f"{what} broke off: {type(exc).__name__}: {exc}") from exc

    async def confirm_download(self, org: str, transfer_id: str) -> None:
        await self._json(
            "POST",
            f"/filetransfer/{transfer_id}/confirmdownload",
            org,
            Scope.READ,
            expect_body=False,
        )
