"""Loading and checking our own key: PKCS#12 and PEM, passwords, expiry, usage, chain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from ipunkt.package import testcerts
from ipunkt.package.errors import CertificateProblem, KeyProblem
from ipunkt.package.keys import OrganisationKey, check_key, load_key, read_password
from ipunkt.package.testcerts import ThrowawayPki, WrittenPki
from ipunkt.package.trust import TrustStore, organisation_number

SENDER = "910077473"


def test_pkcs12_with_the_password_from_an_environment_variable(
    pki: ThrowawayPki, pki_files: WrittenPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IPUNKT_KEY_PASSWORD", pki_files.password.decode())
    key = load_key(pki_files[SENDER].pkcs12, password=read_password(env="IPUNKT_KEY_PASSWORD"))
    assert key.certificate == pki[SENDER].certificate
    assert key.chain == (pki.ca.certificate, pki.root.certificate)
    assert key.organisation_number == SENDER
    assert check_key(key, trust=pki.trust) == []


def test_pkcs12_made_by_openssl_with_the_password_from_a_file(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    openssl: str,
    run: Callable[..., Any],
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "openssl.p12"
    run(
        openssl, "pkcs12", "-export", "-inkey", pki_files[SENDER].private_key,
        "-in", pki_files[SENDER].certificate, "-passout", "pass:from a file", "-out", bundle,
    )  # fmt: skip
    password_file = tmp_path / "password"
    password_file.write_text("from a file\n")
    key = load_key(bundle, password=read_password(file=password_file))
    assert key.certificate == pki[SENDER].certificate
    assert key.chain == (pki.ca.certificate, pki.root.certificate)


def test_wrong_or_missing_pkcs12_password(pki_files: WrittenPki) -> None:
    with pytest.raises(KeyProblem, match="wrong password"):
        load_key(pki_files[SENDER].pkcs12, password=b"not it")
    with pytest.raises(KeyProblem, match="no password was given"):
        load_key(pki_files[SENDER].pkcs12)


def test_pem_key_with_its_certificates_in_any_order(pki: ThrowawayPki, tmp_path: Path) -> None:
    key = pki[SENDER]
    combined = tmp_path / "combined.pem"
    combined.write_bytes(
        testcerts.pem(pki.root.certificate, key.certificate)
        + key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(b"pem secret"),
        )
        + testcerts.pem(pki.ca.certificate)
    )
    loaded = load_key(combined, password=b"pem secret")
    assert loaded.certificate == key.certificate
    assert loaded.chain == (pki.ca.certificate, pki.root.certificate)
    with pytest.raises(KeyProblem, match="encrypted: give its password"):
        load_key(combined)


def test_pem_key_with_a_separate_certificate_file(pki: ThrowawayPki, pki_files: WrittenPki) -> None:
    loaded = load_key(pki_files[SENDER].private_key, certificate=pki_files[SENDER].certificate)
    assert loaded.certificate == pki[SENDER].certificate
    with pytest.raises(KeyProblem, match="no certificate for its key"):
        load_key(pki_files[SENDER].private_key)


def test_a_certificate_of_another_key_is_refused(pki: ThrowawayPki, pki_files: WrittenPki) -> None:
    with pytest.raises(KeyProblem, match="belongs to its private key"):
        load_key(pki_files[SENDER].private_key, certificate=pki_files["910075918"].certificate)


def test_java_keystores_get_a_conversion_hint(tmp_path: Path) -> None:
    keystore = tmp_path / "keystore.jks"
    keystore.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02rest")
    with pytest.raises(KeyProblem, match="keytool -importkeystore"):
        load_key(keystore, password=b"changeit")


def test_missing_file_and_ambiguous_password(tmp_path: Path) -> None:
    with pytest.raises(KeyProblem, match="cannot read the key file"):
        load_key(tmp_path / "absent.p12")
    with pytest.raises(KeyProblem, match="one way"):
        read_password(password="x", env="Y")
    with pytest.raises(KeyProblem, match="IPUNKT_UNSET_VARIABLE is not set"):
        read_password(env="IPUNKT_UNSET_VARIABLE")


def test_expired_and_not_yet_valid_certificates(pki: ThrowawayPki) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    expired = pki.ca.issue(SENDER, not_before=past, valid_days=30)
    with pytest.raises(KeyProblem, match="expired on"):
        check_key(expired)
    future = pki.ca.issue(SENDER, not_before=datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(KeyProblem, match="is not valid until"):
        check_key(future)


def test_expiring_soon_is_a_warning(pki: ThrowawayPki) -> None:
    soon = pki.ca.issue(SENDER, valid_days=10)
    (warning,) = check_key(soon, trust=pki.trust)
    assert "expires in" in warning and "order a new one" in warning


def test_key_usage_must_allow_signing_and_key_encipherment(pki: ThrowawayPki) -> None:
    signing_only = pki.ca.issue(SENDER, key_usage=frozenset({"digital_signature"}))
    with pytest.raises(KeyProblem, match="may not be used for key encipherment"):
        check_key(signing_only)


def test_short_rsa_keys_are_refused(pki: ThrowawayPki) -> None:
    weak = pki.ca.issue(SENDER, key_size=1024)
    with pytest.raises(KeyProblem, match="1024-bit RSA key"):
        check_key(weak)


def test_a_broken_or_untrusted_chain(pki: ThrowawayPki) -> None:
    key = pki[SENDER]
    stranger = testcerts.make_ca("someone else's CA")
    broken = OrganisationKey(key.private_key, key.certificate, (stranger.certificate,))
    with pytest.raises(KeyProblem, match="chain is broken"):
        check_key(broken)
    with pytest.raises(KeyProblem, match="does not chain to a trusted CA"):
        check_key(key, trust=TrustStore([stranger.certificate]))


def test_organisation_number_from_the_subject(pki: ThrowawayPki) -> None:
    assert organisation_number(pki[SENDER].certificate) == SENDER
    assert organisation_number(pki.root.certificate) is None


def test_trust_store_files_hold_roots_and_intermediates(
    pki: ThrowawayPki, pki_files: WrittenPki, tmp_path: Path
) -> None:
    bundle = tmp_path / "trust.pem"
    bundle.write_bytes(testcerts.pem(pki.ca.certificate, pki.root.certificate))
    store = TrustStore.load(bundle)
    assert store.anchors == (pki.root.certificate,)
    assert store.intermediates == (pki.ca.certificate,)
    assert store.verify(pki[SENDER].certificate)[-1] == pki.root.certificate
    with pytest.raises(CertificateProblem, match="at least one root"):
        TrustStore.load(pki_files[SENDER].certificate.parent / "issuing-ca.pem")
