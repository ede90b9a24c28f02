"""Faults on demand for the sandbox's fakes: what a real remote service does on a bad day.

Each fake the sandbox serves may get a :class:`FaultInjector`, an aiohttp middleware that, per
request and at the configured rates, answers instead of the fake or spoils the fake's answer:

``5xx``
    500, 502 or 503 before the fake sees the request: it had no effect.
``429``
    429 with ``Retry-After``, before the fake sees the request.
``slow``
    the fake answers after a delay.
``timeout``
    no answer at all, until the client gives up (its timeout) or the sandbox stops; the rest
    of the request's body is not read either (a large upload stands still), and the fake never
    sees the request.
``truncate``
    the fake handles the request (it takes effect), and its answer promises its full length
    but stops half-way and the connection drops.
``lost``
    the fake handles the request (it takes effect), then the answer is lost: the connection
    drops before it, or a 5xx comes instead. This is what tests that a client's retry does not
    repeat the effect (its idempotency).

Rates are fractions of requests (``0.05`` is one request in twenty); each request suffers at
most one fault, so the rates of one fake add up to at most 1. Paths under ``/_fake/`` (the
fakes' inspection and control endpoints) are never faulted. A seed makes the draws
reproducible, each fake drawing from its own generator.
"""

from __future__ import annotations

import asyncio
import enum
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ANY_FAKE = "*"
"""The fake name that stands for every fake without rates of its own for a kind."""
CONTROL_PREFIX = "/_fake/"
"""Paths of the fakes' own control and inspection endpoints, which are never faulted."""
HEADER = "X-Ipunkt-Fault"
"""Names the fault on the answers the injector makes itself, to tell them from the fake's."""
SERVER_ERRORS = (500, 502, 503)
CHECK_SECONDS = 0.2
"""How often a hanging request looks whether its client has given up."""

_CUT = web.RequestKey("ipunkt_fault_cut", float)
"""Set on a request whose streamed answer is to be cut: the share of the body that is sent."""


class FaultKind(enum.StrEnum):
    SERVER_ERROR = "5xx"
    TOO_MANY_REQUESTS = "429"
    SLOW = "slow"
    TIMEOUT = "timeout"
    TRUNCATE = "truncate"
    LOST = "lost"


class FaultSpecError(ValueError):
    """A ``--faults`` value that cannot be read; the message says what is wrong."""


@dataclass(frozen=True)
class FaultPlan:
    """Which fakes suffer which faults, how often, and how the faults behave."""

    rates: Mapping[str, Mapping[FaultKind, float]] = field(default_factory=dict)
    """Per fake name (as the sandbox names it, or ``*``), the rate of each kind of fault."""
    seed: int | None = None
    """Seeds the draws; None draws differently on each run."""
    slow_seconds: float = 1.0
    """How long a ``slow`` answer is delayed."""
    retry_after_seconds: int = 1
    """The ``Retry-After`` of a ``429``."""

    def __post_init__(self) -> None:
        for name, kinds in self.rates.items():
            for kind, rate in kinds.items():
                if not 0.0 <= rate <= 1.0:
                    raise FaultSpecError(f"{name}: {kind}={rate}: a rate is between 0 and 1")
            total = sum(self.rates_for(name).values())
            if total > 1.0 + 1e-9:
                raise FaultSpecError(
                    f"{name}: the rates add up to {total:g}; a request suffers at most one "
                    "fault, so they may add up to at most 1"
                )
        if self.slow_seconds < 0:
            raise FaultSpecError("the delay of slow answers cannot be negative")
        if self.retry_after_seconds < 0:
            raise FaultSpecError("Retry-After cannot be negative")

    @classmethod
    def parse(cls, specs: Iterable[str], **options: Any) -> FaultPlan:
        """A plan from ``NAME:KIND=RATE,KIND=RATE`` strings (``NAME`` may be ``*``); a later
        string for the same name adds to (and overrides kinds of) an earlier one."""
        rates: dict[str, dict[FaultKind, float]] = {}
        for spec in specs:
            name, kinds = parse_spec(spec)
            rates.setdefault(name, {}).update(kinds)
        return cls(rates=rates, **options)

    def rates_for(self, name: str) -> dict[FaultKind, float]:
        """The fake's rates: its own, and the ``*`` rates for the kinds it does not name."""
        merged = dict(self.rates.get(ANY_FAKE, {}))
        if name != ANY_FAKE:
            merged.update(self.rates.get(name, {}))
        return {kind: rate for kind, rate in merged.items() if rate > 0}

    def injector(self, name: str) -> FaultInjector | None:
        """The middleware for the fake ``name``, or None when it suffers no faults."""
        rates = self.rates_for(name)
        if not rates:
            return None
        seed = None if self.seed is None else f"{self.seed}:{name}"
        return FaultInjector(name, rates, self, random.Random(seed))

    def to_state(self) -> dict[str, Any]:
        """The plan as the sandbox's state file shows it."""
        return {
            "rates": {name: {kind.value: rate for kind, rate in kinds.items()}
                      for name, kinds in self.rates.items()},
            "seed": self.seed,
            "slow_seconds": self.slow_seconds,
            "retry_after_seconds": self.retry_after_seconds,
        }


