"""``GET /api/openapi.json``: an OpenAPI 3.1 document of exactly the HTTP API ipunkt serves.

Every route of the gateway is in it and nothing else (a test holds the router and this
document to each other, and checks real answers against it). The SBD's schemas come from the
models that read and write it (:mod:`ipunkt.sbd.model`), so they cannot drift apart; the rest
is written out here, in the original's field names. Basic authentication is in the document
when the config turns it on, as the API then asks for it on every ``/api`` path.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ipunkt import __version__
from ipunkt.api.http import answer
from ipunkt.plugin import ReceiptStatus
from ipunkt.sbd.model import MESSAGE_TYPES, Header, ScopeType
from ipunkt.store.base import (
    CONVERSATION_SORTS,
    MESSAGE_SORTS,
    STATUS_SORTS,
    Direction,
)

PATH = "/api/openapi.json"
JSON = "application/json"
ASICE = "application/vnd.etsi.asic-e+zip"
OPENAPI = web.AppKey("openapi", dict)

Json = dict[str, Any]


def setup_routes(app: web.Application, *, basic_auth: bool) -> None:
    app[OPENAPI] = document(basic_auth=basic_auth)
    app.router.add_route("GET", PATH, openapi_json)


async def openapi_json(request: web.Request) -> web.Response:
    return answer(request.app[OPENAPI])


def document(*, basic_auth: bool) -> Json:
    """The whole document; ``basic_auth`` when the config sets api.username and password."""
    paths = _paths(basic_auth)
    doc: Json = {
        "openapi": "3.1.0",
        "info": {
            "title": "ipunkt: the Next Move API of the integrasjonspunkt",
            "version": __version__,
            "description": (
                "Wire-compatible with Digdir's integrasjonspunkt. Reading is liberal: times "
                "with or without an offset (none means Europe/Oslo) and with up to nine "
                "fraction digits, dates alone where a date is meant, explicit nulls, enum "
                "values in any case, numbers where text is meant, paths with a trailing "
                "slash. Writing is strict: the original's field order, absent fields left out."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {**_sbd_schemas(), **_schemas()},
            "parameters": _parameters(),
            "responses": _responses(),
            "securitySchemes": {
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Required on /api when api.username and api.password are set "
                                   "(always when ipunkt listens on more than loopback).",
                },
            },
        },
    }
    if basic_auth:
        doc["security"] = [{"basicAuth": []}]
    return doc


# --- helpers ------------------------------------------------------------------------------------


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> Json:
    return _ref("schemas", name)


def _json(schema: Json) -> Json:
    return {JSON: {"schema": schema}}


def _ok(description: str, schema: Json | None = None) -> Json:
    answer: Json = {"description": description}
    if schema is not None:
        answer["content"] = _json(schema)
    return answer


def _query(name: str, description: str, schema: Json | None = None) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _path(name: str, description: str, schema: Json | None = None) -> Json:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string"}}


PAGING = [_ref("parameters", "page"), _ref("parameters", "size"), _ref("parameters", "sort")]
EMPTY = {"description": "Done; no body."}


def _operation(
    operation_id: str,
    summary: str,
    responses: Json,
    *,
    tag: str,
    parameters: list[Json] | None = None,
    body: Json | None = None,
    basic_auth: bool,
    errors: tuple[int, ...] = (400,),
) -> Json:
    operation: Json = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    answers = dict(responses)
    for status in errors:
        answers.setdefault(str(status), _ref("responses", f"Error{status}"))
    if basic_auth:
        answers["401"] = _ref("responses", "Error401")
    answers["default"] = _ref("responses", "Error")
    operation["responses"] = answers
    return operation


# --- paths ----------------------------------------------------------------------------------------


def _paths(basic_auth: bool) -> Json:
    op = functools.partial(_operation, basic_auth=basic_auth)
    message_id = _path("messageId", "The message's id (a UUID).")
    sbd = _schema("StandardBusinessDocument")
    sbd_body = {"required": True, "content": _json(sbd)}
    no_content = _ref("responses", "NoContent")
    out_filters = [
        _query("conversationId", "Only this conversation."),
        _query("messageId", "Only this message."),
        _query("processIdentifier", "Only this process."),
        _query("receiverIdentifier", "Only this receiver (0192: may be given)."),
        _query("senderIdentifier", "Only this sender (0192: may be given)."),
        _query("serviceIdentifier", "Only this service: DPO, DPV, DPF, DPI, DPE..."),
    ]
    in_filters = [
        _query("conversationId", "Only this conversation."),
        _query("messageId", "Only this message."),
        _query("process", "Only this process."),
        _query("receiverIdentifier", "Only this receiver (0192: may be given)."),
        _query("senderIdentifier", "Only this sender (0192: may be given)."),
        _query("serviceIdentifier", "Only this service."),
    ]
    out = "Outgoing messages"
    incoming = "Incoming messages"
    statuses = "Statuses"
    conversations = "Conversations"
    subscriptions = "Subscriptions"
    return {
        "/api/messages/out": {
            "post": op("createMessage", "Create a message from an SBD; defaults are filled in.",
                       {"200": _ok("The stored SBD.", sbd)}, tag=out, body=sbd_body,
                       errors=(400, 415, 503)),
            "get": op("findOutgoingMessages", "Messages created and not yet delivered.",
                      {"200": _ok("A page of SBDs.", _schema("PageOfStandardBusinessDocument"))},
                      tag=out, parameters=[*out_filters, *PAGING]),
        },
        "/api/messages/out/multipart": {
            "post": op(
                "createAndSendMessage",
                "Create and send in one call: the part sbd and a part per file (5 MiB each).",
                {"200": _ok("The stored SBD.", sbd)}, tag=out, errors=(400, 408, 415, 503),
                body={"required": True, "content": {"multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["sbd"],
                        "properties": {"sbd": sbd},
                        "additionalProperties": {"type": "string", "format": "binary"},
                        "description": "Each file part: the part's name is the title, its "
                                       "filename the file's name, its Content-Type the file's.",
                    },
                    "encoding": {"sbd": {"contentType": JSON}},
                }}},
            ),
        },
        "/api/messages/out/{messageId}": {
            "parameters": [message_id],
            "get": op("getOutgoingMessage", "The message's SBD.",
                      {"200": _ok("The SBD.", sbd)}, tag=out, errors=(404,)),
            "put": op(
                "uploadAttachment",
                "Upload one file of the message, streamed.",
                {"200": EMPTY}, tag=out, errors=(400, 404, 408),
                parameters=[
                    _query("title", "The file's title (else the name in Content-Disposition)."),
                    {"name": "Content-Disposition", "in": "header", "required": True,
                     "description": "Names the file: attachment; name=Title; filename=a.pdf "
                                    "(quoted or not; filename* in RFC 5987 form wins).",
                     "schema": {"type": "string"}},
                ],
                body={"required": True, "description": "The file's bytes; Content-Type is its "
                      "MIME type (guessed from the name when absent or octet-stream).",
                      "content": {"*/*": {"schema": {"type": "string",
                                                     "format": "binary"}}}},
            ),
            "post": op("sendMessage",
                       "Send the message: check it is complete and queue it for delivery.",
                       {"200": EMPTY}, tag=out, errors=(400, 404)),
            "delete": op("deleteOutgoingMessage",
                         "Delete the message and its files; its conversation stays.",
                         {"200": EMPTY}, tag=out),
        },
        "/api/messages/in": {
            "get": op("findIncomingMessages", "Incoming messages not yet confirmed.",
                      {"200": _ok("A page of SBDs.", _schema("PageOfStandardBusinessDocument"))},
                      tag=incoming, parameters=[*in_filters, *PAGING]),
        },
        "/api/messages/in/peek": {
            "get": op("peekIncomingMessage",
                      "Lock the oldest unlocked incoming message and return its SBD.",
                      {"200": _ok("The locked message's SBD.", sbd), "204": no_content},
                      tag=incoming, parameters=in_filters),
        },
        "/api/messages/in/pop/{messageId}": {
            "parameters": [message_id],
            "get": op(
                "popIncomingMessage", "The locked message's ASiC-E, streamed.",
                {"200": {"description": "The ASiC-E.",
                         "headers": {"Content-Disposition": {
                             "description": "attachment; filename=asic.zip",
                             "schema": {"type": "string"}}},
                         "content": {ASICE: {"schema": {"type": "string",
                                                        "format": "binary"}}}},
                 "204": {"description": "A receipt: it has no ASiC-E."}},
                tag=incoming, errors=(400, 404, 500),
            ),
        },
        "/api/messages/in/{messageId}": {
            "parameters": [message_id],
            "delete": op("deleteIncomingMessage",
                         "Confirm a locked message: delete it, register INNKOMMENDE_LEVERT.",
                         {"200": _ok("The deleted message's SBD.", sbd)}, tag=incoming,
                         errors=(400, 404)),
        },
        "/api/statuses": {
            "get": op(
                "findStatuses", "Message statuses (sorted by id unless asked otherwise).",
                {"200": _ok("A page of statuses.", _schema("PageOfMessageStatus"))},
                tag=statuses,
                parameters=[
                    _query("id", "Only this status.", {"type": "integer"}),
                    _query("messageId", "Only this message's."),
                    _query("conversationId", "Only this conversation's."),
                    _query("status", "Only this status.", _schema("ReceiptStatus")),
                    _query("fromDateTime", "Updated at or after (a date alone: its start).",
                           {"type": "string"}),
                    _query("toDateTime", "Updated at or before (a date alone: its end).",
                           {"type": "string"}),
                    *PAGING,
                ],
            ),
        },
        "/api/statuses/peek": {
            "get": op("peekStatus", "The oldest status on the status queue, left on it.",
                      {"200": _ok("A status.", _schema("MessageStatus")), "204": no_content},
                      tag=statuses),
        },
        "/api/statuses/{id}": {
            "get": op(
                "findStatusesOfMessage", "A message's statuses.",
                {"200": _ok("A page of statuses.", _schema("PageOfMessageStatus"))},
                tag=statuses,
                parameters=[_path("id", "The message's id (messageId)."), *PAGING],
            ),
            "delete": op(
                "removeStatusFromQueue", "Take a status off the status queue.",
                {"200": EMPTY}, tag=statuses, errors=(400, 404),
                parameters=[_path("id", "The status's id.", {"type": "integer"})],
            ),
        },
        "/api/conversations": {
            "get": op(
                "findConversations", "Conversations (newest update first unless asked).",
                {"200": _ok("A page of conversations.", _schema("PageOfConversation"))},
                tag=conversations,
                parameters=[
                    _query("conversationId", "Only this conversation id."),
                    _query("messageId", "Only this message's."),
                    _query("receiver", "Only this receiver (as stored, e.g. 0192:...)."),
                    _query("receiverIdentifier", "Only this receiver."),
                    _query("sender", "Only this sender (as stored)."),
                    _query("senderIdentifier", "Only this sender."),
                    _query("serviceIdentifier", "Only this service."),
                    _query("messageReference", "Only this reference."),
                    _query("messageTitle", "Only this title."),
                    _query("pollable", "Only (not) polled for statuses.", {"type": "boolean"}),
                    _query("finished", "Only (un)finished ones.", {"type": "boolean"}),
                    _query("direction", "OUTGOING or INCOMING (any case).", {"type": "string"}),
                    _query("lastUpdateFrom", "Updated on or after this day.",
                           {"type": "string", "format": "date"}),
                    _query("lastUpdateTo", "Updated on or before this day.",
                           {"type": "string", "format": "date"}),
                    *PAGING,
                ],
            ),
        },
        "/api/conversations/queue": {
            "get": op("queuedConversations", "Conversations still polled for statuses.",
                      {"200": _ok("A page of conversations.", _schema("PageOfConversation"))},
                      tag=conversations, parameters=PAGING),
        },
        "/api/conversations/messageId/{messageId}": {
            "parameters": [message_id],
            "get": op("conversationByMessageId", "The message's conversation.",
                      {"200": _ok("The conversation.", _schema("Conversation"))},
                      tag=conversations, errors=(404,)),
            "delete": op("deleteConversationByMessageId",
                         "Delete the message's conversations and their statuses.",
                         {"200": EMPTY}, tag=conversations),
        },
        "/api/conversations/{id}": {
            "parameters": [_path("id", "The conversation's id.", {"type": "integer"})],
            "get": op("conversationById", "A conversation.",
                      {"200": _ok("The conversation.", _schema("Conversation"))},
                      tag=conversations, errors=(404,)),
            "delete": op("deleteConversationById",
                         "Delete the conversation and its statuses.", {"200": EMPTY},
                         tag=conversations),
        },
        "/api/capabilities/{receiverIdentifier}": {
            "get": op(
                "capabilities", "What the receiver accepts, by process and service.",
                {"200": _ok("The receiver's capabilities.", _schema("Capabilities"))},
                tag="Capabilities", errors=(400, 404, 503),
                parameters=[
                    _path("receiverIdentifier", "An organisation number or fødselsnummer."),
                    _query("securityLevel", "Only records at this security level.",
                           {"type": "integer"}),
                    _query("process", "Only this process."),
                ],
            ),
        },
        "/api/subscriptions": {
            "get": op("listSubscriptions", "The webhook subscriptions.",
                      {"200": _ok("A page of subscriptions.", _schema("PageOfSubscription"))},
                      tag=subscriptions, parameters=PAGING),
            "post": op("createSubscription",
                       "Subscribe a push endpoint (pinged first) to status events.",
                       {"200": _ok("The subscription.", _schema("Subscription"))},
                       tag=subscriptions, errors=(400, 415),
                       body={"required": True, "content": _json(_schema("SubscriptionRequest"))}),
            "delete": op("deleteAllSubscriptions", "Delete every subscription.",
                         {"200": EMPTY}, tag=subscriptions),
        },
        "/api/subscriptions/{id}": {
            "parameters": [_path("id", "The subscription's id.", {"type": "integer"})],
            "get": op("getSubscription", "A subscription.",
                      {"200": _ok("The subscription.", _schema("Subscription"))},
                      tag=subscriptions, errors=(400, 404)),
            "put": op("updateSubscription", "Replace the fields given.", {"200": EMPTY},
                      tag=subscriptions, errors=(400, 404, 415),
                      body={"required": True, "content": _json(_schema("SubscriptionRequest"))}),
            "delete": op("deleteSubscription", "Delete a subscription.", {"200": EMPTY},
                         tag=subscriptions, errors=(400, 404)),
        },
        PATH: {
            "get": op("openapi", "This document.",
                      {"200": _ok("An OpenAPI 3.1 document.", {"type": "object"})},
                      tag="API description", errors=()),
        },
        "/manage/health": {"get": _manage("health", "Liveness, readiness, plugins, channels.")},
        "/manage/health/liveness": {"get": _manage("liveness", "The process answers.")},
        "/manage/health/readiness": {"get": _manage("readiness", "Ready to take traffic.")},
        "/manage/prometheus": {"get": {
            "operationId": "prometheus",
            "summary": "The delivery engine's figures in Prometheus' text format.",
            "tags": ["Management"],
            "security": [],
            "responses": {"200": {"description": "Prometheus exposition.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
    }


def _manage(operation_id: str, summary: str) -> Json:
    health = _json(_schema("Health"))
    return {
        "operationId": operation_id,
        "summary": summary + " Never asks for authentication.",
        "tags": ["Management"],
        "security": [],
        "responses": {
            "200": {"description": "UP.", "content": health},
            "503": {"description": "Not UP (out of service, degraded or down).",
                    "content": health},
        },
    }


# --- components -----------------------------------------------------------------------------------


def _parameters() -> Json:
    sorts = sorted(MESSAGE_SORTS | STATUS_SORTS | CONVERSATION_SORTS)
    return {
        "page": _query("page", "The page, from 0.", {"type": "integer", "minimum": 0,
                                                     "default": 0}),
        "size": _query("size", "Rows per page (at most 2000).",
                       {"type": "integer", "minimum": 1, "default": 10}),
        "sort": {
            "name": "sort", "in": "query", "required": False, "style": "form", "explode": True,
            "description": "property[,asc|desc], repeatable; properties: " + ", ".join(sorts),
            "schema": {"type": "array", "items": {"type": "string"}},
        },
    }


def _error_response(description: str) -> Json:
    return {"description": description, "content": _json(_schema("Error"))}


def _responses() -> Json:
    return {
        "Error400": _error_response("Refused: the body names why (errors[] for each field)."),
        "Error401": {
            "description": "No or wrong HTTP Basic credentials.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"},
                                             "description": 'Basic realm="Realm"'}},
            "content": _json(_schema("Error")),
        },
        "Error404": _error_response("Not found."),
        "Error408": _error_response("The body stopped coming for api.body_idle_seconds."),
        "Error415": _error_response("The body's Content-Type is not one the operation reads."),
        "Error500": _error_response("A stored file could not be read or written."),
        "Error503": _error_response("No lookup source can answer now; worth retrying."),
        "Error": _error_response("Any other failure, in the same body."),
        "NoContent": {"description": "Nothing to return (Content-Type application/json, no "
                                     "body)."},
    }


@functools.cache
def _sbd_schemas() -> Json:
    """The SBD's header and business messages, from the models that read and write them."""
    models: list[tuple[type[BaseModel], Literal["serialization"]]] = [
        (Header, "serialization"),
        *((cls, "serialization") for cls in MESSAGE_TYPES.values()),
    ]
    _, top = models_json_schema(models, by_alias=True,
                                ref_template="#/components/schemas/{model}")
    schemas = {name: _tidy(schema) for name, schema in top["$defs"].items()}
    message_keys = {name: _schema(cls.__name__) for name, cls in MESSAGE_TYPES.items()}
    schemas["StandardBusinessDocument"] = {
        "type": "object",
        "description": (
            "The header and one business message, under the name of its type "
            "(documentIdentification.type): " + ", ".join(MESSAGE_TYPES) + ". Scope types: "
            + ", ".join(t.value for t in ScopeType) + "."
        ),
        "required": ["standardBusinessDocumentHeader"],
        "properties": {"standardBusinessDocumentHeader": _schema("Header"), **message_keys},
    }
    return schemas


