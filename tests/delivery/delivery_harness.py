"""Helpers of the delivery tests: a gateway with the scripted channel, and test messages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import scripted
from aiohttp.test_utils import TestClient
from ipunkt.appkeys import ENGINE
from ipunkt.plugins import PluginHost, PluginRecord, PluginStatus
from ipunkt.sbd.times import now_oslo

OWN = "910077473"
RECEIVER = "910075918"
AVTALT_PROCESS = "urn:no:difi:profile:avtalt:avtalt:ver1.0"
ARKIV_PROCESS = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
RESPONSE_PROCESS = "urn:no:difi:profile:arkivmelding:response:ver1.0"

REGISTRY = f"""
[[receiver]]
identifier = "{RECEIVER}"
name = "Mottaker"

[[receiver.record]]
service = "DPT"
processes = ["{AVTALT_PROCESS}", "{ARKIV_PROCESS}", "{RESPONSE_PROCESS}"]
document_types = ["urn:no:difi:avtalt:xsd::avtalt", "urn:no:difi:arkivmelding:xsd::arkivmelding",
                  "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
                  "urn:no:difi:eformidling:xsd::status"]

[[receiver]]
identifier = "{OWN}"
name = "Oss selv"

[[receiver.record]]
service = "DPT"
processes = ["{AVTALT_PROCESS}", "{RESPONSE_PROCESS}"]
document_types = ["urn:no:difi:avtalt:xsd::avtalt",
                  "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
                  "urn:no:difi:eformidling:xsd::status"]
"""


def settings_for(folder: Path, **delivery: Any) -> dict[str, Any]:
    (folder / "registry.toml").write_text(REGISTRY)
    fast = {
        "retry_initial_seconds": 0.05,
        "retry_multiplier": 2,
        "retry_max_seconds": 0.2,
        "retry_jitter": 0,
        "outbox_poll_seconds": 0.05,
        "sweep_seconds": 0.1,
        "lease_seconds": 5,
        "send_timeout_seconds": 2,
        "shutdown_grace_seconds": 1,
    }
    return {
        "organisation": {"number": OWN},
        "store": {"path": str(folder / "data")},
        "lookup": {"sources": ["local"], "local": {"path": str(folder / "registry.toml")}},
        "delivery": {**fast, **delivery},
        "channels": {"dpt": {"enabled": True}},
    }


def avtalt(script: str = "ok", *, message_id: str | None = None,
           expires: datetime | None = None, receiver: str = RECEIVER) -> dict[str, Any]:
    """An ``avtalt`` SBD whose identifier is the scripted channel's script."""
    scope: dict[str, Any] = {
        "type": "ConversationId",
        "instanceIdentifier": str(uuid.uuid4()),
        "identifier": AVTALT_PROCESS,
    }
    if expires is not None:
        scope["scopeInformation"] = [{"expectedResponseDateTime": expires.isoformat()}]
    return {
        "standardBusinessDocumentHeader": {
            "headerVersion": "1.0",
            "sender": [{"identifier": {"value": f"0192:{OWN}",
                                       "authority": "iso6523-actorid-upis"}}],
            "receiver": [{"identifier": {"value": f"0192:{receiver}",
                                         "authority": "iso6523-actorid-upis"}}],
            "documentIdentification": {
                "standard": "urn:no:difi:avtalt:xsd::avtalt",
                "typeVersion": "1.0",
                "instanceIdentifier": message_id or str(uuid.uuid4()),
                "type": "avtalt",
            },
            "businessScope": {"scope": [scope]},
        },
        "avtalt": {"identifier": script, "content": {"hello": "world"}},
    }


@dataclass
class Gateway:
    client: TestClient
    remote: scripted.Remote
    app: Any

    async def send(self, sbd: dict[str, Any]) -> str:
        response = await self.client.post("/api/messages/out", json=sbd)
        assert response.status == 200, await response.text()
        message_id = sbd["standardBusinessDocumentHeader"]["documentIdentification"][
            "instanceIdentifier"]
        response = await self.client.post(f"/api/messages/out/{message_id}")
        assert response.status == 200, await response.text()
        return message_id

    async def statuses(self, message_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/statuses/{message_id}", params={"size": 100})
        return list((await response.json())["content"])

    async def status_names(self, message_id: str) -> list[str]:
        return [s["status"] for s in await self.statuses(message_id)]

    async def wait_for(self, message_id: str, status: str, timeout: float = 10) -> list[str]:
        import asyncio

        deadline = now_oslo() + timedelta(seconds=timeout)
        while now_oslo() < deadline:
            names = await self.status_names(message_id)
            if status in names:
                return names
            await asyncio.sleep(0.05)
        raise AssertionError(f"{message_id} never reached {status}: {names}")

    @property
    def engine(self) -> Any:
        return self.app[ENGINE]


def plugin_host() -> PluginHost:
    host = PluginHost()
    host.add(scripted, PluginRecord("scripted", "scripted", "1.0", PluginStatus.OK))
    host.collect()
    return host
