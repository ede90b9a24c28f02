from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent))

import scripted
from delivery_harness import Gateway, plugin_host, settings_for
from ipunkt.app import create_app
from ipunkt.config import channel_configs, parse_settings

MakeGateway = Callable[..., Any]


@pytest.fixture
def remote() -> scripted.Remote:
    scripted.REMOTE.__init__()  # type: ignore[misc]
    return scripted.REMOTE


@pytest.fixture
def make_gateway(tmp_path: Path, aiohttp_client: Any, remote: scripted.Remote) -> MakeGateway:
    async def make(**delivery: Any) -> Gateway:
        raw = settings_for(tmp_path, **delivery)
        settings = parse_settings(raw)
        host = plugin_host()
        app = create_app(settings, host, channel_configs(settings, host))
        client = await aiohttp_client(app)
        return Gateway(client, remote, app)

    return make
