"""Whose certificates we believe: path validation against trust anchors, validity, key usage.

Path building and signature checks are cryptography's X.509 verifier (RFC 5280 with the CA/B
Forum's rules for the CAs). The end-entity certificate is held to the checks eFormidling needs
rather than to the web PKI's: valid now, the right key usage, RSA of 2048 bits or more. The
organisation it belongs to is read from its subject, as in a *virksomhetssertifikat*.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ipunkt.package.errors import CertificateProblem

ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")
MIN_RSA_BITS = 2048


NAMES = {NameOID.SERIAL_NUMBER: "serialNumber", ORGANIZATION_IDENTIFIER: "organizationIdentifier"}


def describe(certificate: x509.Certificate) -> str:
    """A certificate as people name it: subject, then serial number and issuer."""
    subject = certificate.subject.rfc4514_string(NAMES)
    issuer = certificate.issuer.rfc4514_string(NAMES)
    return f"{subject} (serial {certificate.serial_number:x}, issued by {issuer})"


def organisation_number(certificate: x509.Certificate) -> str | None:
    """The Norwegian organisation number in the subject (``serialNumber`` or ``NTRNO-``)."""
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
        value = str(attribute.value)
        if value.isdigit() and len(value) == 9:
            return value
    for attribute in certificate.subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER):
        value = str(attribute.value)
        if value.startswith("NTRNO-") and value[6:].isdigit():
            return value[6:]
    return None


def check_validity(certificate: x509.Certificate, at: datetime | None = None) -> None:
    """Refuse a certificate that is not yet valid or has expired, saying when."""
    now = at or datetime.now(UTC)
    if now < certificate.not_valid_before_utc:
        raise CertificateProblem(
            f"certificate {describe(certificate)} is not valid until "
            f"{certificate.not_valid_before_utc.isoformat()}"
        )
    if now > certificate.not_valid_after_utc:
        raise CertificateProblem(
            f"certificate {describe(certificate)} expired on "
            f"{certificate.not_valid_after_utc.isoformat()}"
        )


def check_usage(certificate: x509.Certificate, usages: Iterable[str]) -> None:
    """Refuse a certificate whose key usage extension forbids one of ``usages``.

    ``usages`` are cryptography's attribute names (``digital_signature``,
    ``key_encipherment``...). A certificate without the extension may be used for anything
    (RFC 5280, 4.2.1.3).
    """
    try:
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    missing = [usage for usage in usages if not getattr(key_usage, usage)]
    if missing:
        raise CertificateProblem(
            f"certificate {describe(certificate)} may not be used for "
            f"{', '.join(u.replace('_', ' ') for u in missing)} (key usage extension)"
        )


def check_rsa(certificate: x509.Certificate) -> rsa.RSAPublicKey:
    """The certificate's RSA public key; eFormidling's algorithms (RS256, RSA key transport)."""
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateProblem(
            f"certificate {describe(certificate)} has a {type(key).__name__} key; "
            "eFormidling needs RSA"
        )
    if key.key_size < MIN_RSA_BITS:
        raise CertificateProblem(
            f"certificate {describe(certificate)} has a {key.key_size}-bit RSA key; "
            f"at least {MIN_RSA_BITS} bits are needed"
        )
    return key


def load_certificates(data: bytes, *, source: str = "certificate data") -> list[x509.Certificate]:
    """Certificates from PEM (one or more) or DER bytes."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CertificateProblem(f"{source} holds no readable X.509 certificate: {exc}") from exc


class TrustStore:
    """The trust anchors (root CAs) that certificates of our peers must chain to.

    Known intermediate CAs (Buypass Class 3 CA, Commfides CA...) may be added too: peers often
    send only their own certificate (an ``x5c`` of one), so the path is built from these.
    They are not anchors: a path through one must still end at a root.
    """

    def __init__(
        self,
        anchors: Iterable[x509.Certificate],
        intermediates: Iterable[x509.Certificate] = (),
    ) -> None:
        self.anchors = tuple(anchors)
        self.intermediates = tuple(intermediates)
        if not self.anchors:
            raise CertificateProblem("a trust store needs at least one root (self-signed) CA")
        self._store = Store(list(self.anchors))

    @classmethod
    def load(cls, *paths: Path) -> TrustStore:
        """Roots (self-signed) and intermediate CAs from PEM or DER files."""
        certificates: list[x509.Certificate] = []
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise CertificateProblem(f"cannot read trust anchors from {path}: {exc}") from exc
            certificates.extend(load_certificates(data, source=str(path)))
        roots = [c for c in certificates if c.issuer == c.subject]
        return cls(roots, [c for c in certificates if c.issuer != c.subject])

    def verify(
        self,
        certificate: x509.Certificate,
        intermediates: Sequence[x509.Certificate] = (),
        *,
        at: datetime | None = None,
        usages: Iterable[str] = ("digital_signature",),
    ) -> tuple[x509.Certificate, ...]:
        """Check ``certificate`` and return its path to an anchor (leaf first).

        Raises :class:`CertificateProblem` naming the certificate and what is wrong.
        """
        when = at or datetime.now(UTC)
        check_validity(certificate, when)
        check_usage(certificate, usages)
        check_rsa(certificate)
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(when)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(certificate, [*intermediates, *self.intermediates])
        except VerificationError as exc:
            raise CertificateProblem(
                f"certificate {describe(certificate)} does not chain to a trusted CA: {exc}"
            ) from exc
        return tuple(verified.chain)
