"""The Next Move API (``/api/messages``, ``/api/statuses``, ``/api/conversations``).

Handlers parse the request, call the message services and shape the answer; the rules live in
:mod:`ipunkt.messages`. :func:`setup` adds the routes, the store (opened and closed with the
application) and the services to an application made by :func:`ipunkt.app.create_app`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import structlog
from aiohttp import BodyPartReader, web

from ipunkt.api import bodies, openapi, queries, render
from ipunkt.api.content_disposition import ContentDisposition, ContentDispositionError
from ipunkt.api.content_disposition import parse as parse_disposition
from ipunkt.api.http import SPRING_HEADERS, answer, empty, nextmove_middleware
from ipunkt.api.paging import page_json, page_request
from ipunkt.api.queries import java_long
from ipunkt.api.settings import ApiSettings
from ipunkt.appkeys import PLUGINS, ROUTER, SETTINGS
from ipunkt.errors import NoContent
from ipunkt.jackson import Raw
from ipunkt.messages import errors
from ipunkt.messages.conversations import Conversations
from ipunkt.messages.incoming import IncomingMessages
from ipunkt.messages.outgoing import OutgoingMessages, StagedFile, Upload
from ipunkt.messages.routes import Resolver
from ipunkt.messages.settings import MessagesSettings
from ipunkt.messages.statuses import Statuses, StatusRules
from ipunkt.package.keys import OrganisationKey
from ipunkt.plugin import ChannelInfo
from ipunkt.sbd import SbdFormatError, SbdInvalid, StandardBusinessDocument, parse_sbd_text
from ipunkt.sbd.times import OSLO, now_oslo
from ipunkt.store.base import (
    CONVERSATION_SORTS,
    MESSAGE_SORTS,
    STATUS_SORTS,
    ConversationFilter,
    Direction,
    MessageFilter,
    MessageStore,
    SortOrder,
    StatusFilter,
)
from ipunkt.store.settings import create_store

log = structlog.get_logger(__name__)

ASICE = "application/vnd.etsi.asic-e+zip"
MAX_SBD_BYTES = 10 * 1024 * 1024
MULTIPART_REQUEST_LIMIT = 500 * 1024 * 1024
LAST_UPDATE_ALIASES = {"lastUpdated": "lastUpdate"}


@dataclass
class NextMove:
    """The services behind the Next Move API, shared by its handlers."""

    store: MessageStore
    outgoing: OutgoingMessages
    incoming: IncomingMessages
    statuses: Statuses
    conversations: Conversations


NEXTMOVE = web.AppKey("nextmove", NextMove)


class ChannelDeclarations:
    """Each registered channel's declaration (size limit, lifetime) by service identifier."""

    def __init__(self, infos: dict[str, ChannelInfo]) -> None:
        self.infos = infos

    def info(self, service: str) -> ChannelInfo | None:
        return self.infos.get(service)


def build(
    store: MessageStore,
    resolver: Resolver,
    channels: dict[str, ChannelInfo],
    *,
    organisation: str,
    settings: MessagesSettings,
    clock: Callable[[], datetime] | None = None,
    key: OrganisationKey | None = None,
) -> NextMove:
    """The services over one store; ``clock`` lets tests move time; ``key`` opens incoming
    packages at pop."""
    statuses = Statuses(store, StatusRules(settings.status_queue_includes))
    ttl = timedelta(hours=settings.default_ttl_hours)
    return NextMove(
        store=store,
        outgoing=OutgoingMessages(store, resolver, ChannelDeclarations(channels), statuses,
                                  organisation=organisation, default_ttl=ttl,
                                  clock=clock or now_oslo),
        incoming=IncomingMessages(store, statuses, default_ttl=ttl,
                                  lock_timeout=timedelta(minutes=settings.lock_timeout_minutes),
                                  key=key, clock=clock or now_oslo),
        statuses=statuses,
        conversations=Conversations(store),
    )


def install(app: web.Application, key: OrganisationKey | None = None) -> None:
    """The Next Move API of a gateway app: its config's store, its router and channels."""
    settings = app[SETTINGS]
    nextmove = build(
        create_store(settings.store),
        app[ROUTER],
        dict(app[PLUGINS].channels),
        organisation=settings.organisation.number,
        settings=settings.messages,
        key=key,
    )
    setup(app, nextmove, settings.api)


def setup(
    app: web.Application,
    nextmove: NextMove,
    api: ApiSettings,
) -> None:
    """Add the Next Move API to ``app``; the store opens and closes with it."""
    app[NEXTMOVE] = nextmove
    app[bodies.BODY_IDLE_SECONDS] = api.body_idle_seconds
    tls = api.tls_certificate is not None
    app.middlewares.append(nextmove_middleware(api.credentials, tls=tls))
    app.cleanup_ctx.append(_store_open)
    add_routes(app.router)
    openapi.setup_routes(app, basic_auth=api.credentials is not None)


