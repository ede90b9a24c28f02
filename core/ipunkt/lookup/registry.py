"""The local registry: receivers listed in a TOML file, answered as the Service Registry would.

It is the embedded default for closed networks, tests and the sandbox, and the data behind the
fake Service Registry. One ``[[receiver]]`` table per identifier, one ``[[receiver.record]]``
per way to reach it; a record listing several processes becomes one registry record per
process, as the registry answers::

    [[receiver]]
    identifier = "910075918"
    name = "Eksempel kommune"

    [[receiver.record]]
    service = "DPO"
    processes = ["urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"]
    document_types = ["urn:no:difi:arkivmelding:xsd::arkivmelding"]
    certificate = "certs/910075918.pem"     # relative to this file

The file is re-read when it changes; an edit that does not validate is logged and the last
good version stays in use.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import structlog
from cryptography import x509
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ipunkt.identifiers import InvalidIdentifier, primary_identifier
from ipunkt.lookup.records import (
    ENTITY_CITIZEN,
    ENTITY_ORGANISATION,
    EntityType,
    IdentifierResource,
    InfoRecord,
    PostAddress,
    Postadresse,
    Service,
    ServiceRecord,
)
from ipunkt.lookup.source import (
    LookupNotFound,
    LookupQuery,
    LookupRejected,
    LookupSource,
    LookupSourceConfig,
    LookupSourceContext,
)

log = structlog.get_logger(__name__)

BETA_SERVICES = frozenset({"DPH"})
"""Services the registry only returns with ``X-Enable-Beta-Features: true``."""


class RegistryError(Exception):
    """The registry file cannot be used; the message names the file, the key and the fault."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Table):
    """A DPI postal address (``post_address``, ``return_address``)."""

    name: str = ""
    street: str = ""
    """Address lines separated by ``;``."""
    postal_code: str = ""
    postal_area: str = ""
    country: str = ""

    def record(self) -> PostAddress:
        return PostAddress(
            name=self.name,
            street=self.street,
            postal_code=self.postal_code,
            postal_area=self.postal_area,
            country=self.country,
        )


class OrganisationAddress(_Table):
    """An organisation's address as the business register gives it (the info record)."""

    address: str = ""
    postal_code: str = ""
    postal_area: str = ""
    country: str = ""


class RegistryRecord(_Table):
    """One way to reach a receiver: a channel, its processes and document types."""

    service: str
    """The service identifier: DPO, DPV, DPI, DPF, DPE, DPH, or a plugin's own."""
    processes: list[str] = Field(min_length=1)
    document_types: list[str] = Field(min_length=1)
    endpoint: str = ""
    certificate: Path | None = None
    """A PEM file with the receiver's certificate (relative to the registry file)."""
    certificate_pem: str | None = None
    """The certificate itself, instead of a file."""
    security_level: Annotated[int, Field(ge=1, le=4)] | None = None
    service_code: str | None = None
    service_edition_code: str | None = None
    resource: str | None = None
    organisation_number: str | None = None
    """The record's organisation number when it is not the receiver's own."""
    mailbox_supplier: str | None = None
    """DPI: the mailbox provider's organisation number (``orgnrPostkasse``)."""
    mailbox_address: str | None = None
    """DPI: the citizen's mailbox address at the provider (``postkasseAdresse``)."""
    mobile: str = ""
    email: str = ""
    notifiable: bool = False
    """DPI: the citizen can be notified (``kanVarsles``)."""
    physical_post: bool = False
    """DPI: a print record (``fysiskPost``)."""
    language: str | None = None
    post_address: Address | None = None
    return_address: Address | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """Further record fields, passed on verbatim (e.g. DPH's ``herIdLevel1``)."""

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not value.isascii() or not value.isalnum() or not 2 <= len(value) <= 10:
            raise ValueError("must be a service identifier such as DPO (2-10 letters/digits)")
        return value.upper()

    @model_validator(mode="after")
    def _one_certificate(self) -> RegistryRecord:
        if self.certificate is not None and self.certificate_pem is not None:
            raise ValueError("give either certificate (a file) or certificate_pem, not both")
        return self


class RegistryReceiver(_Table):
    identifier: str
    """The organisation number (9 digits) or fødselsnummer (11 digits)."""
    name: str | None = None
    entity_type: str | None = None
    """Default: ``ORGL`` for organisations, ``citizen`` for 11-digit numbers."""
    postal_address: OrganisationAddress | None = None
    record: list[RegistryRecord] = Field(default_factory=list)

    @field_validator("identifier")
    @classmethod
    def _identifier(cls, value: str) -> str:
        try:
            return primary_identifier(value)
        except InvalidIdentifier as error:
            raise ValueError(error.reason) from None


class RegistryFile(_Table):
    receiver: list[RegistryReceiver] = Field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One receiver, ready to answer: its info record and all its registry records."""

    info: InfoRecord
    records: tuple[ServiceRecord, ...]


def load_registry(path: Path) -> dict[str, Entry]:
    """Read and check a registry file; raise :class:`RegistryError` naming every fault."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: no such registry file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from None
    try:
        parsed = RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(_describe(exc, path)) from None
    entries: dict[str, Entry] = {}
    for index, receiver in enumerate(parsed.receiver):
        if receiver.identifier in entries:
            raise RegistryError(
                f"{path}: receiver.{index}: identifier {receiver.identifier} is listed twice"
            )
        records = tuple(
            record
            for number, table in enumerate(receiver.record)
            for record in _records(receiver, table, path, f"receiver.{index}.record.{number}")
        )
        entries[receiver.identifier] = Entry(_info(receiver), records)
    return entries


