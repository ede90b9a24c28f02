"""The clients of KS Fiks SvarUt (REST v3, sending and status) and SvarInn (receiving).

SvarUt authenticates every call three ways at once: a Maskinporten token (scope ``ks:fiks``)
and the Fiks integration's ``IntegrasjonId`` and ``IntegrasjonPassord`` headers. SvarInn, the
older receiving service, takes HTTP Basic with the mottakersystem's user and password.

HTTP outcomes become the plugin contract's errors: network failures, timeouts, 5xx, 401 and 429
are :class:`TransientError` (with ``Retry-After`` when given), other 4xx are
:class:`PermanentError` carrying SvarUt's own ``ErrorMessage`` text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog
from aiohttp import ClientResponse, MultipartWriter
from aiohttp.payload import AsyncIterablePayload
from ipunkt.plugin import PermanentError, TokenProvider, TransientError, upload_deadline

log = structlog.get_logger(__name__)

FIKS_SCOPE = "ks:fiks"
TRANSIENT_STATUSES = frozenset({401, 408, 425, 429})


@dataclass(frozen=True)
class UploadDocument:
    """One document part of a forsendelse: its name, type and (encrypted) bytes."""

    filename: str
    mime_type: str
    chunks: Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class ForsendelseStatus:
    """One answer of ``status/sok``."""

    id: str
    status: str
    changed: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class Hendelse:
    """One event in a forsendelse's history (``/api/v2/forsendelser/{id}/hendelser``)."""

    tidspunkt: str
    hendelse: str


def _retry_after(response: ClientResponse) -> float | None:
    value = response.headers.get("Retry-After")
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
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _reason(status: int, body: bytes, what: str) -> str:
    """SvarUt's ``ErrorMessage`` (message, errorCode, errorId) as one line."""
    text = body.decode("utf-8", "replace").strip()
    try:
        error = json.loads(text)
    except ValueError:
        error = None
    if isinstance(error, dict):
        parts = [str(error.get("message") or error.get("error") or "").strip()]
        if error.get("errorCode"):
            parts.insert(0, f"{error['errorCode']}:")
        if error.get("errorId"):
            parts.append(f"(errorId {error['errorId']})")
        detail = " ".join(p for p in parts if p)
    else:
        detail = text[:500]
    return f"{what}: HTTP {status}" + (f" {detail}" if detail else "")


async def raise_for_status(response: ClientResponse, what: str) -> None:
    """Turn a failed answer into a TransientError or PermanentError naming the remote reason."""
    if response.status < 400:
        return
    try:
        body = await response.content.read(64 * 1024)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    reason = _reason(response.status, body, what)
    if response.status >= 500 or response.status in TRANSIENT_STATUSES:
        raise TransientError(reason, retry_after=_retry_after(response))
    raise PermanentError(reason)


async def _json(response: ClientResponse, what: str) -> Any:
    await raise_for_status(response, what)
    try:
        return await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError) as exc:
        raise TransientError(f"{what}: the answer is not JSON ({exc})") from exc