async def _store_open(app: web.Application) -> AsyncIterator[None]:
    await app[NEXTMOVE].store.open()
    yield
    await app[NEXTMOVE].store.close()


def add_routes(router: web.UrlDispatcher) -> None:
    """Each path also answers with a trailing slash."""
    table: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
        ("POST", "/api/messages/out/multipart", create_and_send),
        ("POST", "/api/messages/out", create_message),
        ("GET", "/api/messages/out", find_outgoing),
        ("GET", "/api/messages/out/{messageId}", get_outgoing),
        ("PUT", "/api/messages/out/{messageId}", upload_file),
        ("POST", "/api/messages/out/{messageId}", send_message),
        ("DELETE", "/api/messages/out/{messageId}", delete_outgoing),
        ("GET", "/api/messages/in", find_incoming),
        ("GET", "/api/messages/in/peek", peek_incoming),
        ("GET", "/api/messages/in/pop/{messageId}", pop_incoming),
        ("DELETE", "/api/messages/in/{messageId}", delete_incoming),
        ("GET", "/api/statuses", find_statuses),
        ("GET", "/api/statuses/peek", peek_status),
        ("GET", "/api/statuses/{messageId}", statuses_of_message),
        ("DELETE", "/api/statuses/{id}", remove_status),
        ("GET", "/api/conversations", find_conversations),
        ("GET", "/api/conversations/queue", queued_conversations),
        ("GET", "/api/conversations/messageId/{messageId}", conversation_by_message_id),
        ("DELETE", "/api/conversations/messageId/{messageId}", delete_conversation_by_message_id),
        ("GET", "/api/conversations/{id}", conversation_by_id),
        ("DELETE", "/api/conversations/{id}", delete_conversation_by_id),
    ]
    for method, path, handler in table:
        router.add_route(method, path, handler)
        router.add_route(method, path + "/", handler)


def _services(request: web.Request) -> NextMove:
    return request.app[NEXTMOVE]


# --- outgoing -----------------------------------------------------------------------------------


async def create_message(request: web.Request) -> web.Response:
    sbd = await _sbd_body(request)
    return answer(Raw(await _services(request).outgoing.create(sbd)))


async def create_and_send(request: web.Request) -> web.Response:
    services = _services(request)
    bodies.require_multipart(request)
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as exc:
        raise errors.MessageNotReadable(f"Not a multipart/form-data request: {exc}") from None
    sbd: StandardBusinessDocument | None = None
    staged: list[StagedFile] = []
    total = 0
    idle = request.app[bodies.BODY_IDLE_SECONDS]
    try:
        while True:
            try:
                async with asyncio.timeout(idle):
                    part = await reader.next()
            except TimeoutError:
                raise errors.BodyStalled(idle) from None
            except (ValueError, *bodies.UNREADABLE) as exc:  # a malformed part, a lost body
                raise errors.MessageNotReadable(f"A part is malformed: {exc}") from None
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            disposition = _disposition(part.headers.get("Content-Disposition"), required=False)
            name = disposition.name if disposition else None
            if name == "sbd":
                sbd = _parse_sbd(await bodies.read_limited(part, MAX_SBD_BYTES, "The SBD",
                                                           idle=idle))
                continue
            if disposition is None or disposition.filename is None:
                continue
            file = await services.outgoing.stage(Upload(
                filename=disposition.filename,
                mime_type=bodies.header_text(part.headers.get("Content-Type")),
                title=name,
                chunks=bodies.chunks(part, idle=idle),
            ))
            staged.append(file)
            total += file.size
            if total > MULTIPART_REQUEST_LIMIT:
                raise errors.MultipartFileToLarge(file.filename, MULTIPART_REQUEST_LIMIT)
        if sbd is None:
            raise errors.MissingHttpHeader("sbd", "The multipart request has no part named sbd")
        created = await services.outgoing.create_and_send(sbd, staged)
    except Exception:  # not on cancellation: the change may still commit
        await services.outgoing.discard(staged)
        raise
    return answer(Raw(created))


