"""Routing ends at a running channel, or at a clear refusal."""

from __future__ import annotations

import pytest
from ipunkt.app import create_app
from ipunkt.channels import ChannelSet
from ipunkt.config import parse_settings
from ipunkt.errors import ServiceNotEnabled
from ipunkt.plugin import (
    Channel,
    ChannelConfig,
    ChannelHealth,
    ChannelInfo,
    OutgoingMessage,
    SendResult,
)
from ipunkt.plugins import PluginHost, PluginRecord, PluginStatus


class Loopback(Channel):
    async def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult()

    async def health(self) -> ChannelHealth:
        return ChannelHealth(ok=False, detail="remote answers 503")


WITH_TRANSPORT = ChannelInfo(
    service="DPT", name="test", message_types=frozenset({"avtalt"}), max_size=10,
    factory=Loopback,
)
WITHOUT_TRANSPORT = ChannelInfo(
    service="DPN", name="no transport", message_types=frozenset({"avtalt"}), max_size=10,
)
INFOS = {"DPT": WITH_TRANSPORT, "DPN": WITHOUT_TRANSPORT}
ON = ChannelConfig(enabled=True)


def test_an_enabled_channel_with_a_transport_is_routed_to() -> None:
    channels = ChannelSet("910077473", INFOS, {"DPT": ON, "DPN": ON})
    channel = channels.channel_for("DPT")
    assert isinstance(channel, Loopback)
    assert channel.context.organisation == "910077473"
    assert channels.enabled() == ["DPT"]


@pytest.mark.parametrize(
    ("service", "configs", "message"),
    [
        ("DPN", {"DPN": ON},
         "Service DPN is not enabled: its plugin has no transport (not implemented)"),
        ("DPT", {}, "Service DPT is not enabled"),
        ("DPQ", {}, "Service DPQ is not enabled: no plugin provides it"),
    ],
)
def test_refusals_say_why(service: str, configs: dict, message: str) -> None:
    with pytest.raises(ServiceNotEnabled) as caught:
        ChannelSet("910077473", INFOS, configs).channel_for(service)
    assert str(caught.value) == message
    body = caught.value.body("/api/messages/out")
    assert body["status"] == 400
    assert body["exception"] == (
        "no.difi.meldingsutveksling.exceptions.ServiceNotEnabledException"
    )


async def test_health_shows_plugins_and_channels(aiohttp_client) -> None:
    host = PluginHost()
    host.add(object(), PluginRecord("quiet", "quiet-plugin", "1.0", PluginStatus.OK))
    host.records.append(
        PluginRecord("broken", "broken-plugin", "0.1", PluginStatus.FAILED, error="import failed")
    )
    host.channels.update(INFOS)
    settings = parse_settings({"organisation": {"number": "910077473"}})
    client = await aiohttp_client(create_app(settings, host, {"DPT": ON}))
    response = await client.get("/manage/health")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "UP"
    assert body["components"]["plugins"]["status"] == "DEGRADED"
    assert body["components"]["plugins"]["details"]["broken"]["error"] == "import failed"
    assert body["components"]["channels"]["details"] == {
        "DPT": {"enabled": True, "transport": "implemented", "status": "DOWN",
                "detail": "remote answers 503"},
        "DPN": {"enabled": False, "transport": "not implemented"},
    }
    for probe in ("liveness", "readiness"):
        response = await client.get(f"/manage/health/{probe}")
        assert (response.status, await response.json()) == (200, {"status": "UP"})


async def test_unknown_paths_and_methods_get_the_error_body(aiohttp_client) -> None:
    settings = parse_settings({"organisation": {"number": "910077473"}})
    client = await aiohttp_client(create_app(settings, PluginHost(), {}))
    response = await client.get("/api/nothing-here")
    body = await response.json()
    assert (response.status, body["status"], body["error"]) == (404, 404, "Not Found")
    assert body["path"] == "/api/nothing-here"
    response = await client.post("/manage/health")
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert (await response.json())["error"] == "Method Not Allowed"