def parse_spec(spec: str) -> tuple[str, dict[FaultKind, float]]:
    """``'altinn-broker:5xx=0.05,429=0.05'`` -> ``('altinn-broker', {5xx: 0.05, 429: 0.05})``."""
    name, colon, rest = spec.partition(":")
    name = name.strip()
    if not colon or not name or not rest.strip():
        raise FaultSpecError(
            f"{spec!r}: expected NAME:KIND=RATE[,KIND=RATE...], e.g. 'altinn-broker:5xx=0.05'"
        )
    kinds: dict[FaultKind, float] = {}
    for item in rest.split(","):
        key, equals, value = item.partition("=")
        try:
            kind = FaultKind(key.strip())
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise FaultSpecError(
                f"{spec!r}: unknown fault {key.strip()!r} (known: {known})"
            ) from None
        try:
            rate = float(value)
        except ValueError:
            raise FaultSpecError(f"{spec!r}: {key.strip()}= needs a rate such as 0.05") from None
        if not equals or not 0.0 <= rate <= 1.0:
            raise FaultSpecError(f"{spec!r}: the rate of {kind} is a fraction from 0 to 1")
        kinds[kind] = rate
    return name, kinds


class FaultInjector:
    """The faults of one fake: :meth:`install` it on the fake's app before the app starts."""

    def __init__(
        self, name: str, rates: Mapping[FaultKind, float], plan: FaultPlan, draw: random.Random
    ) -> None:
        self.name = name
        self.rates = dict(rates)
        self.plan = plan
        self._draw = draw
        self.injected: Counter[FaultKind] = Counter()
        """How many faults of each kind were injected so far."""
        self.requests = 0
        """How many requests could have been faulted (those not under ``/_fake/``)."""
        self._stopping = asyncio.Event()

    def install(self, app: web.Application) -> None:
        """Put the injector in front of the fake's own middlewares and handlers."""
        app.middlewares.insert(0, self.middleware)
        app.on_response_prepare.append(_cut_when_planned)
        app.on_shutdown.append(self._stop)

    async def _stop(self, app: web.Application) -> None:
        self._stopping.set()  # hanging requests end, so that the server can stop

    def _pick(self) -> FaultKind | None:
        roll = self._draw.random()
        for kind in FaultKind:
            rate = self.rates.get(kind, 0.0)
            if roll < rate:
                return kind
            roll -= rate
        return None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        self.requests += 1
        kind = self._pick()
        if kind is None:
            return await handler(request)
        self.injected[kind] += 1
        if kind is FaultKind.SERVER_ERROR:
            await _drain(request)
            return _error(self._draw.choice(SERVER_ERRORS), kind)
        if kind is FaultKind.TOO_MANY_REQUESTS:
            await _drain(request)
            return _error(429, kind, {"Retry-After": str(self.plan.retry_after_seconds)})
        if kind is FaultKind.SLOW:
            await asyncio.sleep(self.plan.slow_seconds)
            return await handler(request)
        if kind is FaultKind.TIMEOUT:
            await self._hang(request)
            _drop(request)
            return web.Response(status=504)  # never sent: the connection is gone
        if kind is FaultKind.TRUNCATE:
            request[_CUT] = 0.5
            return await handler(request)
        # LOST: the work is done; the answer never arrives, or an error comes instead.
        request[_CUT] = 0.0
        response = await handler(request)
        if not response.prepared and self._draw.random() < 0.5:
            del request[_CUT]
            return _error(self._draw.choice(SERVER_ERRORS), kind)
        return response

    async def _hang(self, request: web.Request) -> None:
        """Wait without answering until the client hangs up or the sandbox stops."""
        while not self._stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            try:
                await asyncio.wait_for(self._stopping.wait(), CHECK_SECONDS)
            except TimeoutError:
                continue


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


async def _drain(request: web.Request) -> None:
    """Read the request's body to its end (streamed), as a server that answers at once would
    not need to, so that the client has finished sending when the answer comes."""
    while await request.content.readany():
        pass


def _error(status: int, kind: FaultKind, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": f"fault injected by the ipunkt sandbox ({kind.value})",
    }
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/problem+json",
        headers={HEADER: kind.value, **(headers or {})},
    )


async def _cut_when_planned(request: web.Request, response: web.StreamResponse) -> None:
    """For a request planned to be cut: let only part of the answer's body out, then drop the
    connection. The answer still declares its whole length, as a broken proxy's would."""
    share = request.get(_CUT)
    if share is None:
        return
    body = response.body if isinstance(response, web.Response) else None
    whole = len(body) if isinstance(body, bytes | bytearray) else response.content_length
    allowed = int(whole * share) if whole is not None else None
    sent = 0
    cut = False
    write = response.write

    def stop() -> None:
        nonlocal cut
        cut = True
        _drop(request)

    async def cut_write(data: bytes | bytearray | memoryview) -> None:
        nonlocal sent
        if cut:
            return
        if allowed is not None and sent + len(data) >= allowed:
            part = bytes(data[: allowed - sent])
            if part:
                await write(part)
            sent = allowed
            stop()
            return
        await write(data)
        sent += len(data)

    async def cut_write_eof(data: bytes = b"") -> None:
        if isinstance(body, bytes | bytearray):
            data = bytes(body)
        if data:
            await cut_write(data)
        if not cut:
            stop()

    response.write = cut_write  # type: ignore[method-assign]
    response.write_eof = cut_write_eof  # type: ignore[method-assign]
