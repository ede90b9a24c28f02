"""Compact JWS with RS256: DPI business messages, Service Registry answers, Maskinporten grants.

joserfc does the JOSE work. What it leaves to us is whom to believe: a signature with an
``x5c`` header is only as good as the certificate in it, so :func:`verify` checks that
certificate (valid now, allowed to sign, chaining to a trust anchor) before it checks the
signature with its key. A signature by a pre-shared key (the Service Registry's JWK, a
Maskinporten client's registered key) is verified with that key instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, RSAKey
from joserfc.jws import JWSRegistry

from ipunkt.package.errors import CertificateProblem, SignatureInvalid
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.trust import TrustStore, organisation_number

ALGORITHMS = ("RS256", "RS384", "RS512")


def _registry() -> JWSRegistry:
    """joserfc's defaults, with room for an ``x5c`` chain and an SBD in the payload."""
    registry = JWSRegistry(algorithms=ALGORITHMS, strict_check_header=False)
    registry.max_header_length = 32 << 10
    registry.max_payload_length = 16 << 20
    registry.max_signature_length = 2048
    return registry


REGISTRY = _registry()


def sign(
    payload: bytes | Mapping[str, Any],
    key: OrganisationKey | rsa.RSAPrivateKey,
    *,
    kid: str | None = None,
    with_chain: bool = False,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A compact RS256 JWS over ``payload`` (a mapping is serialised as JSON).

    With an :class:`OrganisationKey` and no ``kid`` the header carries ``x5c`` (the
    certificate, or the whole chain with ``with_chain``); with ``kid`` it names a key the
    verifier already has.
    """
    protected: dict[str, Any] = {"alg": "RS256", **(headers or {})}
    if kid is not None:
        protected["kid"] = kid
    elif isinstance(key, OrganisationKey):
        protected["x5c"] = key.x5c(with_chain=with_chain)
    else:
        raise ValueError("a bare RSA key needs a kid: there is no certificate to send")
    private_key = key.private_key if isinstance(key, OrganisationKey) else key
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return jws.serialize_compact(protected, body, RSAKey.import_key(private_key), registry=REGISTRY)


@dataclass(frozen=True)
class Verified:
    """A JWS whose signature checked out."""

    header: dict[str, Any]
    payload: bytes
    certificate: x509.Certificate | None
    """The signer's certificate, when the JWS carried one (``x5c``)."""

    def json(self) -> Any:
        try:
            return json.loads(self.payload)
        except ValueError as exc:
            raise SignatureInvalid(f"the JWS payload is not JSON: {exc}") from exc


def header_of(token: str) -> dict[str, Any]:
    """The protected header, unverified: for choosing the key (``kid``) or routing."""
    try:
        return dict(jws.extract_compact(token.encode(), registry=REGISTRY).headers())
    except (JoseError, ValueError) as exc:
        raise SignatureInvalid(f"not a compact JWS: {exc}") from exc


def _certificates(header: Mapping[str, Any]) -> list[x509.Certificate]:
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise SignatureInvalid("the JWS has no x5c certificate chain")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in chain]
    except ValueError as exc:
        raise SignatureInvalid(f"the JWS x5c header holds a bad certificate: {exc}") from exc


def verify(
    token: str,
    *,
    trust: TrustStore | None = None,
    public_key: rsa.RSAPublicKey | Callable[[Mapping[str, Any]], rsa.RSAPublicKey] | None = None,
    at: datetime | None = None,
    organisation: str | None = None,
    algorithms: Collection[str] = ALGORITHMS,
) -> Verified:
    """Verify a compact JWS; raise :class:`SignatureInvalid` saying what is wrong.

    Give ``public_key`` (or a function from the header to a key, for ``kid``) to verify with
    a known key, or ``trust`` to verify by the ``x5c`` certificate, which must chain to one of
    its anchors and, with ``organisation``, belong to that organisation number.
    """
    header = header_of(token)
    if header.get("alg") not in algorithms:
        raise SignatureInvalid(f"the JWS algorithm {header.get('alg')!r} is not accepted")
    certificate = None
    if public_key is not None:
        key = public_key(header) if callable(public_key) else public_key
    elif trust is not None:
        certificates = _certificates(header)
        certificate = certificates[0]
        try:
            trust.verify(certificate, certificates[1:], at=at)
        except CertificateProblem as exc:
            raise SignatureInvalid(f"the JWS signer's certificate is not trusted: {exc}") from exc
        if organisation is not None and organisation_number(certificate) != organisation:
            raise SignatureInvalid(
                f"the JWS is signed by organisation {organisation_number(certificate)}, "
                f"not {organisation}"
            )
        key = certificate.public_key()  # type: ignore[assignment]
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureInvalid("the JWS signer's certificate has no RSA key")
    else:
        raise ValueError("verify needs a public key or a trust store")

    def resolve(_: GuestProtocol) -> RSAKey:
        return RSAKey.import_key(key)

    try:
        verified = jws.deserialize_compact(
            token, resolve, algorithms=list(algorithms), registry=REGISTRY
        )
    except JoseError as exc:
        raise SignatureInvalid(f"the JWS signature does not verify ({exc.error})") from exc
    return Verified(dict(verified.headers()), verified.payload, certificate)
