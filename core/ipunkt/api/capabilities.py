"""``GET /api/capabilities/{receiverIdentifier}``: what a receiver accepts, as the original answers.

``{"capabilities": [{process, serviceIdentifier, postAddress?, returnAddress?, documentTypes:
[{type, standard}], digitalPostAddress?}]}``, one capability per registry record. Addresses and
``digitalPostAddress`` appear for DPI records only; ``type`` is the message type named after
the standard's last ``::``, left out when it is no known message type; null fields are left
out. Like the integrasjonspunkt, the identifier goes to the registry unchecked beyond its
shape, and a registry "not found" is ``IdentifierNotFound`` (404). A registry refusal (no
record at the asked ``securityLevel``) is an empty list, where the original answers 500.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ipunkt.api.middlewares import dumps
from ipunkt.appkeys import ADDRESS_BOOK
from ipunkt.errors import IdentifierNotFound, IdentifierNotValid, ServiceRegistryUnavailable
from ipunkt.identifiers import InvalidIdentifier, primary_identifier
from ipunkt.lookup.records import PostAddress, ServiceRecord
from ipunkt.lookup.source import LookupNotFound, LookupQuery, LookupRejected, LookupUnavailable

MESSAGE_TYPES = (
    "status",
    "feil",
    "arkivmelding",
    "arkivmelding_kvittering",
    "avtalt",
    "digital",
    "digital_dpv",
    "print",
    "dialogmelding",
    "dialogmelding_kvittering",
    "innsynskrav",
    "publisering",
    "einnsyn_kvittering",
)
"""The integrasjonspunkt's message types, in its order (``MessageType``)."""


async def capabilities(request: web.Request) -> web.Response:
    try:
        identifier = primary_identifier(request.match_info["receiverIdentifier"])
    except InvalidIdentifier as exc:
        raise IdentifierNotValid(str(exc)) from None
    level = request.query.get("securityLevel")
    if level is not None and not (level.isascii() and level.isdigit()):
        raise IdentifierNotValid(f"securityLevel must be an integer, got '{level}'")
    query = LookupQuery(
        identifier,
        process=request.query.get("process") or None,
        security_level=int(level) if level is not None else None,
    )
    try:
        resource = await request.app[ADDRESS_BOOK].lookup(query)
    except LookupNotFound as exc:
        raise IdentifierNotFound(exc.description) from None
    except LookupRejected:
        return _answer([])
    except LookupUnavailable as exc:
        raise ServiceRegistryUnavailable(exc.reason, retry_after=exc.retry_after) from None
    return _answer([capability(record) for record in resource.service_records])


def _answer(items: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"capabilities": items}, dumps=dumps)


def capability(record: ServiceRecord) -> dict[str, Any]:
    """One record as a capability, in the original's field order."""
    dpi = record.service_identifier == "DPI"
    item: dict[str, Any] = {
        "process": record.process,
        "serviceIdentifier": record.service_identifier,
    }
    if dpi and record.post_address is not None:
        item["postAddress"] = _address(record.post_address)
    if dpi and record.return_address is not None:
        item["returnAddress"] = _address(record.return_address)
    item["documentTypes"] = [_document_type(standard) for standard in record.document_types]
    if dpi:
        item["digitalPostAddress"] = _without_nulls(
            {"supplier": record.orgnr_postkasse, "address": record.postkasse_adresse}
        )
    return item


def _address(address: PostAddress) -> dict[str, Any]:
    return _without_nulls(address.to_wire())


def _document_type(standard: str) -> dict[str, Any]:
    suffix = standard.rpartition("::")[2] if "::" in standard else None
    kind = suffix if suffix in MESSAGE_TYPES else None
    return _without_nulls({"type": kind, "standard": standard})


def _without_nulls(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/capabilities/{receiverIdentifier}", capabilities)
