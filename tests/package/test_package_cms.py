"""CMS EnvelopedData: round trips, and OpenSSL opening ours and ours opening OpenSSL's."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ipunkt.package import cms
from ipunkt.package.errors import DecryptionFailed
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.testcerts import ThrowawayPki, WrittenPki

SENDER = "910077473"
RECEIVER = "910075918"


def _encrypt(
    data: bytes, pki: ThrowawayPki, transport: cms.KeyTransport, segment: int = 4096
) -> bytes:
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)] or [b""]
    return b"".join(
        cms.encrypt(pieces, pki[RECEIVER].certificate, key_transport=transport, segment=segment)
    )


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4095, 4096, 4097, 100_003])
def test_round_trip_of_every_size(pki: ThrowawayPki, size: int) -> None:
    data = os.urandom(size)
    sealed = _encrypt(data, pki, cms.KeyTransport.OAEP)
    assert b"".join(cms.decrypt(io.BytesIO(sealed), pki[RECEIVER])) == data
    assert data[:16] not in sealed or size < 16


@pytest.mark.parametrize("transport", list(cms.KeyTransport))
def test_openssl_decrypts_what_ipunkt_encrypts(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    openssl: str,
    run: Callable[..., Any],
    tmp_path: Path,
    transport: cms.KeyTransport,
) -> None:
    data = os.urandom(300_001)
    envelope = tmp_path / "ipunkt.cms"
    envelope.write_bytes(_encrypt(data, pki, transport))
    out = tmp_path / "plain"
    run(
        openssl,
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        envelope,
        "-recip",
        pki_files[RECEIVER].certificate,
        "-inkey",
        pki_files[RECEIVER].private_key,
        "-out",
        out,
    )
    assert out.read_bytes() == data
    printed = run(openssl, "cms", "-cmsout", "-print", "-inform", "DER", "-in", envelope)
    structure = printed.stdout.decode()
    assert "issuerAndSerialNumber" in structure
    assert "aes-256-cbc" in structure
    if transport is cms.KeyTransport.OAEP:
        assert "rsaesOaep" in structure
        assert structure.count("sha256") >= 2, "OAEP digest and MGF1 digest are SHA-256"
    else:
        assert "rsaEncryption" in structure


@pytest.mark.parametrize(
    ("options", "stream"),
    [
        (["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"], False),
        (["-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"], True),
        (["-keyopt", "rsa_padding_mode:oaep"], False),
        ([], False),
        ([], True),
    ],
    ids=[
        "oaep-sha256-der",
        "oaep-sha256-ber",
        "oaep-sha1-defaults",
        "pkcs1v15-der",
        "pkcs1v15-ber",
    ],
)
def test_ipunkt_decrypts_what_openssl_encrypts(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    openssl: str,
    run: Callable[..., Any],
    tmp_path: Path,
    options: list[str],
    stream: bool,
) -> None:
    data = os.urandom(1_500_007)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    envelope = tmp_path / "openssl.cms"
    run(
        openssl,
        "cms",
        "-encrypt",
        "-binary",
        "-aes256",
        "-outform",
        "DER",
        "-in",
        plain,
        "-out",
        envelope,
        "-recip",
        pki_files[RECEIVER].certificate,
        *options,
        *(["-stream"] if stream else []),
    )
    with envelope.open("rb") as source:
        reader = cms.CmsReader(source, chunk_size=65536)
        assert reader.content_algorithm == "aes256_cbc"
        assert b"".join(reader.decrypt(pki[RECEIVER])) == data


def test_a_package_for_someone_else_names_its_recipient(pki: ThrowawayPki) -> None:
    sealed = _encrypt(b"secret", pki, cms.KeyTransport.OAEP)
    with pytest.raises(DecryptionFailed, match="not encrypted to our certificate") as caught:
        b"".join(cms.decrypt(io.BytesIO(sealed), pki[SENDER]))
    assert f"serial {pki[RECEIVER].certificate.serial_number:x}" in str(caught.value)


@pytest.mark.parametrize("transport", list(cms.KeyTransport))
def test_the_wrong_private_key_is_refused(pki: ThrowawayPki, transport: cms.KeyTransport) -> None:
    impostor = OrganisationKey(
        pki[SENDER].private_key, pki[RECEIVER].certificate, pki[RECEIVER].chain
    )
    sealed = _encrypt(os.urandom(5000), pki, transport)
    with pytest.raises(DecryptionFailed, match=r"wrong key|does not decrypt|not what"):
        b"".join(cms.decrypt(io.BytesIO(sealed), impostor))


def test_truncated_envelope_is_refused(pki: ThrowawayPki) -> None:
    sealed = _encrypt(os.urandom(10_000), pki, cms.KeyTransport.OAEP)
    with pytest.raises(DecryptionFailed, match="truncated"):
        b"".join(cms.decrypt(io.BytesIO(sealed[:-100]), pki[RECEIVER]))


def test_trailing_data_is_refused(pki: ThrowawayPki) -> None:
    sealed = _encrypt(os.urandom(100), pki, cms.KeyTransport.OAEP)
    with pytest.raises(DecryptionFailed, match="unexpected data after the end"):
        b"".join(cms.decrypt(io.BytesIO(sealed + b"junk"), pki[RECEIVER]))


def test_damaged_last_block_fails_the_padding_check(pki: ThrowawayPki) -> None:
    sealed = bytearray(_encrypt(os.urandom(1000), pki, cms.KeyTransport.OAEP))
    # The last OCTET STRING segment ends 10 bytes before the end (five end-of-contents).
    sealed[-11] ^= 0xFF
    with pytest.raises(DecryptionFailed, match="bad padding"):
        b"".join(cms.decrypt(io.BytesIO(bytes(sealed)), pki[RECEIVER]))


def test_other_cms_types_and_garbage_are_named(
    pki: ThrowawayPki,
    pki_files: WrittenPki,
    openssl: str,
    run: Callable[..., Any],
    tmp_path: Path,
) -> None:
    content = tmp_path / "content"
    content.write_bytes(b"hello")
    signed = tmp_path / "signed.p7s"
    run(
        openssl,
        "cms",
        "-sign",
        "-binary",
        "-in",
        content,
        "-signer",
        pki_files[SENDER].certificate,
        "-inkey",
        pki_files[SENDER].private_key,
        "-outform",
        "DER",
        "-out",
        signed,
    )
    with pytest.raises(DecryptionFailed, match="signedData"):
        cms.CmsReader(io.BytesIO(signed.read_bytes()))
    with pytest.raises(DecryptionFailed, match="not a CMS EnvelopedData"):
        cms.CmsReader(io.BytesIO(b"PK\x03\x04 this is a zip, not CMS"))
    with pytest.raises(DecryptionFailed, match="empty"):
        cms.CmsReader(io.BytesIO(b""))


def test_absurdly_nested_asn1_is_refused(pki: ThrowawayPki) -> None:
    """Nesting that would exhaust the stack of a recursive parser gets a clear error."""
    sealed = _encrypt(b"x", pki, cms.KeyTransport.OAEP)
    marker = sealed.index(
        b"\xa0\x80", sealed.index(b"\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01\x2a")
    )
    nested = sealed[: marker + 2] + b"\x24\x80" * 100_000
    with pytest.raises(DecryptionFailed, match="nested deeper"):
        b"".join(cms.decrypt(io.BytesIO(nested), pki[RECEIVER]))
    hostile_header = (
        b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03\xa0\x80\x30\x80\x02\x01\x00"
    )
    with pytest.raises(DecryptionFailed, match="nested deeper"):
        cms.CmsReader(io.BytesIO(hostile_header + b"\x31\x80" * 100_000))


def test_malformed_header_values_are_named() -> None:
    with pytest.raises(DecryptionFailed, match="content type is unreadable"):
        cms.CmsReader(io.BytesIO(b"\x30\x80\x06\x03\x80\x80\x80"))
    enveloped = b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03\xa0\x80\x30\x80\x02\x01\x00"
    with pytest.raises(DecryptionFailed, match="recipient information is malformed"):
        cms.CmsReader(io.BytesIO(enveloped + b"\x31\x03\x02\x01\x05"))
