"""How the Next Move API answers: Jackson-shaped JSON, Spring's headers, its error bodies.

Every ``/api`` answer carries the headers Spring Security adds to the original's answers.
Errors are answered in the documented body; 204 answers carry no body (HTTP forbids one).
HTTP Basic authentication is checked here when credentials are configured: only ``/manage``
stays open, as in the original.
"""

from __future__ import annotations

import base64
import hmac
import re
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from ipunkt import jackson
from ipunkt.errors import ApiError, error_body

log = structlog.get_logger(__name__)

JSON = "application/json"
SPRING_HEADERS = (
    ("Vary", "Origin"),
    ("Vary", "Access-Control-Request-Method"),
    ("Vary", "Access-Control-Request-Headers"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-XSS-Protection", "1; mode=block"),
    ("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate"),
    ("Pragma", "no-cache"),
    ("Expires", "0"),
    ("X-Frame-Options", "DENY"),
)
OPEN_PATHS = re.compile(r"^/manage(/|$)")


def answer(value: Any, status: int = 200) -> web.Response:
    """A JSON answer as the original writes it."""
    return web.Response(body=jackson.dumps(value), status=status, content_type=JSON)


def empty() -> web.Response:
    """``200 OK`` with no body and no Content-Type, as the original's void handlers."""
    response = web.Response(status=200)
    response.headers["Content-Length"] = "0"
    return response


def error_answer(request: web.Request, status: int, body: dict[str, Any]) -> web.Response:
    if status == 204:
        response = web.Response(status=204)
        response.headers["Content-Type"] = JSON
        return response
    return answer(body, status)


def nextmove_middleware(
    credentials: tuple[str, str] | None, *, tls: bool = False
) -> Any:
    @web.middleware
    async def nextmove(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (credentials is not None and not OPEN_PATHS.match(request.path)
                and not _authorised(request, credentials)):
            refused = answer(error_body(401, request.path, "Unauthorized"), 401)
            refused.headers["WWW-Authenticate"] = 'Basic realm="Realm"'
            return refused
        if not request.path.startswith("/api"):
            return await handler(request)
        response: web.StreamResponse
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_answer(request, exc.status, exc.body(request.path))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = answer(error_body(exc.status, request.path, exc.reason), exc.status)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception:  # answered as the original's other errors are, in its body and headers
            log.exception("unhandled error", path=request.path)
            response = answer(error_body(
                500, request.path, "Internal error; see the integration point's log"), 500)
        if not response.prepared:
            for name, value in SPRING_HEADERS:
                response.headers.add(name, value)
            if tls:
                response.headers["Strict-Transport-Security"] = (
                    "max-age=31536000 ; includeSubDomains"
                )
        return response

    return nextmove


def _authorised(request: web.Request, credentials: tuple[str, str]) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except ValueError:  # not base64, not ASCII, not UTF-8
        return False
    good_user = hmac.compare_digest(user.encode(), credentials[0].encode())
    good_password = hmac.compare_digest(password.encode(), credentials[1].encode())
    return good_user and good_password
