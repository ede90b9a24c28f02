"""Webhook pushes: durable, retried with backoff, and signed so that receivers can trust them.

The store writes one delivery row per subscription in the same transaction as every status it
registers, so an event is never lost to a crash or a restart (the original pushes
fire-and-forget). The dispatcher leases due rows, pushes each as the original's JSON event,
and on failure tries again later: ``retry_initial_seconds``, three times longer each time, at
most an hour apart (longer when the endpoint's ``Retry-After`` asks), until ``give_up_hours``
after the status; then the event is dropped.

Each subscription's events go out one at a time, in order. After a failed push the
subscription's other due events are put back without being tried until its retry is due, so
an endpoint that is down costs one timeout, not one per event, and never holds up the others.

Every push, the ping included, is signed::

    X-Ipunkt-Timestamp: 1700000000                  (unix seconds when it was sent)
    X-Ipunkt-Signature: sha256=<hex HMAC-SHA256 over b"<timestamp>." + body, keyed with the secret>
    X-Ipunkt-Delivery:  <delivery id>               (the same on every retry of one event)

A receiver recomputes the HMAC over the raw body bytes, compares in constant time, and refuses
timestamps far from its clock (a replay). The secret is ``[webhooks] secret``, or one generated
once into ``<store path>/webhook.key`` (mode 0600): the file's text, as UTF-8, is the key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import secrets
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from yarl import URL

from ipunkt import __version__, jackson
from ipunkt.delivery.metrics import Metrics
from ipunkt.delivery.retry import RetryPolicy
from ipunkt.delivery.settings import WebhookSettings
from ipunkt.messages.subscriptions import (
    PingRefused,
    PushEndpointUnreachable,
    StatusEvent,
    accepts,
    ping_body,
)
from ipunkt.sbd.times import now_oslo
from ipunkt.secret_files import create_once, read_secret
from ipunkt.store.base import (
    MessageStore,
    PageRequest,
    SortOrder,
    SubscriptionRecord,
    WebhookDelivery,
)

log = structlog.get_logger(__name__)

KEY_FILE = "webhook.key"
TIMESTAMP_HEADER = "X-Ipunkt-Timestamp"
SIGNATURE_HEADER = "X-Ipunkt-Signature"
DELIVERY_HEADER = "X-Ipunkt-Delivery"
CONTENT_TYPE = "application/json;charset=UTF-8"
BATCH = 100
"""Deliveries leased at once."""
MAX_PENDING = 500
"""Leased deliveries waiting in memory at most; more are leased only as these go out."""
LEASE = timedelta(minutes=5)
"""How long a lease lasts: a crashed process's unfinished deliveries come back after it."""
ERROR_BODY_CHARS = 200


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Ipunkt-Signature`` value of a body sent at ``timestamp``."""
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: bytes, timestamp: str, signed: str, body: bytes, *,
           now: float | None = None, tolerance: float = 300) -> bool:
    """A receiver's check: the signature is right and the push is no older than ``tolerance``."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, sent, body), signed)


def load_secret(settings: WebhookSettings, folder: Path) -> bytes:
    """The configured secret, or the generated one in ``folder`` (created on first use, whole
    or not at all: :mod:`ipunkt.secret_files`)."""
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode("utf-8")
    path = folder / KEY_FILE
    if not path.exists() and create_once(path, secrets.token_hex(32) + "\n"):
        log.warning("generated a webhook signing secret; give it to your receivers",
                    path=str(path))
    return read_secret(path, "webhook secret").encode("utf-8")


def public_endpoint(url: str) -> str:
    """The endpoint without user, password, query or fragment, which may hold credentials."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PushFailed(Exception):
    """A push that did not get a 2xx answer; ``retry_after`` is the endpoint's wish, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Pause:
    """A subscription whose last push failed: its next try, and why."""

    until: datetime
    error: str


@dataclass(frozen=True)
class _Proxies:
    """``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY``, read when the session opens.

    aiohttp's ``trust_env`` reads them, and ``~/.netrc`` in a worker thread, for every request.
    """

    by_scheme: dict[str, str]

    def for_url(self, url: str) -> tuple[str | None, dict[str, str], dict[str, str] | None]:
        """The proxy to push ``url`` through, and where its ``Proxy-Authorization`` goes when
        the proxy's URL carries credentials: (proxy, headers for the request, headers for the
        tunnel). A proxy reads a plain-HTTP request itself; for HTTPS only the tunnel's CONNECT
        may carry them, never the request the endpoint sees."""
        parts = urlsplit(url)
        proxy = self.by_scheme.get(parts.scheme)
        if proxy is None or urllib.request.proxy_bypass_environment(parts.hostname or "",
                                                                    self.by_scheme):
            return None, {}, None
        location = URL(proxy)
        if location.user is None:
            return proxy, {}, None
        credentials = f"{location.user}:{location.password or ''}".encode()
        authorization = {"Proxy-Authorization": "Basic " + base64.b64encode(credentials).decode()}
        if parts.scheme == "http":
            return str(location.with_user(None)), authorization, None
        return str(location.with_user(None)), {}, authorization


