"""Every answer a test gateway gives is checked against /api/openapi.json (openapi-core).

The check is an outermost middleware of the test app: it sees each request and the final
answer (error bodies included) and records every way the answer breaks the document; the
gateway fixture fails the test at teardown if any did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse


@dataclass
class OpenApiCheck:
    spec: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def __post_init__(self) -> None:
        self.openapi = OpenAPI.from_dict(self.spec)

    def check(self, method: str, path: str, query: dict[str, str], status: int,
              content_type: str, headers: dict[str, str], body: bytes) -> list[str]:
        """What is wrong with this answer, by the document (nothing: an empty list)."""
        request = MockRequest("http://localhost", method.lower(), path, args=query)
        response = MockResponse(body, status_code=status, headers=headers,
                                content_type=content_type)
        self.checked += 1
        try:
            self.openapi.validate_response(request, response)
        except Exception as exc:  # openapi-core raises one of many error classes
            causes = [str(c) for c in getattr(exc, "schema_errors", None) or []]
            detail = "; ".join(causes) or repr(exc)
            found = [f"{method} {path} -> {status}: {type(exc).__name__}: {detail}"]
            self.problems.extend(found)
            return found
        return []

    def check_streamed(self, method: str, template: str, status: int,
                       content_type: str) -> list[str]:
        """A streamed answer's body has gone by: its status and type must be documented."""
        self.checked += 1
        operation = self.spec["paths"].get(template, {}).get(method.lower())
        declared = (operation or {}).get("responses", {}).get(str(status))
        if declared is not None and "$ref" in declared:
            declared = self.spec["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
        if declared is None or content_type not in declared.get("content", {}):
            found = [f"{method} {template} -> {status} {content_type}: not documented"]
            self.problems.extend(found)
            return found
        return []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if isinstance(response, web.Response):
            body = response.body if isinstance(response.body, bytes) else b""
            self.check(request.method, request.path.rstrip("/") or "/", dict(request.query),
                       response.status, content_type, dict(response.headers), body)
        else:
            template = request.match_info.route.resource.canonical  # type: ignore[union-attr]
            self.check_streamed(request.method, template.rstrip("/"), response.status,
                                content_type)
        return response
