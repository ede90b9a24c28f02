"""XAdES-BES detached signatures for ASiC-E: ``META-INF/signatures.xml``, as DPI requires.

The layout follows efm-asic (and the SDP client it came from): one ``ds:Signature`` with a
reference per file, by its name in the container and its SHA-256, plus a reference to the
XAdES ``SignedProperties`` (signing time, the signer's certificate digest, each file's MIME
type). SignedInfo is canonicalised with C14N 1.1, SignedProperties with C14N 1.0; lxml does the
canonicalisation and cryptography the RSA. ``xmlsec1 --verify`` checks what this writes.

The files are digested while they stream into the ZIP, so this module never sees their bytes:
:func:`sign` takes their digests, and :func:`verify` returns the digests that were signed for
the caller to compare.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from ipunkt.package import safexml
from ipunkt.package.errors import CertificateProblem, SignatureInvalid
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import TrustStore, check_rsa, describe

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
ASIC = "http://uri.etsi.org/02918/v1.2.1#"
ASIC_NAMESPACES = (ASIC, "http://uri.etsi.org/02918/v1.1.1#", "http://uri.etsi.org/2918/v1.2.1#")
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"

C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
CANONICALISATIONS = {
    C14N_10: (False, False),
    C14N_10 + "#WithComments": (False, True),
    C14N_11: (False, False),
    C14N_11 + "#WithComments": (False, True),
    EXC_C14N: (True, False),
    EXC_C14N + "WithComments": (True, True),
}
"""Canonicalisation URI -> (exclusive, with comments)."""

DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
    "http://www.w3.org/2000/09/xmldsig#sha256": "sha256",
}
"""Digest URI -> hashlib name. The last is not a standard URI, but old efm-asic wrote it."""
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SIGNATURE_METHODS: dict[str, hashes.HashAlgorithm] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": hashes.SHA256(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": hashes.SHA384(),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": hashes.SHA512(),
}
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def _ds(name: str) -> str:
    return f"{{{DS}}}{name}"


def _xades(name: str) -> str:
    return f"{{{XADES}}}{name}"


@dataclass(frozen=True)
class SignedFile:
    """A file in the container as the signature names it."""

    name: str
    mime: str
    sha256: bytes


@dataclass(frozen=True)
class SignedReference:
    """What a verified signature says about one file."""

    digest_algorithm: str
    """hashlib's name for the digest, e.g. ``sha256``."""
    digest: bytes
    mime: str | None


@dataclass(frozen=True)
class Verified:
    signer: x509.Certificate
    files: dict[str, SignedReference]


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attributes: str
) -> etree._Element:
    element = etree.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _c14n(
    element: etree._Element, *, exclusive: bool = False, with_comments: bool = False
) -> bytes:
    canonical: bytes = etree.tostring(
        element, method="c14n", exclusive=exclusive, with_comments=with_comments
    )
    return canonical


