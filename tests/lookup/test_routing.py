"""Routing: every rule of the original, the operator's overrides, and each refusal."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import structlog
from ipunkt.app import create_app
from ipunkt.channels import ChannelSet
from ipunkt.config import ConfigError, parse_settings
from ipunkt.errors import (
    ApiError,
    IdentifierNotFound,
    IdentifierNotValid,
    ReceiverDoesNotAcceptProcess,
    ServiceNotEnabled,
    ServiceRegistryUnavailable,
)
from ipunkt.lookup.address_book import AddressBook
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.routing import Router
from ipunkt.lookup.service_registry import ServiceRegistryClient, ServiceRegistryConfig
from ipunkt.lookup.settings import RoutingSettings
from ipunkt.plugin import (
    Channel,
    ChannelConfig,
    ChannelInfo,
    OutgoingMessage,
    SendResult,
)
from ipunkt.plugins import PluginHost

ADMIN = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
PLAN = "urn:no:difi:profile:arkivmelding:planByggOgGeodata:ver1.0"
RESPONSE = "urn:no:difi:profile:arkivmelding:response:ver1.0"
INNSYNSKRAV = "urn:no:difi:profile:einnsyn:innsynskrav:ver1.0"
INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"
VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
KVITTERING = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
EINNSYN = "urn:no:difi:einnsyn:xsd::innsynskrav"
DIGITAL = "urn:no:difi:digitalpost:xsd:digital::digital"
PRINT = "urn:no:difi:digitalpost:xsd:fysisk::print"
DIGITAL_DPV = "urn:no:difi:digitalpost:xsd:digital::digital_dpv"
MAILBOX = "09118532322"  # has a DPI mailbox
RESERVED = "01018512366"  # reserved against digital post: print only
DPV_TARGET = "02018512486"  # no mailbox: print or DPV, the sender chooses


class Loopback(Channel):
    async def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult()


def channel(service: str, transport: bool = True) -> ChannelInfo:
    return ChannelInfo(
        service=service, name=service, message_types=frozenset({"arkivmelding"}), max_size=10,
        factory=Loopback if transport else None,
    )


INFOS = {s: channel(s) for s in ("DPO", "DPV", "DPI", "DPF", "DPE")}
INFOS["DPN"] = channel("DPN", transport=False)
ENABLED = {s: ChannelConfig(enabled=s != "DPF") for s in INFOS}

REGISTRY = f"""
[[receiver]]
identifier = "910075918"
name = "Kommune A"
[[receiver.record]]
service = "DPO"
processes = ["{ADMIN}", "{PLAN}"]
document_types = ["{ARKIVMELDING}"]
endpoint = "http://broker.example"
[[receiver.record]]
service = "DPO"
processes = ["{RESPONSE}"]
document_types = ["{KVITTERING}"]

[[receiver]]
identifier = "910229028"
[[receiver.record]]
service = "DPO"
processes = ["{ADMIN}"]
document_types = ["{ARKIVMELDING}"]
[[receiver.record]]
service = "DPV"
processes = ["{ADMIN}"]
document_types = ["{ARKIVMELDING}"]
resource = "eformidling-dpv-administrasjon"

[[receiver]]
identifier = "991825827"
[[receiver.record]]
service = "DPF"
processes = ["{ADMIN}"]
document_types = ["{ARKIVMELDING}"]
security_level = 3

[[receiver]]
identifier = "987464291"
[[receiver.record]]
service = "DPE"
processes = ["{INNSYNSKRAV}"]
document_types = ["{EINNSYN}"]
endpoint = "innsyn"

[[receiver]]
identifier = "974720760"
[[receiver.record]]
service = "DPO"
processes = ["{RESPONSE}"]
document_types = ["{KVITTERING}"]

[[receiver]]
identifier = "910076787"
[[receiver.record]]
service = "DPH"
processes = ["{ADMIN}"]
document_types = ["{ARKIVMELDING}"]

