"""Lookup sources come from plugins, the core's own included, through one hook."""

from __future__ import annotations

from typing import Any

import pytest
from ipunkt.config import ConfigError, parse_settings
from ipunkt.lookup.assembly import build_address_book
from ipunkt.plugin import (
    IdentifierResource,
    InfoRecord,
    LookupNotFound,
    LookupQuery,
    LookupSource,
    LookupSourceConfig,
    LookupSourceContext,
    LookupSourceInfo,
    Service,
    ServiceRecord,
    hookimpl,
)
from ipunkt.plugins import PluginHost, PluginRecord, PluginStatus, load_plugins
from pydantic import Field

ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
ADMINISTRASJON = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"


class DirectoryConfig(LookupSourceConfig):
    known: list[str] = Field(default_factory=list)
    """The organisation numbers this directory knows."""


class Directory(LookupSource):
    def __init__(self, context: LookupSourceContext) -> None:
        assert isinstance(context.config, DirectoryConfig)
        self.known = set(context.config.known)
        self.organisation = context.organisation

    async def lookup(self, query: LookupQuery) -> IdentifierResource:
        if query.identifier not in self.known:
            raise LookupNotFound(query.identifier, process=query.process)
        record = ServiceRecord(
            organisation_number=query.identifier,
            process=ADMINISTRASJON,
            document_types=[ARKIVMELDING],
            service=Service(identifier="DPO"),
        )
        return IdentifierResource(
            info_record=InfoRecord(identifier=query.identifier, organization_name="Directory"),
            service_records=[record],
        )


class DirectoryPlugin:
    @hookimpl
    def register_lookup_sources(self, register: Any) -> None:
        register(
            LookupSourceInfo(
                name="directory",
                description="a test directory",
                factory=Directory,
                config_schema=DirectoryConfig,
            )
        )


def host_with(*plugins: tuple[str, object]) -> PluginHost:
    host = PluginHost()
    for name, plugin in plugins:
        host.add(plugin, PluginRecord(name, None, None, PluginStatus.OK))
    host.collect()
    return host


async def test_hook_register_lookup_sources() -> None:
    host = host_with(("directory", DirectoryPlugin()))
    assert set(host.lookup_sources) == {"directory"}
    settings = parse_settings(
        {
            "organisation": {"number": "910077473"},
            "lookup": {"sources": ["directory"], "directory": {"known": ["910075918"]}},
        }
    )
    book = build_address_book(settings.lookup, host, organisation="910077473")
    await book.start()
    resource, source = await book.lookup_with_source(LookupQuery("910075918"))
    assert source == "directory"
    assert resource.service_records[0].service_identifier == "DPO"
    with pytest.raises(LookupNotFound):
        await book.lookup(LookupQuery("974720760"))
    await book.stop()


def test_the_core_registers_its_own_sources_through_the_hook() -> None:
    host = load_plugins()
    core = next(r for r in host.records if r.name == "ipunkt.lookup.builtin")
    assert core.status is PluginStatus.OK
    assert core.hooks == ["register_lookup_sources"]
    assert {"local", "service-registry"} <= set(host.lookup_sources)


def test_a_source_name_taken_by_another_plugin_fails_only_the_second() -> None:
    host = host_with(("first", DirectoryPlugin()), ("second", DirectoryPlugin()))
    statuses = {r.name: (r.status, r.error) for r in host.records}
    failed = [name for name, (status, _) in statuses.items() if status is PluginStatus.FAILED]
    assert len(failed) == 1
    assert "already registered by plugin" in str(statuses[failed[0]][1])
    assert set(host.lookup_sources) == {"directory"}


@pytest.mark.parametrize(
    ("registered", "problem"),
    [
        ("not a source", "registered str, not a LookupSourceInfo"),
        (
            LookupSourceInfo(name="Bad Name", description="", factory=Directory),
            "is not lower-case letters, digits, dashes",
        ),
    ],
)
def test_malformed_registrations_fail_the_plugin(registered: object, problem: str) -> None:
    class Sloppy:
        @hookimpl
        def register_lookup_sources(self, register: Any) -> None:
            register(registered)

    host = host_with(("sloppy", Sloppy()))
    record = host.records[0]
    assert record.status is PluginStatus.FAILED
    assert problem in str(record.error)
    assert host.lookup_sources == {}


def test_a_raising_hook_fails_only_its_plugin() -> None:
    class Raising:
        @hookimpl
        def register_lookup_sources(self, register: Any) -> None:
            raise RuntimeError("no directory today")

    host = host_with(("raising", Raising()), ("directory", DirectoryPlugin()))
    records = {r.name: r for r in host.records}
    assert records["raising"].status is PluginStatus.FAILED
    assert "RuntimeError: no directory today" in str(records["raising"].error)
    assert records["directory"].status is PluginStatus.OK
    assert set(host.lookup_sources) == {"directory"}


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        ({"sources": ["nowhere"]}, "lookup.sources: no lookup source named 'nowhere'"),
        (
            {"sources": ["directory"], "directory": {"knwon": []}},
            "lookup.directory.knwon: unknown key",
        ),
        ({"sources": ["directory"], "elsewhere": {}}, "lookup.elsewhere: unknown key"),
        ({"sources": ["directory"], "directory": "yes"}, "lookup.directory: must be a table"),
    ],
)
def test_source_config_errors_name_the_key(lookup: dict[str, Any], message: str) -> None:
    host = host_with(("directory", DirectoryPlugin()))
    settings = parse_settings({"organisation": {"number": "910077473"}, "lookup": lookup})
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_address_book(settings.lookup, host, organisation="910077473")
