"""The client of Altinn 3's correspondence API (directly or through Digdir's eFormidling proxy).

It speaks HTTP and nothing else: the channel decides what to send. Uploads stream each file
from its source into the multipart body, so memory stays flat whatever the file size. HTTP
failures become the plugin contract's errors: network errors, timeouts, 5xx, 408 and 429
(with its Retry-After) are :class:`TransientError`; other 4xx are :class:`AltinnRefusal`
(a :class:`PermanentError`) carrying Altinn's ProblemDetails, so that the caller can tell a
409 (already sent) or a 404 (gone) from the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp.payload import AsyncIterablePayload
from ipunkt.plugin import Attachment, PermanentError, TransientError, upload_deadline

MAX_ANSWER_BYTES = 1 << 20
"""Altinn's JSON answers are small; a larger one is refused rather than read."""

TokenSource = Callable[[], Awaitable[str]]


class AltinnRefusal(PermanentError):
    """Altinn refused the request (a 4xx other than 408 and 429), with its reason."""

    def __init__(self, status: int, problem: Mapping[str, Any] | None, text: str) -> None:
        self.status = status
        self.problem = dict(problem or {})
        code = self.problem.get("errorCode")
        self.error_code = code if isinstance(code, int) else None
        super().__init__(_reason(status, self.problem, text))


class CorrespondenceClient:
    """The operations of the correspondence API that DPV needs, on one HTTP session."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: TokenSource,
        *,
        timeout: float = 60.0,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    async def upload(
        self, fields: Sequence[tuple[str, str]], files: Sequence[Attachment]
    ) -> dict[str, Any]:
        """``POST /correspondence/upload``: the form fields, then each file streamed.

        Returns Altinn's ``InitializeCorrespondencesResponseExt``.
        """
        try:
            async with upload_deadline(self._timeout) as deadline:
                writer = aiohttp.MultipartWriter("form-data")
                for name, value in fields:
                    part = writer.append(value)
                    part.set_content_disposition("form-data", name=name)
                for index, file in enumerate(files):
                    payload = AsyncIterablePayload(
                        deadline.watch(file.open(), last=index == len(files) - 1),
                        content_type=file.mime_type)
                    part = writer.append_payload(payload)
                    # Raw UTF-8 as browsers send it: ASP.NET does not percent-decode file names.
                    part.set_content_disposition(
                        "form-data", quote_fields=False, name="attachments",
                        filename=_header_safe(file.filename),
                    )
                if not files:
                    deadline.sent()
                # Streams of unknown length: no total timeout, but one on reads, and the
                # deadline above on the body standing still.
                timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout,
                                                sock_read=self._timeout)
                answer = await self._call("POST", "/correspondence/upload", data=writer,
                                          timeout=timeout)
        except TimeoutError:
            raise TransientError(
                f"POST /correspondence/upload: the upload stood still for {self._timeout:g} s"
            ) from None
        if not isinstance(answer, dict):
            raise TransientError("Altinn answered the upload with something else than an object")
        return answer

    async def find(self, senders_reference: str, resource_id: str) -> list[str]:
        """The ids of our correspondences with this ``sendersReference`` (for 409 recovery).

        The published spec makes every filter optional; Altinn itself requires ``resourceId``
        and ``role``, so both are sent.
        """
        params = {"resourceId": resource_id, "role": "Sender",
                  "sendersReference": senders_reference}
        answer = await self._call("GET", "/correspondence", params=params)
        ids = answer.get("ids") if isinstance(answer, dict) else None
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise TransientError("Altinn's list of correspondences is malformed")
        return list(ids or [])

    async def overview(self, correspondence_id: str) -> dict[str, Any]:
        """``GET /correspondence/{id}``: the fast overview, with status and timestamps."""
        answer = await self._call("GET", f"/correspondence/{correspondence_id}")
        if not isinstance(answer, dict):
            raise TransientError("Altinn's correspondence overview is not an object")
        return answer

    async def probe(self, url: str) -> None:
        """Whether Altinn's health probe answers 2xx; raises like any other call."""
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with self._session.get(url, timeout=timeout) as response:
                await response.read()
                if response.status >= 300:
                    raise TransientError(f"health probe answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"health probe failed: {_describe(exc)}") from exc

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        token = await self._token()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        url = f"{self._base}{path}"
        try:
            async with self._session.request(
                method, url, params=params, data=data, headers=headers,
                timeout=timeout or aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                body = await _read_bounded(response)
                _raise_for(response, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{method} {path}: {_describe(exc)}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise TransientError(
                f"{method} {path}: HTTP {response.status} with a body that is not JSON"
            ) from exc


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise TransientError(f"Altinn's answer is larger than {MAX_ANSWER_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _raise_for(response: aiohttp.ClientResponse, body: bytes) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    text = body.decode("utf-8", errors="replace")
    problem = _problem(text)
    if status in (408, 429) or status >= 500:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        raise TransientError(_reason(status, problem, text), retry_after=retry_after)
    if 400 <= status < 500:
        raise AltinnRefusal(status, problem, text)
    raise PermanentError(f"Altinn answered HTTP {status}, which the API does not use")


def _problem(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _reason(status: int, problem: Mapping[str, Any] | None, text: str) -> str:
    """Altinn's own words: ``HTTP 404 (1029): Could not find partyId for ...``."""
    if not problem:
        snippet = " ".join(text.split())[:300]
        return f"Altinn answered HTTP {status}" + (f": {snippet}" if snippet else "")
    code = problem.get("errorCode")
    label = f"HTTP {status}" + (f" ({code})" if code is not None else "")
    words = problem.get("detail") or problem.get("title") or "no detail given"
    errors = problem.get("errors")
    if isinstance(errors, Mapping) and errors:
        listed = "; ".join(
            f"{field}: {', '.join(map(str, messages)) if isinstance(messages, list) else messages}"
            for field, messages in errors.items()
        )
        words = f"{words} [{listed}]"
    return f"Altinn refused the request, {label}: {words}"


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _header_safe(filename: str) -> str:
    """The file name, if it cannot break out of its header (Altinn refuses the rest anyway)."""
    if '"' in filename or "\\" in filename or any(ord(c) < 0x20 for c in filename):
        raise PermanentError(
            f"the file name {filename!r} has characters Altinn refuses (quotes, backslashes"
            " or control characters)"
        )
    return filename