[[receiver]]
identifier = "{MAILBOX}"
[[receiver.record]]
service = "DPI"
processes = ["{INFO}", "{VEDTAK}"]
document_types = ["{DIGITAL}"]
mailbox_supplier = "987464291"
mailbox_address = "kari#1"

[[receiver]]
identifier = "{RESERVED}"
[[receiver.record]]
service = "DPI"
processes = ["{VEDTAK}"]
document_types = ["{PRINT}"]
physical_post = true
post_address = {{ name = "Ola", street = "Gata 1", postal_code = "2900", postal_area = "FAGERNES" }}

[[receiver]]
identifier = "{DPV_TARGET}"
[[receiver.record]]
service = "DPI"
processes = ["{INFO}"]
document_types = ["{PRINT}"]
physical_post = true
[[receiver.record]]
service = "DPV"
processes = ["{INFO}"]
document_types = ["{DIGITAL_DPV}"]
"""


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY)
    return path


@pytest.fixture
async def book(registry_path: Path) -> AddressBook:
    registry = LocalRegistry(registry_path)
    book = AddressBook([registry])
    await book.start()
    return book


def router(book: AddressBook, *overrides: dict[str, str], **settings: Any) -> Router:
    routing = RoutingSettings.model_validate({"override": list(overrides) or None})
    return Router(book, ChannelSet("910077473", INFOS, ENABLED), routing, **settings)


async def route(router: Router, receiver: str | None, process: str | None,
                document_type: str | None = None, **more: Any) -> tuple[str, str | None]:
    found = await router.route(
        receiver=receiver, process=process, document_type=document_type, **more
    )
    return found.service, found.record.process if found.record else None


def body(error: ApiError) -> dict[str, Any]:
    return error.body("/api/messages/out")


async def test_with_a_document_type_the_record_of_the_process_that_carries_it(
    book: AddressBook,
) -> None:
    found = await router(book).route(
        receiver="0192:910075918", process=PLAN, document_type=ARKIVMELDING,
        message_type="arkivmelding", conversation_id="c0ffee",
    )
    assert (found.service, found.record and found.record.process) == ("DPO", PLAN)
    assert found.channel is INFOS["DPO"]
    assert found.info is not None and found.info.organization_name == "Kommune A"
    assert found.override is None
    assert await route(router(book), "910075918", RESPONSE, KVITTERING) == ("DPO", RESPONSE)


async def test_a_document_type_the_process_does_not_carry_is_refused(book: AddressBook) -> None:
    with pytest.raises(ReceiverDoesNotAcceptProcess) as caught:
        await route(router(book), "910075918", RESPONSE, ARKIVMELDING)
    answer = body(caught.value)
    assert (answer["status"], answer["exception"]) == (
        400, "no.difi.meldingsutveksling.exceptions.ReceiverDoesNotAcceptProcessException"
    )
    assert answer["message"] == f"Receiver do not accept the document process {RESPONSE}"
    assert f"document type '{ARKIVMELDING}'" in answer["description"]


async def test_a_process_the_receiver_lacks_is_refused_with_the_registry_reason(
    book: AddressBook,
) -> None:
    with pytest.raises(ReceiverDoesNotAcceptProcess) as caught:
        await route(router(book), "910075918", INNSYNSKRAV, EINNSYN)
    assert body(caught.value)["description"] == (
        f"Process {INNSYNSKRAV} not found for receiver 910075918"
    )


async def test_an_unknown_receiver(book: AddressBook) -> None:
    with pytest.raises(ReceiverDoesNotAcceptProcess) as caught:
        await route(router(book), "910077473", ADMIN, ARKIVMELDING)
    assert body(caught.value)["description"] == "Entity with identifier '910077473' not found."
    with pytest.raises(IdentifierNotFound) as not_found:
        await route(router(book), "910077473", None)
    assert body(not_found.value)["status"] == 404


@pytest.mark.parametrize(
    ("receiver", "process", "expected"),
    [
        (MAILBOX, None, ("DPI", INFO)),  # a DPI record comes first
        (DPV_TARGET, None, ("DPI", INFO)),
        ("910075918", None, ("DPO", ADMIN)),  # else the default process's record
        ("910229028", ADMIN, ("DPO", ADMIN)),  # the first of that process
        ("987464291", None, ("DPE", INNSYNSKRAV)),  # else a DPE record
    ],
)
async def test_without_a_document_type(
    book: AddressBook, receiver: str, process: str | None, expected: tuple[str, str]
) -> None:
    assert await route(router(book), receiver, process) == expected


async def test_without_a_document_type_and_no_preferred_record(book: AddressBook) -> None:
    with pytest.raises(ReceiverDoesNotAcceptProcess, match="document process None") as caught:
        await route(router(book), "974720760", None)
    assert "no record of the default process" in body(caught.value)["description"]
    routed = router(book)
    routed.settings = RoutingSettings(default_process=RESPONSE)
    assert await route(routed, "974720760", None) == ("DPO", RESPONSE)


@pytest.mark.parametrize(
    ("receiver", "process", "document_type", "expected"),
    [
        (MAILBOX, VEDTAK, DIGITAL, ("DPI", VEDTAK)),
        (RESERVED, VEDTAK, PRINT, ("DPI", VEDTAK)),
        (DPV_TARGET, INFO, DIGITAL_DPV, ("DPV", INFO)),
        (DPV_TARGET, INFO, PRINT, ("DPI", INFO)),
    ],
)
async def test_citizens_end_on_digital_print_or_dpv_as_their_records_allow(
    book: AddressBook, receiver: str, process: str, document_type: str,
    expected: tuple[str, str],
) -> None:
    assert await route(router(book), receiver, process, document_type) == expected


async def test_a_reserved_citizen_gets_no_digital_post(book: AddressBook) -> None:
    with pytest.raises(ReceiverDoesNotAcceptProcess):
        await route(router(book), RESERVED, VEDTAK, DIGITAL)
    found = await router(book).route(receiver=RESERVED, process=VEDTAK, document_type=PRINT)
    assert found.record is not None and found.record.fysisk_post
    assert found.record.post_address is not None
    assert found.record.post_address.street == "Gata 1"


async def test_print_without_a_receiver_goes_by_dpi_without_a_lookup(book: AddressBook) -> None:
    found = await router(book).route(
        receiver=None, process=VEDTAK, document_type=PRINT, message_type="print"
    )
    assert (found.service, found.record, found.channel) == ("DPI", None, INFOS["DPI"])
    with pytest.raises(ReceiverDoesNotAcceptProcess, match="document process"):
        await router(book).route(receiver="", process=ADMIN, message_type="arkivmelding")


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ("991825827", "Service DPF is not enabled"),
        ("910076787", "Service DPH is not enabled: no plugin provides it"),
    ],
)
async def test_the_records_service_must_be_an_enabled_channel(
    book: AddressBook, receiver: str, message: str
) -> None:
    with pytest.raises(ServiceNotEnabled) as caught:
        await route(router(book), receiver, ADMIN, ARKIVMELDING)
    assert body(caught.value)["message"] == message


async def test_a_security_level_the_receiver_lacks_is_refused(book: AddressBook) -> None:
    enabled = ChannelSet("910077473", INFOS, {s: ChannelConfig(enabled=True) for s in INFOS})
    routed = Router(book, enabled)
    found = await routed.route(
        receiver="991825827", process=ADMIN, document_type=ARKIVMELDING, security_level=3
    )
    assert found.service == "DPF"
    with pytest.raises(ReceiverDoesNotAcceptProcess) as caught:
        await routed.route(
            receiver="991825827", process=ADMIN, document_type=ARKIVMELDING, security_level=4
        )
    assert body(caught.value)["description"] == "security level not found"


@pytest.mark.parametrize("receiver", ["91007591", "0192:910075919", "09118532323", "abc"])
async def test_invalid_receivers_are_refused(book: AddressBook, receiver: str) -> None:
    with pytest.raises(IdentifierNotValid) as caught:
        await route(router(book), receiver, ADMIN, ARKIVMELDING)
    answer = body(caught.value)
    assert answer["status"] == 400
    assert answer["exception"] == "jakarta.validation.ConstraintViolationException"
    assert answer["message"].startswith(f"'{receiver}' is not a valid identifier: ")


async def test_synthetic_citizens_only_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.toml"
    path.write_text(
        f'[[receiver]]\nidentifier = "17912099997"\n[[receiver.record]]\nservice = "DPV"\n'
        f'processes = ["{INFO}"]\ndocument_types = ["{DIGITAL_DPV}"]\n'
    )
    book = AddressBook([LocalRegistry(path)])
    await book.start()
    with pytest.raises(IdentifierNotValid, match="synthetic"):
        await route(router(book), "17912099997", INFO, DIGITAL_DPV)
    allowed = router(book, allow_synthetic_identifiers=True)
    assert await route(allowed, "17912099997", INFO, DIGITAL_DPV) == ("DPV", INFO)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sources_are_asked_in_order_and_a_down_registry_is_retryable(
    registry_path: Path, registry_of_fixture: Any, sr_dir: Path, start_fake: Any
) -> None:
    running = await start_fake(registry_of_fixture(sr_dir / "910077473.json"))
    local = LocalRegistry(registry_path)
    book = AddressBook([local, running.client()])
    await book.start()
    assert await route(router(book), "910075918", ADMIN, ARKIVMELDING) == ("DPO", ADMIN)
    with pytest.raises(ReceiverDoesNotAcceptProcess):  # known locally: the registry is not asked
        await route(router(book), "910075918", INNSYNSKRAV, EINNSYN)
    assert running.fake.requests == []
    assert await route(router(book), "910077473", ADMIN, ARKIVMELDING) == ("DPO", ADMIN)
    assert running.paths()[0] == f"/identifier/910077473/process/{ADMIN}"

    down = ServiceRegistryClient(
        ServiceRegistryConfig(url=f"http://127.0.0.1:{closed_port()}", verify_signatures=False)
    )
    book = AddressBook([local, down])
    await book.start()
    try:
        assert await route(router(book), "910075918", ADMIN, ARKIVMELDING) == ("DPO", ADMIN)
        with pytest.raises(ServiceRegistryUnavailable) as caught:
            await route(router(book), "910077473", ADMIN, ARKIVMELDING)
        answer = body(caught.value)
        assert answer["status"] == 503
        assert answer["exception"] == (
            "no.difi.meldingsutveksling.serviceregistry.ServiceRegistryLookupException"
        )
        assert "Service Registry unreachable" in answer["message"]
    finally:
        await book.stop()


async def test_an_override_for_a_receiver_carries_the_record_to_another_service(
    book: AddressBook,
) -> None:
    routed = router(book, {"receiver": "0192:910075918", "service": "dpv"})
    found = await routed.route(receiver="910075918", process=PLAN, document_type=ARKIVMELDING)
    assert found.service == "DPV" and found.channel is INFOS["DPV"]
    assert found.record is not None
    assert (found.record.service_identifier, found.record.process) == ("DPV", PLAN)
    assert found.record.service.endpoint_url == ""  # the DPO endpoint does not carry over
    assert found.override is not None and found.override.receiver == "910075918"


async def test_an_override_uses_the_receivers_own_record_of_that_service(
    book: AddressBook,
) -> None:
    routed = router(book, {"process": ADMIN, "service": "DPV"})
    found = await routed.route(receiver="910229028", process=ADMIN, document_type=ARKIVMELDING)
    assert found.record is not None
    assert found.record.service.resource == "eformidling-dpv-administrasjon"
    assert await route(routed, "910075918", PLAN, ARKIVMELDING) == ("DPO", PLAN)


async def test_the_most_specific_override_wins(book: AddressBook) -> None:
    routed = router(
        book,
        {"document_type": ARKIVMELDING, "service": "DPE"},
        {"process": ADMIN, "service": "DPI"},
        {"receiver": "910075918", "service": "DPV"},
        {"receiver": "910075918", "process": PLAN, "service": "DPO"},
    )
    assert await route(routed, "910075918", ADMIN, ARKIVMELDING) == ("DPV", ADMIN)
    assert await route(routed, "910075918", PLAN, ARKIVMELDING) == ("DPO", PLAN)
    assert await route(routed, "910229028", ADMIN, ARKIVMELDING) == ("DPI", ADMIN)
    assert await route(routed, "910075918", RESPONSE, KVITTERING) == ("DPV", RESPONSE)
    assert (await route(router(book, {"document_type": KVITTERING, "service": "DPE"}),
                        "910075918", RESPONSE, KVITTERING)) == ("DPE", RESPONSE)


async def test_an_override_to_a_channel_that_is_off_is_refused(book: AddressBook) -> None:
    routed = router(book, {"receiver": "910075918", "service": "DPF"})
    with pytest.raises(ServiceNotEnabled, match="Service DPF is not enabled"):
        await route(routed, "910075918", ADMIN, ARKIVMELDING)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ([{"service": "DPV"}], "give at least one of receiver, process and document_type"),
        ([{"receiver": "910075918", "service": "D P V"}], "must be a service identifier"),
        ([{"receiver": "9100759", "service": "DPV"}], "routing.override.0.receiver"),
        (
            [{"receiver": "910075918", "service": "DPV"},
             {"receiver": "0192:910075918", "service": "DPO"}],
            "two overrides match the same messages (receiver=910075918)",
        ),
        (
            [{"process": ADMIN, "service": "DPV", "channel": "x"}],
            "routing.override.0.channel: unknown key",
        ),
    ],
)
def test_override_mistakes_are_config_errors(override: list[dict[str, str]], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings({"organisation": {"number": "910077473"}, "routing": {"override": override}})
    assert message in str(caught.value)


async def test_the_routing_table_is_logged_at_start_up(
    registry_path: Path, aiohttp_client: Any
) -> None:
    host = PluginHost()
    host.channels.update(INFOS)
    settings = parse_settings(
        {
            "organisation": {"number": "910077473"},
            "lookup": {"sources": ["local"], "local": {"path": str(registry_path)}},
            "routing": {
                "override": [
                    {"receiver": "910075918", "service": "DPV"},
                    {"document_type": ARKIVMELDING, "process": PLAN, "service": "DPF"},
                ]
            },
        }
    )
    with structlog.testing.capture_logs() as logs:
        await aiohttp_client(create_app(settings, host, ENABLED))
    rules = [e for e in logs if e["event"] == "routing rule"]
    assert [(r["match"], r["service"], r["channel"]) for r in rules[:2]] == [
        ("receiver=910075918", "DPV", "enabled"),
        (f"process={PLAN} document_type={ARKIVMELDING}", "DPF", "not enabled"),
    ]
    assert "from local" in rules[2]["service"]
    assert "DPN: plugin has no transport" in rules[2]["channel"]
    assert f"else the record of {ADMIN}" in rules[3]["service"]
    warnings = [e for e in logs if e["event"].startswith("routing override names a service")]
    assert [(w["service"], w["channel"]) for w in warnings] == [("DPF", "not enabled")]
    sources = next(e for e in logs if e["event"] == "lookup sources")
    assert sources["sources"] == [f"local registry {registry_path} (9 receivers)"]