def sign(
    files: Sequence[SignedFile], key: OrganisationKey, *, signing_time: datetime | None = None
) -> bytes:
    """``signatures.xml`` signing ``files`` (by their digests) with ``key``."""
    root = etree.Element(
        f"{{{ASIC}}}XAdESSignatures", nsmap={"asic": ASIC, "ds": DS, "xades": XADES}
    )
    signature = _sub(root, _ds("Signature"), Id="Signature")
    signed_info = _sub(signature, _ds("SignedInfo"))
    _sub(signed_info, _ds("CanonicalizationMethod"), Algorithm=C14N_11)
    _sub(signed_info, _ds("SignatureMethod"), Algorithm=RSA_SHA256)
    for index, file in enumerate(files):
        reference = _sub(signed_info, _ds("Reference"), Id=f"ID_{index}", URI=file.name)
        _sub(reference, _ds("DigestMethod"), Algorithm=SHA256)
        _sub(reference, _ds("DigestValue"), base64.b64encode(file.sha256).decode())
    properties_reference = _sub(
        signed_info, _ds("Reference"), Type=SIGNED_PROPERTIES_TYPE, URI="#SignedProperties"
    )
    transforms = _sub(properties_reference, _ds("Transforms"))
    _sub(transforms, _ds("Transform"), Algorithm=C14N_10)
    _sub(properties_reference, _ds("DigestMethod"), Algorithm=SHA256)
    properties_digest = _sub(properties_reference, _ds("DigestValue"))
    signature_value = _sub(signature, _ds("SignatureValue"))
    x509_data = _sub(_sub(signature, _ds("KeyInfo")), _ds("X509Data"))
    for certificate in (key.certificate, *key.chain):
        der = certificate.public_bytes(serialization.Encoding.DER)
        _sub(x509_data, _ds("X509Certificate"), base64.b64encode(der).decode())
    qualifying = _sub(
        _sub(signature, _ds("Object")), _xades("QualifyingProperties"), Target="#Signature"
    )
    properties = _sub(qualifying, _xades("SignedProperties"), Id="SignedProperties")
    signature_properties = _sub(properties, _xades("SignedSignatureProperties"))
    when = (signing_time or datetime.now(UTC)).astimezone(UTC)
    _sub(signature_properties, _xades("SigningTime"), when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cert = _sub(_sub(signature_properties, _xades("SigningCertificate")), _xades("Cert"))
    cert_digest = _sub(cert, _xades("CertDigest"))
    _sub(cert_digest, _ds("DigestMethod"), Algorithm=SHA256)
    leaf_der = key.certificate.public_bytes(serialization.Encoding.DER)
    _sub(
        cert_digest,
        _ds("DigestValue"),
        base64.b64encode(hashlib.sha256(leaf_der).digest()).decode(),
    )
    issuer_serial = _sub(cert, _xades("IssuerSerial"))
    _sub(issuer_serial, _ds("X509IssuerName"), key.certificate.issuer.rfc4514_string())
    _sub(issuer_serial, _ds("X509SerialNumber"), str(key.certificate.serial_number))
    object_properties = _sub(properties, _xades("SignedDataObjectProperties"))
    for index, file in enumerate(files):
        data_format = _sub(
            object_properties, _xades("DataObjectFormat"), ObjectReference=f"#ID_{index}"
        )
        _sub(data_format, _xades("MimeType"), file.mime)

    properties_digest.text = base64.b64encode(hashlib.sha256(_c14n(properties)).digest()).decode()
    signed = key.private_key.sign(_c14n(signed_info), padding.PKCS1v15(), hashes.SHA256())
    signature_value.text = base64.b64encode(signed).decode()
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return document


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise SignatureInvalid(f"signatures.xml has {len(found)} {what}; exactly one is expected")
    return found[0]


def _algorithm(element: etree._Element, allowed: Mapping[str, object], what: str) -> str:
    algorithm: str = element.get("Algorithm", "")
    if algorithm not in allowed:
        raise SignatureInvalid(f"signatures.xml uses the {what} {algorithm!r}, which is refused")
    return algorithm


def _b64(element: etree._Element | None, what: str) -> bytes:
    if element is None or not (element.text or "").strip():
        raise SignatureInvalid(f"signatures.xml has no {what}")
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except ValueError as exc:
        raise SignatureInvalid(f"signatures.xml has a malformed {what}") from exc


def _canonical(element: etree._Element, method: str) -> bytes:
    exclusive, with_comments = CANONICALISATIONS[method]
    if method.startswith(C14N_11) and any(
        name.startswith("{http://www.w3.org/XML/1998/namespace}")
        for ancestor in element.iterancestors()
        for name in ancestor.attrib
    ):
        raise SignatureInvalid(
            "signatures.xml inherits xml: attributes under C14N 1.1 (unsupported)"
        )
    return _c14n(element, exclusive=exclusive, with_comments=with_comments)


def verify(document: bytes, *, trust: TrustStore | None, at: datetime | None = None) -> Verified:
    """Check ``signatures.xml`` and return its signer and the file digests it signs.

    The signature over SignedInfo, the SignedProperties digest and the signing-certificate
    binding are checked here; the caller compares the returned digests with the files.
    """
    try:
        root = safexml.parse(document, what="signatures.xml")
    except safexml.UnsafeXml as exc:
        raise SignatureInvalid(str(exc)) from exc
    if (
        etree.QName(root).localname != "XAdESSignatures"
        or etree.QName(root).namespace not in ASIC_NAMESPACES
    ):
        raise SignatureInvalid(
            f"signatures.xml has the root element {root.tag}, not XAdESSignatures"
        )
    signature = _one(root, _ds("Signature"), "signatures")
    ids: dict[str, etree._Element] = {}
    for element in root.iter():
        identifier = element.get("Id")
        if identifier is not None:
            if identifier in ids:
                raise SignatureInvalid(f"signatures.xml uses the Id {identifier!r} twice")
            ids[identifier] = element
    signed_info = _one(signature, _ds("SignedInfo"), "SignedInfo elements")
    c14n_method = _algorithm(
        _one(signed_info, _ds("CanonicalizationMethod"), "CanonicalizationMethods"),
        CANONICALISATIONS,
        "canonicalisation",
    )
    signature_method = _algorithm(
        _one(signed_info, _ds("SignatureMethod"), "SignatureMethods"),
        SIGNATURE_METHODS,
        "signature method",
    )
    files: dict[str, SignedReference] = {}
    by_id: dict[str, str] = {}
    signed_properties: etree._Element | None = None
    for reference in signed_info.findall(_ds("Reference")):
        uri = reference.get("URI")
        if uri is None:
            raise SignatureInvalid("signatures.xml has a reference without a URI")
        digest_name = DIGESTS[
            _algorithm(_one(reference, _ds("DigestMethod"), "DigestMethods"), DIGESTS, "digest")
        ]
        digest = _b64(reference.find(_ds("DigestValue")), "digest value")
        transforms = reference.findall(f"{_ds('Transforms')}/{_ds('Transform')}")
        if uri.startswith("#"):
            target = ids.get(uri[1:])
            if (
                target is None
                or target.tag != _xades("SignedProperties")
                or signature not in target.iterancestors()
            ):
                raise SignatureInvalid(
                    f"signatures.xml references {uri}, which is not its SignedProperties"
                )
            method = C14N_10
            for transform in transforms:
                method = _algorithm(transform, CANONICALISATIONS, "transform")
            if hashlib.new(digest_name, _canonical(target, method)).digest() != digest:
                raise SignatureInvalid(
                    "the signed properties (signing time, certificate, MIME types) were "
                    "changed after signing"
                )
            signed_properties = target
            continue
        if transforms:
            raise SignatureInvalid(f"signatures.xml transforms the file {uri}, which is refused")
        if not uri:
            raise SignatureInvalid("signatures.xml references the whole document (empty URI)")
        if uri in files or unquote(uri) in files:
            raise SignatureInvalid(f"signatures.xml references {uri} twice")
        files[uri] = SignedReference(digest_name, digest, None)
        if reference.get("Id"):
            by_id[reference.get("Id", "")] = uri
    if signed_properties is None:
        raise SignatureInvalid("signatures.xml does not sign its SignedProperties (not XAdES)")

    certificates = []
    for element in signature.findall(
        f"{_ds('KeyInfo')}/{_ds('X509Data')}/{_ds('X509Certificate')}"
    ):
        try:
            certificates.append(x509.load_der_x509_certificate(_b64(element, "certificate")))
        except ValueError as exc:
            raise SignatureInvalid("signatures.xml holds an unreadable certificate") from exc
    if not certificates:
        raise SignatureInvalid("signatures.xml does not include the signer's certificate")
    signer = _signer(signed_properties, certificates)

    try:
        public_key = check_rsa(signer)
    except CertificateProblem as exc:
        raise SignatureInvalid(str(exc)) from exc
    signature_bytes = _b64(signature.find(_ds("SignatureValue")), "signature value")
    try:
        public_key.verify(
            signature_bytes,
            _canonical(signed_info, c14n_method),
            padding.PKCS1v15(),
            SIGNATURE_METHODS[signature_method],
        )
    except InvalidSignature as exc:
        raise SignatureInvalid(
            f"the XAdES signature by {describe(signer)} does not verify: the list of signed "
            "files was changed, or it was made with another key"
        ) from exc
    if trust is not None:
        trust.verify(signer, [c for c in certificates if c is not signer], at=at)

    for data_format in signed_properties.iter(_xades("DataObjectFormat")):
        target_name = by_id.get(data_format.get("ObjectReference", "").lstrip("#"))
        mime = data_format.findtext(_xades("MimeType"))
        if target_name is not None and mime:
            files[target_name] = SignedReference(
                files[target_name].digest_algorithm, files[target_name].digest, mime.strip()
            )
    return Verified(signer, files)


def _signer(
    signed_properties: etree._Element, certificates: list[x509.Certificate]
) -> x509.Certificate:
    """The certificate the SigningCertificate property names (XAdES binds the signer this way)."""
    cert_digests = list(signed_properties.iter(_xades("CertDigest")))
    if not cert_digests:
        raise SignatureInvalid("signatures.xml has no SigningCertificate (not XAdES-BES)")
    cert_digest = cert_digests[0]
    method = cert_digest.find(_ds("DigestMethod"))
    algorithm = (method.get("Algorithm") if method is not None else None) or ""
    hash_name = DIGESTS.get(algorithm) or (
        "sha1" if algorithm == "http://www.w3.org/2000/09/xmldsig#sha1" else None
    )
    if hash_name is None:
        raise SignatureInvalid(f"the SigningCertificate digest {algorithm!r} is not supported")
    expected = _b64(cert_digest.find(_ds("DigestValue")), "signing certificate digest")
    for certificate in certificates:
        der = certificate.public_bytes(serialization.Encoding.DER)
        if hashlib.new(hash_name, der).digest() == expected:
            return certificate
    raise SignatureInvalid(
        "the SigningCertificate property names none of the included certificates"
    )