@asynccontextmanager
async def _transport_errors(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransientError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc


class SvarUtClient:
    """Sends forsendelser and reads their statuses through SvarUt's REST API."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        account_id: str,
        integration_id: str,
        integration_password: str,
        tokens: TokenProvider,
        stall_timeout: float = 60.0,
    ) -> None:
        """``stall_timeout``: seconds a send may stand still (SvarUt not taking its bytes)
        before it fails; the session's read timeout starts only once the whole body is sent."""
        self._session = session
        self._base = base_url.rstrip("/")
        self._stall_timeout = stall_timeout
        self._account = account_id
        self._integration_id = integration_id
        self._integration_password = integration_password
        self._tokens = tokens

    async def _headers(self) -> dict[str, str]:
        token = await self._tokens.token([FIKS_SCOPE])
        return {
            "Authorization": f"Bearer {token}",
            "IntegrasjonId": self._integration_id,
            "IntegrasjonPassord": self._integration_password,
            "Accept": "application/json",
        }

    async def send(self, forsendelse: dict[str, Any], documents: Sequence[UploadDocument]) -> str:
        """POST the forsendelse and its documents, in order; the id SvarUt gave it."""
        url = f"{self._base}/api/v3/kontoer/{self._account}/forsendelser/organisasjon"
        what = "SvarUt send"
        try:
            async with upload_deadline(self._stall_timeout) as deadline:
                with MultipartWriter("form-data") as body:
                    part = body.append_json(forsendelse)
                    part.set_content_disposition("form-data", name="forsendelse")
                    for index, document in enumerate(documents):
                        last = index == len(documents) - 1
                        payload = AsyncIterablePayload(deadline.watch(document.chunks(), last=last),
                                                       content_type=document.mime_type)
                        part = body.append_payload(payload)
                        # Unquoted, as Jetty's client writes it: SvarUt matches parts by filename.
                        part.set_content_disposition(
                            "form-data", quote_fields=False, name=f"filer_{index}",
                            filename=document.filename,
                        )
                if not documents:
                    deadline.sent()
                async with _transport_errors(what):
                    headers = await self._headers()
                    async with self._session.post(url, data=body, headers=headers) as response:
                        answer = await _json(response, what)
        except TimeoutError:
            raise TransientError(
                f"{what}: the upload stood still for {self._stall_timeout:g} s"
            ) from None
        forsendelse_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(forsendelse_id, str) or not forsendelse_id:
            raise TransientError(f"{what}: the answer has no forsendelse id: {answer!r:.200}")
        return forsendelse_id

    async def find_by_ekstern_ref(self, ekstern_ref: str) -> list[str]:
        """The ids of the account's forsendelser with this ``eksternReferanse``."""
        url = f"{self._base}/api/v2/kontoer/{self._account}/forsendelser"
        what = "SvarUt eksternRef search"
        async with _transport_errors(what):
            headers = await self._headers()
            async with self._session.get(
                url, params={"eksternRef": ekstern_ref}, headers=headers
            ) as response:
                answer = await _json(response, what)
        ids = answer.get("forsendelseIds") if isinstance(answer, dict) else None
        if not isinstance(ids, list):
            raise TransientError(f"{what}: the answer has no forsendelseIds: {answer!r:.200}")
        return [str(i) for i in ids]

    async def statuses(self, ids: Sequence[str]) -> list[ForsendelseStatus]:
        """``status/sok`` for these forsendelser."""
        url = f"{self._base}/api/v3/kontoer/{self._account}/forsendelser/status/sok"
        what = "SvarUt status search"
        async with _transport_errors(what):
            headers = await self._headers()
            async with self._session.post(
                url, json={"id": list(ids)}, headers=headers
            ) as response:
                answer = await _json(response, what)
        items = answer.get("statuser") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise TransientError(f"{what}: the answer has no statuser: {answer!r:.200}")
        found = []
        for item in items:
            if isinstance(item, dict) and item.get("id") and item.get("status"):
                found.append(
                    ForsendelseStatus(
                        str(item["id"]),
                        str(item["status"]),
                        str(item.get("sisteStatusEndring") or ""),
                        item,
                    )
                )
        return found

    async def events(self, forsendelse_id: str) -> list[Hendelse]:
        """The forsendelse's history, where SvarUt keeps reasons (a receiver's import error)."""
        url = f"{self._base}/api/v2/forsendelser/{forsendelse_id}/hendelser"
        what = "SvarUt event history"
        async with _transport_errors(what):
            headers = await self._headers()
            async with self._session.get(url, headers=headers) as response:
                answer = await _json(response, what)
        items = answer.get("hendelser") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            return []
        return [
            Hendelse(str(i.get("tidspunkt") or ""), str(i.get("hendelse") or ""))
            for i in items
            if isinstance(i, dict)
        ]


class SvarInnClient:
    """Fetches the forsendelser waiting for this organisation's mottakersystem."""

    def __init__(
        self, session: aiohttp.ClientSession, *, base_url: str, username: str, password: str
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._auth = {"Authorization": f"Basic {credentials}"}

    async def new_forsendelser(self) -> list[dict[str, Any]]:
        what = "SvarInn hentNyeForsendelser"
        async with _transport_errors(what), self._session.get(
            f"{self._base}/mottaker/hentNyeForsendelser", headers=self._auth
        ) as response:
            answer = await _json(response, what)
        if not isinstance(answer, list):
            raise TransientError(f"{what}: the answer is not a list: {answer!r:.200}")
        return [item for item in answer if isinstance(item, dict)]

    def download_url(self, url: str) -> str:
        """The absolute download URL, which must be SvarInn's own (it gets our password)."""
        absolute = urljoin(f"{self._base}/", url)
        base, target = urlsplit(self._base), urlsplit(absolute)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise PermanentError(
                f"the downloadUrl {url!r} is not on SvarInn ({base.scheme}://{base.netloc}); "
                "refusing to send the mottakersystem's credentials there"
            )
        return absolute

    @asynccontextmanager
    async def download(self, url: str) -> AsyncIterator[ClientResponse]:
        """The forsendelse's file (CMS to our certificate), as a streaming response."""
        what = "SvarInn download"
        async with (
            _transport_errors(what),
            self._session.get(self.download_url(url), headers=self._auth) as response,
        ):
            await raise_for_status(response, what)
            yield response

    async def confirm(self, forsendelse_id: str) -> None:
        """``kvitterMottak``: we have it; SvarUt marks it read and stops other channels."""
        what = "SvarInn kvitterMottak"
        async with _transport_errors(what), self._session.post(
            f"{self._base}/kvitterMottak/forsendelse/{forsendelse_id}", headers=self._auth
        ) as response:
            await raise_for_status(response, what)

    async def report_failure(self, forsendelse_id: str, message: str, *, permanent: bool) -> None:
        """``mottakFeilet``: a permanent failure sends the forsendelse by another channel."""
        what = "SvarInn mottakFeilet"
        async with _transport_errors(what), self._session.post(
            f"{self._base}/mottakFeilet/forsendelse/{forsendelse_id}",
            json={"feilmelding": message, "permanent": permanent},
            headers=self._auth,
        ) as response:
            await raise_for_status(response, what)
