"""Request context and logging, and errors in the integrasjonspunkt's error body."""

from __future__ import annotations

import json
import random
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ipunkt.errors import ApiError, error_body

log = structlog.get_logger("ipunkt.http")

REQUEST_ID_HEADER = "X-Request-Id"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (the client's ``X-Request-Id`` or a new one) and log each request.

    The line carries what the handler bound (message_id, conversation_id, channel). A new id
    needs to be unique, not unguessable, so it comes from ``random`` (no system call).
    """
    request_id = request.headers.get(REQUEST_ID_HEADER) or f"{random.getrandbits(128):032x}"
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    finally:
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            user_agent=request.headers.get("User-Agent"),
        )
        structlog.contextvars.clear_contextvars()


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure in the documented error body; never let a traceback out."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(request.path), status=exc.status, dumps=dumps)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = error_body(exc.status, request.path, exc.reason)
        response = web.json_response(body, status=exc.status, dumps=dumps)
        for header in ("Allow", "WWW-Authenticate"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        log.exception("unhandled error", path=request.path)
        body = error_body(500, request.path, "Internal error; see the integration point's log")
        return web.json_response(body, status=500, dumps=dumps)


def dumps(value: object) -> str:
    """JSON as the original writes it: pretty-printed, UTF-8 kept readable."""
    return json.dumps(value, indent=2, ensure_ascii=False)
