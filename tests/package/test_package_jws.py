"""Compact JWS: RS256 with x5c checked against trust anchors, or with a known key."""

from __future__ import annotations

import base64
import json

import pytest
from ipunkt.package import jws, testcerts
from ipunkt.package.errors import SignatureInvalid
from ipunkt.package.testcerts import ThrowawayPki
from ipunkt.package.trust import TrustStore

SENDER = "910077473"
SBD = {"standardBusinessDocument": {"standardBusinessDocumentHeader": {"headerVersion": "1.0"}}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_sign_and_verify_with_x5c(pki: ThrowawayPki) -> None:
    token = jws.sign(SBD, pki[SENDER])
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and len(header["x5c"]) == 1
    verified = jws.verify(token, trust=pki.trust, organisation=SENDER)
    assert verified.json() == SBD
    assert verified.certificate == pki[SENDER].certificate


def test_the_path_needs_the_intermediate_from_x5c_or_the_trust_store(pki: ThrowawayPki) -> None:
    roots_only = TrustStore([pki.root.certificate])
    with pytest.raises(SignatureInvalid, match="does not chain"):
        jws.verify(jws.sign(SBD, pki[SENDER]), trust=roots_only)
    token = jws.sign(SBD, pki[SENDER], with_chain=True)
    assert len(jws.header_of(token)["x5c"]) == 3
    assert jws.verify(token, trust=roots_only).json() == SBD


def test_tampered_payload_is_refused(pki: ThrowawayPki) -> None:
    header, _, signature = jws.sign(SBD, pki[SENDER]).split(".")
    forged = f"{header}.{_b64(json.dumps({'forged': True}).encode())}.{signature}"
    with pytest.raises(SignatureInvalid, match="does not verify"):
        jws.verify(forged, trust=pki.trust)


def test_untrusted_certificate_and_wrong_organisation(pki: ThrowawayPki) -> None:
    token = jws.sign(SBD, pki[SENDER])
    stranger = TrustStore([testcerts.make_ca("not ours").certificate])
    with pytest.raises(SignatureInvalid, match="not trusted"):
        jws.verify(token, trust=stranger)
    with pytest.raises(SignatureInvalid, match="not 910075918"):
        jws.verify(token, trust=pki.trust, organisation="910075918")


def test_a_certificate_swapped_into_x5c_does_not_verify(pki: ThrowawayPki) -> None:
    """Someone else's valid certificate in the header does not make the signature theirs."""
    token = jws.sign(SBD, pki[SENDER])
    _, payload, signature = token.split(".")
    other = pki.ca.issue("910075918")
    header = _b64(json.dumps({"alg": "RS256", "x5c": other.x5c()}).encode())
    with pytest.raises(SignatureInvalid, match="does not verify"):
        jws.verify(f"{header}.{payload}.{signature}", trust=pki.trust)


def test_alg_none_and_hmac_confusion_are_refused(pki: ThrowawayPki) -> None:
    payload = _b64(json.dumps(SBD).encode())
    none_header = _b64(json.dumps({"alg": "none"}).encode())
    unsigned = f"{none_header}.{payload}."
    with pytest.raises(SignatureInvalid, match="not accepted"):
        jws.verify(unsigned, trust=pki.trust)
    hmac_header = _b64(json.dumps({"alg": "HS256"}).encode())
    hmac = f"{hmac_header}.{payload}.c2lnbmF0dXJl"
    with pytest.raises(SignatureInvalid, match="not accepted"):
        jws.verify(hmac, public_key=pki[SENDER].private_key.public_key())


def test_kid_with_a_known_key(pki: ThrowawayPki) -> None:
    token = jws.sign(b"payload", pki[SENDER].private_key, kid="key-1")
    assert jws.header_of(token) == {"alg": "RS256", "kid": "key-1"}
    keys = {"key-1": pki[SENDER].private_key.public_key()}
    assert jws.verify(token, public_key=lambda header: keys[header["kid"]]).payload == b"payload"
    with pytest.raises(SignatureInvalid, match="does not verify"):
        jws.verify(token, public_key=pki["910075918"].private_key.public_key())


def test_garbage_is_not_a_jws(pki: ThrowawayPki) -> None:
    with pytest.raises(SignatureInvalid, match="not a compact JWS"):
        jws.verify("not.a-jws", trust=pki.trust)
