"""``ipunkt lookup ID``: ask the configured lookup sources about a receiver, as routing would."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from cryptography import x509

from ipunkt.cli.options import config_option
from ipunkt.config import ConfigError
from ipunkt.gateway import Gateway, load_gateway
from ipunkt.identifiers import InvalidIdentifier, primary_identifier
from ipunkt.lookup.assembly import build_address_book
from ipunkt.lookup.records import IdentifierResource, ServiceRecord
from ipunkt.lookup.source import LookupNotFound, LookupQuery, LookupRejected, LookupUnavailable

EXIT_NOT_FOUND = 1
EXIT_UNAVAILABLE = 3


@click.command("lookup")
@config_option
@click.argument("identifier")
@click.option("-p", "--process", help="Only the records of this process (a URN).")
@click.option(
    "--security-level", type=click.IntRange(1, 4), help="Ask for this security level (DPF)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the registry's JSON answer.")
def lookup_command(
    config_path: Path,
    identifier: str,
    process: str | None,
    security_level: int | None,
    as_json: bool,
) -> None:
    """Look IDENTIFIER up (an organisation number or fødselsnummer) in the lookup sources.

    Exit status: 0 found, 1 not found (or refused by the registry), 3 no source could answer
    (the registry is unreachable; try again).
    """
    try:
        number = primary_identifier(identifier)
    except InvalidIdentifier as exc:
        raise click.BadParameter(str(exc), param_hint="IDENTIFIER") from None
    try:
        gateway = load_gateway(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    query = LookupQuery(number, process=process, security_level=security_level)
    try:
        resource, source = asyncio.run(_lookup(gateway, query))
    except LookupNotFound as exc:
        click.echo(f"not found: {exc.description}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    except LookupRejected as exc:
        click.echo(f"refused: {exc.reason}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    except LookupUnavailable as exc:
        click.echo(f"no answer: {exc.reason}", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    if as_json:
        click.echo(json.dumps(resource.to_wire(), indent=2, ensure_ascii=False))
        return
    click.echo(_describe(resource, source, _channel_states(gateway)))


async def _lookup(gateway: Gateway, query: LookupQuery) -> tuple[IdentifierResource, str]:
    book = build_address_book(
        gateway.settings.lookup,
        gateway.plugins,
        organisation=gateway.settings.organisation.number,
        services=[s for s, state in _channel_states(gateway).items() if state == "enabled"],
    )
    await book.start()
    try:
        return await book.lookup_with_source(query)
    finally:
        await book.stop()


def _channel_states(gateway: Gateway) -> dict[str, str]:
    states = {}
    for service, info in gateway.plugins.channels.items():
        config = gateway.channel_configs.get(service)
        if not info.has_transport:
            states[service] = "plugin has no transport"
        else:
            states[service] = "enabled" if config and config.enabled else "not enabled"
    return states


def _describe(resource: IdentifierResource, source: str, channels: dict[str, str]) -> str:
    info = resource.info_record
    lines = []
    if info is not None:
        kind = info.entity_type.name if info.entity_type and info.entity_type.name else "?"
        name = f"  {info.organization_name}" if info.organization_name else ""
        lines.append(f"{info.identifier}{name} ({kind})")
    lines.append(f"answered by: {source}")
    if not resource.service_records:
        lines.append("no records")
    for record in resource.service_records:
        service = record.service_identifier
        channel = channels.get(service, "no plugin provides it")
        lines += ["", f"{service:<4} {record.process}   [channel: {channel}]"]
        lines += [f"     {key + ':':<15}{value}" for key, value in _details(record)]
    return "\n".join(lines)


def _details(record: ServiceRecord) -> list[tuple[str, str]]:
    details = [("documents", standard) for standard in record.document_types]
    service = record.service
    for key, value in (
        ("endpoint", service.endpoint_url),
        ("resource", service.resource),
        ("security", service.security_level),
        ("service code", service.service_code),
    ):
        if value not in (None, ""):
            details.append((key, str(value)))
    details.append(("certificate", _certificate(record)))
    if service.identifier == "DPI":
        mailbox = f"{record.postkasse_adresse or '-'} at {record.orgnr_postkasse or '-'}"
        details.append(("mailbox", mailbox))
        details.append(("print", "yes" if record.fysisk_post else "no"))
        if record.post_address is not None and record.post_address.street:
            address = record.post_address
            details.append(
                ("address", f"{address.name}, {address.street}, {address.postal_code} "
                 f"{address.postal_area}")
            )
    return details


def _certificate(record: ServiceRecord) -> str:
    pem = record.certificate_pem()
    if pem is None:
        return "none"
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return "present but not a readable X.509 certificate"
    until = certificate.not_valid_after_utc.date().isoformat()
    return f"{certificate.subject.rfc4514_string()}, valid until {until}"