async def find_outgoing(request: web.Request) -> web.Response:
    query = request.query
    where = MessageFilter(
        conversation_id=queries.text(query, "conversationId"),
        message_id=queries.text(query, "messageId"),
        process=queries.text(query, "processIdentifier") or queries.text(query, "process"),
        receiver_identifier=queries.text(query, "receiverIdentifier"),
        sender_identifier=queries.text(query, "senderIdentifier"),
        service=queries.text(query, "serviceIdentifier"),
    )
    page = page_request(query, MESSAGE_SORTS)
    found = await _services(request).outgoing.find(where, page)
    return answer(page_json(found, render.sbd))


async def get_outgoing(request: web.Request) -> web.Response:
    record = await _services(request).outgoing.get(request.match_info["messageId"])
    return answer(render.sbd(record))


async def upload_file(request: web.Request) -> web.Response:
    message_id = request.match_info["messageId"]
    disposition = _disposition(request.headers.get("Content-Disposition"), required=True)
    assert disposition is not None
    if disposition.filename is None:
        raise errors.MissingHttpHeader(
            "Content-Disposition",
            "Content-Disposition must name the file: filename=... or filename*=UTF-8''...",
        )
    title = request.query.get("title") or disposition.name
    await _services(request).outgoing.add_file(message_id, Upload(
        filename=disposition.filename,
        mime_type=bodies.header_text(request.headers.get("Content-Type")),
        title=title,
        chunks=bodies.chunks(request.content, idle=request.app[bodies.BODY_IDLE_SECONDS]),
        declared_size=request.content_length,
    ))
    return empty()


async def send_message(request: web.Request) -> web.Response:
    await _services(request).outgoing.send(request.match_info["messageId"])
    return empty()


async def delete_outgoing(request: web.Request) -> web.Response:
    await _services(request).outgoing.delete(request.match_info["messageId"])
    return empty()


# --- incoming -----------------------------------------------------------------------------------


def _incoming_filter(request: web.Request) -> MessageFilter:
    query = request.query
    return MessageFilter(
        conversation_id=queries.text(query, "conversationId"),
        message_id=queries.text(query, "messageId"),
        process=queries.text(query, "process") or queries.text(query, "processIdentifier"),
        receiver_identifier=queries.text(query, "receiverIdentifier"),
        sender_identifier=queries.text(query, "senderIdentifier"),
        service=queries.text(query, "serviceIdentifier"),
    )


async def find_incoming(request: web.Request) -> web.Response:
    page = page_request(request.query, MESSAGE_SORTS)
    found = await _services(request).incoming.find(_incoming_filter(request), page)
    return answer(page_json(found, render.sbd))


async def peek_incoming(request: web.Request) -> web.Response:
    record = await _services(request).incoming.peek(_incoming_filter(request))
    if record is None:
        raise NoContent("No content")
    return answer(render.sbd(record))


async def pop_incoming(request: web.Request) -> web.StreamResponse:
    asic = await _services(request).incoming.pop(request.match_info["messageId"])
    if asic is None:
        return web.Response(status=204)
    response = web.StreamResponse(status=200)
    response.content_type = ASICE
    response.headers["Content-Disposition"] = "attachment; filename=asic.zip"
    if asic.size is not None:
        response.content_length = asic.size
    for name, value in SPRING_HEADERS:
        response.headers.add(name, value)
    await response.prepare(request)
    try:
        async for chunk in asic.chunks:
            await response.write(chunk)
    except Exception as exc:  # the 200 is under way: cut it off, never add a second answer
        log.warning("pop broken off", message_id=request.match_info["messageId"],
                    error=str(exc) or type(exc).__name__)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


async def delete_incoming(request: web.Request) -> web.Response:
    record = await _services(request).incoming.delete(request.match_info["messageId"])
    return answer(render.sbd(record))


# --- statuses -----------------------------------------------------------------------------------


async def find_statuses(request: web.Request) -> web.Response:
    query = request.query
    where = StatusFilter(
        id=queries.integer(query, "id"),
        message_id=queries.text(query, "messageId"),
        conversation_id=queries.text(query, "conversationId"),
        status=(queries.text(query, "status") or "").upper() or None,
        since=queries.moment(query, "fromDateTime"),
        until=queries.moment(query, "toDateTime", end_of_day=True),
    )
    page = page_request(query, STATUS_SORTS, default=(SortOrder("id"),),
                        aliases=LAST_UPDATE_ALIASES)
    found = await _services(request).statuses.find(where, page)
    return answer(page_json(found, render.status))


async def statuses_of_message(request: web.Request) -> web.Response:
    page = page_request(request.query, STATUS_SORTS, default=(SortOrder("id"),),
                        aliases=LAST_UPDATE_ALIASES)
    where = StatusFilter(message_id=request.match_info["messageId"])
    found = await _services(request).statuses.find(where, page)
    return answer(page_json(found, render.status))


