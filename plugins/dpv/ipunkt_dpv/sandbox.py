"""DPV's part of ``ipunkt sandbox``: the fake Altinn correspondence and a business to write to.

A and B send digital post over DPV to a sample business. Its correspondences follow a scripted
lifecycle, published a few seconds after they are made and read some seconds later, so that
a user watching ``/api/statuses`` on A sees SENDT, then LEVERT, then LEST arrive as the
channel polls Altinn. ``generate_arkivmelding_receipts`` is on, as in the original's base
profile (production turns it off), so A's fagsystem also gets the arkivmelding_kvittering the
original makes on LEVERT. The fake takes only Altinn tokens from the sandbox's token exchange
with the scope ``eformidling:dpv``; ``GET /_fake/correspondences`` shows the business's inbox.
"""

from __future__ import annotations

from typing import Any

import structlog
from ipunkt.plugin import SandboxChannel, SandboxEnvironment

from ipunkt_dpv import SERVICE
from ipunkt_dpv.fake import API, HEALTH, INBOX, FakeCorrespondence, Lifecycle
from ipunkt_dpv.spec_check import SPEC_FILE, CorrespondenceSpec

log = structlog.get_logger(__name__)

SCOPE = "eformidling:dpv"
BUSINESS = ("310654329", "Sandkasse Bedrift AS")
"""The sample business: a synthetic organisation number (valid mod 11) with an Altinn inbox."""
LIFECYCLE = Lifecycle(publish_after=3.0, read_after=20.0)
"""Seconds until a correspondence is published, then until the business reads it."""
STATUS_POLL_INTERVAL = 1.0
"""How often the sandbox's integration points ask Altinn (production: every minute)."""

AREAS = (
    "administrasjon", "helseSosialOgOmsorg", "kulturIdrettOgFritid", "naturOgMiljoe",
    "naeringsutvikling", "oppvekstOgUtdanning", "planByggOgGeodata", "skatterOgAvgifter",
    "tekniskeTjenester", "trafikkReiserOgSamferdsel",
)
RECORDS: tuple[dict[str, Any], ...] = (
    {"service": SERVICE,
     "processes": [f"urn:no:difi:profile:arkivmelding:{area}:ver1.0" for area in AREAS],
     "document_types": ["urn:no:difi:arkivmelding:xsd::arkivmelding"],
     "resource": "eformidling-dpv-administrasjon"},
    {"service": SERVICE,
     "processes": ["urn:no:difi:profile:arkivmelding:taushetsbelagt:ver1.0"],
     "document_types": ["urn:no:difi:arkivmelding:xsd::arkivmelding"],
     "resource": "eformidling-dpv-taushetsbelagt"},
    {"service": SERVICE,
     "processes": ["urn:no:difi:profile:digitalpost:info:ver1.0",
                   "urn:no:difi:profile:digitalpost:vedtak:ver1.0"],
     "document_types": ["urn:no:difi:digitalpost:xsd:digital::digital_dpv"]},
)
"""The business's registry records, one per Altinn resource, as the Service Registry has them."""


class DPVSandbox:
    """One sandbox's DPV part; :attr:`fake` is the running fake once :meth:`setup` ran."""

    def __init__(self, lifecycle: Lifecycle = LIFECYCLE,
                 status_poll_interval: float = STATUS_POLL_INTERVAL) -> None:
        self.lifecycle = lifecycle
        self.status_poll_interval = status_poll_interval
        self.fake: FakeCorrespondence | None = None

    async def setup(self, environment: SandboxEnvironment) -> SandboxChannel:
        """Start the fake Altinn; A and B may write to the sample business over it."""
        spec_file = environment.specs / SPEC_FILE if environment.specs else None
        spec = CorrespondenceSpec.load(spec_file) if spec_file and spec_file.exists() else None
        if spec is None:
            log.info("dpv.sandbox_unchecked",
                     reason="no published specs: Altinn's rules apply, traffic is not checked "
                            "against the OpenAPI document")
        storage = environment.folder / "altinn-correspondence"
        storage.mkdir(parents=True, exist_ok=True)
        parties = environment.organisations
        number, name = BUSINESS

        def altinn_token(token: str) -> bool:
            try:
                environment.tokens.verify_altinn_token(token, scope=SCOPE)
            except Exception:  # any refusal by the verifier means: not a token Altinn takes
                return False
            return True

        # No recipients list: Altinn's register knows every organisation and person, so DPV
        # records other parts add (DPI's reserved citizen, for info) reach an inbox too.
        self.fake = FakeCorrespondence(
            spec=spec, lifecycle=self.lifecycle, storage=storage, accept_token=altinn_token)
        url = await environment.serve("altinn-correspondence", self.fake.app)
        config = {
            "correspondence_url": f"{url}{API}",
            "health_url": f"{url}{HEALTH}",
            "status_poll_interval": self.status_poll_interval,
            "generate_arkivmelding_receipts": True,
        }
        publish, read = self.lifecycle.publish_after, self.lifecycle.read_after
        note = "a business's Altinn inbox" + (
            f": published after {publish:g} s" if publish is not None else "") + (
            f", read {read:g} s later" if publish is not None and read is not None else "")
        return SandboxChannel(
            service=SERVICE,
            channel_configs={party.number: {**config, "sender_name": party.name}
                             for party in parties},
            receivers=[{"identifier": number, "name": name,
                        "record": [dict(record) for record in RECORDS]}],
            scopes=[SCOPE],
            samples=[{"identifier": number, "name": name, "note": note}],
            fakes={"altinn-correspondence": url, "altinn-inbox": f"{url}{INBOX}"},
        )
