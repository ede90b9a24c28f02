"""eFormidling DPV (Altinn 3 correspondence): a channel plugin for ipunkt."""

from __future__ import annotations

from collections.abc import Callable

from ipunkt.plugin import ChannelInfo, SandboxChannel, SandboxEnvironment, SandboxPart, hookimpl

from ipunkt_dpv.channel import DPVChannel
from ipunkt_dpv.config import DPVConfig

__version__ = "0.3.0"

SERVICE = "DPV"


@hookimpl
def register_channels(register: Callable[[ChannelInfo], None]) -> None:
    register(
        ChannelInfo(
            service=SERVICE,
            name="DPV: Altinn 3 correspondence, digital post to businesses",
            message_types=frozenset({"arkivmelding", "digital_dpv"}),
            max_size=250 * 1024 * 1024,
            config_schema=DPVConfig,
            factory=DPVChannel,
        )
    )


async def sandbox_setup(environment: SandboxEnvironment) -> SandboxChannel:
    """DPV's part of ``ipunkt sandbox``; the fake is imported only when a sandbox starts."""
    from ipunkt_dpv.sandbox import DPVSandbox

    return await DPVSandbox().setup(environment)


@hookimpl
def register_sandbox(register: Callable[[SandboxPart], None]) -> None:
    register(SandboxPart(SERVICE, sandbox_setup))
