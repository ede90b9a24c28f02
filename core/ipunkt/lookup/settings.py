"""The ``[lookup]`` and ``[routing]`` sections of the config file.

::

    [lookup]
    sources = ["local", "service-registry"]   # asked in this order

    [lookup.local]
    path = "registry.toml"

    [lookup.service-registry]
    url = "https://eformidling.no/adressetjeneste"

    [routing]
    default_process = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"

    [[routing.override]]                     # send this receiver's messages by DPV
    receiver = "910075918"
    service = "DPV"

Each source's own table, ``[lookup.<name>]``, is checked by that source's schema when the
gateway loads (:mod:`ipunkt.lookup.assembly`). These models do not import :mod:`ipunkt.config`
(which imports them), so they repeat its section settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ipunkt.identifiers import InvalidIdentifier, primary_identifier

DEFAULT_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


class LookupSettings(BaseModel):
    """``[lookup]``: where receivers' addresses come from."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    sources: list[str] = Field(default_factory=lambda: ["service-registry"])
    """Lookup sources, asked in order until one knows the receiver; each one's settings go in
    [lookup.<name>]. Built in: "local" (a registry file: [lookup.local] path) and
    "service-registry" ([lookup.service-registry] url, by default the test environment's
    https://test.eformidling.no/adressetjeneste; production is https://eformidling.no/adressetjeneste)."""
    allow_synthetic_identifiers: bool = False
    """Accept synthetic test fødselsnumre (Tenor, NAV); only for test environments."""

    @field_validator("sources")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("name at least one lookup source")
        if len(set(values)) != len(values):
            raise ValueError("a source is listed twice")
        return values

    def source_tables(self) -> dict[str, object]:
        """The ``[lookup.<name>]`` tables, by source name."""
        return dict(self.model_extra or {})


class RoutingOverride(BaseModel):
    """Route matching messages to ``service``, whatever the registry's record says.

    Give at least one of ``receiver``, ``process`` and ``document_type``; all that are given
    must match. The most specific override wins: a receiver outranks a process, which
    outranks a document type.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    service: str
    """The service to use: DPO, DPV, DPF, DPI or a plugin's own."""
    receiver: str | None = None
    """An organisation number or fødselsnummer (``0192:`` may be given)."""
    process: str | None = None
    document_type: str | None = None
    """A document type (``documentIdentification.standard``)."""

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not value.isascii() or not value.isalnum() or not 2 <= len(value) <= 10:
            raise ValueError("must be a service identifier such as DPV (2-10 letters/digits)")
        return value.upper()

    @field_validator("receiver")
    @classmethod
    def _receiver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return primary_identifier(value)
        except InvalidIdentifier as error:
            raise ValueError(error.reason) from None

    @model_validator(mode="after")
    def _matches_something(self) -> RoutingOverride:
        if self.receiver is None and self.process is None and self.document_type is None:
            raise ValueError("give at least one of receiver, process and document_type")
        return self

    @property
    def rank(self) -> tuple[bool, bool, bool]:
        return (self.receiver is not None, self.process is not None, self.document_type is not None)

    def matches(self, receiver: str | None, process: str | None, document_type: str | None) -> bool:
        return (
            (self.receiver is None or self.receiver == receiver)
            and (self.process is None or self.process == process)
            and (self.document_type is None or self.document_type == document_type)
        )

    def describe(self) -> str:
        parts = [
            f"{name}={value}"
            for name, value in (
                ("receiver", self.receiver),
                ("process", self.process),
                ("document_type", self.document_type),
            )
            if value is not None
        ]
        return " ".join(parts)


class RoutingSettings(BaseModel):
    """``[routing]``: how a receiver's records become a channel."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    default_process: str = DEFAULT_PROCESS
    """The process whose record is used when a lookup names no document type."""
    override: list[RoutingOverride] | None = None
    """Operator overrides, as [[routing.override]] tables with service and one or more of
    receiver, process, document_type."""

    @field_validator("override")
    @classmethod
    def _distinct(cls, values: list[RoutingOverride] | None) -> list[RoutingOverride] | None:
        seen: set[tuple[str | None, str | None, str | None]] = set()
        for value in values or []:
            key = (value.receiver, value.process, value.document_type)
            if key in seen:
                raise ValueError(f"two overrides match the same messages ({value.describe()})")
            seen.add(key)
        return values

    @property
    def overrides(self) -> list[RoutingOverride]:
        return list(self.override or [])
