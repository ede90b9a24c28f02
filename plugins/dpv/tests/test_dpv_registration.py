"""The installed plugin is found by the core and declares its channel honestly."""

from __future__ import annotations

from ipunkt.plugins import PluginStatus, load_plugins


def test_core_loads_the_dpv_channel() -> None:
    host = load_plugins()
    record = next(r for r in host.records if r.distribution == "ipunkt-dpv")
    assert record.status is PluginStatus.OK, record.error
    assert record.services == ["DPV"]
    info = host.channels["DPV"]
    assert info.message_types == {'arkivmelding', 'digital_dpv'}
    assert info.max_size == 250 * 1024 * 1024
    assert not info.has_transport
