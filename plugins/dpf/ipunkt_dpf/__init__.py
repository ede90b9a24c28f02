"""eFormidling DPF (KS Fiks SvarUt/SvarInn): a channel plugin for ipunkt."""

from __future__ import annotations

from collections.abc import Callable

from ipunkt.plugin import ChannelInfo, SandboxPart, hookimpl

from ipunkt_dpf.channel import SERVICE, DPFChannel
from ipunkt_dpf.config import DPFConfig
from ipunkt_dpf.sandbox import setup as sandbox_setup

__version__ = "0.3.0"


@hookimpl
def register_channels(register: Callable[[ChannelInfo], None]) -> None:
    register(
        ChannelInfo(
            service=SERVICE,
            name="DPF: KS Fiks SvarUt and SvarInn, for municipalities",
            message_types=frozenset({"arkivmelding", "arkivmelding_kvittering"}),
            max_size=1024 * 1024 * 1024,
            config_schema=DPFConfig,
            factory=DPFChannel,
        )
    )


@hookimpl
def register_sandbox(register: Callable[[SandboxPart], None]) -> None:
    register(SandboxPart(SERVICE, sandbox_setup))
