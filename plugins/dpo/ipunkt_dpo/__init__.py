"""eFormidling DPO (Altinn 3 broker): a channel plugin for ipunkt."""

from __future__ import annotations

from collections.abc import Callable

from ipunkt.plugin import ChannelInfo, SandboxPart, hookimpl

from ipunkt_dpo.channel import DPOChannel
from ipunkt_dpo.config import GIB, DPOConfig
from ipunkt_dpo.sandbox import setup as sandbox_setup

__version__ = "0.2.0"

SERVICE = "DPO"


@hookimpl
def register_channels(register: Callable[[ChannelInfo], None]) -> None:
    register(
        ChannelInfo(
            service=SERVICE,
            name="DPO: Altinn 3 broker, between public agencies",
            message_types=frozenset(
                {"arkivmelding", "arkivmelding_kvittering", "avtalt", "status"}
            ),
            max_size=GIB,
            config_schema=DPOConfig,
            factory=DPOChannel,
        )
    )


@hookimpl
def register_sandbox(register: Callable[[SandboxPart], None]) -> None:
    register(SandboxPart(SERVICE, sandbox_setup))
