"""The local registry file: what it accepts, what it refuses, and how it answers."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ipunkt.lookup.registry import LocalRegistry, RegistryError, load_registry
from ipunkt.lookup.source import LookupNotFound, LookupQuery, LookupRejected

ADMIN = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
PLAN = "urn:no:difi:profile:arkivmelding:planByggOgGeodata:ver1.0"
ARKIVMELDING = "urn:no:difi:arkivmelding:xsd::arkivmelding"
INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"
DIGITAL = "urn:no:difi:digitalpost:xsd:digital::digital"
PRINT = "urn:no:difi:digitalpost:xsd:fysisk::print"


def pem(common_name: str = "Test receiver") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


FULL = """
[[receiver]]
identifier = "0192:910075918"
name = "Eksempel kommune"
postal_address.address = "Postboks 1"
postal_address.postal_code = "1337"
postal_address.postal_area = "SANDVIKA"
postal_address.country = "Norge"

[[receiver.record]]
service = "dpo"
processes = ["@admin@", "@plan@"]
document_types = ["@arkivmelding@"]
endpoint = "http://broker.example"
certificate = "certs/910075918.pem"
service_code = "4192"
service_edition_code = "270815"

[[receiver.record]]
service = "DPF"
processes = ["@admin@"]
document_types = ["@arkivmelding@"]
security_level = 3

[[receiver]]
identifier = "09118532322"

[[receiver.record]]
service = "DPI"
processes = ["@info@"]
document_types = ["@digital@", "@print@"]
certificate = "certs/910075918.pem"
mailbox_supplier = "987464291"
mailbox_address = "kari#1A2B"
mobile = "+4799999999"
email = "kari@example.no"
notifiable = true
language = "NB"
post_address.name = "Kari Nordmann"
post_address.street = "Utsikten 1;Leil. 2"
post_address.postal_code = "2900"
post_address.postal_area = "FJELLHEIMEN"
post_address.country = "Norway"

