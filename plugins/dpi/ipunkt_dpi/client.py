"""The client of the DPI access point's REST API (corner 2), as its OpenAPI describes it.

``POST /messages/out`` (multipart: the signed business message and the sealed package, streamed
from disk), ``GET /messages/out/{id}/statuses``, ``GET /messages/in`` (receipts) and
``POST /messages/in/{id}/read``. Every call carries a Maskinporten bearer token with the scope
``digitalpostinnbygger:send``.

HTTP outcomes become the plugin contract's errors: network failures, timeouts, 5xx, 408 and 429
(with its ``Retry-After``) are :class:`TransientError`; other 4xx are :class:`PermanentError`
with the access point's ``problem+json`` title and detail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
from ipunkt.plugin import PermanentError, TransientError, upload_deadline

SCOPE = "digitalpostinnbygger:send"
MAX_ANSWER = 32 << 20
"""The largest JSON answer read (a page of receipts is far smaller)."""
JWT = "application/jwt"
CMS = "application/cms"


@dataclass(frozen=True)
class AccessPointStatus:
    """One entry of ``GET /messages/out/{id}/statuses``."""

    status: str
    timestamp: str | None = None
    beskrivelse: str | None = None


@dataclass(frozen=True)
class InboxItem:
    """One entry of ``GET /messages/in``: a signed business message (a receipt)."""

    forretningsmelding: str
    downloadurl: str | None = None


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def _read_limited(response: aiohttp.ClientResponse, limit: int = MAX_ANSWER) -> bytes:
    """The answer's body; an answer announcing more than ``limit`` bytes is not read."""
    if response.content_length is not None and response.content_length > limit:
        raise TransientError(f"DPI access point answered with more than {limit} bytes")
    return await response.read()


def _problem(body: bytes) -> str:
    """The problem+json's title and detail, or the start of a plain body."""
    try:
        problem = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip()
    if not isinstance(problem, dict):
        return str(problem)[:300]
    parts = [str(problem[k]) for k in ("title", "detail") if problem.get(k)]
    return ": ".join(parts) or json.dumps(problem)[:300]


class AccessPointClient:
    """One aiohttp session to one access point: :meth:`start` opens it, :meth:`close` ends it."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self._read_timeout = read_timeout
        self._trace_configs = [*trace_configs, _progress_trace()]
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, trace_configs=self._trace_configs or None
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        token: str,
        what: str,
        params: dict[str, str] | None = None,
        data: Any = None,
        accept_404: bool = False,
    ) -> tuple[int, bytes]:
        await self.start()
        assert self._session is not None
        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            # aiohttp's read timeout starts only once the body is sent: an upload the access
            # point stops taking fails when no chunk of it has gone for the read timeout.
            async with (
                upload_deadline(self._read_timeout) as deadline,
                self._session.request(
                    method, url, params=params, data=data, headers=headers,
                    trace_request_ctx=_Progress(deadline.moved),
                ) as response,
            ):
                deadline.sent()  # sent: the read timeout takes over
                body = await _read_limited(response)
                status = response.status
                wait = retry_after(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise TransientError(
                f"DPI access point: {what} failed: nothing moved for {self._read_timeout:g} s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientError(
                f"DPI access point: {what} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if 200 <= status < 300 or (accept_404 and status == 404):
            return status, body
        reason = f"DPI access point refused to {what}: HTTP {status}: {_problem(body)}"
        if status in (408, 429) or status >= 500:
            raise TransientError(reason, retry_after=wait)
        raise PermanentError(reason)

    async def send(self, *, jwt: str, package: Path, kanal: str | None, token: str) -> None:
        """``POST /messages/out``: the business message and the package, streamed from disk."""
        with package.open("rb") as file, aiohttp.MultipartWriter("form-data") as form:
            part = form.append(jwt, {"Content-Type": JWT})
            part.set_content_disposition("form-data", name="forretningsmelding", filename="sbd.jwt")
            part = form.append(file, {"Content-Type": CMS})
            part.set_content_disposition("form-data", name="dokumentpakke", filename="asic.cms")
            await self._request(
                "POST",
                "/messages/out",
                token=token,
                what="take the message",
                params={"kanal": kanal} if kanal else None,
                data=form,
            )

    async def statuses(self, message_id: str, *, token: str) -> list[AccessPointStatus]:
        """``GET /messages/out/{id}/statuses``, oldest first."""
        _, body = await self._request(
            "GET", f"/messages/out/{message_id}/statuses", token=token, what="give statuses"
        )
        entries = _json_list(body, "statuses")
        statuses = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("status"), str):
                raise TransientError(f"DPI access point sent a malformed status: {entry!r:.200}")
            statuses.append(
                AccessPointStatus(entry["status"], entry.get("timestamp"), entry.get("beskrivelse"))
            )
        return statuses

    async def inbox(
        self,
        *,
        token: str,
        kanal: str | None,
        avsenderidentifikator: str | None = None,
        page_size: int = 100,
    ) -> list[InboxItem]:
        """``GET /messages/in``: unread receipts (an empty list for 204 No Content)."""
        params = {"page_size": str(page_size)}
        if kanal:
            params["kanal"] = kanal
        if avsenderidentifikator:
            params["avsenderidentifikator"] = avsenderidentifikator
        status, body = await self._request(
            "GET", "/messages/in", token=token, what="list receipts", params=params
        )
        if status == 204 or not body.strip():
            return []
        items = []
        for entry in _json_list(body, "messages"):
            if not isinstance(entry, dict) or not isinstance(entry.get("forretningsmelding"), str):
                raise TransientError(f"DPI access point sent a malformed message: {entry!r:.200}")
            items.append(InboxItem(entry["forretningsmelding"], entry.get("downloadurl")))
        return items

    async def mark_read(self, message_id: str, *, token: str) -> bool:
        """``POST /messages/in/{id}/read``; False when the access point no longer has it."""
        status, _ = await self._request(
            "POST",
            f"/messages/in/{message_id}/read",
            token=token,
            what="mark a receipt read",
            accept_404=True,
        )
        return status != 404


@dataclass(frozen=True)
class _Progress:
    """Told each time a chunk of the request's body goes out."""

    moved: Callable[[], None]


def _progress_trace() -> aiohttp.TraceConfig:
    """Tells a request's :class:`_Progress` of each chunk of its body that is sent."""

    async def on_chunk(
        _session: aiohttp.ClientSession, context: SimpleNamespace,
        _params: aiohttp.TraceRequestChunkSentParams,
    ) -> None:
        progress = context.trace_request_ctx
        if isinstance(progress, _Progress):
            progress.moved()

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_chunk)
    return trace


def _json_list(body: bytes, what: str) -> list[Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise TransientError(f"DPI access point sent {what} that are not JSON: {exc}") from exc
    if not isinstance(value, list):
        raise TransientError(f"DPI access point sent {what} that are not a JSON array")
    return value
