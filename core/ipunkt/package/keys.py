"""The organisation's own key: its private key, certificate and chain, loaded and checked.

The key comes from a PKCS#12 file (what Buypass and Commfides deliver, and what
``keytool -importkeystore`` makes of the integrasjonspunkt's JKS keystore) or from PEM. Its
password is never in the config: it comes from an environment variable or a file. At start-up
:func:`check_key` refuses a key that would fail later, at the worst moment, with a message that
says what to fix.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from ipunkt.package.errors import CertificateProblem, KeyProblem
from ipunkt.package.trust import (
    TrustStore,
    check_rsa,
    check_usage,
    check_validity,
    describe,
    load_certificates,
    organisation_number,
)

JKS_MAGIC = b"\xfe\xed\xfe\xed"
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN ([A-Z ]*PRIVATE KEY)-----.+?-----END \1-----", re.S)
OWN_KEY_USAGES = ("digital_signature", "key_encipherment")
"""We sign (ASiC-E, JWS, Maskinporten) and receive packages encrypted to us."""


@dataclass(frozen=True)
class OrganisationKey:
    """A private key with its certificate and the CA certificates above it (nearest first)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default=())

    @property
    def organisation_number(self) -> str | None:
        return organisation_number(self.certificate)

    def x5c(self, *, with_chain: bool = False) -> list[str]:
        """The certificate (and chain) as a JOSE ``x5c`` header: base64 DER, leaf first."""
        certificates = [self.certificate, *self.chain] if with_chain else [self.certificate]
        return [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
            for c in certificates
        ]


def read_password(
    *, password: str | bytes | None = None, env: str | None = None, file: Path | None = None
) -> bytes | None:
    """The key's password from exactly one of: a value, an environment variable, a file.

    A file's trailing newline is dropped, as ``echo secret > file`` leaves one.
    """
    given = [name for name, value in (("value", password), ("env", env), ("file", file)) if value]
    if len(given) > 1:
        raise KeyProblem(f"give the key password one way, not several ({', '.join(given)})")
    if isinstance(password, str):
        return password.encode()
    if password is not None:
        return password
    if env:
        value = os.environ.get(env)
        if value is None:
            raise KeyProblem(f"the key password variable {env} is not set")
        return value.encode()
    if file:
        try:
            return Path(file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise KeyProblem(f"cannot read the key password file {file}: {exc}") from exc
    return None


def load_key(
    path: Path, *, password: bytes | None = None, certificate: Path | None = None
) -> OrganisationKey:
    """Load a key from PKCS#12 (``.p12``/``.pfx``) or PEM.

    A PEM file may hold the key and the certificates together, or the certificates may be in a
    separate ``certificate`` file. The chain is ordered from the leaf up whatever the order in
    the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyProblem(f"cannot read the key file {path}: {exc}") from exc
    if data.startswith(JKS_MAGIC):
        raise KeyProblem(
            f"{path} is a Java KeyStore (JKS), which ipunkt does not read; convert it with "
            f"`keytool -importkeystore -srckeystore {path} -destkeystore {path.stem}.p12 "
            "-deststoretype PKCS12`"
        )
    if b"-----BEGIN" in data:
        key, certificates = _load_pem(path, data, password)
    else:
        key, certificates = _load_pkcs12(path, data, password)
    if certificate is not None:
        try:
            extra = Path(certificate).read_bytes()
        except OSError as exc:
            raise KeyProblem(f"cannot read the certificate file {certificate}: {exc}") from exc
        certificates.extend(load_certificates(extra, source=str(certificate)))
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyProblem(f"{path} holds a {type(key).__name__}; eFormidling needs an RSA key")
    leaf = _certificate_of(key, certificates, path)
    return OrganisationKey(key, leaf, _chain_of(leaf, certificates))


def _load_pkcs12(
    path: Path, data: bytes, password: bytes | None
) -> tuple[object, list[x509.Certificate]]:
    try:
        key, leaf, others = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        hint = "no password was given" if password is None else "wrong password"
        raise KeyProblem(
            f"cannot open {path} as PKCS#12 ({hint}, or the file is damaged): {exc}"
        ) from exc
    if key is None:
        raise KeyProblem(f"{path} holds no private key")
    return key, [c for c in (leaf, *others) if c is not None]


def _load_pem(
    path: Path, data: bytes, password: bytes | None
) -> tuple[object, list[x509.Certificate]]:
    block = PEM_PRIVATE_KEY.search(data)
    if block is None:
        raise KeyProblem(f"{path} holds no PEM private key")
    try:
        key = serialization.load_pem_private_key(block.group(0), password)
    except TypeError as exc:
        raise KeyProblem(f"the private key in {path} is encrypted: give its password") from exc
    except ValueError as exc:
        raise KeyProblem(
            f"cannot read the private key in {path} (wrong password or damaged): {exc}"
        ) from exc
    certificates = load_certificates(data, source=str(path)) if b"CERTIFICATE-----" in data else []
    return key, certificates


def _certificate_of(
    key: rsa.RSAPrivateKey, certificates: list[x509.Certificate], path: Path
) -> x509.Certificate:
    public = key.public_key().public_numbers()
    for candidate in certificates:
        candidate_key = candidate.public_key()
        if isinstance(candidate_key, rsa.RSAPublicKey) and candidate_key.public_numbers() == public:
            return candidate
    if not certificates:
        raise KeyProblem(f"{path} has no certificate for its key; give the certificate file")
    raise KeyProblem(
        f"none of the certificates with {path} belongs to its private key "
        f"(found {', '.join(describe(c) for c in certificates)})"
    )


def _chain_of(
    leaf: x509.Certificate, certificates: Iterable[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    pool = [c for c in certificates if c != leaf]
    chain: list[x509.Certificate] = []
    current = leaf
    while current.issuer != current.subject:
        issuer = next((c for c in pool if c.subject == current.issuer and c not in chain), None)
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    return tuple(chain)


def check_key(
    key: OrganisationKey,
    *,
    trust: TrustStore | None = None,
    at: datetime | None = None,
    warn_within: timedelta = timedelta(days=30),
) -> list[str]:
    """Refuse a key that cannot be used; return warnings (e.g. expiring soon) for the log.

    Checks: RSA of 2048 bits or more; the certificate valid now and allowing signatures and key
    encipherment; each certificate of the chain issued by the next and valid; and, given a
    trust store, a path to one of its anchors.
    """
    when = at or datetime.now(UTC)
    try:
        check_rsa(key.certificate)
        check_validity(key.certificate, when)
        check_usage(key.certificate, OWN_KEY_USAGES)
        child = key.certificate
        for issuer in key.chain:
            check_validity(issuer, when)
            try:
                child.verify_directly_issued_by(issuer)
            except (ValueError, TypeError) as exc:
                raise CertificateProblem(
                    f"the chain is broken: {describe(child)} is not signed by {describe(issuer)}"
                ) from exc
            child = issuer
        if trust is not None:
            trust.verify(key.certificate, key.chain, at=when, usages=OWN_KEY_USAGES)
    except CertificateProblem as exc:
        raise KeyProblem(f"our own key cannot be used: {exc}") from exc
    warnings = []
    remaining = key.certificate.not_valid_after_utc - when
    if remaining < warn_within:
        warnings.append(
            f"our certificate {describe(key.certificate)} expires in {remaining.days} days "
            f"({key.certificate.not_valid_after_utc.isoformat()}); order a new one"
        )
    return warnings
