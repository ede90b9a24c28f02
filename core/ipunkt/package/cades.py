"""CAdES-BES detached signatures: CMS SignedData over ``META-INF/ASiCManifest.xml``.

The signed attributes are those of CAdES-BES (ETSI EN 319 122-1): content type, message
digest, signing time and ``signingCertificateV2``, which binds the signature to the signer's
certificate. SHA-256 and RSA PKCS#1 v1.5, as BouncyCastle's ``SHA256withRSA`` in efm-asic. The
ASN.1 is built and parsed with asn1crypto; the RSA operations are cryptography's.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import algos, cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from ipunkt.package import der
from ipunkt.package.errors import CertificateProblem, SignatureInvalid
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import TrustStore, check_rsa, describe

SIGNATURE_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
"""Digests accepted in signatures we verify; SHA-1 and MD5 are refused."""


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def sign_detached(
    content: bytes, key: OrganisationKey, *, signing_time: datetime | None = None
) -> bytes:
    """A DER ContentInfo holding a detached SignedData over ``content``.

    Assembled from DER parts, the per-signer ones cached: building the structure with
    asn1crypto for each message took several times as long as the RSA signature itself.
    """
    signer = _signer(key)
    when = (signing_time or datetime.now(UTC)).astimezone(UTC)
    attributes = [
        _CONTENT_TYPE_DATA,
        _attribute_der(_SIGNING_TIME, der.tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode())),
        _attribute_der(_MESSAGE_DIGEST, der.tlv(0x04, hashlib.sha256(content).digest())),
        signer.signing_certificate,
    ]
    # DER orders a SET OF by encoding; verifiers check the signature over the bytes as sent.
    attributes_der = b"".join(sorted(attributes))
    signature = key.private_key.sign(
        der.tlv(0x31, attributes_der), padding.PKCS1v15(), hashes.SHA256()
    )
    signer_info = der.tlv(
        0x30,
        b"\x02\x01\x01" + signer.sid + _SHA256 + der.tlv(0xA0, attributes_der)
        + _RSA_PKCS1V15 + der.tlv(0x04, signature),
    )
    signed_data = der.tlv(
        0x30,
        b"\x02\x01\x01" + der.tlv(0x31, _SHA256) + _ENCAPSULATED_DATA + signer.certificates
        + der.tlv(0x31, signer_info),
    )
    return der.tlv(0x30, _SIGNED_DATA + der.tlv(0xA0, signed_data))


def _attribute_der(oid: bytes, value: bytes) -> bytes:
    return der.tlv(0x30, oid + der.tlv(0x31, value))


_SIGNING_TIME = cms.CMSAttributeType("signing_time").dump()
_MESSAGE_DIGEST = cms.CMSAttributeType("message_digest").dump()
_CONTENT_TYPE_DATA = cms.CMSAttribute({"type": "content_type", "values": ["data"]}).dump()
_SHA256 = algos.DigestAlgorithm({"algorithm": "sha256"}).dump()
_RSA_PKCS1V15 = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}).dump()
_ENCAPSULATED_DATA = cms.EncapsulatedContentInfo({"content_type": "data"}).dump()
_SIGNED_DATA = cms.ContentType("signed_data").dump()


@dataclass(frozen=True)
class _Signer:
    """What a signature needs of its signer, DER: the same for every message it signs."""

    signing_certificate: bytes
    sid: bytes
    certificates: bytes


def _signer(key: OrganisationKey) -> _Signer:
    ders = (_der(key.certificate), *(_der(c) for c in key.chain))
    return _signer_of(ders)


@functools.lru_cache(maxsize=16)
def _signer_of(ders: tuple[bytes, ...]) -> _Signer:
    signing_certificate, sid = _signer_parts(ders[0])
    # A SET OF in DER, so in the order of the encodings, as asn1crypto writes it.
    return _Signer(signing_certificate, sid, der.tlv(0xA0, b"".join(sorted(ders))))


@functools.lru_cache(maxsize=16)
def _signer_parts(certificate_der: bytes) -> tuple[bytes, bytes]:
    """The signing-certificate-v2 attribute and the signer identifier, DER: they depend only
    on the signer's certificate, and building them with asn1crypto for each message took a
    good share of a small message's sealing."""
    certificate = asn1_x509.Certificate.load(certificate_der)
    attribute = cms.CMSAttribute(
        {
            "type": "signing_certificate_v2",
            "values": [
                tsp.SigningCertificateV2(
                    {
                        "certs": [
                            tsp.ESSCertIDv2(
                                {
                                    "hash_algorithm": {"algorithm": "sha256"},
                                    "cert_hash": hashlib.sha256(certificate_der).digest(),
                                    "issuer_serial": {
                                        "issuer": [
                                            asn1_x509.GeneralName(
                                                name="directory_name",
                                                value=certificate.issuer,
                                            )
                                        ],
                                        "serial_number": certificate.serial_number,
                                    },
                                }
                            )
                        ]
                    }
                )
            ],
        }
    )
    signer_id = cms.SignerIdentifier(
        name="issuer_and_serial_number",
        value=cms.IssuerAndSerialNumber(
            {"issuer": certificate.issuer, "serial_number": certificate.serial_number}
        ),
    )
    return bytes(attribute.dump()), bytes(signer_id.dump())


def _signer_certificate(
    signer: cms.SignerInfo, certificates: list[asn1_x509.Certificate]
) -> asn1_x509.Certificate:
    sid = signer["sid"]
    for candidate in certificates:
        if sid.name == "issuer_and_serial_number":
            issuer = sid.chosen["issuer"]
            # The same bytes are the same name; else compare as RFC 5280 does (slower).
            if candidate.serial_number == sid.chosen["serial_number"].native and (
                candidate.issuer.dump() == issuer.dump() or candidate.issuer == issuer
            ):
                return candidate
        elif candidate.key_identifier == sid.chosen.native:
            return candidate
    raise SignatureInvalid("the signature does not include the signer's certificate")