def _tidy(schema: Any) -> Any:
    """Without pydantic's titles and ``default: null``, which say nothing to a client."""
    if isinstance(schema, dict):
        return {k: _tidy(v) for k, v in schema.items()
                if k != "title" and not (k == "default" and v is None)}
    if isinstance(schema, list):
        return [_tidy(v) for v in schema]
    return schema


def _object(required: list[str], properties: Json, description: str | None = None) -> Json:
    schema: Json = {"type": "object", "required": required, "properties": properties}
    if description:
        schema["description"] = description
    return schema


def _page(item: str) -> Json:
    integer = {"type": "integer"}
    boolean = {"type": "boolean"}
    fields = {
        "content": {"type": "array", "items": _schema(item)},
        "pageable": _schema("Pageable"),
        "totalElements": integer,
        "last": boolean,
        "totalPages": integer,
        "sort": _schema("Sort"),
        "numberOfElements": integer,
        "first": boolean,
        "size": integer,
        "number": integer,
        "empty": boolean,
    }
    return _object(list(fields), fields, f"Spring's page of {item}.")


def _schemas() -> Json:
    text = {"type": "string"}
    integer = {"type": "integer"}
    boolean = {"type": "boolean"}
    moment = {"type": "string", "format": "date-time"}
    address = {k: text for k in ("name", "street", "postalCode", "postalArea", "country")}
    return {
        "ReceiptStatus": {"type": "string", "enum": [s.value for s in ReceiptStatus]},
        "Direction": {"type": "string", "enum": [d.value for d in Direction]},
        "Sort": _object(["sorted", "unsorted", "empty"],
                        {"sorted": boolean, "unsorted": boolean, "empty": boolean}),
        "Pageable": _object(
            ["sort", "pageNumber", "pageSize", "offset", "paged", "unpaged"],
            {"sort": _schema("Sort"), "pageNumber": integer, "pageSize": integer,
             "offset": integer, "paged": boolean, "unpaged": boolean},
        ),
        "PageOfStandardBusinessDocument": _page("StandardBusinessDocument"),
        "PageOfMessageStatus": _page("MessageStatus"),
        "PageOfConversation": _page("Conversation"),
        "PageOfSubscription": _page("Subscription"),
        "MessageStatus": _object(
            ["id", "lastUpdate", "status", "convId", "conversationId", "messageId"],
            {"id": integer, "lastUpdate": moment, "status": _schema("ReceiptStatus"),
             "description": text, "rawReceipt": text, "convId": integer,
             "conversationId": text, "messageId": text},
        ),
        "ConversationStatus": _object(
            ["id", "lastUpdate", "status"],
            {"id": integer, "lastUpdate": moment, "status": _schema("ReceiptStatus"),
             "description": text},
        ),
        "Conversation": _object(
            ["id", "conversationId", "messageId", "lastUpdate", "finished", "expiry",
             "direction", "serviceIdentifier", "messageStatuses"],
            {"id": integer, "conversationId": text, "messageId": text,
             "senderIdentifier": text, "receiverIdentifier": text, "processIdentifier": text,
             "messageReference": text, "messageTitle": text, "serviceCode": text,
             "serviceEditionCode": text, "lastUpdate": moment, "finished": boolean,
             "expiry": moment, "direction": _schema("Direction"), "serviceIdentifier": text,
             "externalSystemReference": text,
             "messageStatuses": {"type": "array", "items": _schema("ConversationStatus")}},
        ),
        "FieldError": _object(
            ["codes", "defaultMessage", "objectName", "field", "rejectedValue",
             "bindingFailure", "code"],
            {"codes": {"type": "array", "items": text}, "defaultMessage": text,
             "objectName": text, "field": text, "rejectedValue": {},
             "bindingFailure": boolean, "code": text},
            "One broken rule: the field's path from the SBD's root and the value refused.",
        ),
        "Error": _object(
            ["timestamp", "status", "error", "path"],
            {"timestamp": moment, "status": integer, "error": text,
             "exception": {"type": "string", "description": "The original's Java class name."},
             "message": text, "path": text, "description": text,
             "errors": {"type": "array", "items": _schema("FieldError")}},
            "The integrasjonspunkt's error body.",
        ),
        "Address": {"type": "object", "properties": address},
        "Capability": _object(
            ["process", "serviceIdentifier", "documentTypes"],
            {"process": text, "serviceIdentifier": text,
             "postAddress": _schema("Address"), "returnAddress": _schema("Address"),
             "documentTypes": {"type": "array", "items": {
                 "type": "object", "required": ["standard"],
                 "properties": {"type": text, "standard": text}}},
             "digitalPostAddress": {"type": "object",
                                    "properties": {"supplier": text, "address": text}}},
        ),
        "Capabilities": _object(
            ["capabilities"],
            {"capabilities": {"type": "array", "items": _schema("Capability")}},
        ),
        "Subscription": _object(
            ["id", "name", "pushEndpoint", "resource", "event"],
            {"id": integer, "name": text, "pushEndpoint": {"type": "string", "format": "uri"},
             "resource": {"type": "string", "enum": ["all", "messages"]},
             "event": {"type": "string", "enum": ["all", "status"]},
             "filter": {"type": "string",
                        "description": "e.g. status=FEIL,LEVETID_UTLOPT&direction=INCOMING"}},
        ),
        "SubscriptionRequest": {
            "type": "object",
            "description": "On create: name, pushEndpoint, resource and event, and no id. On "
                           "update: the fields to replace.",
            "properties": {"id": {"type": ["integer", "null"]},
                           **{name: {"type": ["string", "null"]} for name in
                              ("name", "pushEndpoint", "resource", "event", "filter")}},
        },
        "Health": _object(
            ["status"],
            {"status": {"type": "string", "enum": ["UP", "DOWN", "OUT_OF_SERVICE",
                                                   "DEGRADED"]},
             "components": {"type": "object", "additionalProperties": {"type": "object"}}},
        ),
    }
