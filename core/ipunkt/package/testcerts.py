"""Throwaway certificate authorities and organisation certificates for tests and the sandbox.

The organisation certificates look like Norwegian *virksomhetssertifikater* (Buypass,
Commfides): the organisation number is the subject's ``serialNumber`` and, as in the newer
SEID 2 profile, ``organizationIdentifier`` ``NTRNO-<orgnr>``; key usage allows signing and key
encipherment, so one key seals, signs, decrypts and authenticates to Maskinporten, as the
integrasjonspunkt's single keystore entry does. Nothing here is fit for production.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import TrustStore

ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")

SIGN_AND_ENCRYPT = frozenset({"digital_signature", "key_encipherment", "data_encipherment"})
"""The default key usage of an organisation certificate made here."""


def _new_key(key_size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _key_usage(usages: frozenset[str]) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    )
    unknown = usages - set(names)
    if unknown:
        raise ValueError(f"unknown key usage {sorted(unknown)}; known: {names}")
    flags = {name: name in usages for name in names}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA that issues organisation certificates (and subordinate CAs) for tests."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())
    """The CAs above this one, nearest first (empty for a root)."""

    def subordinate(
        self, common_name: str, *, valid_days: int = 3650, key_size: int = 2048
    ) -> CertificateAuthority:
        """A CA certified by this one, as Buypass Class 3 CA is by its root."""
        key = _new_key(key_size)
        now = datetime.now(UTC)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ipunkt test"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        certificate = (
            self._builder(
                subject, key, now - timedelta(minutes=5), now + timedelta(days=valid_days)
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(frozenset({"key_cert_sign", "crl_sign"})), critical=True)
            .sign(self.private_key, hashes.SHA256())
        )
        return CertificateAuthority(key, certificate, (self.certificate, *self.chain))

    def issue(
        self,
        org_number: str,
        name: str | None = None,
        *,
        valid_days: int = 365,
        not_before: datetime | None = None,
        key_usage: frozenset[str] = SIGN_AND_ENCRYPT,
        key_size: int = 2048,
    ) -> OrganisationKey:
        """An organisation's key and certificate, with this CA's chain."""
        key = _new_key(key_size)
        start = not_before or datetime.now(UTC) - timedelta(minutes=5)
        label = name or f"TESTORGANISASJON {org_number}"
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, label),
                x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"NTRNO-{org_number}"),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, org_number),
                x509.NameAttribute(NameOID.COMMON_NAME, label),
            ]
        )
        certificate = (
            self._builder(subject, key, start, start + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(key_usage), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
                ),
                critical=False,
            )
            .sign(self.private_key, hashes.SHA256())
        )
        return OrganisationKey(key, certificate, (self.certificate, *self.chain))

    def _builder(
        self,
        subject: x509.Name,
        key: rsa.RSAPrivateKey,
        not_before: datetime,
        not_after: datetime,
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )


def make_ca(
    common_name: str = "ipunkt test root CA", *, valid_days: int = 3650, key_size: int = 2048
) -> CertificateAuthority:
    """A self-signed root CA."""
    key = _new_key(key_size)
    now = datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "NO"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ipunkt test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(frozenset({"key_cert_sign", "crl_sign"})), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, certificate)


def pem(*certificates: x509.Certificate) -> bytes:
    """Certificates as one PEM bundle."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


@dataclass(frozen=True)
class WrittenKey:
    """Where :func:`write_organisation` put an organisation's files."""

    certificate: Path
    """The certificate and its chain, PEM."""
    private_key: Path
    """The private key, PEM (PKCS#8), unencrypted: for tests only."""
    pkcs12: Path
    """Key, certificate and chain in one PKCS#12 file, protected by the password."""


def write_organisation(key: OrganisationKey, directory: Path, *, password: bytes) -> WrittenKey:
    """Write an organisation's key as PEM files and as a PKCS#12 file, named by org number."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = key.organisation_number or key.certificate.serial_number
    certificate = directory / f"{stem}.pem"
    private_key = directory / f"{stem}.key.pem"
    bundle = directory / f"{stem}.p12"
    certificate.write_bytes(pem(key.certificate, *key.chain))
    private_key.write_bytes(
        key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_key.chmod(0o600)
    bundle.write_bytes(
        pkcs12.serialize_key_and_certificates(
            name=str(stem).encode(),
            key=key.private_key,
            cert=key.certificate,
            cas=list(key.chain),
            encryption_algorithm=serialization.BestAvailableEncryption(password),
        )
    )
    bundle.chmod(0o600)
    return WrittenKey(certificate, private_key, bundle)


@dataclass(frozen=True)
class ThrowawayPki:
    """A root CA, an issuing CA below it (as Buypass has), and organisations' keys."""

    root: CertificateAuthority
    ca: CertificateAuthority
    organisations: dict[str, OrganisationKey]

    @property
    def trust(self) -> TrustStore:
        """The root as anchor and the issuing CA as a known intermediate."""
        return TrustStore([self.root.certificate], [self.ca.certificate])

    def __getitem__(self, org_number: str) -> OrganisationKey:
        return self.organisations[org_number]


def make_pki(*org_numbers: str) -> ThrowawayPki:
    """A throwaway PKI with a certificate for each organisation number."""
    root = make_ca()
    ca = root.subordinate("ipunkt test issuing CA")
    return ThrowawayPki(root, ca, {number: ca.issue(number) for number in org_numbers})


@dataclass(frozen=True)
class WrittenPki:
    """Where :func:`write_pki` put a throwaway PKI's files."""

    root: Path
    """The root CA certificate, PEM: the trust anchor to give OpenSSL, xmlsec1 or ipunkt."""
    keys: dict[str, WrittenKey]
    password: bytes

    def __getitem__(self, org_number: str) -> WrittenKey:
        return self.keys[org_number]


def write_pki(pki: ThrowawayPki, directory: Path, *, password: bytes) -> WrittenPki:
    """Write the root certificate and every organisation's key files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = directory / "root-ca.pem"
    root.write_bytes(pem(pki.root.certificate))
    (directory / "issuing-ca.pem").write_bytes(pem(pki.ca.certificate))
    keys = {
        number: write_organisation(key, directory, password=password)
        for number, key in pki.organisations.items()
    }
    return WrittenPki(root, keys, password)
