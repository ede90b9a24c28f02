"""The installed plugin is found by the core and declares its channel, now with transport."""

from __future__ import annotations

import pytest
from ipunkt.plugin import ChannelConfig, ChannelContext, ConfigurationError
from ipunkt.plugins import PluginStatus, load_plugins
from ipunkt_dpv.channel import DPVChannel


def test_core_loads_the_dpv_channel() -> None:
    host = load_plugins()
    record = next(r for r in host.records if r.distribution == "ipunkt-dpv")
    assert record.status is PluginStatus.OK, record.error
    assert record.services == ["DPV"]
    info = host.channels["DPV"]
    assert info.message_types == {"arkivmelding", "digital_dpv"}
    assert info.max_size == 250 * 1024 * 1024
    assert info.has_transport
    config = info.config_schema.model_validate({"enabled": True})
    channel = info.factory(ChannelContext(organisation="910077473", config=config))
    assert isinstance(channel, DPVChannel)
    assert channel.status_poll_interval == 60.0


async def test_the_channel_refuses_to_start_without_tokens_or_its_config() -> None:
    info = load_plugins().channels["DPV"]
    assert info.factory is not None
    channel = info.factory(ChannelContext(
        organisation="910077473", config=info.config_schema.model_validate({})))
    with pytest.raises(ConfigurationError, match="Maskinporten"):
        await channel.start()
    with pytest.raises(ConfigurationError, match="DPVConfig"):
        info.factory(ChannelContext(organisation="910077473", config=ChannelConfig()))


def test_the_config_refuses_what_altinn_would() -> None:
    schema = load_plugins().channels["DPV"].config_schema
    with pytest.raises(ValueError, match="email_subject"):
        schema.model_validate({"email_subject": "x" * 129})
    with pytest.raises(ValueError, match="notification_channel"):
        schema.model_validate({"notification_channel": "Pigeon"})
