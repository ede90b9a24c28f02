"""The installed plugin is found by the core and declares its channel honestly."""

from __future__ import annotations

from ipunkt.plugins import PluginStatus, load_plugins
from ipunkt_dpo.channel import DPOChannel


def test_core_loads_the_dpo_channel() -> None:
    host = load_plugins()
    record = next(r for r in host.records if r.distribution == "ipunkt-dpo")
    assert record.status is PluginStatus.OK, record.error
    assert record.services == ["DPO"]
    info = host.channels["DPO"]
    assert info.message_types == {"arkivmelding", "arkivmelding_kvittering", "avtalt", "status"}
    assert info.max_size == 1024 * 1024 * 1024
    assert info.has_transport
    assert info.factory is DPOChannel
