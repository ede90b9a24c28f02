"""DPO's part of ``ipunkt sandbox``: the fake Altinn 3 broker, and A and B reachable by it."""

from __future__ import annotations

from typing import Any

from ipunkt.plugin import SandboxChannel, SandboxEnvironment

from ipunkt_dpo.client import Scope
from ipunkt_dpo.fake import AltinnTokens, FakeBroker

AREAS = (
    "administrasjon", "helseSosialOgOmsorg", "kulturIdrettOgFritid", "naturOgMiljoe",
    "naeringsutvikling", "oppvekstOgUtdanning", "planByggOgGeodata", "skatterOgAvgifter",
    "tekniskeTjenester", "trafikkReiserOgSamferdsel", "taushetsbelagt",
)
PROCESSES = (
    *(f"urn:no:difi:profile:arkivmelding:{area}:ver1.0" for area in AREAS),
    "urn:no:difi:profile:arkivmelding:response:ver1.0",
    "urn:no:difi:profile:avtalt:avtalt:ver1.0",
    "urn:no:difi:profile:avtalt:response:ver1.0",
)
DOCUMENT_TYPES = (
    "urn:no:difi:arkivmelding:xsd::arkivmelding",
    "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering",
    "urn:no:difi:avtalt:xsd::avtalt",
    "urn:no:difi:eformidling:xsd::status",
)


JOURNAL_SIZE = 1000
"""Requests the sandbox's broker remembers (its journal is for tests; this bounds its memory)."""


async def setup(environment: SandboxEnvironment) -> SandboxChannel:
    """Start the fake broker; A and B send each other arkivmelding and avtalt over it. It keeps
    its transfers in the sandbox's folder (a restarted sandbox carries on with them), and in
    memory only those under way, so that a long-running sandbox stays flat."""
    storage = environment.folder / "altinn-broker"
    storage.mkdir(parents=True, exist_ok=True)
    broker = FakeBroker(
        tokens=AltinnTokens(environment.tokens.verify_altinn_token),
        storage=storage,
        scan_seconds=0.2,
        journal_size=JOURNAL_SIZE,
        keep_finished=False,
    )
    url = await environment.serve("altinn-broker", broker.app())
    parties = environment.organisations
    receivers: list[dict[str, Any]] = [
        {
            "identifier": party.number,
            "name": party.name,
            "record": [{
                "service": "DPO",
                "processes": list(PROCESSES),
                "document_types": list(DOCUMENT_TYPES),
                "certificate_pem": party.certificate_pem,
            }],
        }
        for party in parties
    ]
    return SandboxChannel(
        service="DPO",
        channel_configs={
            party.number: {
                "broker_url": f"{url}/broker/api/v1",
                "poll_interval": 1.0,
                "trust_anchors": [str(environment.trust_anchor)],
            }
            for party in parties
        },
        receivers=receivers,
        scopes=[Scope.READ.value, Scope.WRITE.value],
        samples=[{"identifier": p.number, "name": p.name, "note": "an integration point"}
                 for p in parties],
        fakes={"altinn-broker": url},
    )
