"""The lookup-source interface: what a source of addresses implements and how it fails.

A source answers the Service Registry's two questions, "what are all the ways to reach this
identifier" (optionally for one process) and "who is this identifier", in the registry's own
record shape. It fails in one of three ways, which the gateway treats differently:

- :class:`LookupNotFound`: the source has no such receiver (or none for that process). Final
  for this source; the next source is asked, and if none knows it the message is refused.
- :class:`LookupUnavailable`: the source could not answer (network, timeout, 5xx, an answer
  whose signature does not verify). Retryable: nothing is concluded about the receiver.
- :class:`LookupRejected`: the source refused the question itself (the registry's 400, such
  as "security level not found"). Final, and not worth retrying.

Plugins register sources with the ``register_lookup_sources`` hook (see
``docs/plugin-hooks.md``); this module is re-exported by :mod:`ipunkt.plugin`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog
from pydantic import BaseModel, ConfigDict

from ipunkt.lookup.records import IdentifierResource, InfoRecord

if TYPE_CHECKING:  # ipunkt.plugin re-exports this module, so it is imported for types only
    from ipunkt.plugin import TokenProvider

LOOKUP_SOURCE_NAME = r"^[a-z][a-z0-9-]{1,30}$"
"""A source's name: lower-case letters, digits and dashes (its config table is
``[lookup.<name>]``)."""


class AddressLookupError(Exception):
    """Base of the errors a lookup source raises."""


class LookupNotFound(AddressLookupError):
    """The source knows no such receiver, or none for the asked process."""

    def __init__(
        self,
        identifier: str,
        *,
        process: str | None = None,
        description: str | None = None,
        identifier_known: bool = False,
    ) -> None:
        self.identifier = identifier
        self.process = process
        self.identifier_known = identifier_known
        """True when the receiver exists but not for ``process``: later sources are not asked."""
        self.description = description or (
            f"Process {process} not found for receiver {identifier}"
            if identifier_known and process
            else f"Entity with identifier '{identifier}' not found."
        )
        super().__init__(self.description)


class LookupUnavailable(AddressLookupError):
    """The source could not answer now; try again later (``retry_after`` in seconds)."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class LookupRejected(AddressLookupError):
    """The source refused the question (e.g. no record at the asked security level)."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class LookupQuery:
    """One question to a source, as the integrasjonspunkt's ``SRParameter`` asks it."""

    identifier: str
    """The bare receiver number: 9 digits (organisation) or 11 (person)."""
    process: str | None = None
    """Only records of this process (``/identifier/{id}/process/{process}``)."""
    security_level: int | None = None
    conversation_id: str | None = None
    """For the registry's logs only: never part of a cache key."""
    print: bool | None = None
    """``False`` asks the registry to skip the print (physical post) records of citizens."""

    def cache_key(self) -> tuple[object, ...]:
        return (self.identifier, self.process, self.security_level, self.print)


class LookupSourceConfig(BaseModel):
    """The base of a source's config table ``[lookup.<name>]``; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


@dataclass
class LookupSourceContext:
    """What the core gives a source when it creates it."""

    organisation: str
    """The integration point's own organisation number."""
    config: LookupSourceConfig
    """The source's validated ``[lookup.<name>]`` table, an instance of its config_schema."""
    services: frozenset[str] = frozenset()
    """The service identifiers of the enabled channels (they decide the token's scopes)."""
    tokens: TokenProvider | None = None
    """Maskinporten tokens, or None when Maskinporten is not configured."""
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: structlog.get_logger())


class LookupSource(abc.ABC):
    """A source of receivers' addresses. Only :meth:`lookup` is required."""

    name: str = "source"

    @abc.abstractmethod
    async def lookup(self, query: LookupQuery) -> IdentifierResource:
        """All the receiver's records (of ``query.process`` when set), with its info record.

        Raise :class:`LookupNotFound`, :class:`LookupUnavailable` or :class:`LookupRejected`.
        """

    async def info(self, identifier: str) -> InfoRecord:
        """Who ``identifier`` is; by default the info record of a full lookup."""
        resource = await self.lookup(LookupQuery(identifier))
        if resource.info_record is None:
            raise LookupNotFound(identifier)
        return resource.info_record

    async def start(self) -> None:
        """Open sessions and load files; called once before the first lookup."""

    async def stop(self) -> None:
        """Release what :meth:`start` opened."""

    def describe(self) -> str:
        """One line for the start-up log and ``ipunkt lookup``: what this source reads."""
        return self.name


LookupSourceFactory = Callable[[LookupSourceContext], LookupSource]


@dataclass(frozen=True)
class LookupSourceInfo:
    """What a plugin registers: a lookup source's name, config schema and factory."""

    name: str
    """The source's name in ``lookup.sources`` and its config table ``[lookup.<name>]``."""
    description: str
    factory: LookupSourceFactory
    config_schema: type[LookupSourceConfig] = LookupSourceConfig
