"""CAdES detached signatures, checked both ways with ``openssl cms``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms as asn1_cms
from ipunkt.package import cades, testcerts
from ipunkt.package.errors import CertificateProblem, SignatureInvalid
from ipunkt.package.testcerts import ThrowawayPki, WrittenPki
from ipunkt.package.trust import TrustStore

SENDER = "910077473"
MANIFEST = b'<?xml version="1.0"?>\n<ASiCManifest xmlns="http://uri.etsi.org/02918/v1.2.1#"/>\n'


def test_openssl_verifies_ipunkt_signature(
    pki: ThrowawayPki, pki_files: WrittenPki, openssl: str, run: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "manifest.xml").write_bytes(MANIFEST)
    (tmp_path / "signature.p7s").write_bytes(cades.sign_detached(MANIFEST, pki[SENDER]))
    verify = (
        openssl, "cms", "-verify", "-binary", "-inform", "DER",
        "-in", tmp_path / "signature.p7s", "-content", tmp_path / "manifest.xml",
        "-CAfile", pki_files.root, "-purpose", "any", "-out", tmp_path / "verified",
    )  # fmt: skip
    assert b"Verification successful" in run(*verify).stderr
    assert (tmp_path / "verified").read_bytes() == MANIFEST

    (tmp_path / "manifest.xml").write_bytes(MANIFEST.replace(b"02918", b"02919"))
    assert run(*verify, check=False).returncode != 0, "OpenSSL must notice the changed content"


def test_the_signature_is_cades_bes(pki: ThrowawayPki) -> None:
    signed = asn1_cms.ContentInfo.load(cades.sign_detached(MANIFEST, pki[SENDER]))["content"]
    assert signed["encap_content_info"]["content"].native is None, "detached"
    attributes = {a["type"].native for a in signed["signer_infos"][0]["signed_attrs"]}
    assert attributes == {
        "content_type",
        "message_digest",
        "signing_time",
        "signing_certificate_v2",
    }
    included = {c.chosen.serial_number for c in signed["certificates"]}
    assert pki[SENDER].certificate.serial_number in included
    assert pki.ca.certificate.serial_number in included


def test_ipunkt_verifies_openssl_signature(
    pki: ThrowawayPki, pki_files: WrittenPki, openssl: str, run: Callable[..., Any], tmp_path: Path
) -> None:
    (tmp_path / "manifest.xml").write_bytes(MANIFEST)
    (tmp_path / "chain.pem").write_bytes(testcerts.pem(pki.ca.certificate))
    run(
        openssl, "cms", "-sign", "-binary", "-md", "sha256", "-in", tmp_path / "manifest.xml",
        "-signer", pki_files[SENDER].certificate, "-inkey", pki_files[SENDER].private_key,
        "-certfile", tmp_path / "chain.pem", "-outform", "DER", "-out", tmp_path / "openssl.p7s",
    )  # fmt: skip
    signature = (tmp_path / "openssl.p7s").read_bytes()
    signer = cades.verify_detached(signature, MANIFEST, trust=pki.trust)
    assert signer == pki[SENDER].certificate
    with pytest.raises(SignatureInvalid, match="changed after signing"):
        cades.verify_detached(signature, MANIFEST + b" ", trust=pki.trust)


def test_tampered_signed_attributes_do_not_verify(pki: ThrowawayPki) -> None:
    signature = bytearray(cades.sign_detached(MANIFEST, pki[SENDER]))
    # The signing time, the last UTCTime (YYMMDDhhmmssZ): change a digit of its seconds.
    position = signature.rfind(b"\x17\x0d") + 2 + 11
    signature[position] = ord("0") if signature[position] != ord("0") else ord("1")
    with pytest.raises(SignatureInvalid, match="does not verify"):
        cades.verify_detached(bytes(signature), MANIFEST, trust=pki.trust)


def test_untrusted_signers_and_missing_intermediates(pki: ThrowawayPki) -> None:
    signature = cades.sign_detached(MANIFEST, pki[SENDER])
    stranger = TrustStore([testcerts.make_ca("another root").certificate])
    with pytest.raises(CertificateProblem, match="does not chain to a trusted CA"):
        cades.verify_detached(signature, MANIFEST, trust=stranger)
    assert cades.verify_detached(signature, MANIFEST, trust=None) == pki[SENDER].certificate


def test_garbage_is_not_a_signature() -> None:
    with pytest.raises(SignatureInvalid, match="not a readable CMS SignedData"):
        cades.verify_detached(b"\x30\x03\x02\x01\x01", MANIFEST, trust=None)


def test_a_damaged_signed_attribute_is_an_invalid_signature(pki: ThrowawayPki) -> None:
    signature = bytearray(cades.sign_detached(MANIFEST, pki[SENDER]))
    # The signing-time attribute's length byte: the attribute no longer parses.
    oid = asn1_cms.CMSAttributeType("signing_time").dump()
    signature[signature.index(oid) - 1] ^= 0x40
    with pytest.raises(SignatureInvalid, match="not a readable CMS SignedData"):
        cades.verify_detached(bytes(signature), MANIFEST, trust=pki.trust)