def _attribute(attributes: cms.CMSAttributes, name: str) -> object | None:
    found = [a for a in attributes if a["type"].native == name]
    if len(found) > 1 or (found and len(found[0]["values"]) != 1):
        raise SignatureInvalid(f"the signed attribute {name} is present more than once")
    return found[0]["values"][0] if found else None


def verify_detached(
    signature: bytes,
    content: bytes,
    *,
    trust: TrustStore | None,
    at: datetime | None = None,
) -> x509.Certificate:
    """Check a detached CAdES/CMS signature over ``content``; return the signer's certificate.

    With ``trust`` the signer's certificate must chain to one of its anchors; without it only
    the signature itself is checked (say so to the user).
    """
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise SignatureInvalid(
                f"the signature file holds {info['content_type'].native}, not signed data"
            )
        signed_data = info["content"]
        signers = list(signed_data["signer_infos"])
        certificates = [c.chosen for c in signed_data["certificates"] if c.name == "certificate"]
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureInvalid(f"the signature is not a readable CMS SignedData: {exc}") from exc
    if len(signers) != 1:
        raise SignatureInvalid(f"the signature has {len(signers)} signers; exactly one is expected")
    try:
        return _verify_signer(signers[0], certificates, content, trust=trust, at=at)
    except (ValueError, TypeError, KeyError) as exc:
        # asn1crypto parses lazily: a damaged part is found only when it is read.
        raise SignatureInvalid(f"the signature is not a readable CMS SignedData: {exc}") from exc


def _verify_signer(
    signer: cms.SignerInfo,
    certificates: list[asn1_x509.Certificate],
    content: bytes,
    *,
    trust: TrustStore | None,
    at: datetime | None,
) -> x509.Certificate:
    certificate = _signer_certificate(signer, certificates)
    digest_name = signer["digest_algorithm"]["algorithm"].native
    if digest_name not in SIGNATURE_HASHES:
        raise SignatureInvalid(f"the signature uses the digest {digest_name}, which is refused")
    attributes = signer["signed_attrs"]
    if not isinstance(attributes, cms.CMSAttributes):
        raise SignatureInvalid("the signature has no signed attributes (not CAdES)")
    # Before anything reads the attributes: asn1crypto then still holds the bytes as sent,
    # where after it re-encodes them in Python, which took most of a verification's time.
    signed_bytes = _set_of(attributes)
    if not len(attributes):
        raise SignatureInvalid("the signature has no signed attributes (not CAdES)")
    content_type = _attribute(attributes, "content_type")
    if content_type is None or content_type.native != "data":  # type: ignore[attr-defined]
        raise SignatureInvalid("the signed content type is missing or not data")
    expected = _attribute(attributes, "message_digest")
    actual = hashlib.new(digest_name, content).digest()
    if expected is None or expected.native != actual:  # type: ignore[attr-defined]
        raise SignatureInvalid(
            "the signed digest does not match the signed file: it was changed after signing"
        )
    signing_certificate = _attribute(attributes, "signing_certificate_v2")
    if signing_certificate is not None:
        cert_ids = signing_certificate["certs"]  # type: ignore[index]
        cert_id = cert_ids[0]
        hash_name = cert_id["hash_algorithm"]["algorithm"].native
        if hash_name not in SIGNATURE_HASHES or (
            hashlib.new(hash_name, certificate.dump()).digest() != cert_id["cert_hash"].native
        ):
            raise SignatureInvalid(
                "the signingCertificateV2 attribute names another certificate than the signer's"
            )
    signer_certificate = x509.load_der_x509_certificate(certificate.dump())
    try:
        public_key = check_rsa(signer_certificate)
    except CertificateProblem as exc:
        raise SignatureInvalid(str(exc)) from exc
    algorithm = signer["signature_algorithm"]
    scheme = _scheme(algorithm, digest_name)
    try:
        public_key.verify(
            signer["signature"].native, signed_bytes, scheme, SIGNATURE_HASHES[digest_name]
        )
    except InvalidSignature as exc:
        raise SignatureInvalid(
            f"the signature by {describe(signer_certificate)} does not verify: the signed "
            "attributes were changed, or it was made with another key"
        ) from exc
    if trust is not None:
        intermediates = [
            x509.load_der_x509_certificate(c.dump()) for c in certificates if c is not certificate
        ]
        trust.verify(signer_certificate, intermediates, at=at)
    return signer_certificate


def _set_of(attributes: cms.CMSAttributes) -> bytes:
    """The signed attributes as signed: their original bytes with the SET OF tag (RFC 5652 5.4)."""
    encoded: bytes = attributes.dump()
    return b"\x31" + encoded[1:]


def _scheme(algorithm: algos.SignedDigestAlgorithm, digest_name: str) -> padding.AsymmetricPadding:
    name = algorithm["algorithm"].native
    if name in ("rsassa_pkcs1v15", f"{digest_name}_rsa"):
        return padding.PKCS1v15()
    if name == "rsassa_pss":
        parameters = algorithm["parameters"]
        mgf_hash = parameters["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if mgf_hash not in SIGNATURE_HASHES:
            raise SignatureInvalid(
                f"the PSS signature uses the digest {mgf_hash}, which is refused"
            )
        return padding.PSS(
            padding.MGF1(SIGNATURE_HASHES[mgf_hash]), parameters["salt_length"].native
        )
    raise SignatureInvalid(f"unsupported signature algorithm {name}")
