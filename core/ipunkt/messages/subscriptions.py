"""Webhook subscriptions: their rules, their filters and the events they are sent, as the original.

A subscription names a push endpoint, the ``resource`` (``all`` or ``messages``) and ``event``
(``all`` or ``status``) it wants, and optionally a filter ``key=v1,v2&key2=v3`` over the keys
``status``, ``serviceIdentifier`` and ``direction`` (only ``=``; values compared without regard
to case; every part must match). Creating one, or changing its push endpoint, first pings the
endpoint: a non-2xx answer refuses the change, an endpoint that cannot be reached is only
logged (the original does the same, so that a receiver that is down at set-up still gets its
subscription). An update is partial: the fields given replace, the ones left out (or null) stay.

The pushing itself (durable, retried, signed) is :mod:`ipunkt.delivery.webhooks`; it reaches
this module through the :class:`Pinger` it implements, so the rules hold no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog

from ipunkt.errors import JAVA_PACKAGE, ApiError
from ipunkt.messages.errors import ConstraintViolation, MessageNotReadable
from ipunkt.sbd.times import OSLO, format_datetime
from ipunkt.sbd.violations import Violation
from ipunkt.store.base import (
    AlreadyExists,
    EventFilter,
    MessageStore,
    NewSubscription,
    Page,
    PageRequest,
    SortOrder,
    SubscriptionRecord,
    WebhookDelivery,
)

log = structlog.get_logger(__name__)

RESOURCES = ("all", "messages")
EVENTS = ("all", "status")
FILTER_KEYS = ("status", "serviceIdentifier", "direction")
DIRECTIONS = ("INCOMING", "OUTGOING")
SUBSCRIPTION_SORTS = frozenset({"id", "name", "pushEndpoint", "resource", "event", "filter"})
"""The properties a subscription list can be sorted by (the original's entity fields)."""

_FILTER_PART = re.compile(r"^(\w+)(=)(.+)$", re.DOTALL | re.ASCII)
"""The original's ``WebhookFilterParser`` part: a name, the operator, a value."""
_KEY = re.compile(r"^\w+", re.ASCII)


# --- errors, worded as the original's messages.properties ------------------------------------


class SubscriptionNotFound(ApiError):
    status = 404

    def __init__(self, subscription_id: object) -> None:
        super().__init__(f"Subscription with id = {subscription_id} was not found")


class SubscriptionWithSameNameAndPushEndpointAlreadyExists(ApiError):
    exception = f"{JAVA_PACKAGE}.SubscriptionWithSameNameAndPushEndpointAlreadyExists"

    def __init__(self) -> None:
        super().__init__("Subscription with same name and push endpoint already exists.")


class WebhookPushEndpointPingFailed(ApiError):
    def __init__(self, reason: str, endpoint: str) -> None:
        super().__init__(f"Ping failed with: {reason}.",
                         description=f"The push endpoint {endpoint} refused the ping")


# --- the ping contract -----------------------------------------------------------------------


class PingRefused(Exception):
    """The endpoint answered the ping, but not with 2xx."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        self.status = status
        self.reason = reason
        self.body = body
        shown = f'"{body}"' if body else "[no body]"
        super().__init__(f"{status} {reason}: {shown}")


class PushEndpointUnreachable(Exception):
    """No answer at all: refused connection, unknown host, timeout."""


class Pinger(Protocol):
    async def ping(self, url: str) -> None:
        """POST the ping event; raises :class:`PingRefused` or :class:`PushEndpointUnreachable`."""


# --- filters -----------------------------------------------------------------------------------


class FilterError(ValueError):
    """The filter is not ``key=value[,value]`` parts joined by ``&`` over the known keys."""


@dataclass(frozen=True)
class FilterPart:
    key: str
    values: tuple[str, ...]


def parse_filter(text: str) -> tuple[FilterPart, ...]:
    """The parts of a filter; raises :class:`FilterError` saying what is wrong."""
    parts = []
    for raw in text.split("&"):
        match = _FILTER_PART.match(raw)
        if match is None:
            raise FilterError(_part_problem(raw))
        key, value = match.group(1), match.group(3)
        if key not in FILTER_KEYS:
            raise FilterError(f"Unknown filter name: {key} (use {', '.join(FILTER_KEYS)})")
        values = tuple(v.strip() for v in value.split(","))
        if key == "direction":
            wrong = [v for v in values if v.upper() not in DIRECTIONS]
            if wrong:
                raise FilterError(f"direction must be INCOMING or OUTGOING, not '{wrong[0]}'")
        parts.append(FilterPart(key, values))
    return tuple(parts)


def _part_problem(raw: str) -> str:
    if not raw:
        return "A filter part is empty (a stray '&'?)"
    key = _KEY.match(raw)
    if key is None:
        return f"The filter part '{raw}' does not start with a key"
    rest = raw[key.end():]
    if rest == "=":
        return f"The filter part '{raw}' has no value"
    if key.group(0) in FILTER_KEYS:
        return f"Unknown filter operator in '{raw}': only '=' is supported"
    return f"Unknown filter name: {key.group(0)} (use {', '.join(FILTER_KEYS)})"


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusEvent:
    """A registered status, as subscribers are told of it."""

    created: datetime
    message_id: str
    conversation_id: str
    direction: str
    service: str
    status: str
    description: str | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> StatusEvent:
        status = delivery.status
        return cls(delivery.created, status.message_id, status.conversation_id,
                   delivery.direction.value, delivery.service, status.status, status.description)

    def body(self) -> dict[str, Any]:
        """The pushed JSON, keys in the original's order; an absent description is left out."""
        body: dict[str, Any] = {
            "createdTs": format_datetime(self.created.astimezone(OSLO)),
            "resource": "messages",
            "event": "status",
            "messageId": self.message_id,
            "conversationId": self.conversation_id,
            "direction": self.direction,
            "serviceIdentifier": self.service,
            "status": self.status,
        }
        if self.description is not None:
            body["description"] = self.description
        return body


def ping_body(now: datetime) -> dict[str, Any]:
    return {"createdTs": format_datetime(now.astimezone(OSLO)), "event": "ping"}


def accepts(subscription: SubscriptionRecord, event: StatusEvent) -> bool:
    """Whether the subscription wants this status event (resource, event, then its filter)."""
    wants = event_filter(subscription.resource, subscription.event, subscription.filter)
    if wants is None:
        log.warning("subscription has an unreadable filter; pushing everything",
                    subscription=subscription.id, filter=subscription.filter)
        return True
    return wants.admits(event.status, event.service, event.direction)


def event_filter(resource: str, event: str, text: str | None) -> EventFilter | None:
    """What a subscription lets through; None when its filter cannot be read (everything is
    pushed then). Parts on the same key must all match: their values are intersected."""
    if resource not in RESOURCES or event not in EVENTS:
        return EventFilter(statuses=())
    if not text:
        return EventFilter()
    try:
        parts = parse_filter(text)
    except FilterError:
        return None
    allowed: dict[str, set[str]] = {}
    for part in parts:
        values = {value.casefold() for value in part.values}
        allowed[part.key] = allowed[part.key] & values if part.key in allowed else values
    return EventFilter(
        *(tuple(sorted(allowed[key])) if key in allowed else None for key in FILTER_KEYS))


# --- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionRequest:
    """A create or update body: each field as given, None when absent or null."""

    id: Any = None
    name: str | None = None
    push_endpoint: str | None = None
    resource: str | None = None
    event: str | None = None
    filter: str | None = None

    @classmethod
    def from_json(cls, body: Any) -> SubscriptionRequest:
        """Unknown fields are ignored, as Jackson does; a field of the wrong type is refused."""
        if not isinstance(body, Mapping):
            raise MessageNotReadable("The subscription must be a JSON object")
        values: dict[str, Any] = {}
        for name in ("name", "pushEndpoint", "resource", "event", "filter"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise MessageNotReadable(
                    f"Field '{name}' must be a string, not {type(value).__name__}")
            values[name] = value
        return cls(
            id=body.get("id"),
            name=values["name"],
            push_endpoint=values["pushEndpoint"],
            resource=values["resource"],
            event=values["event"],
            filter=values["filter"],
        )

    def violations(self, *, creating: bool) -> list[Violation]:
        """The broken rules, in field order; on create every field but filter is required."""
        found: list[Violation] = []
        if creating and self.id is not None:
            found.append(Violation("id", "Null", "must be null", self.id))
        given = {"name": self.name, "pushEndpoint": self.push_endpoint,
                 "resource": self.resource, "event": self.event}
        for field, value in given.items():
            if value is None:
                if creating:
                    found.append(Violation(field, "NotNull", "must not be null"))
                continue
            if field == "pushEndpoint":
                problem = _url_problem(value)
                if problem:
                    found.append(Violation(field, "URL", problem, value))
            elif field in ("resource", "event"):
                allowed = RESOURCES if field == "resource" else EVENTS
                if value not in allowed:
                    found.append(Violation(
                        field, "OneOf",
                        f"'{value}' is not expected. Allowed values are: [{', '.join(allowed)}]",
                        value,
                    ))
        if self.filter is not None and self.filter.strip():
            try:
                parse_filter(self.filter)
            except FilterError as exc:
                found.append(Violation("filter", "WebhookFilter",
                                       f"Must be a valid filter definition. {exc}", self.filter))
        return found


def _url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it validates it
    except ValueError:
        return "must be a valid URL"
    if not parts.scheme or not parts.netloc or any(c.isspace() for c in value):
        return "must be a valid URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "must be a valid URL with the scheme http or https"
    return None


def _filter_value(text: str | None) -> str | None:
    """A blank filter means none (the original cannot clear a filter at all)."""
    return text if text is not None and text.strip() else None


# --- the service ----------------------------------------------------------------------------


class Subscriptions:
    """Creating, reading, changing and deleting subscriptions."""

    def __init__(self, store: MessageStore, pinger: Pinger) -> None:
        self.store = store
        self.pinger = pinger

    async def find(self, page: PageRequest) -> Page[SubscriptionRecord]:
        if not page.sort:
            return await self.store.subscriptions(page)
        everything = await self._all()
        for order in reversed(page.sort):
            everything.sort(key=partial(_sort_key, prop=order.prop), reverse=order.descending)
        return Page(everything[page.offset:page.offset + page.size], page, len(everything), True)

    async def get(self, subscription_id: int) -> SubscriptionRecord:
        found = await self.store.subscription(subscription_id)
        if found is None:
            raise SubscriptionNotFound(subscription_id)
        return found

    async def create(self, body: Any) -> SubscriptionRecord:
        request = SubscriptionRequest.from_json(body)
        _check(request.violations(creating=True))
        assert request.name is not None and request.push_endpoint is not None
        assert request.resource is not None and request.event is not None
        filter_text = _filter_value(request.filter)
        new = NewSubscription(request.name, request.push_endpoint, request.resource,
                              request.event, filter_text,
                              event_filter(request.resource, request.event, filter_text))
        await self._refuse_duplicate(new, None)
        await self._ping(new.push_endpoint)
        try:
            created = await self.store.add_subscription(new)
        except AlreadyExists:
            raise SubscriptionWithSameNameAndPushEndpointAlreadyExists() from None
        log.info("subscription created", subscription=created.id, name=created.name,
                 filter=created.filter)
        return created

    async def update(self, subscription_id: int, body: Any) -> SubscriptionRecord:
        existing = await self.get(subscription_id)
        request = SubscriptionRequest.from_json(body)
        _check(request.violations(creating=False))
        resource = request.resource if request.resource is not None else existing.resource
        event = request.event if request.event is not None else existing.event
        filter_text = (_filter_value(request.filter) if request.filter is not None
                       else existing.filter)
        changed = NewSubscription(
            name=request.name if request.name is not None else existing.name,
            push_endpoint=(request.push_endpoint if request.push_endpoint is not None
                           else existing.push_endpoint),
            resource=resource,
            event=event,
            filter=filter_text,
            wants=event_filter(resource, event, filter_text),
        )
        await self._refuse_duplicate(changed, subscription_id)
        if changed.push_endpoint != existing.push_endpoint:
            await self._ping(changed.push_endpoint)
        try:
            updated = await self.store.update_subscription(subscription_id, changed)
        except AlreadyExists:
            raise SubscriptionWithSameNameAndPushEndpointAlreadyExists() from None
        if updated is None:
            raise SubscriptionNotFound(subscription_id)
        log.info("subscription updated", subscription=subscription_id)
        return updated

    async def delete(self, subscription_id: int) -> None:
        if not await self.store.delete_subscription(subscription_id):
            raise SubscriptionNotFound(subscription_id)
        log.info("subscription deleted", subscription=subscription_id)

    async def delete_all(self) -> int:
        count = await self.store.delete_subscriptions()
        log.info("all subscriptions deleted", count=count)
        return count

    async def _all(self) -> list[SubscriptionRecord]:
        found: list[SubscriptionRecord] = []
        page = PageRequest(0, 500, (SortOrder("id"),))
        while True:
            batch = await self.store.subscriptions(page)
            found.extend(batch.content)
            if len(found) >= batch.total or not batch.content:
                return found
            page = PageRequest(page.page + 1, page.size, page.sort)

    async def _refuse_duplicate(self, new: NewSubscription, own_id: int | None) -> None:
        """Checked before the ping, as the original, so that a repeat does not ping again."""
        for other in await self._all():
            if (other.id != own_id and other.name == new.name
                    and other.push_endpoint == new.push_endpoint):
                raise SubscriptionWithSameNameAndPushEndpointAlreadyExists()

    async def _ping(self, url: str) -> None:
        try:
            await self.pinger.ping(url)
        except PingRefused as exc:
            raise WebhookPushEndpointPingFailed(str(exc), url) from None
        except PushEndpointUnreachable as exc:
            log.warning("push endpoint did not answer the ping; subscribing anyway",
                        push_endpoint=url, error=str(exc))


def _check(violations: Sequence[Violation]) -> None:
    if violations:
        raise ConstraintViolation(violations)


def _sort_key(subscription: SubscriptionRecord, prop: str) -> tuple[bool, Any]:
    value = {"id": subscription.id, "name": subscription.name,
             "pushEndpoint": subscription.push_endpoint, "resource": subscription.resource,
             "event": subscription.event, "filter": subscription.filter}[prop]
    return (value is None, value if value is not None else "")