async def peek_status(request: web.Request) -> web.Response:
    record = await _services(request).statuses.peek()
    if record is None:
        raise NoContent("No content")
    return answer(render.status(record))


async def remove_status(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    try:
        status_id = java_long(raw)
    except ValueError:
        raise errors.BadParameter(f"The status id must be a whole number, not '{raw}'") from None
    if not await _services(request).statuses.remove(status_id):
        raise errors.MessageStatusNotFound(status_id)
    return empty()


# --- conversations ------------------------------------------------------------------------------


def _conversation_page(request: web.Request) -> tuple[ConversationFilter, object]:
    query = request.query
    direction = queries.text(query, "direction")
    if direction is not None:
        try:
            direction_value: Direction | None = Direction(direction.upper())
        except ValueError:
            raise errors.BadParameter(
                f"Parameter 'direction' must be OUTGOING or INCOMING, not '{direction}'"
            ) from None
    else:
        direction_value = None
    updated_from = queries.day(query, "lastUpdateFrom")
    updated_to = queries.day(query, "lastUpdateTo")
    where = ConversationFilter(
        conversation_id=queries.text(query, "conversationId"),
        message_id=queries.text(query, "messageId"),
        receiver=queries.text(query, "receiver"),
        receiver_identifier=queries.text(query, "receiverIdentifier"),
        sender=queries.text(query, "sender"),
        sender_identifier=queries.text(query, "senderIdentifier"),
        service=queries.text(query, "serviceIdentifier"),
        message_reference=queries.text(query, "messageReference"),
        message_title=queries.text(query, "messageTitle"),
        pollable=queries.boolean(query, "pollable"),
        finished=queries.boolean(query, "finished"),
        direction=direction_value,
        updated_from=datetime.combine(updated_from, time(), OSLO) if updated_from else None,
        updated_before=(datetime.combine(updated_to + timedelta(days=1), time(), OSLO)
                        if updated_to and updated_to < date.max else None),
    )
    page = page_request(query, CONVERSATION_SORTS, default=(SortOrder("lastUpdate", True),),
                        aliases=LAST_UPDATE_ALIASES)
    return where, page


async def find_conversations(request: web.Request) -> web.Response:
    where, page = _conversation_page(request)
    found = await _services(request).conversations.find(where, page)  # type: ignore[arg-type]
    return answer(page_json(found, render.conversation))


async def queued_conversations(request: web.Request) -> web.Response:
    page = page_request(request.query, CONVERSATION_SORTS,
                        default=(SortOrder("lastUpdate", True),), aliases=LAST_UPDATE_ALIASES)
    found = await _services(request).conversations.find(ConversationFilter(), page,
                                                         queued_only=True)
    return answer(page_json(found, render.conversation))


async def conversation_by_id(request: web.Request) -> web.Response:
    conv_id = _conversation_id(request)
    return answer(render.conversation(await _services(request).conversations.by_id(conv_id)))


async def conversation_by_message_id(request: web.Request) -> web.Response:
    found = await _services(request).conversations.by_message_id(request.match_info["messageId"])
    return answer(render.conversation(found))


async def delete_conversation_by_id(request: web.Request) -> web.Response:
    await _services(request).conversations.delete(conv_id=_conversation_id(request))
    return empty()


async def delete_conversation_by_message_id(request: web.Request) -> web.Response:
    await _services(request).conversations.delete(message_id=request.match_info["messageId"])
    return empty()


def _conversation_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        return java_long(raw)
    except ValueError:
        raise errors.ConversationNotFound(raw) from None


# --- reading bodies -----------------------------------------------------------------------------


async def _sbd_body(request: web.Request) -> StandardBusinessDocument:
    return _parse_sbd(await bodies.read_json(request, MAX_SBD_BYTES, "The SBD"))


def _parse_sbd(raw: bytes | str) -> StandardBusinessDocument:
    if not raw.strip():
        raise errors.MessageNotReadable("Required request body is missing")
    try:
        return parse_sbd_text(raw)
    except SbdFormatError as exc:
        raise errors.MessageNotReadable(str(exc)) from None
    except SbdInvalid as exc:
        raise errors.ConstraintViolation(exc.violations) from None


def _disposition(raw: str | None, *, required: bool) -> ContentDisposition | None:
    """The Content-Disposition header read (as Tomcat reads its bytes); None when absent."""
    header = bodies.header_text(raw) or ""
    if not header.strip():
        if required:
            raise errors.MissingHttpHeader("Content-Disposition")
        return None
    try:
        return parse_disposition(header)
    except ContentDispositionError as exc:
        raise errors.MissingHttpHeader("Content-Disposition", str(exc)) from None