def _describe(exc: ValidationError, path: Path) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{path}: {key}: {problem}")
    return "\n".join(lines)


def _info(receiver: RegistryReceiver) -> InfoRecord:
    citizen = len(receiver.identifier) == 11
    entity = receiver.entity_type or (ENTITY_CITIZEN if citizen else ENTITY_ORGANISATION)
    address = receiver.postal_address
    return InfoRecord(
        identifier=receiver.identifier,
        organization_name=receiver.name,
        postadresse=Postadresse(
            adresse=address.address,
            postnummer=address.postal_code,
            poststed=address.postal_area,
            land=address.country,
        )
        if address
        else None,
        entity_type=EntityType(name=entity),
    )


def _certificate(table: RegistryRecord, path: Path, key: str) -> str | None:
    if table.certificate is not None:
        file = path.parent / table.certificate  # an absolute path stays as it is
        try:
            pem = file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{path}: {key}.certificate: cannot read {file}: {exc}") from None
    elif table.certificate_pem is not None:
        pem = table.certificate_pem
    else:
        return None
    try:
        x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise RegistryError(f"{path}: {key}: not a PEM X.509 certificate: {exc}") from None
    return pem


def _records(
    receiver: RegistryReceiver, table: RegistryRecord, path: Path, key: str
) -> list[ServiceRecord]:
    pem = _certificate(table, path, key)
    dpi = table.service == "DPI"
    records = []
    for process in table.processes:
        fields: dict[str, Any] = {
            "organisation_number": table.organisation_number or receiver.identifier,
            "pem_certificate": pem,
            "process": process,
            "document_types": list(table.document_types),
            "service": Service(
                identifier=table.service,
                endpoint_url=table.endpoint,
                service_code=table.service_code,
                service_edition_code=table.service_edition_code,
                security_level=table.security_level,
                resource=table.resource,
            ),
        }
        if dpi:
            fields.update(
                orgnr_postkasse=table.mailbox_supplier,
                postkasse_adresse=table.mailbox_address,
                mobilnummer=table.mobile,
                kan_varsles=table.notifiable,
                epost_adresse=table.email,
                fysisk_post=table.physical_post,
                spraak=table.language,
            )
            if table.post_address is not None:
                fields["post_address"] = table.post_address.record()
            if table.return_address is not None:
                fields["return_address"] = table.return_address.record()
        records.append(ServiceRecord.model_validate({**table.extra, **fields}))
    return records


class LocalRegistryConfig(LookupSourceConfig):
    path: Path = Path("registry.toml")
    """The registry file (a relative path is taken from the working directory)."""


class LocalRegistry(LookupSource):
    """Answers lookups from a registry file with the Service Registry's selection rules."""

    name = "local"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Entry] = {}
        self._stamp: tuple[int, int] | None = None

    @classmethod
    def from_context(cls, context: LookupSourceContext) -> LocalRegistry:
        config = context.config
        if not isinstance(config, LocalRegistryConfig):
            raise TypeError(f"expected LocalRegistryConfig, got {type(config).__name__}")
        return cls(config.path)

    async def start(self) -> None:
        self.load()

    def load(self) -> None:
        """Read the file now; :class:`RegistryError` if it does not validate."""
        try:
            stamp: tuple[int, int] | None = _stamp(self.path)
        except OSError:
            stamp = None
        self._entries = load_registry(self.path)
        self._stamp = stamp

    def _refresh(self) -> None:
        try:
            stamp = _stamp(self.path)
        except OSError:
            return
        if stamp == self._stamp:
            return
        try:
            self._entries = load_registry(self.path)
        except RegistryError as exc:
            log.error("registry file changed but is invalid; keeping the last good one",
                      path=str(self.path), error=str(exc))
        else:
            log.info("registry file reloaded", path=str(self.path), receivers=len(self._entries))
        self._stamp = stamp

    async def lookup(self, query: LookupQuery) -> IdentifierResource:
        return self.answer(query, beta_features=True)

    async def info(self, identifier: str) -> InfoRecord:
        self._refresh()
        entry = self._entries.get(identifier)
        if entry is None:
            raise LookupNotFound(identifier)
        return entry.info

    def answer(self, query: LookupQuery, *, beta_features: bool) -> IdentifierResource:
        """The registry's answer to ``query``, with its rules for process, level and print.

        - an unknown identifier, or no record for the process: :class:`LookupNotFound`;
        - ``security_level``: records below the level are left out, and if that leaves none,
          :class:`LookupRejected` "security level not found" (the registry's 400);
        - ``print=False`` leaves out print records; beta services need ``beta_features``.
        """
        self._refresh()
        entry = self._entries.get(query.identifier)
        if entry is None:
            raise LookupNotFound(query.identifier, process=query.process)
        records = [
            r for r in entry.records if beta_features or r.service_identifier not in BETA_SERVICES
        ]
        if query.process is not None:
            records = [r for r in records if r.process == query.process]
            if not records:
                raise LookupNotFound(query.identifier, process=query.process, identifier_known=True)
        if query.security_level is not None and records:
            levelled = [
                r
                for r in records
                if r.service.security_level is None
                or r.service.security_level >= query.security_level
            ]
            if not levelled:
                raise LookupRejected("security level not found", status=400)
            records = levelled
        if query.print is False:
            records = [r for r in records if not r.fysisk_post]
        return IdentifierResource(info_record=entry.info, service_records=records)

    def describe(self) -> str:
        return f"local registry {self.path} ({len(self._entries)} receivers)"


def _stamp(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return (status.st_mtime_ns, status.st_size)
