"""The channels this gateway runs: the enabled ones among those the plugins registered.

Routing ends here: a service identifier becomes a running :class:`~ipunkt.plugin.Channel`, or
a clear :class:`~ipunkt.errors.ServiceNotEnabled` when the channel is switched off, missing or
has no transport yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from ipunkt.errors import ServiceNotEnabled
from ipunkt.plugin import Channel, ChannelConfig, ChannelContext, ChannelInfo, TokenProvider

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChannelState:
    """One registered channel and what became of it here."""

    info: ChannelInfo
    config: ChannelConfig
    channel: Channel | None

    @property
    def usable(self) -> bool:
        return self.channel is not None

    @property
    def transport(self) -> str:
        return "implemented" if self.info.has_transport else "not implemented"


class ChannelSet:
    """Creates the enabled channels, starts and stops them, and resolves services to them."""

    def __init__(
        self,
        organisation: str,
        infos: Mapping[str, ChannelInfo],
        configs: Mapping[str, ChannelConfig],
        *,
        key: object = None,
        tokens: TokenProvider | None = None,
        organisation_name: str = "",
    ) -> None:
        self.states: dict[str, ChannelState] = {}
        for service, info in infos.items():
            config = configs.get(service) or info.config_schema()
            channel = None
            if config.enabled and info.factory is not None:
                context = ChannelContext(
                    organisation=organisation,
                    config=config,
                    log=structlog.get_logger(f"ipunkt.channel.{service}").bind(channel=service),
                    key=key,
                    tokens=tokens,
                    organisation_name=organisation_name,
                )
                channel = info.factory(context)
            self.states[service] = ChannelState(info, config, channel)

    def channel_for(self, service: str) -> Channel:
        """The running channel for ``service``, or ServiceNotEnabled saying why there is none."""
        state = self.states.get(service)
        if state is None:
            raise ServiceNotEnabled(f"Service {service} is not enabled: no plugin provides it")
        if not state.info.has_transport:
            raise ServiceNotEnabled(
                f"Service {service} is not enabled: its plugin has no transport (not implemented)"
            )
        if state.channel is None:
            raise ServiceNotEnabled(f"Service {service} is not enabled")
        return state.channel

    def enabled(self) -> list[str]:
        return [service for service, state in self.states.items() if state.usable]

    async def start(self) -> None:
        for service, state in self.states.items():
            if state.channel is not None:
                await state.channel.start()
                log.info("channel started", channel=service)

    async def stop(self) -> None:
        for service, state in self.states.items():
            if state.channel is not None:
                try:
                    await state.channel.stop()
                except Exception:  # one channel's failing stop must not keep others running
                    log.exception("channel failed to stop", channel=service)
