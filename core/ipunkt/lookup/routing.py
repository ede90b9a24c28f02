"""Routing: from a message's receiver, process and document type to a record and a channel.

It follows the integrasjonspunkt (``ServiceRecordProvider``, ``ServiceRegistryLookup``):

1. The receiver is looked up for the message's process (``/identifier/{id}/process/{p}``,
   with ``securityLevel`` when the message has a ``sikkerhetsnivaa``).
2. With a document type, the first record whose ``documentTypes`` contain it is used; none
   gives ``ReceiverDoesNotAcceptProcess``. This is how citizens end on DPI ``digital``, DPI
   ``print`` or DPV ``digital_dpv``: the registry returns the records the person can take.
3. Without a document type, a DPI record comes first, else the record of the default process,
   else a DPE record.
4. An operator override (``[[routing.override]]``) may then name another service: the
   receiver's record of that service is used when it has one, else the chosen record is
   carried over to that service.
5. The record's service must be an enabled channel with a transport, else
   ``ServiceNotEnabled``.

As in the original, a receiver unknown for the process, or a registry refusal, is
``ReceiverDoesNotAcceptProcess`` (400) with the registry's reason as ``description``; a
registry that could not answer is ``ServiceRegistryUnavailable`` (503), which is retryable.
A ``print`` message without a receiver goes by DPI without a lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from ipunkt.channels import ChannelSet
from ipunkt.errors import (
    IdentifierNotFound,
    IdentifierNotValid,
    ReceiverDoesNotAcceptProcess,
    ServiceRegistryUnavailable,
)
from ipunkt.identifiers import InvalidIdentifier, parse_party
from ipunkt.lookup.address_book import AddressBook
from ipunkt.lookup.records import InfoRecord, Service, ServiceRecord
from ipunkt.lookup.settings import RoutingOverride, RoutingSettings
from ipunkt.lookup.source import LookupNotFound, LookupQuery, LookupRejected, LookupUnavailable
from ipunkt.plugin import ChannelInfo

log = structlog.get_logger(__name__)

PRINT_TYPE = "print"
DPI = "DPI"
DPE = "DPE"


@dataclass(frozen=True)
class Route:
    """Where a message goes: the service, the receiver's record and the channel."""

    service: str
    """The service identifier (DPO, DPV, DPF, DPI...) the message is sent by."""
    record: ServiceRecord | None
    """The receiver's record (certificate, endpoint, DPI mailbox and addresses); ``None``
    only for a ``print`` message without a receiver."""
    channel: ChannelInfo
    """The channel's declaration: its default lifetime, size limit and message types."""
    info: InfoRecord | None = None
    override: RoutingOverride | None = None
    """The operator override that decided the service, if one did."""


