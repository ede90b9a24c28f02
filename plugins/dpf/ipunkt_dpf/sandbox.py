"""DPF's part of ``ipunkt sandbox``: the fake SvarUt and SvarInn, and a municipality that replies.

A and B each get a SvarUt account and a SvarInn mailbox, so both can send and receive over DPF.
The registry routes one receiver to DPF: a sample municipality with an organisation number of
its own, whose records carry SvarUt's certificate (DPF seals documents to SvarUt, not to the
receiver). A and B get no DPF records: the Service Registry gives each process one channel, and
the core takes the first record that accepts the document type, so a DPF record for A or B
would take them off the channel the sandbox routes them by between themselves (DPO).

The municipality is played by the sandbox (:class:`ipunkt_dpf.fake.municipality.Municipality`).
Its Maskinporten client is not the sandbox's to register, so SvarUt knows its bearer token as
the sandbox's own; A's and B's tokens come from the sandbox's Maskinporten with ``ks:fiks``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from cryptography import x509
from ipunkt.package.keys import load_key
from ipunkt.plugin import SandboxChannel, SandboxEnvironment

from ipunkt_dpf.client import FIKS_SCOPE
from ipunkt_dpf.fake.municipality import Municipality
from ipunkt_dpf.fake.service import KS_ORGANISATION, FakeSvarUt

MUNICIPALITY = "910076787"
MUNICIPALITY_NAME = "Sandkasse kommune"
MUNICIPALITY_ADDRESS = ("Rådhusplassen 1", "0037", "Oslo")
AREAS = (
    "administrasjon", "helseSosialOgOmsorg", "kulturIdrettOgFritid", "naturOgMiljoe",
    "naeringsutvikling", "oppvekstOgUtdanning", "planByggOgGeodata", "skatterOgAvgifter",
    "tekniskeTjenester", "trafikkReiserOgSamferdsel", "taushetsbelagt",
)
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
RESPONSE_PROCESS = "urn:no:difi:profile:arkivmelding:response:ver1.0"
RECEIPT = "urn:no:difi:arkivmelding:xsd::arkivmelding_kvittering"
POLL_SECONDS = 1.0
"""How often the integration points ask SvarInn and SvarUt (the original: 15 min, 1 min)."""


class PartyToken:
    """The bearer token of a party the sandbox plays itself, which its SvarUt accepts."""

    def __init__(self) -> None:
        self.value = secrets.token_urlsafe(32)

    async def token(
        self, scopes: Sequence[str], *, altinn: bool = False, organisation: str | None = None
    ) -> str:
        return self.value


async def setup(environment: SandboxEnvironment) -> SandboxChannel:
    """Start SvarUt/SvarInn and the municipality; give A and B accounts and mailboxes."""
    svarut_party = environment.issue(KS_ORGANISATION, "KS SvarUt")
    municipality_party = environment.issue(MUNICIPALITY, MUNICIPALITY_NAME)
    municipality_token = PartyToken()

    def token_check(token: str) -> bool:
        if secrets.compare_digest(token, municipality_token.value):
            return True
        environment.tokens.verify_access_token(token, scope=FIKS_SCOPE)  # raises saying why
        return True

    fake = FakeSvarUt(environment.folder / "svarut", key=load_key(svarut_party.key_file),
                      token_check=token_check)
    parties = environment.organisations
    configs = {}
    for party in parties:
        account = fake.add_account(party.number, name=party.name)
        certificate = x509.load_pem_x509_certificate(party.certificate_pem.encode())
        mailbox = fake.add_mailbox(party.number, certificate, name=party.name)
        work = environment.folder / f"dpf-work-{party.number}"
        work.mkdir(parents=True, exist_ok=True)
        configs[party.number] = {
            "account_id": account.konto_id,
            "integration_id": account.integration_id,
            "integration_password": account.integration_password,
            "svarinn_username": mailbox.username,
            "svarinn_password": mailbox.password,
            "poll_interval": POLL_SECONDS,
            "status_poll_interval": POLL_SECONDS,
            "work_dir": str(work),
        }
    municipality_key = load_key(municipality_party.key_file)
    account = fake.add_account(MUNICIPALITY, name=MUNICIPALITY_NAME, address=MUNICIPALITY_ADDRESS)
    mailbox = fake.add_mailbox(MUNICIPALITY, municipality_key.certificate, name=MUNICIPALITY_NAME)
    url = await environment.serve("svarut", fake.app())
    for config in configs.values():
        config["svarut_url"] = url
    municipality = Municipality(
        name=MUNICIPALITY_NAME, address=MUNICIPALITY_ADDRESS, key=municipality_key,
        account=account, mailbox=mailbox, svarut_url=url, svarut_certificate=fake.certificate,
        tokens=municipality_token, work_dir=environment.folder / "dpf-municipality",
    )
    municipality_url = await environment.serve("dpf-municipality", municipality.app())
    line, postal_code, postal_area = MUNICIPALITY_ADDRESS
    receiver = {
        "identifier": MUNICIPALITY,
        "name": MUNICIPALITY_NAME,
        "entity_type": "KOMM",
        "postal_address": {"address": line, "postal_code": postal_code,
                           "postal_area": postal_area, "country": "NO"},
        "record": [
            {"service": "DPF",
             "processes": [f"urn:no:difi:profile:arkivmelding:{area}:ver1.0" for area in AREAS],
             "document_types": [ARKIVMELDING], "certificate_pem": fake.certificate_pem,
             "security_level": 4},
            {"service": "DPF", "processes": [RESPONSE_PROCESS], "document_types": [RECEIPT],
             "certificate_pem": fake.certificate_pem, "security_level": 4},
        ],
    }
    return SandboxChannel(
        service="DPF",
        channel_configs=configs,
        receivers=[receiver],
        scopes=[FIKS_SCOPE],
        samples=[{
            "identifier": MUNICIPALITY, "name": MUNICIPALITY_NAME,
            "note": "a municipality on SvarUt/SvarInn: answers each arkivmelding with a letter; "
                    "refuses documents not in an archival format (FEIL)",
        }],
        fakes={"svarut": url, "svarinn": f"{url}/tjenester/svarinn",
               "dpf-municipality": municipality_url},
    )
