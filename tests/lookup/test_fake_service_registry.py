"""The fake Service Registry answers as the real one: its documented examples, byte for byte."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ipunkt.lookup.records import IdentifierResource, ServiceRecord
from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.source import LookupQuery
from joserfc import jws
from joserfc.jwk import KeySet

ADMIN = "urn:no:difi:profile:arkivmelding:administrasjon:ver1.0"
TEKNISK = "urn:no:difi:profile:arkivmelding:tekniskeTjenester:ver1.0"
INNSYNSKRAV = "urn:no:difi:profile:einnsyn:innsynskrav:ver1.0"
INFO = "urn:no:difi:profile:digitalpost:info:ver1.0"


def certificate(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )


def normalised(resource: IdentifierResource) -> IdentifierResource:
    """What a registry file can say: the integrasjonspunkt's own fixtures write an absent
    certificate as "" (the registry writes null), and TOML has no null for a DPH patient's
    missing middle name. The models read both forms; this makes them compare alike."""
    records = []
    for record in resource.service_records:
        extra = {key: _no_nulls(value) for key, value in (record.model_extra or {}).items()}
        wire = {**record.to_wire(), **extra, "pemCertificate": record.pem_certificate or None}
        records.append(ServiceRecord.model_validate(wire))
    return resource.model_copy(update={"service_records": records})


def _no_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    return value


async def test_every_published_answer_comes_back_from_a_registry_file(
    sr_fixtures: list[Path], registry_of_fixture: Any, start_fake: Any
) -> None:
    """Each answer becomes a registry file; the fake serves it signed; the client reads it."""
    for fixture in sr_fixtures:
        expected = IdentifierResource.model_validate_json(fixture.read_text())
        assert expected.info_record is not None
        identifier = expected.info_record.identifier
        running = await start_fake(registry_of_fixture(fixture))
        client = running.client(beta_features=True)
        if fixture.name.startswith("info-"):
            assert await client.info(identifier) == expected.info_record, fixture.name
            continue
        processes = {r.process for r in expected.service_records}
        process = processes.pop() if "-" in fixture.stem and len(processes) == 1 else None
        answer = await client.lookup(LookupQuery(identifier, process))
        assert normalised(answer) == normalised(expected), fixture.name


@pytest.fixture
def documented(write_registry: Any) -> tuple[LocalRegistry, dict[str, str]]:
    """A registry file saying what the restdocs examples' registry knew, with real
    certificates in place of their ``pem123`` placeholders."""
    pems = {"pem123": certificate("foo"), "pem567": certificate("foo einnsyn"),
            "cert123": certificate("DPI provider")}
    address = {"name": "Address name", "street": "Street x", "postal_code": "Postal code",
               "postal_area": "Area", "country": "Country"}
    path = write_registry(
        [
            {
                "identifier": "123123123",
                "name": "foo",
                "postal_address": {"address": "Skrivarvegen 42", "postal_code": "1337",
                                   "postal_area": "teststed", "country": "testland"},
                "record": [
                    {"service": "DPO", "processes": [ADMIN],
                     "document_types": ["urn:no:difi:arkivmelding:xsd::arkivmelding"],
                     "endpoint": "http://endpoint.here", "certificate_pem": pems["pem123"],
                     "service_code": "4192", "service_edition_code": "270815"},
                    {"service": "DPV", "processes": [TEKNISK], "document_types": [TEKNISK],
                     "endpoint": "http://endpoint.here", "service_code": "4255",
                     "service_edition_code": "9"},
                    {"service": "DPE", "processes": [INNSYNSKRAV],
                     "document_types": ["urn:no:difi:einnsyn:xsd::innsynskrav"],
                     "endpoint": "innsyn", "certificate_pem": pems["pem567"]},
                ],
            },
            {
                "identifier": "12345678901",
                "record": [
                    {"service": "DPI", "processes": [INFO],
                     "document_types": ["urn:no:difi:digitalpost:xsd:digital::digital",
                                        "urn:no:difi:digitalpost:xsd:fysisk::print"],
                     "endpoint": "http://dpi.endpoint.here", "certificate_pem": pems["cert123"],
                     "mailbox_supplier": "post123", "mailbox_address": "adr123", "mobile": "123",
                     "notifiable": True, "email": "post@post.foo", "post_address": address,
                     "return_address": address},
                ],
            },
            {
                "identifier": "321321321",
                "record": [
                    {"service": "DPF", "processes": [ADMIN],
                     "document_types": ["urn:no:difi:arkivmelding:xsd::arkivmelding"],
                     "security_level": 3},
                ],
            },
        ]
    )
    registry = LocalRegistry(path)
    registry.load()
    return registry, pems


async def test_the_documented_examples_byte_for_byte(
    documented: tuple[LocalRegistry, dict[str, str]],
    restdocs_examples: list[tuple[str, str, int, str]],
    start_fake: Any,
) -> None:
    registry, pems = documented
    running = await start_fake(registry)
    async with aiohttp.ClientSession() as session:
        for path, query, status, body in restdocs_examples:
            expected = json.loads(body)
            for record in expected.get("serviceRecords", []):
                placeholder = (record["pemCertificate"] or "").split("\n")[1:2]
                if placeholder:
                    record["pemCertificate"] = pems[placeholder[0]]
            url = f"{running.url}{path}" + (f"?{query}" if query else "")
            async with session.get(url, headers={"Accept": "application/json"}) as response:
                assert response.status == status, path
                assert response.content_type == "application/json"
                answer = await response.json()
            # json.dumps keeps the key order: the fields come in the registry's order too
            assert json.dumps(answer) == json.dumps(expected), path


async def test_signed_answers_carry_kid_and_x5c_and_verify_against_the_jwk_set(
    documented: tuple[LocalRegistry, dict[str, str]], start_fake: Any
) -> None:
    running = await start_fake(documented[0])
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{running.url}/jwk") as response:
            keys = KeySet.import_key_set(await response.json())
        url = f"{running.url}/identifier/123123123"
        async with session.get(url, headers={"Accept": "application/jose"}) as response:
            assert response.content_type == "application/jose"
            token = await response.text()
        async with session.get(url, headers={"Accept": "application/json"}) as response:
            plain = await response.json()
        missing = f"{running.url}/identifier/404040404"
        async with session.get(missing, headers={"Accept": "application/jose"}) as response:
            assert (response.status, response.content_type) == (404, "application/json")
    registry = jws.JWSRegistry(algorithms=["RS256"])
    registry.max_header_length = 8192
    verified = jws.deserialize_compact(token, keys, registry=registry)
    assert json.loads(verified.payload) == plain
    header = verified.headers()
    assert (header["alg"], header["kid"]) == ("RS256", "fake-service-registry")
    signer = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    published = keys.keys[0].as_dict(private=False)
    numbers = signer.public_key().public_numbers()  # type: ignore[union-attr]
    n = base64.urlsafe_b64decode(published["n"] + "=" * (-len(published["n"]) % 4))
    assert int.from_bytes(n, "big") == numbers.n


async def test_refusals_of_the_fake(
    documented: tuple[LocalRegistry, dict[str, str]], start_fake: Any
) -> None:
    running = await start_fake(documented[0], require_token=True)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{running.url}/identifier/123123123") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
        bearer = {"Authorization": "Bearer abc"}
        async with session.get(f"{running.url}/identifier/01017012345", headers=bearer) as response:
            assert response.status == 404
            assert await response.json() == {
                "message": "No service record found for citizen: 01017012345"
            }
        url = f"{running.url}/identifier/123123123/process/urn:no:difi:profile:avtalt:avtalt:ver1.0"
        async with session.get(url, headers=bearer) as response:
            assert response.status == 404
            assert (await response.json())["error_description"] == (
                "Process urn:no:difi:profile:avtalt:avtalt:ver1.0 not found for receiver 123123123"
            )
        async with session.get(f"{running.url}/info/999999999", headers=bearer) as response:
            assert (response.status, await response.read()) == (404, b"")
        url = f"{running.url}/identifier/123123123?securityLevel=high"
        async with session.get(url, headers=bearer) as response:
            assert response.status == 400
