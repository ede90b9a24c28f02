"""The Service Registry's answer, record by record, in its own JSON shape.

Every lookup source answers with these models, so that routing, the capabilities endpoint and
the channels see one shape whatever the source. Parsing follows the integrasjonspunkt's
Jackson models: unknown properties are kept (and ignored), and a missing field takes the
default that the Java class gives it. That difference matters on the wire: a DPI record
*without* ``postAddress`` shows an address of empty strings in ``/api/capabilities``, while an
explicit ``null`` leaves the address out. :meth:`ServiceRecord.to_wire` writes a record as the
registry does, for the fake registry and ``ipunkt lookup --json``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

ENTITY_ORGANISATION = "ORGL"
ENTITY_CITIZEN = "citizen"
PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"


class _Wire(BaseModel):
    """Camel-case JSON names, Python names in code; unknown properties ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class PostAddress(_Wire):
    """A DPI receiver's or sender's postal address (``postAddress``, ``returnAddress``)."""

    name: str | None = ""
    street: str | None = ""
    """Address lines, separated by ``;`` when there are several."""
    postal_code: str | None = ""
    postal_area: str | None = ""
    country: str | None = ""

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class Postadresse(_Wire):
    """An organisation's address from the business register (the info record's ``postadresse``)."""

    adresse: str | list[str] | None = None
    postnummer: str | None = None
    poststed: str | None = None
    land: str | None = None


class EntityType(_Wire):
    name: str | None = None
    """``ORGL`` (and other organisation forms) for organisations, ``citizen`` for people."""
    acronym: str | None = None


class InfoRecord(_Wire):
    """Who the identifier belongs to."""

    identifier: str
    organization_name: str | None = None
    postadresse: Postadresse | None = None
    entity_type: EntityType | None = None
    organization_number: str | None = None
    her_id: int | None = None
    parent_her_id: int | None = None
    parent_organization_name: str | None = None

    @property
    def is_citizen(self) -> bool:
        return self.entity_type is not None and self.entity_type.name == ENTITY_CITIZEN

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"identifier": self.identifier}
        if not self.is_citizen:
            body["organizationName"] = self.organization_name
            body["postadresse"] = (
                self.postadresse.model_dump(by_alias=True, exclude_none=True)
                if self.postadresse
                else None
            )
        for name in ("organization_number", "her_id", "parent_her_id", "parent_organization_name"):
            value = getattr(self, name)
            if value is not None:
                body[to_camel(name)] = value
        if self.entity_type is not None:
            body["entityType"] = self.entity_type.model_dump(by_alias=True, exclude_none=True)
        return body


class Service(_Wire):
    """Which channel serves the record, and that channel's parameters."""

    identifier: str
    """The service identifier: DPO, DPV, DPI, DPF, DPE, DPH (or a plugin's own)."""
    endpoint_url: str | None = ""
    """DPO/DPI: the endpoint; DPE: the queue suffix (innsyn, data, meeting)."""
    service_code: str | None = None
    service_edition_code: str | None = None
    security_level: int | None = None
    resource: str | None = None
    """DPV: the Altinn resource (``eformidling-dpv-administrasjon``, ``...-taushetsbelagt``)."""

    @field_validator("identifier")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def to_wire(self) -> dict[str, Any]:
        """As the registry writes it; ``resource`` (newer than its API docs) only when set."""
        body = self.model_dump(by_alias=True, exclude={"resource"})
        if self.resource is not None:
            body["resource"] = self.resource
        return body


class ServiceRecord(_Wire):
    """One way to reach the receiver: a process, its document types, and the channel."""

    model_config = ConfigDict(extra="allow")

    organisation_number: str | None = ""
    pem_certificate: str | None = ""
    process: str
    document_types: list[str] = Field(default_factory=list)
    service: Service
    orgnr_postkasse: str | None = None
    """DPI: the mailbox provider's organisation number (the "supplier")."""
    postkasse_adresse: str | None = None
    """DPI: the citizen's address at the mailbox provider."""
    mobilnummer: str | None = ""
    kan_varsles: bool = False
    epost_adresse: str | None = ""
    fysisk_post: bool = False
    """DPI: a print record (the letter goes by post)."""
    post_address: PostAddress | None = Field(default_factory=PostAddress)
    return_address: PostAddress | None = Field(default_factory=PostAddress)
    spraak: str | None = None
    her_id: str | None = None

    @field_validator("document_types", mode="before")
    @classmethod
    def _no_null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("kan_varsles", "fysisk_post", mode="before")
    @classmethod
    def _null_is_false(cls, value: Any) -> Any:
        return False if value is None else value

    @property
    def service_identifier(self) -> str:
        return self.service.identifier

    def accepts(self, document_type: str) -> bool:
        """Whether this record carries the document type (``documentIdentification.standard``)."""
        return document_type in self.document_types

    def certificate_pem(self) -> str | None:
        """The receiver's certificate as PEM, or ``None`` when the record has none (DPV, DPF)."""
        text = (self.pem_certificate or "").strip()
        if not text:
            return None
        if PEM_BEGIN not in text:
            text = f"{PEM_BEGIN}\n{text}\n{PEM_END}"
        return text + "\n"

    def to_wire(self) -> dict[str, Any]:
        """The record as the Service Registry writes it: DPI fields only on DPI records, and
        ``spraak`` (newer than the registry's API docs) only when set."""
        body: dict[str, Any] = {
            "organisationNumber": self.organisation_number,
            "pemCertificate": self.pem_certificate,
            "process": self.process,
            "documentTypes": list(self.document_types),
            "service": self.service.to_wire(),
        }
        if self.service_identifier == "DPI":
            body.update(
                orgnrPostkasse=self.orgnr_postkasse,
                postkasseAdresse=self.postkasse_adresse,
                mobilnummer=self.mobilnummer,
                kanVarsles=self.kan_varsles,
                epostAdresse=self.epost_adresse,
                fysiskPost=self.fysisk_post,
                postAddress=self.post_address.to_wire() if self.post_address else None,
                returnAddress=self.return_address.to_wire() if self.return_address else None,
            )
            if self.spraak is not None:
                body["spraak"] = self.spraak
        if self.her_id is not None:
            body["herId"] = self.her_id
        body.update(self.model_extra or {})
        return body


class IdentifierResource(_Wire):
    """A whole answer: ``{infoRecord, serviceRecords}``."""

    info_record: InfoRecord | None = None
    service_records: list[ServiceRecord] = Field(default_factory=list)

    @field_validator("service_records", mode="before")
    @classmethod
    def _no_null_list(cls, value: Any) -> Any:
        return [] if value is None else value

    def to_wire(self) -> dict[str, Any]:
        return {
            "infoRecord": self.info_record.to_wire() if self.info_record else None,
            "serviceRecords": [record.to_wire() for record in self.service_records],
        }