class Router:
    """Resolves messages to routes; one per gateway, shared by the API and the delivery."""

    def __init__(
        self,
        book: AddressBook,
        channels: ChannelSet,
        settings: RoutingSettings | None = None,
        *,
        allow_synthetic_identifiers: bool = False,
    ) -> None:
        self.book = book
        self.channels = channels
        self.settings = settings or RoutingSettings()
        self.allow_synthetic = allow_synthetic_identifiers
        self.overrides = sorted(self.settings.overrides, key=lambda o: o.rank, reverse=True)

    async def route(
        self,
        *,
        receiver: str | None,
        process: str | None,
        document_type: str | None = None,
        message_type: str | None = None,
        security_level: int | None = None,
        conversation_id: str | None = None,
    ) -> Route:
        """The route of one message, from its SBD's header fields.

        ``receiver`` is the SBD receiver (``0192:910075918``, ``910075918`` or an 11-digit
        fødselsnummer), ``process`` the ConversationId scope's identifier, ``document_type``
        ``documentIdentification.standard`` and ``message_type`` its ``type``;
        ``security_level`` is the business message's ``sikkerhetsnivaa``, if it has one.

        Raises ``IdentifierNotValid``, ``ReceiverDoesNotAcceptProcess``, ``IdentifierNotFound``
        (only without a process), ``ServiceNotEnabled`` or ``ServiceRegistryUnavailable``.
        """
        if not receiver:
            if message_type == PRINT_TYPE:
                return Route(DPI, None, self._channel(DPI))
            raise ReceiverDoesNotAcceptProcess(
                _not_accepted(process), description="The message has no receiver"
            )
        try:
            party = parse_party(receiver, allow_synthetic=self.allow_synthetic)
        except InvalidIdentifier as exc:
            raise IdentifierNotValid(str(exc)) from None
        query = LookupQuery(
            party.primary,
            process=process or None,
            security_level=security_level,
            conversation_id=conversation_id,
        )
        try:
            resource = await self.book.lookup(query)
        except LookupNotFound as exc:
            if process:
                raise ReceiverDoesNotAcceptProcess(
                    _not_accepted(process), description=exc.description
                ) from None
            raise IdentifierNotFound(exc.description) from None
        except LookupRejected as exc:
            raise ReceiverDoesNotAcceptProcess(
                _not_accepted(process), description=exc.reason
            ) from None
        except LookupUnavailable as exc:
            raise ServiceRegistryUnavailable(exc.reason, retry_after=exc.retry_after) from None
        records = resource.service_records
        record = self._select(records, query, document_type)
        override = self.override_for(party.primary, process, document_type)
        if override is not None and override.service != record.service_identifier:
            record = _carried_over(records, record, override.service, document_type)
        route = Route(
            record.service_identifier,
            record,
            self._channel(record.service_identifier),
            resource.info_record,
            override,
        )
        log.debug(
            "routed",
            receiver=party.primary,
            process=process,
            document_type=document_type,
            service=route.service,
            override=override.describe() if override else None,
        )
        return route

    def _select(
        self, records: Sequence[ServiceRecord], query: LookupQuery, document_type: str | None
    ) -> ServiceRecord:
        if document_type:
            for record in records:
                if record.accepts(document_type):
                    return record
            raise ReceiverDoesNotAcceptProcess(
                _not_accepted(query.process),
                description=(
                    f"Error looking up service record with document type '{document_type}' "
                    f"for receiver {query.identifier} and process {query.process}"
                ),
            )
        preferred = [
            *(r for r in records if r.service_identifier == DPI),
            *(r for r in records if r.process == self.settings.default_process),
            *(r for r in records if r.service_identifier == DPE),
        ]
        if preferred:
            return preferred[0]
        raise ReceiverDoesNotAcceptProcess(
            _not_accepted(query.process),
            description=(
                f"No DPI record, no record of the default process "
                f"{self.settings.default_process} and no DPE record for {query.identifier}"
            ),
        )

    def override_for(
        self, receiver: str | None, process: str | None, document_type: str | None
    ) -> RoutingOverride | None:
        """The most specific operator override matching these fields, if any."""
        for override in self.overrides:
            if override.matches(receiver, process, document_type):
                return override
        return None

    def _channel(self, service: str) -> ChannelInfo:
        self.channels.channel_for(service)
        return self.channels.states[service].info

    def table(self) -> list[dict[str, Any]]:
        """The effective routing table: each override, then the registry's own rules."""
        rows: list[dict[str, Any]] = []
        for override in self.overrides:
            rows.append(
                {
                    "match": override.describe(),
                    "service": override.service,
                    "channel": self._channel_state(override.service),
                }
            )
        rows.append(
            {
                "match": "any other message",
                "service": "the record accepting the document type, from "
                + " then ".join(source.name for source in self.book.sources),
                "channel": ", ".join(
                    f"{service}: {self._channel_state(service)}"
                    for service in sorted(self.channels.states)
                )
                or "no channel plugins",
            }
        )
        rows.append(
            {
                "match": "no document type",
                "service": f"DPI, else the record of {self.settings.default_process}, else DPE",
                "channel": "as above",
            }
        )
        return rows

    def _channel_state(self, service: str) -> str:
        state = self.channels.states.get(service)
        if state is None:
            return "no plugin provides it"
        if not state.info.has_transport:
            return "plugin has no transport"
        return "enabled" if state.usable else "not enabled"

    def log_table(self) -> None:
        """Log the effective routing table, one line per rule (at start-up)."""
        for number, row in enumerate(self.table(), start=1):
            log.info("routing rule", rule=number, **row)
        for override in self.overrides:
            state = self._channel_state(override.service)
            if state != "enabled":
                log.warning(
                    "routing override names a service that cannot be used",
                    match=override.describe(),
                    service=override.service,
                    channel=state,
                )


def _not_accepted(process: str | None) -> str:
    return f"Receiver do not accept the document process {process}"


def _carried_over(
    records: Sequence[ServiceRecord], chosen: ServiceRecord, service: str, document_type: str | None
) -> ServiceRecord:
    """The receiver's own record of ``service`` if it has one, else ``chosen`` moved to it."""
    for record in records:
        if record.service_identifier == service and (
            document_type is None or record.accepts(document_type)
        ):
            return record
    return chosen.model_copy(update={"service": Service(identifier=service)})