class WebhookDispatcher:
    """Pushes the store's due webhook deliveries; also pings endpoints for the API."""

    def __init__(
        self,
        store: MessageStore,
        settings: WebhookSettings,
        metrics: Metrics,
        *,
        key_folder: Path,
        clock: Callable[[], datetime] = now_oslo,
        poll_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.key_folder = key_folder
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.policy = RetryPolicy(settings.retry_initial_seconds, 3.0, 3600.0, 0.1)
        self.give_up = timedelta(hours=settings.give_up_hours)
        self._session: aiohttp.ClientSession | None = None
        self._proxies = _Proxies({})
        self._queues: dict[int, deque[WebhookDelivery]] = {}
        self._pending: set[int] = set()
        self._drains: set[asyncio.Task[None]] = set()
        self._paused: dict[int, _Pause] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    @cached_property
    def secret(self) -> bytes:
        return load_secret(self.settings, self.key_folder)

    # -- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Lease and push due deliveries until :meth:`stop`."""
        _ = self.secret
        while not self._stopping:
            self._wake.clear()
            try:
                leased, asked = await self._lease()
            except Exception:  # a failed lease must not end the pushing: log and try again
                log.exception("leasing webhook deliveries failed")
                leased, asked = 0, 1
            if leased < asked or asked == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    def nudge(self) -> None:
        """Statuses were registered: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Stop leasing; pushes under way get a grace period; then close the connection pool.

        A delivery that was leased but not pushed stays in the store and goes out after its
        lease, here or on another instance."""
        self._stopping = True
        self._wake.set()
        if self._drains:
            grace = self.settings.timeout_seconds if grace_seconds is None else grace_seconds
            _, pending = await asyncio.wait(self._drains, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver_due(self) -> int:
        """Push everything due now and wait until it is done; returns how many were leased."""
        total = 0
        while True:
            leased, _ = await self._lease()
            total += leased
            while self._drains:
                await asyncio.gather(*list(self._drains))
            if leased == 0:
                return total

    async def _lease(self) -> tuple[int, int]:
        free = min(BATCH, MAX_PENDING - len(self._pending))
        if free <= 0:
            return 0, 0
        now = self.clock()
        deliveries = await self.store.claim_webhook_deliveries(now, now + LEASE, free)
        for delivery in deliveries:
            if delivery.id in self._pending:
                continue  # its lease ran out while it waited here: it is still on its way
            self._pending.add(delivery.id)
            queue = self._queues.get(delivery.subscription.id)
            if queue is None:
                queue = self._queues[delivery.subscription.id] = deque()
                task = asyncio.create_task(self._drain(delivery.subscription.id, queue))
                self._drains.add(task)
                task.add_done_callback(self._drains.discard)
            queue.append(delivery)
        return len(deliveries), free

    async def _drain(self, subscription_id: int, queue: deque[WebhookDelivery]) -> None:
        """Push one subscription's deliveries in order."""
        try:
            while queue:
                delivery = queue.popleft()
                try:
                    await self._handle(delivery)
                except Exception:  # the store failed: the lease runs out and it comes back
                    log.exception("webhook delivery could not be recorded",
                                  delivery=delivery.id, subscription=subscription_id)
                finally:
                    self._pending.discard(delivery.id)
        finally:
            for left in queue:
                self._pending.discard(left.id)
            del self._queues[subscription_id]
            self._wake.set()

    async def _handle(self, delivery: WebhookDelivery) -> None:
        subscription = delivery.subscription
        event = StatusEvent.of(delivery)
        bound = log.bind(delivery=delivery.id, subscription=subscription.id,
                         message_id=event.message_id, conversation_id=event.conversation_id,
                         channel=event.service, status=event.status)
        if not accepts(subscription, event):
            await self.store.webhook_delivered(delivery.id, None)
            return
        pause = self._paused.get(subscription.id)
        if pause is not None and self.clock() < pause.until:
            await self._failed(delivery, f"not tried, the endpoint failed: {pause.error}",
                               bound, tried=False, not_before=pause.until)
            return
        body = jackson.dumps(event.body())
        try:
            await self._post(subscription.push_endpoint, body, delivery.id)
        except PushFailed as exc:
            retry_at = await self._failed(delivery, str(exc), bound, tried=True,
                                          retry_after=exc.retry_after)
            self._paused[subscription.id] = _Pause(retry_at or self.clock(), str(exc))
        else:
            self._paused.pop(subscription.id, None)
            await self.store.webhook_delivered(delivery.id, subscription.id)
            self.metrics.webhooks.labels("delivered").inc()
            bound.debug("webhook pushed", attempt=delivery.attempts)

    async def _failed(
        self,
        delivery: WebhookDelivery,
        error: str,
        bound: structlog.stdlib.BoundLogger,
        *,
        tried: bool,
        not_before: datetime | None = None,
        retry_after: float | None = None,
    ) -> datetime | None:
        """Record a failure and when to try again; None when the event is given up."""
        now = self.clock()
        deadline = delivery.created + self.give_up
        retry_at: datetime | None = None
        if now < deadline:
            retry_at = self.policy.next_attempt(now, delivery.attempts, retry_after)
            if not_before is not None:
                retry_at = max(retry_at, not_before)
            retry_at = min(retry_at, deadline)
        await self.store.webhook_failed(delivery.id, delivery.subscription.id, error, retry_at)
        if tried:
            self.metrics.webhooks.labels("failed").inc()
        if retry_at is None:
            self.metrics.webhooks.labels("dropped").inc()
            bound.error("webhook given up", error=error, attempts=delivery.attempts,
                        push_endpoint=public_endpoint(delivery.subscription.push_endpoint))
        elif tried:
            bound.warning("webhook push failed; will retry", error=error,
                          attempt=delivery.attempts, retry_at=retry_at.isoformat())
        return retry_at

    # -- HTTP ------------------------------------------------------------------------------------

    async def ping(self, url: str) -> None:
        """The ping the API sends before it subscribes an endpoint (:class:`~ipunkt.messages.
        subscriptions.Pinger`)."""
        body = jackson.dumps(ping_body(self.clock()))
        try:
            await self._post(url, body, None)
        except _Refused as exc:
            raise PingRefused(exc.status, exc.reason, exc.body) from None
        except PushFailed as exc:
            raise PushEndpointUnreachable(str(exc)) from None

    async def _post(self, url: str, body: bytes, delivery_id: int | None) -> None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Accept": "application/json",
            "User-Agent": f"ipunkt/{__version__}",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self.secret, timestamp, body),
        }
        if delivery_id is not None:
            headers[DELIVERY_HEADER] = str(delivery_id)
        client = self._client()
        proxy, for_proxy, proxy_headers = self._proxies.for_url(url)
        headers.update(for_proxy)
        try:
            async with client.post(url, data=body, headers=headers, allow_redirects=False,
                                   proxy=proxy, proxy_headers=proxy_headers) as response:
                if 200 <= response.status < 300:
                    return
                text = (await response.content.read(ERROR_BODY_CHARS * 4)).decode(
                    response.charset or "utf-8", "replace")[:ERROR_BODY_CHARS]
                raise _Refused(response.status, response.reason or "", " ".join(text.split()),
                               _retry_after(response.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise PushFailed(f"{type(exc).__name__}: {exc}" if str(exc) else
                             type(exc).__name__) from None

    def _client(self) -> aiohttp.ClientSession:
        """One connection pool for the dispatcher's life, and the proxies it pushes through."""
        if self._session is None or self._session.closed:
            seconds = self.settings.timeout_seconds
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=2 * seconds, connect=seconds,
                                              sock_read=seconds),
            )
            self._proxies = _Proxies(urllib.request.getproxies_environment())
        return self._session

    # -- health ----------------------------------------------------------------------------------

    async def failing(self) -> list[SubscriptionRecord]:
        """Subscriptions whose last ``failing_after`` deliveries or more all failed."""
        found: list[SubscriptionRecord] = []
        page = PageRequest(0, 500, (SortOrder("id"),))
        while True:
            batch = await self.store.subscriptions(page)
            found.extend(s for s in batch.content if s.failures >= self.settings.failing_after)
            if not batch.content or (page.page + 1) * page.size >= batch.total:
                return found
            page = PageRequest(page.page + 1, page.size, page.sort)

    async def health(self) -> dict[str, Any]:
        """The ``webhooks`` component of ``/manage/health``: DEGRADED while any keeps failing.

        Endpoints are shown without credentials or query (the health endpoint is open)."""
        failing = await self.failing()
        if not failing:
            return {"status": "UP"}
        return {
            "status": "DEGRADED",
            "details": {
                "failing": [
                    {
                        "id": s.id,
                        "name": s.name,
                        "pushEndpoint": public_endpoint(s.push_endpoint),
                        "failures": s.failures,
                        "lastError": s.last_error,
                    }
                    for s in failing
                ],
            },
        }


class _Refused(PushFailed):
    """The endpoint answered, but not with 2xx."""

    def __init__(self, status: int, reason: str, body: str, retry_after: float | None) -> None:
        super().__init__(str(PingRefused(status, reason, body)), retry_after)
        self.status = status
        self.reason = reason
        self.body = body


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number of seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
