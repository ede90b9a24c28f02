"""eFormidling DPI (digital post to citizens, and print): a channel plugin for ipunkt."""

from __future__ import annotations

from collections.abc import Callable

from ipunkt.plugin import ChannelInfo, SandboxPart, hookimpl

from ipunkt_dpi import sandbox
from ipunkt_dpi.channel import DPIChannel
from ipunkt_dpi.config import MIB, DPIConfig

__version__ = "0.2.0"

SERVICE = "DPI"


@hookimpl
def register_channels(register: Callable[[ChannelInfo], None]) -> None:
    register(
        ChannelInfo(
            service=SERVICE,
            name="DPI: digital post to citizens, and print",
            message_types=frozenset({"digital", "print"}),
            max_size=50 * MIB,
            config_schema=DPIConfig,
            factory=DPIChannel,
        )
    )


@hookimpl
def register_sandbox(register: Callable[[SandboxPart], None]) -> None:
    register(SandboxPart(SERVICE, sandbox.setup))
