"""XAdES ``signatures.xml``, checked both ways with xmlsec1."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package import testcerts, xades
from ipunkt.package.errors import CertificateProblem, SignatureInvalid
from ipunkt.package.testcerts import ThrowawayPki, WrittenPki
from ipunkt.package.trust import TrustStore
from lxml import etree

SENDER = "910077473"
NS = {"ds": xades.DS, "xades": xades.XADES}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    contents = {
        "manifest.xml": b"<manifest/>",
        "brev til ola.pdf": os.urandom(20_000),
        "vedlegg-æøå.txt": "blåbærsyltetøy".encode(),
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = tmp_path / "files" / name
        paths[name].parent.mkdir(exist_ok=True)
        paths[name].write_bytes(data)
    return paths


def _signed(files: dict[str, Path]) -> list[xades.SignedFile]:
    return [
        xades.SignedFile(name, "application/pdf", hashlib.sha256(path.read_bytes()).digest())
        for name, path in files.items()
    ]


def _xmlsec(
    xmlsec1: str, action: str, document: Path, files: dict[str, Path], *extra: Any
) -> list[Any]:
    command: list[Any] = [xmlsec1, action, "--id-attr:Id", f"{xades.XADES}:SignedProperties"]
    for name, path in files.items():
        command += [f"--url-map:{name}", path]
    return [*command, *extra, document]


def test_xmlsec1_verifies_ipunkt_signature(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    xmlsec1: str,
    run: Callable[..., Any],
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    document = tmp_path / "signatures.xml"
    document.write_bytes(xades.sign(_signed(files), pki[SENDER]))
    command = _xmlsec(xmlsec1, "--verify", document, files, "--trusted-pem", pki_files.root)
    result = run(*command)
    assert b"OK" in result.stdout + result.stderr
    assert b"SignedInfo References (ok/all): 4/4" in result.stderr

    files["brev til ola.pdf"].write_bytes(b"changed")
    assert run(*command, check=False).returncode != 0, "xmlsec1 must notice the changed file"


def test_ipunkt_verifies_what_xmlsec1_signs(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    xmlsec1: str,
    run: Callable[..., Any],
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """xmlsec1 computes every digest and the signature over a template; ipunkt checks them."""
    root = etree.fromstring(xades.sign(_signed(files), pki[SENDER]))
    for value in root.iterfind(".//ds:SignedInfo//ds:DigestValue", NS):
        value.text = ""
    root.find(".//ds:SignatureValue", NS).text = ""
    template = tmp_path / "template.xml"
    template.write_bytes(etree.tostring(root))
    signed = tmp_path / "signed.xml"
    key = f"{pki_files[SENDER].private_key},{pki_files[SENDER].certificate}"
    run(*_xmlsec(xmlsec1, "--sign", template, files, "--privkey-pem", key, "--output", signed))
    verified = xades.verify(signed.read_bytes(), trust=pki.trust)
    assert verified.signer == pki[SENDER].certificate
    assert {name: ref.digest for name, ref in verified.files.items()} == {
        name: hashlib.sha256(path.read_bytes()).digest() for name, path in files.items()
    }
    assert {ref.mime for ref in verified.files.values()} == {"application/pdf"}


def _tamper(document: bytes, path: str, value: str) -> bytes:
    root = etree.fromstring(document)
    root.find(path, NS).text = value
    return etree.tostring(root)


def test_changed_digests_properties_or_signature_are_refused(
    pki: ThrowawayPki, files: dict[str, Path]
) -> None:
    document = xades.sign(_signed(files), pki[SENDER])
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(SignatureInvalid, match="does not verify"):
        xades.verify(_tamper(document, ".//ds:Reference/ds:DigestValue", other), trust=pki.trust)
    with pytest.raises(SignatureInvalid, match="signed properties"):
        xades.verify(
            _tamper(document, ".//xades:SigningTime", "2001-01-01T00:00:00Z"), trust=pki.trust
        )
    with pytest.raises(SignatureInvalid, match="malformed signature value"):
        xades.verify(_tamper(document, ".//ds:SignatureValue", "!!"), trust=pki.trust)


def test_untrusted_signer_and_hostile_xml_are_refused(
    pki: ThrowawayPki, files: dict[str, Path]
) -> None:
    document = xades.sign(_signed(files), pki[SENDER])
    with pytest.raises(CertificateProblem, match="does not chain"):
        xades.verify(document, trust=TrustStore([testcerts.make_ca("other").certificate]))
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(SignatureInvalid, match="DTD or entities"):
        xades.verify(bomb, trust=pki.trust)
    with pytest.raises(SignatureInvalid, match="not XAdESSignatures"):
        xades.verify(b"<other/>", trust=pki.trust)


def test_a_second_element_with_the_signed_id_is_refused(
    pki: ThrowawayPki, files: dict[str, Path]
) -> None:
    """Signature wrapping: a copy of SignedProperties elsewhere must not be what is checked."""
    root = etree.fromstring(xades.sign(_signed(files), pki[SENDER]))
    original = root.find(".//xades:SignedProperties", NS)
    decoy = etree.SubElement(root, f"{{{xades.XADES}}}SignedProperties", Id="SignedProperties")
    decoy.extend(etree.fromstring(etree.tostring(original)))
    with pytest.raises(SignatureInvalid, match="twice"):
        xades.verify(etree.tostring(root), trust=pki.trust)
