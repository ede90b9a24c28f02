"""``/api/subscriptions``: the webhook subscriptions of the Next Move API.

Handlers parse, call :class:`~ipunkt.messages.subscriptions.Subscriptions` and shape the answer
as the original: the subscription JSON on GET and POST, an empty ``200`` on PUT and DELETE,
Spring's page on the list. The Next Move middleware (authentication, Spring's headers, error
bodies) that :func:`ipunkt.api.nextmove.setup` installs covers these routes too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ipunkt.api import bodies
from ipunkt.api.http import answer, empty
from ipunkt.api.paging import page_json, page_request
from ipunkt.api.queries import java_long
from ipunkt.messages.errors import BadParameter, MessageNotReadable
from ipunkt.messages.subscriptions import SUBSCRIPTION_SORTS, Subscriptions
from ipunkt.sbd import strict_json
from ipunkt.store.base import SubscriptionRecord

SUBSCRIPTIONS = web.AppKey("subscriptions", Subscriptions)
MAX_BODY_BYTES = 64 * 1024


def setup_routes(app: web.Application, subscriptions: Subscriptions) -> None:
    """Add the routes; each path also answers with a trailing slash."""
    app[SUBSCRIPTIONS] = subscriptions
    table: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("GET", "/api/subscriptions", list_subscriptions),
        ("POST", "/api/subscriptions", create_subscription),
        ("DELETE", "/api/subscriptions", delete_all_subscriptions),
        ("GET", "/api/subscriptions/{id}", get_subscription),
        ("PUT", "/api/subscriptions/{id}", update_subscription),
        ("DELETE", "/api/subscriptions/{id}", delete_subscription),
    ]
    for method, path, handler in table:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, path + "/", handler)


def render(record: SubscriptionRecord) -> dict[str, Any]:
    """The original's JSON, key order included; no filter, no key (Jackson's NON_NULL)."""
    body: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "pushEndpoint": record.push_endpoint,
        "resource": record.resource,
        "event": record.event,
    }
    if record.filter is not None:
        body["filter"] = record.filter
    return body


async def list_subscriptions(request: web.Request) -> web.Response:
    page = page_request(request.query, SUBSCRIPTION_SORTS)
    found = await request.app[SUBSCRIPTIONS].find(page)
    return answer(page_json(found, render))


async def get_subscription(request: web.Request) -> web.Response:
    return answer(render(await request.app[SUBSCRIPTIONS].get(_id(request))))


async def create_subscription(request: web.Request) -> web.Response:
    created = await request.app[SUBSCRIPTIONS].create(await _json_body(request))
    return answer(render(created))


async def update_subscription(request: web.Request) -> web.Response:
    subscription_id = _id(request)
    await request.app[SUBSCRIPTIONS].update(subscription_id, await _json_body(request))
    return empty()


async def delete_subscription(request: web.Request) -> web.Response:
    await request.app[SUBSCRIPTIONS].delete(_id(request))
    return empty()


async def delete_all_subscriptions(request: web.Request) -> web.Response:
    await request.app[SUBSCRIPTIONS].delete_all()
    return empty()


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        return java_long(raw)
    except ValueError:
        raise BadParameter(f"The subscription id must be a whole number, not '{raw}'") from None


async def _json_body(request: web.Request) -> Any:
    raw = await bodies.read_json(request, MAX_BODY_BYTES, "The subscription")
    if not raw.strip():
        raise MessageNotReadable("Required request body is missing")
    try:
        return strict_json.loads(raw)
    except strict_json.JsonError as exc:
        raise MessageNotReadable(f"JSON parse error: {exc}") from None
