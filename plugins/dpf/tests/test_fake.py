"""The fake SvarUt/SvarInn itself: it refuses what SvarUt refuses, and its faults and admin."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from ipunkt.package.cms import encrypt
from ipunkt.testing import free_port


def _headers(account: Any, token: str = "mp-token") -> dict[str, str]:
    headers = {"IntegrasjonId": account.integration_id,
               "IntegrasjonPassord": account.integration_password}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def _upload(forsendelse: dict[str, Any], files: list[tuple[str, bytes]]) -> aiohttp.MultipartWriter:
    body = aiohttp.MultipartWriter("form-data")
    body.append_json(forsendelse).set_content_disposition("form-data", name="forsendelse")
    for index, (name, data) in enumerate(files):
        part = body.append(data, {"Content-Type": "application/pdf"})
        part.set_content_disposition("form-data", quote_fields=False, name=f"filer_{index}",
                                     filename=name)
    return body


def _forsendelse(kit: Any, names: list[str], **fields: Any) -> dict[str, Any]:
    return {"tittel": "Vedtak", "mottaker": {"navn": "Mottaker", "digitalId": kit.receiver},
            "kryptert": True,
            "dokumenter": [{"filnavn": n, "mimeType": "application/pdf"} for n in names],
            **fields}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _sealed(data: bytes, svarut: Any) -> bytes:
    return b"".join(encrypt([data], svarut.fake.certificate))


async def test_the_spec_check_catches_what_breaks_the_openapi(
    http: aiohttp.ClientSession, svarut: Any, kit: Any
) -> None:
    url = f"{svarut.url}/api/v3/kontoer/{svarut.sender.konto_id}/forsendelser/organisasjon"
    invalid = _forsendelse(kit, ["a.pdf"], tittel="")
    async with http.post(url, data=_upload(invalid, [("a.pdf", _sealed(kit.pdf, svarut))]),
                         headers=_headers(svarut.sender)) as response:
        answer = await response.json()
    assert response.status == 400
    assert answer["message"] == "tittel må ha 1-1000 tegn"
    assert answer["errorCode"] == "VALIDERINGSFEIL"
    assert any("should be non-empty" in v for v in svarut.spec.violations)
    svarut.spec.violations.clear()


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [("no token", 401, "Maskinporten-token"),
     ("wrong password", 401, "Ukjent integrasjon"),
     ("parts out of order", 400, "samme rekkefølge"),
     ("a part too few", 400, "har 1 filer, men 2 dokumenter"),
     ("not encrypted", 400, "kan ikke dekrypteres med SvarUt sin nøkkel"),
     ("not a PDF", 400, "er ikke en PDF og kan ikke printes"),
     ("not JSON", 400, "forsendelse er ikke gyldig JSON")],
)
async def test_svarut_refuses_what_it_should(
    case: str, status: int, message: str, http: aiohttp.ClientSession, svarut: Any, kit: Any
) -> None:
    url = f"{svarut.url}/api/v3/kontoer/{svarut.sender.konto_id}/forsendelser/organisasjon"
    headers = _headers(svarut.sender, token="" if case == "no token" else "mp-token")
    if case == "wrong password":
        headers["IntegrasjonPassord"] = "feil"
    pdf = _sealed(kit.pdf, svarut)
    forsendelse = _forsendelse(kit, ["a.pdf", "b.pdf"])
    files = [("a.pdf", pdf), ("b.pdf", pdf)]
    if case == "parts out of order":
        files.reverse()
    elif case == "a part too few":
        files.pop()
    elif case == "not encrypted":
        files[1] = ("b.pdf", kit.pdf)
    elif case == "not a PDF":
        files[1] = ("b.pdf", _sealed(b"<html/>", svarut))
    body = _upload(forsendelse, files)
    if case == "not JSON":
        body = aiohttp.MultipartWriter("form-data")
        body.append("{tittel", {"Content-Type": "application/json"}).set_content_disposition(
            "form-data", name="forsendelse")
    async with http.post(url, data=body, headers=headers) as response:
        answer = await response.json()
    assert response.status == status
    assert message in answer["message"]
    assert svarut.fake.forsendelser == {}
    svarut.spec.violations.clear()  # some cases break the OpenAPI on purpose


async def test_svarinn_asks_for_its_password(http: aiohttp.ClientSession, svarut: Any) -> None:
    url = f"{svarut.url}/tjenester/svarinn/mottaker/hentNyeForsendelser"
    async with http.get(url, headers=_basic("910075918", "feil")) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="SvarInn"'
        assert (await response.json())["message"] == "Feil brukernavn eller passord"


async def test_a_new_forsendelse_waits_in_svarut_while_it_is_processed(
    channel: Any, messages: Any, svarut: Any, http: aiohttp.ClientSession
) -> None:
    svarut.fake.processing_delay = 3600
    reference = (await channel.send(messages.make())).external_reference
    assert svarut.fake.forsendelser[reference].status == "MOTTATT"
    mailbox = svarut.receiver_mailbox
    url = f"{svarut.url}/tjenester/svarinn/mottaker/hentNyeForsendelser"
    auth = _basic(mailbox.username, mailbox.password)
    async with http.get(url, headers=auth) as response:
        assert await response.json() == []
    svarut.fake.processing_delay = 0
    async with http.get(url, headers=auth) as response:
        (waiting,) = await response.json()
    assert waiting["id"] == reference
    assert waiting["status"] == "Klar for mottak"
    assert waiting["downloadUrl"] == f"{svarut.url}/tjenester/svarinn/forsendelse/{reference}"
    assert [f["filnavn"] for f in waiting["filmetadata"]] == ["vedtak.pdf", "kart.png"]
    assert waiting["svarSendesTil"]["orgnr"] == svarut.sender.organisation
    assert waiting["eksternRef"] == svarut.fake.forsendelser[reference].forsendelse[
        "eksternReferanse"]


async def test_statuses_and_faults_can_be_set_over_http(
    channel: Any, messages: Any, svarut: Any, http: aiohttp.ClientSession
) -> None:
    reference = (await channel.send(messages.make())).external_reference
    async with http.post(f"{svarut.url}/_fake/forsendelser/{reference}/status",
                         json={"status": "AVVIST", "hendelse": "Ugyldig"}) as response:
        assert response.status == 200
    async with http.post(f"{svarut.url}/_fake/faults",
                         json={"operation": "status", "kind": "fail", "status": 502}) as response:
        assert response.status == 200
    async with http.get(f"{svarut.url}/_fake/forsendelser") as response:
        (listed,) = await response.json()
    assert (listed["id"], listed["status"]) == (reference, "AVVIST")
    assert listed["events"][-1]["hendelse"] == "Ugyldig"
    url = f"{svarut.url}/api/v3/kontoer/{svarut.sender.konto_id}/forsendelser/status/sok"
    async with http.post(url, json={"id": [reference]}, headers=_headers(svarut.sender)) as first:
        assert first.status == 502
    async with http.post(url, json={"id": [reference]}, headers=_headers(svarut.sender)) as then:
        assert (await then.json())["statuser"][0]["status"] == "AVVIST"


async def test_a_dropped_answer_closes_the_connection(
    http: aiohttp.ClientSession, svarut: Any
) -> None:
    svarut.fake.faults.drop("hent", times=2)  # aiohttp retries an idempotent GET once
    mailbox = svarut.receiver_mailbox
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.get(f"{svarut.url}/tjenester/svarinn/mottaker/hentNyeForsendelser",
                            headers=_basic(mailbox.username, mailbox.password)) as r:
            await r.read()


def test_the_fake_runs_on_its_own(tmp_path: Path, receiver_key: Any) -> None:
    port = free_port()
    certificate = tmp_path / "mottaker.pem"
    certificate.write_bytes(receiver_key.certificate.public_bytes(Encoding.PEM))
    process = subprocess.Popen(
        [sys.executable, "-m", "ipunkt_dpf.fake", "--port", str(port), "--dir", str(tmp_path),
         "--account", "910077473", "--mailbox", f"910075918:{certificate}:mottaker:hemmelig"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["url"] == f"http://127.0.0.1:{port}"
        assert Path(started["certificate"]).read_text().startswith("-----BEGIN CERTIFICATE")
        assert started["accounts"][0]["organisation"] == "910077473"
        request = urllib.request.Request(
            f"{started['svarinn_url']}/mottaker/hentNyeForsendelser",
            headers=_basic("mottaker", "hemmelig"),
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.loads(answer.read()) == []
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
