"""The configured lookup sources, asked in order as one source.

A source that does not know the receiver passes the question on; the first that knows it
answers, also when it knows the receiver but not the asked process (a receiver listed in the
local registry is not looked up in the Service Registry as well). When no source knows the
receiver but one of them could not answer, the result is :class:`LookupUnavailable`, never
"not found": nothing may be concluded about a receiver from a registry that was down.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from ipunkt.lookup.records import IdentifierResource, InfoRecord
from ipunkt.lookup.source import LookupNotFound, LookupQuery, LookupSource, LookupUnavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")


class AddressBook:
    """Asks each source in turn; see the module docstring for how their answers combine."""

    def __init__(self, sources: Sequence[LookupSource]) -> None:
        if not sources:
            raise ValueError("an address book needs at least one lookup source")
        self.sources = list(sources)

    async def start(self) -> None:
        for source in self.sources:
            await source.start()

    async def stop(self) -> None:
        for source in reversed(self.sources):
            try:
                await source.stop()
            except Exception:  # a source's failing stop must not keep the others open
                log.exception("lookup source failed to stop", source=source.name)

    async def lookup(self, query: LookupQuery) -> IdentifierResource:
        """The receiver's records from the first source that knows it."""
        return await self._ask(query.identifier, lambda source: source.lookup(query))

    async def info(self, identifier: str) -> InfoRecord:
        return await self._ask(identifier, lambda source: source.info(identifier))

    async def lookup_with_source(self, query: LookupQuery) -> tuple[IdentifierResource, str]:
        """The answer and the name of the source that gave it (for ``ipunkt lookup``)."""
        answered: list[str] = []

        async def ask(source: LookupSource) -> IdentifierResource:
            resource = await source.lookup(query)
            answered.append(source.name)
            return resource

        resource = await self._ask(query.identifier, ask)
        return resource, answered[-1]

    async def _ask(self, identifier: str, ask: Callable[[LookupSource], Awaitable[T]]) -> T:
        not_found: LookupNotFound | None = None
        unavailable: LookupUnavailable | None = None
        for source in self.sources:
            try:
                return await ask(source)
            except LookupNotFound as exc:
                if exc.identifier_known:
                    raise
                not_found = not_found or exc
            except LookupUnavailable as exc:
                log.warning("lookup source unavailable", source=source.name, reason=exc.reason)
                unavailable = unavailable or exc
        if unavailable is not None:
            raise unavailable
        raise not_found or LookupNotFound(identifier)

    def describe(self) -> list[str]:
        return [source.describe() for source in self.sources]
