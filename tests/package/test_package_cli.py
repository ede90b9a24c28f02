"""``ipunkt certs`` and ``ipunkt package``: what an operator runs, and the exit codes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ipunkt.cli import main
from ipunkt.package import testcerts
from ipunkt.package.keys import load_key

SENDER = "910077473"
RECEIVER = "910075918"
PASSWORD = "ipunkt-test"


def ipunkt(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env={"KEY_PASSWORD": PASSWORD})


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    result = ipunkt("certs", "make", "--out", folder, "--org", SENDER, "--org", RECEIVER)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture
def documents(tmp_path: Path) -> Path:
    folder = tmp_path / "documents"
    (folder / "vedlegg").mkdir(parents=True)
    (folder / "arkivmelding.xml").write_bytes(
        b"<arkivmelding><tittel>Vedtak</tittel></arkivmelding>"
    )
    (folder / "vedlegg" / "kart.pdf").write_bytes(b"%PDF" + os.urandom(50_000))
    return folder


def _seal(keys: Path, documents: Path, out: Path, *extra: str) -> Result:
    return ipunkt(
        "package", "seal", documents, "--recipient", keys / f"{RECEIVER}.pem",
        "--key", keys / f"{SENDER}.p12", "--password-env", "KEY_PASSWORD", "--out", out, *extra,
    )  # fmt: skip


def _open(keys: Path, package: Path, *extra: str | Path, key: str = RECEIVER) -> Result:
    return ipunkt(
        "package", "open", package, "--key", keys / f"{key}.p12",
        "--password-env", "KEY_PASSWORD", *extra,
    )  # fmt: skip


def test_certs_make_writes_usable_keys(keys: Path) -> None:
    key = load_key(keys / f"{SENDER}.p12", password=PASSWORD.encode())
    assert key.organisation_number == SENDER
    assert (keys / "root-ca.pem").exists() and (keys / f"{RECEIVER}.key.pem").exists()
    again = ipunkt("certs", "make", "--out", keys, "--org", SENDER)
    assert again.exit_code == 2 and "--force" in again.output
    bad = ipunkt("certs", "make", "--out", keys / "x", "--org", "12345")
    assert bad.exit_code == 2 and "9-digit organisation number" in bad.output


def test_seal_then_open_and_extract(keys: Path, documents: Path, tmp_path: Path) -> None:
    package = tmp_path / "package.cms"
    sealed = _seal(keys, documents, package)
    assert sealed.exit_code == 0, sealed.output
    assert "sealed 3 files" in sealed.output

    out = tmp_path / "out"
    opened = _open(keys, package, "--trust", keys / "root-ca.pem", "--out", out)
    assert opened.exit_code == 0, opened.output
    assert "package.cms: sound" in opened.output
    assert f"sender 0192:{SENDER}" in opened.output
    assert (out / "vedlegg" / "kart.pdf").read_bytes() == (
        documents / "vedlegg" / "kart.pdf"
    ).read_bytes()

    report = json.loads(_open(keys, package, "--trust", keys / "root-ca.pem", "--json").output)
    assert report["sound"] and report["signer_trusted"] and report["signature"] == "cades"
    assert [f["name"] for f in report["files"]] == [
        "manifest.xml",
        "arkivmelding.xml",
        "vedlegg/kart.pdf",
    ]
    assert report["manifest"]["main_document"] == "arkivmelding.xml"


def test_dpi_package_with_xades(keys: Path, documents: Path, tmp_path: Path) -> None:
    package = tmp_path / "dpi.cms"
    sealed = _seal(
        keys, documents, package, "--signature", "xades", "--postkasseadresse", "ola#1A2B"
    )
    assert sealed.exit_code == 0, sealed.output
    report = json.loads(_open(keys, package, "--trust", keys / "root-ca.pem", "--json").output)
    assert report["signature"] == "xades" and report["signature_file"] == "META-INF/signatures.xml"
    assert (
        report["manifest"]["kind"] == "sdp" and report["manifest"]["postkasseadresse"] == "ola#1A2B"
    )


def test_what_is_wrong_is_said_with_exit_code_1(
    keys: Path, documents: Path, tmp_path: Path
) -> None:
    package = tmp_path / "package.cms"
    assert _seal(keys, documents, package).exit_code == 0
    trust = ("--trust", keys / "root-ca.pem")

    wrong_key = _open(keys, package, *trust, key=SENDER)
    assert wrong_key.exit_code == 1
    assert "NOT sound: the package is not encrypted to our certificate" in wrong_key.output

    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(testcerts.pem(testcerts.make_ca("stranger").certificate))
    untrusted = _open(keys, package, "--trust", stranger)
    assert untrusted.exit_code == 1 and "does not chain to a trusted CA" in untrusted.output

    damaged = tmp_path / "damaged.cms"
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out"
    broken = _open(keys, damaged, *trust, "--out", out)
    assert broken.exit_code == 1 and "NOT sound" in broken.output
    assert not out.exists() or list(out.iterdir()) == []

    unchecked = _open(keys, package)
    assert unchecked.exit_code == 2 and "--no-chain-check" in unchecked.output
    assert _open(keys, package, "--no-chain-check").exit_code == 0


def test_certs_check(keys: Path, tmp_path: Path) -> None:
    good = ipunkt(
        "certs",
        "check",
        "--key",
        keys / f"{SENDER}.p12",
        "--password-env",
        "KEY_PASSWORD",
        "--trust",
        keys / "root-ca.pem",
    )
    assert (
        good.exit_code == 0 and "usable" in good.output and f"organisation: {SENDER}" in good.output
    )
    pki = testcerts.make_pki()
    expired = pki.ca.issue(
        SENDER, not_before=datetime.now(UTC) - timedelta(days=100), valid_days=10
    )
    written = testcerts.write_organisation(
        expired, tmp_path / "expired", password=PASSWORD.encode()
    )
    bad = ipunkt("certs", "check", "--key", written.pkcs12, "--password-env", "KEY_PASSWORD")
    assert bad.exit_code == 1 and "expired on" in bad.output
    wrong = ipunkt(
        "certs", "check", "--key", written.pkcs12, "--password-file", keys / "root-ca.pem"
    )
    assert wrong.exit_code == 2 and "wrong password" in wrong.output