[[receiver.record]]
service = "DPI"
processes = ["@info@"]
document_types = ["@print@"]
physical_post = true
mailbox_supplier = "984661185"
"""
for placeholder, value in {
    "@admin@": ADMIN, "@plan@": PLAN, "@arkivmelding@": ARKIVMELDING, "@info@": INFO,
    "@digital@": DIGITAL, "@print@": PRINT,
}.items():
    FULL = FULL.replace(placeholder, value)


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "910075918.pem").write_text(pem("Eksempel kommune"))
    path = tmp_path / "registry.toml"
    path.write_text(FULL)
    return path


@pytest.fixture
def registry(registry_file: Path) -> LocalRegistry:
    loaded = LocalRegistry(registry_file)
    loaded.load()
    return loaded


def answer(registry: LocalRegistry, identifier: str, **query: object) -> list[tuple[str, str]]:
    question = LookupQuery(identifier, **query)  # type: ignore[arg-type]
    resource = registry.answer(question, beta_features=False)
    return [(r.service_identifier, r.process) for r in resource.service_records]


def test_a_record_with_several_processes_becomes_one_record_per_process(
    registry: LocalRegistry, registry_file: Path
) -> None:
    resource = registry.answer(LookupQuery("910075918"), beta_features=False)
    assert [(r.service_identifier, r.process) for r in resource.service_records] == [
        ("DPO", ADMIN), ("DPO", PLAN), ("DPF", ADMIN)
    ]
    dpo = resource.service_records[0]
    assert dpo.organisation_number == "910075918"
    assert dpo.pem_certificate == (registry_file.parent / "certs/910075918.pem").read_text()
    assert (dpo.service.endpoint_url, dpo.service.service_code) == ("http://broker.example", "4192")
    assert resource.service_records[2].service.security_level == 3
    assert resource.service_records[2].certificate_pem() is None
    info = resource.info_record
    assert info is not None and info.organization_name == "Eksempel kommune"
    assert info.entity_type is not None and info.entity_type.name == "ORGL"
    assert info.postadresse is not None and info.postadresse.postnummer == "1337"


def test_dpi_fields_become_the_registry_fields(registry: LocalRegistry) -> None:
    resource = registry.answer(LookupQuery("09118532322"), beta_features=False)
    digital, printed = resource.service_records
    wire = digital.to_wire()
    assert {k: wire[k] for k in (
        "orgnrPostkasse", "postkasseAdresse", "mobilnummer", "kanVarsles", "epostAdresse",
        "fysiskPost", "spraak",
    )} == {
        "orgnrPostkasse": "987464291", "postkasseAdresse": "kari#1A2B",
        "mobilnummer": "+4799999999", "kanVarsles": True, "epostAdresse": "kari@example.no",
        "fysiskPost": False, "spraak": "NB",
    }
    assert wire["postAddress"] == {
        "name": "Kari Nordmann", "street": "Utsikten 1;Leil. 2", "postalCode": "2900",
        "postalArea": "FJELLHEIMEN", "country": "Norway",
    }
    assert wire["returnAddress"] == {
        "name": "", "street": "", "postalCode": "", "postalArea": "", "country": ""
    }
    assert printed.fysisk_post is True
    assert resource.info_record is not None and resource.info_record.is_citizen


def test_process_lookups_and_their_not_found(registry: LocalRegistry) -> None:
    assert answer(registry, "910075918", process=PLAN) == [("DPO", PLAN)]
    with pytest.raises(LookupNotFound) as unknown_process:
        answer(registry, "910075918", process="urn:no:difi:profile:avtalt:avtalt:ver1.0")
    assert unknown_process.value.identifier_known
    assert "Process urn:no:difi:profile:avtalt:avtalt:ver1.0 not found for receiver" in str(
        unknown_process.value
    )
    with pytest.raises(LookupNotFound) as unknown_receiver:
        answer(registry, "974720760", process=ADMIN)
    assert not unknown_receiver.value.identifier_known
    assert str(unknown_receiver.value) == "Entity with identifier '974720760' not found."


def test_security_level_leaves_out_lower_records_and_refuses_when_none_is_left(
    registry: LocalRegistry,
) -> None:
    assert answer(registry, "910075918", process=ADMIN, security_level=3) == [
        ("DPO", ADMIN), ("DPF", ADMIN)
    ]
    assert answer(registry, "910075918", process=ADMIN, security_level=4) == [("DPO", ADMIN)]


def test_a_security_level_no_record_has_is_refused(registry_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "levels.toml"
    path.write_text(
        f'[[receiver]]\nidentifier = "910075924"\n[[receiver.record]]\nservice = "DPF"\n'
        f'processes = ["{ADMIN}"]\ndocument_types = ["{ARKIVMELDING}"]\nsecurity_level = 3\n'
    )
    registry = LocalRegistry(path)
    registry.load()
    with pytest.raises(LookupRejected, match="security level not found") as caught:
        answer(registry, "910075924", security_level=4)
    assert caught.value.status == 400


def test_print_false_leaves_out_print_records(registry: LocalRegistry) -> None:
    assert len(answer(registry, "09118532322")) == 2
    assert len(answer(registry, "09118532322", print=False)) == 1


def test_beta_services_need_the_beta_flag(tmp_path: Path) -> None:
    path = tmp_path / "dph.toml"
    path.write_text(
        '[[receiver]]\nidentifier = "30878199614"\n[[receiver.record]]\nservice = "DPH"\n'
        'processes = ["urn:no:difi:profile:helse:helse:ver1.0"]\n'
        'document_types = ["urn:no:difi:digitalpost:json:schema::dialogmelding"]\n'
        'organisation_number = "310673145"\n'
        'extra = { herIdLevel1 = "8143541", patient = { fnr = "30878199614" } }\n'
    )
    registry = LocalRegistry(path)
    registry.load()
    assert registry.answer(LookupQuery("30878199614"), beta_features=False).service_records == []
    record = registry.answer(LookupQuery("30878199614"), beta_features=True).service_records[0]
    assert record.organisation_number == "310673145"
    assert record.to_wire()["herIdLevel1"] == "8143541"
    assert record.to_wire()["patient"] == {"fnr": "30878199614"}


CERTIFICATE = 'certificate = "certs/910075918.pem"\nservice_code'
ONLY_PRINT = f'processes = ["{INFO}"]\ndocument_types = ["{PRINT}"]'
NOT_PEM = '"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"'


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ('service = "DPF"', 'servcie = "DPF"', "receiver.0.record.1.servcie: unknown key"),
        (
            'service = "DPF"',
            'service = "D P F"',
            "receiver.0.record.1.service: Value error, must be a service identifier",
        ),
        (
            'identifier = "09118532322"',
            'identifier = "0911853232"',
            "receiver.1.identifier: Value error, expected an organisation number",
        ),
        (
            "security_level = 3",
            "security_level = 5",
            "receiver.0.record.1.security_level: Input should be less than or equal to 4",
        ),
        (
            ONLY_PRINT,
            f'processes = []\ndocument_types = ["{PRINT}"]',
            "receiver.1.record.1.processes: List should have at least 1 item",
        ),
        (
            'identifier = "09118532322"',
            'identifier = "910075918"',
            "receiver.1: identifier 910075918 is listed twice",
        ),
        (
            CERTIFICATE,
            'certificate = "certs/missing.pem"\nservice_code',
            "receiver.0.record.0.certificate: cannot read",
        ),
        (
            CERTIFICATE,
            f"certificate_pem = {NOT_PEM}\nservice_code",
            "receiver.0.record.0: not a PEM X.509 certificate",
        ),
        (
            CERTIFICATE,
            CERTIFICATE.replace("\n", '\ncertificate_pem = "x"\n'),
            "give either certificate (a file) or certificate_pem, not both",
        ),
        ("[[receiver]]", "[[receiver]", "not valid TOML"),
    ],
)
def test_mistakes_are_refused_with_the_key_and_the_fault(
    registry_file: Path, replace: str, by: str, message: str
) -> None:
    text = registry_file.read_text()
    assert replace in text
    registry_file.write_text(text.replace(replace, by, 1))
    with pytest.raises(RegistryError) as caught:
        load_registry(registry_file)
    assert str(caught.value).startswith(f"{registry_file}: ")
    assert message in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no such registry file"):
        LocalRegistry(tmp_path / "nowhere.toml").load()


async def test_an_edited_file_is_read_again_and_a_broken_edit_is_ignored(
    registry: LocalRegistry, registry_file: Path
) -> None:
    assert len((await registry.lookup(LookupQuery("910075918"))).service_records) == 3
    text = registry_file.read_text()
    registry_file.write_text(text.replace('service = "DPF"', 'service = "DPV"'))
    os.utime(registry_file, ns=(1, 1))
    assert await services(registry) == ["DPO", "DPO", "DPV"]
    registry_file.write_text(text.replace('service = "DPF"', "service = ["))
    os.utime(registry_file, ns=(2, 2))
    assert await services(registry) == ["DPO", "DPO", "DPV"]


async def services(registry: LocalRegistry) -> list[str]:
    answer = await registry.lookup(LookupQuery("910075918"))
    return [record.service_identifier for record in answer.service_records]


async def test_info_records(registry: LocalRegistry) -> None:
    info = await registry.info("09118532322")
    assert info.to_wire() == {"identifier": "09118532322", "entityType": {"name": "citizen"}}
    with pytest.raises(LookupNotFound):
        await registry.info("974720760")
