"""Who may call the API: HTTP Basic on /api when configured, /manage always open, no open API
beyond loopback, and HTTPS from the config (checked with a real server process)."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeGateway
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ipunkt.api.settings import ApiSettings, exposure_problem, is_loopback
from ipunkt.app import create_app
from ipunkt.config import parse_settings
from ipunkt.plugins import PluginHost
from ipunkt.testing import free_port

USER, PASSWORD = "fagsystem", "s3cret:with colon"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def assert_unauthorised(response: Any, path: str) -> None:
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="Realm"'
    body = await response.json()
    assert (body["status"], body["error"], body["path"]) == (401, "Unauthorized", path)


@pytest.mark.parametrize("headers", [
    {},
    basic(USER, "wrong"),
    basic("someone", PASSWORD),
    {"Authorization": "Bearer abc"},
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe").decode()},
])
async def test_the_api_refuses_without_the_right_credentials(
    make_gateway: MakeGateway, headers: dict[str, str]
) -> None:
    gw = await make_gateway(api=ApiSettings(username=USER, password=PASSWORD))  # type: ignore[arg-type]
    response = await gw.client.get("/api/messages/out", headers=headers)
    await assert_unauthorised(response, "/api/messages/out")
    created = await gw.client.post("/api/messages/out", data=b"{}", headers=headers)
    await assert_unauthorised(created, "/api/messages/out")


async def test_the_right_credentials_pass(make_gateway: MakeGateway) -> None:
    gw = await make_gateway(api=ApiSettings(username=USER, password=PASSWORD))  # type: ignore[arg-type]
    response = await gw.client.get("/api/messages/out", headers=basic(USER, PASSWORD))
    assert response.status == 200
    assert (await response.json())["totalElements"] == 0


async def test_manage_stays_open_and_the_api_is_closed_in_the_gateway(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    (tmp_path / "registry.toml").write_text("")
    settings = parse_settings({
        "organisation": {"number": "910077473"},
        "store": {"path": str(tmp_path / "store")},
        "lookup": {"sources": ["local"], "local": {"path": str(tmp_path / "registry.toml")}},
        "api": {"username": USER, "password": PASSWORD},
    })
    client = await aiohttp_client(create_app(settings, PluginHost(), {}))
    for path in ("/manage/health", "/manage/health/liveness", "/manage/health/readiness"):
        response = await client.get(path)
        assert response.status == 200, path
    await assert_unauthorised(await client.get("/api/conversations"), "/api/conversations")
    await assert_unauthorised(await client.get("/api/capabilities/910075918"),
                              "/api/capabilities/910075918")
    authorised = await client.get("/api/conversations", headers=basic(USER, PASSWORD))
    assert authorised.status == 200


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("ipunkt.example.no", False),
])
def test_an_open_api_only_on_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    open_api = ApiSettings()
    assert (exposure_problem(open_api, host) is None) is loopback
    closed = ApiSettings(username=USER, password=PASSWORD)  # type: ignore[arg-type]
    assert exposure_problem(closed, host) is None


def test_serve_refuses_to_listen_beyond_loopback_without_credentials(tmp_path: Path) -> None:
    config = tmp_path / "ipunkt.toml"
    config.write_text('[organisation]\nnumber = "910077473"\n[server]\nhost = "0.0.0.0"\n')
    result = subprocess.run([sys.executable, "-m", "ipunkt", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "is not a loopback address: set api.username and api.password" in result.stderr
    assert not (tmp_path / "data" / "ipunkt.sqlite3").exists()


# --- TLS ---------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway server certificate for 127.0.0.1 and localhost (cryptography)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ipunkt test server")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "tls" / "cert.pem", folder / "tls" / "key.pem"
    cert.parent.mkdir()
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_file


@pytest.mark.slow
def test_https_from_the_config(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    (tmp_path / "registry.toml").write_text("")
    config = tmp_path / "ipunkt.toml"
    config.write_text(
        '[organisation]\nnumber = "910077473"\n'
        f'[lookup]\nsources = ["local"]\n[lookup.local]\npath = "{tmp_path / "registry.toml"}"\n'
        f'[api]\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
        'tls_certificate = "tls/cert.pem"\ntls_key = "tls/key.pem"\n'  # beside the config
    )
    port = free_port()
    trust = ssl.create_default_context(cafile=str(cert))
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ipunkt", "serve", "--config", str(config), "--port",
             str(port)], stdout=log, stderr=log, env=dict(os.environ), cwd=tmp_path.parent)
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/manage/health/readiness", context=trust,
                                            timeout=2) as response:
                    assert json.load(response) == {"status": "UP"}
                    break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        request = urllib.request.Request(f"{base}/api/messages/out",
                                         headers=basic(USER, PASSWORD))
        with urllib.request.urlopen(request, context=trust, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Strict-Transport-Security"] == (
                "max-age=31536000 ; includeSubDomains")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/messages/out", context=trust, timeout=5)
        assert refused.value.code == 401
        with pytest.raises(urllib.error.URLError):  # the certificate is checked: untrusted
            urllib.request.urlopen(f"{base}/manage/health", timeout=5)
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # no plain HTTP
            urllib.request.urlopen(f"http://127.0.0.1:{port}/manage/health", timeout=5)
        assert (tmp_path / "data" / "ipunkt.sqlite3").exists()  # the store beside the config
    finally:
        process.terminate()
        process.wait(30)
