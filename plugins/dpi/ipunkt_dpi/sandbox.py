"""DPI's part of ``ipunkt sandbox``: the fake access point, playing the mailbox provider and the
print provider, and sample citizens to send digital post and letters to.

The citizens have synthetic fødselsnumre (Skatteetaten's Tenor form, month + 80), so the
part asks the sandbox to let the integration points accept them. Their registry records are
what the Service Registry answers after asking the contact register (KRR), as the original's
rules have it: a citizen with an active mailbox gets a DPI ``digital`` record sealed to the
mailbox provider; a reserved citizen gets, for ``vedtak``, a DPI ``print`` record sealed to
the print provider, with the address from the population register and a return address; and
for ``info`` that print record beside a DPV ``digital_dpv`` record, the sender to choose. One
more reserved citizen has moved: letters to her come back (a returned-mail receipt).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ipunkt.package.keys import load_key
from ipunkt.package.trust import TrustStore
from ipunkt.plugin import SandboxChannel, SandboxEnvironment

from ipunkt_dpi.client import SCOPE
from ipunkt_dpi.fake import DEFAULT_MAILBOX, DEFAULT_PRINT, FakeAccessPoint, Step

VEDTAK = "urn:no:difi:profile:digitalpost:vedtak:ver1.0"
INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"
DIGITAL = "urn:no:difi:digitalpost:xsd:digital::digital"
PRINT = "urn:no:difi:digitalpost:xsd:fysisk::print"
DIGITAL_DPV = "urn:no:difi:digitalpost:xsd:digital::digital_dpv"
STEP_SECONDS = 0.5
"""Seconds between the fake's scripted steps: slow enough to watch the statuses change."""
POLL_SECONDS = 1.0
"""The integration points' receipt polling interval in the sandbox."""
BASE_PATH = "/dpi"


@dataclass(frozen=True)
class Citizen:
    """A sample receiver: a synthetic fødselsnummer and what the registries know of them."""

    number: str
    name: str
    note: str
    street: str
    postal_code: str
    postal_area: str
    mailbox_address: str | None = None
    """Their address at the mailbox provider; None: reserved against digital post."""


DIGITAL_CITIZEN = Citizen(
    "04898510196",
    "Kari Digital",
    "digital mailbox: digital (LEVERT, LEST if asked)",
    "Storgata 1",
    "0155",
    "OSLO",
    mailbox_address="kari.digital#SBX1",
)
RESERVED_CITIZEN = Citizen(
    "17887210284",
    "Per Reservert",
    "reserved: print (LEVERT on the print receipt); for info also digital_dpv over DPV",
    "Fjordvegen 12",
    "6863",
    "LEIKANGER",
)
MOVED_CITIZEN = Citizen(
    "29916310143",
    "Rita Retur",
    "reserved, moved away: print comes back (FEIL)",
    "Gamleveien 3",
    "9008",
    "TROMSØ",
)
CITIZENS = (DIGITAL_CITIZEN, RESERVED_CITIZEN, MOVED_CITIZEN)


async def setup(environment: SandboxEnvironment) -> SandboxChannel:
    """Start the fake access point with its providers; A and B send to the sample citizens."""
    mailbox = environment.issue(DEFAULT_MAILBOX, "Sandkasse Postkasse")
    printer = environment.issue(DEFAULT_PRINT, "Sandkasse Utskrift")
    fake = FakeAccessPoint(
        mailbox=load_key(mailbox.key_file),
        printer=load_key(printer.key_file),
        sender_trust=TrustStore.load(environment.trust_anchor),
        specs=environment.specs,
        step_delay=STEP_SECONDS,
        base_path=BASE_PATH,
        storage=environment.folder / "dpi-access-point",
        token_verifier=environment.tokens.verify_access_token,
    )
    fake.script(
        MOVED_CITIZEN.name,
        [
            Step("SENDT", STEP_SECONDS),
            Step("mottakskvittering", STEP_SECONDS),
            Step("returpostkvittering", STEP_SECONDS),
        ],
    )
    url = await environment.serve("dpi-access-point", fake.app())
    print_certificate = environment.folder / "dpi-print-provider.pem"
    print_certificate.write_text(printer.certificate_pem)
    sender = environment.organisations[0]
    providers = {
        "mailbox": (mailbox.number, mailbox.certificate_pem),
        "print": (printer.number, printer.certificate_pem),
    }
    return SandboxChannel(
        service="DPI",
        channel_configs={
            party.number: {
                "access_point_url": f"{url}{BASE_PATH}",
                "trust_anchors": [str(environment.trust_anchor)],
                "receipt_poll_interval": POLL_SECONDS,
                "print_provider": printer.number,
                "print_certificate": str(print_certificate),
            }
            for party in environment.organisations
        },
        receivers=[_receiver(c, providers, sender.name) for c in CITIZENS],
        scopes=[SCOPE],
        samples=[{"identifier": c.number, "name": c.name, "note": c.note} for c in CITIZENS],
        fakes={"dpi-access-point": url, "dpi-shipments": f"{url}/_fake/shipments"},
        settings={"lookup": {"allow_synthetic_identifiers": True}},
    )


def _receiver(
    citizen: Citizen, providers: Mapping[str, tuple[str, str]], return_name: str
) -> dict[str, Any]:
    """The citizen's ``[[receiver]]`` table: the records the Service Registry would answer."""
    if citizen.mailbox_address is not None:
        number, certificate = providers["mailbox"]
        records: list[dict[str, Any]] = [
            {
                "service": "DPI",
                "processes": [VEDTAK, INFO],
                "document_types": [DIGITAL],
                "certificate_pem": certificate,
                "mailbox_supplier": number,
                "mailbox_address": citizen.mailbox_address,
                "email": f"{citizen.name.lower().replace(' ', '.')}@example.org",
                "mobile": "+4799999999",
                "notifiable": True,
            }
        ]
    else:
        number, certificate = providers["print"]
        printed = {
            "service": "DPI",
            "processes": [VEDTAK, INFO],
            "document_types": [PRINT],
            "certificate_pem": certificate,
            "mailbox_supplier": number,
            "physical_post": True,
            "post_address": {
                "name": citizen.name,
                "street": citizen.street,
                "postal_code": citizen.postal_code,
                "postal_area": citizen.postal_area,
                "country": "NORGE",
            },
            "return_address": {
                "name": return_name,
                "street": "Postboks 1",
                "postal_code": "0101",
                "postal_area": "OSLO",
                "country": "NORGE",
            },
        }
        records = [
            printed,
            {"service": "DPV", "processes": [INFO], "document_types": [DIGITAL_DPV]},
        ]
    return {"identifier": citizen.number, "name": citizen.name, "record": records}
