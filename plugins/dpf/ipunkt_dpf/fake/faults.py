"""Faults on demand for the fake SvarUt/SvarInn: errors, slow answers, cut bodies, lost answers.

A test scripts what the next calls of an operation (a route name such as ``send`` or
``download``, or ``*`` for any) should suffer; each fault is used up after ``times`` calls.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorFactory = Callable[[web.Request, int, str], web.Response]


class Kind(enum.StrEnum):
    FAIL = "fail"
    """Answer with an HTTP error (and SvarUt's ErrorMessage) instead of handling the call."""
    SLOW = "slow"
    """Wait before handling the call."""
    TRUNCATE = "truncate"
    """Handle the call, then send half of the answer's body and close the connection."""
    DROP = "drop"
    """Handle the call (its effect happens), then close the connection without answering."""


@dataclass
class Fault:
    operation: str
    kind: Kind
    times: int = 1
    status: int = 503
    message: str = "Tjenesten er midlertidig utilgjengelig"
    retry_after: float | None = None
    seconds: float = 0.0


class Faults:
    """The scripted faults, taken in the order they were added."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def fail(
        self,
        operation: str,
        status: int = 503,
        *,
        times: int = 1,
        message: str = "Tjenesten er midlertidig utilgjengelig",
        retry_after: float | None = None,
    ) -> None:
        self._pending.append(
            Fault(operation, Kind.FAIL, times, status, message, retry_after)
        )

    def slow(self, operation: str, seconds: float, *, times: int = 1) -> None:
        self._pending.append(Fault(operation, Kind.SLOW, times, seconds=seconds))

    def truncate(self, operation: str, *, times: int = 1) -> None:
        self._pending.append(Fault(operation, Kind.TRUNCATE, times))

    def drop(self, operation: str, *, times: int = 1) -> None:
        self._pending.append(Fault(operation, Kind.DROP, times))

    def clear(self) -> None:
        self._pending.clear()

    def take(self, operation: str, kinds: tuple[Kind, ...] | None = None) -> Fault | None:
        """The next fault for ``operation`` (of one of ``kinds``), used up by one call."""
        for fault in self._pending:
            if fault.operation in (operation, "*") and (kinds is None or fault.kind in kinds):
                fault.times -= 1
                if fault.times <= 0:
                    self._pending.remove(fault)
                return fault
        return None


def cut_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()


async def truncated(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send the headers and half of ``response``'s body, then close the connection."""
    body = response.body if isinstance(response.body, bytes) else b""
    stream = web.StreamResponse(status=response.status, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[: len(body) // 2])
    cut_connection(request)
    return stream


def middleware(faults: Faults, error: ErrorFactory) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def apply_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route
        operation = route.name if route is not None and route.name else ""
        if not operation or operation.startswith("fake-"):
            return await handler(request)
        fault = faults.take(operation, (Kind.FAIL, Kind.SLOW, Kind.DROP))
        if fault is not None and fault.kind is Kind.SLOW:
            await asyncio.sleep(fault.seconds)
        elif fault is not None and fault.kind is Kind.FAIL:
            answer = error(request, fault.status, fault.message)
            if fault.retry_after is not None:
                answer.headers["Retry-After"] = str(int(fault.retry_after))
            return answer
        response = await handler(request)
        if fault is not None and fault.kind is Kind.DROP:
            cut_connection(request)
            return response
        if isinstance(response, web.Response) and faults.take(operation, (Kind.TRUNCATE,)):
            return await truncated(request, response)
        return response

    return apply_faults
