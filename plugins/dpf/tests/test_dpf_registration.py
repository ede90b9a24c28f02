"""The installed plugin is found by the core and declares its channel honestly."""

from __future__ import annotations

from ipunkt.plugins import PluginStatus, load_plugins


def test_core_loads_the_dpf_channel() -> None:
    host = load_plugins()
    record = next(r for r in host.records if r.distribution == "ipunkt-dpf")
    assert record.status is PluginStatus.OK, record.error
    assert record.services == ["DPF"]
    info = host.channels["DPF"]
    assert info.message_types == {'arkivmelding', 'arkivmelding_kvittering'}
    assert info.max_size == 1024 * 1024 * 1024
    assert info.has_transport
    assert "DPF" in host.sandbox_parts
