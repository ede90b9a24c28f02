"""A fake Maskinporten and Altinn token exchange, for tests and the sandbox.

It is strict where Maskinporten is strict, so that a client that works here works there: the
grant's signature is checked against the ``x5c`` certificate (which must chain to the fake's
trust anchors and belong to the client's organisation) or against the key registered under its
``kid``; ``aud`` must be the issuer, ``iat`` within 10 s of the clock, ``exp`` no more than
120 s after ``iat`` and not passed, ``jti`` never seen before; every scope must be granted to
the client, ``consumer_org`` must have delegated to it and a system user must be its own.
Refusals have Maskinporten's shape: HTTP 400 with ``{"error", "error_description"}``.

The tokens it issues are JWTs signed by the fake's own key (published at ``/jwk``), which
:meth:`FakeMaskinporten.verify_access_token` checks for the fakes of the services that accept
them. ``GET /authentication/api/v1/exchange/maskinporten`` trades such a token for an Altinn
token, as Altinn 3 does.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import RSAKey

from ipunkt.maskinporten.client import AUTHORITY, GRANT_TYPE, SYSTEM_USER_TYPE
from ipunkt.package import jws
from ipunkt.package.errors import PackageError
from ipunkt.package.trust import TrustStore

CLOCK_SKEW = 10
MAX_ASSERTION_LIFETIME = 120
EXCHANGE_PATH = "/authentication/api/v1/exchange/maskinporten"
VERIFIED_TOKENS = 10_000
"""Tokens whose verified claims the fake remembers (their expiry is still checked each time)."""


@dataclass(frozen=True)
class FakeClient:
    """A client registered with the fake, as in Digdir's self-service portal."""

    client_id: str
    organisation: str
    """The organisation number that owns the client (and must own its certificate)."""
    scopes: frozenset[str]
    keys: Mapping[str, rsa.RSAPublicKey] = field(default_factory=dict)
    """Keys registered by ``kid``, for grants without a certificate."""
    consumers: frozenset[str] = frozenset()
    """Organisations that delegated the scopes to this client (``consumer_org``)."""
    system_users: frozenset[str] = frozenset()
    """The ``externalRef`` of the organisation's Altinn system users the client may use."""


class Refused(Exception):
    """A grant refused with an OAuth error code and Maskinporten's description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class InvalidToken(Exception):
    """A bearer token that the fake did not issue, or that has expired."""


def _claims_of(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise Refused("invalid_grant", "Invalid assertion. The assertion is not a JWT.") from exc
    if not isinstance(claims, dict):
        raise Refused("invalid_grant", "Invalid assertion. The JWT claims are not an object.")
    return claims


def new_signing_key() -> rsa.RSAPrivateKey:
    """A fresh RSA key of the size Maskinporten signs with."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_id(key: rsa.RSAPrivateKey) -> str:
    """The key's RFC 7638 thumbprint: the same ``kid`` whenever the same key is used."""
    return str(RSAKey.import_key(key.public_key()).thumbprint())


class FakeMaskinporten:
    """The fake's state: registered clients, used ``jti``s, issued tokens; and its web app."""

    def __init__(
        self,
        *,
        trust: TrustStore,
        issuer: str | None = None,
        token_lifetime: int = 120,
        altinn_lifetime: int = 1800,
        clock: Callable[[], float] = time.time,
        key: rsa.RSAPrivateKey | None = None,
        altinn_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        """``key`` signs the access tokens and ``altinn_key`` the exchanged Altinn tokens (new
        ones by default); a fake restarted with the same keys still accepts the tokens it
        issued before, as the sandbox's resume needs."""
        self.trust = trust
        self.issuer = issuer
        self.token_lifetime = token_lifetime
        self.altinn_lifetime = altinn_lifetime
        self.clock = clock
        self.clients: dict[str, FakeClient] = {}
        self.issued: list[dict[str, Any]] = []
        """The claims of every access token issued, for tests."""
        self.exchanges = 0
        self._used_jti: dict[str, float] = {}
        self._verified: dict[tuple[str, int], dict[str, Any]] = {}
        self._key = key or new_signing_key()
        self._kid = _key_id(self._key)
        self._altinn_key = altinn_key or new_signing_key()
        self._altinn_kid = _key_id(self._altinn_key)

    def register(self, client: FakeClient) -> FakeClient:
        self.clients[client.client_id] = client
        return client

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        app.router.add_get("/jwk", self._jwk)
        app.router.add_get(EXCHANGE_PATH, self._exchange)
        return app

    def _issuer(self, request: web.Request) -> str:
        return self.issuer or f"{request.scheme}://{request.host}/"

    async def _metadata(self, request: web.Request) -> web.Response:
        issuer = self._issuer(request)
        return web.json_response(
            {
                "issuer": issuer,
                "token_endpoint": f"{issuer}token",
                "jwks_uri": f"{issuer}jwk",
                "grant_types_supported": [GRANT_TYPE],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def _jwk(self, request: web.Request) -> web.Response:
        key = RSAKey.import_key(self._key.public_key()).as_dict(private=False)
        return web.json_response(
            {"keys": [{**key, "kid": self._kid, "alg": "RS256", "use": "sig"}]}
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            if form.get("grant_type") != GRANT_TYPE:
                raise Refused(
                    "unsupported_grant_type",
                    f"Unsupported grant_type {form.get('grant_type')!r}; use {GRANT_TYPE}",
                )
            assertion = form.get("assertion")
            if not isinstance(assertion, str) or not assertion:
                raise Refused("invalid_request", "Missing the assertion parameter.")
            answer = self._grant(assertion, self._issuer(request))
        except Refused as refused:
            return web.json_response(
                {"error": refused.error, "error_description": refused.description}, status=400
            )
        return web.json_response(answer)

    def _grant(self, assertion: str, issuer: str) -> dict[str, Any]:
        try:
            header = jws.header_of(assertion)
        except PackageError as exc:
            raise Refused("invalid_grant", f"Invalid assertion. {exc}") from exc
        claims = _claims_of(assertion)
        client = self.clients.get(str(claims.get("iss")))
        if client is None:
            raise Refused(
                "invalid_client",
                f"Invalid assertion. Client authentication failed. Unknown client: "
                f"{claims.get('iss')!r}",
            )
        self._check_signature(assertion, header, client)
        self._check_claims(claims, issuer)
        scopes = str(claims.get("scope", "")).split()
        if not scopes:
            raise Refused("invalid_scope", "Missing the scope claim.")
        missing = [s for s in scopes if s not in client.scopes]
        if missing:
            raise Refused(
                "invalid_scope",
                f"Scope(s) not allowed for client {client.client_id}: {' '.join(missing)}",
            )
        consumer = client.organisation
        consumer_org = claims.get("consumer_org")
        if consumer_org is not None:
            if consumer_org not in client.consumers:
                raise Refused(
                    "invalid_scope",
                    f"Consumer {consumer_org} has not delegated access to the scope(s) "
                    f"{' '.join(scopes)} to {client.organisation}.",
                )
            consumer = str(consumer_org)
        details = self._authorization_details(claims.get("authorization_details"), client)
        now = int(self.clock())
        access: dict[str, Any] = {
            "iss": issuer,
            "client_amr": "virksomhetssertifikat" if "x5c" in header else "private_key_jwt",
            "token_type": "Bearer",
            "scope": " ".join(scopes),
            "client_id": client.client_id,
            "consumer": {"authority": AUTHORITY, "ID": f"0192:{consumer}"},
            "iat": now,
            "exp": now + self.token_lifetime,
            "jti": str(uuid.uuid4()),
        }
        if consumer_org is not None:
            access["supplier"] = {"authority": AUTHORITY, "ID": f"0192:{client.organisation}"}
        if details:
            access["authorization_details"] = details
        self.issued.append(access)
        return {
            "access_token": jws.sign(access, self._key, kid=self._kid),
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "scope": access["scope"],
        }

    def _check_signature(
        self, assertion: str, header: Mapping[str, Any], client: FakeClient
    ) -> None:
        try:
            if "x5c" in header:
                jws.verify(assertion, trust=self.trust, organisation=client.organisation)
            elif "kid" in header:
                key = client.keys.get(str(header["kid"]))
                if key is None:
                    raise Refused(
                        "invalid_grant",
                        f"Invalid assertion. Client authentication failed. Unknown kid "
                        f"{header['kid']!r} for client {client.client_id}.",
                    )
                jws.verify(assertion, public_key=key)
            else:
                raise Refused(
                    "invalid_grant",
                    "Invalid assertion. Client authentication failed. Either kid or x5c must "
                    "be present in the JWT header.",
                )
        except PackageError as exc:
            raise Refused(
                "invalid_grant", f"Invalid assertion. Client authentication failed. {exc}"
            ) from exc

    def _check_claims(self, claims: Mapping[str, Any], issuer: str) -> None:
        now = self.clock()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if issuer not in audiences:
            raise Refused(
                "invalid_grant",
                f"Invalid assertion. The aud claim {audience!r} is not Maskinporten's "
                f"issuer {issuer!r}.",
            )
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            raise Refused(
                "invalid_grant", "Invalid assertion. The iat and exp claims are required."
            )
        if abs(iat - now) > CLOCK_SKEW:
            raise Refused(
                "invalid_grant",
                f"Invalid assertion. The iat claim is {iat - now:+.0f} s from our clock; "
                f"at most {CLOCK_SKEW} s are allowed.",
            )
        if exp - iat > MAX_ASSERTION_LIFETIME:
            raise Refused(
                "invalid_grant",
                f"Invalid assertion. The expiration time exceeds max of "
                f"{MAX_ASSERTION_LIFETIME} seconds from issued at time.",
            )
        if exp <= now:
            raise Refused("invalid_grant", "Invalid assertion. The JWT has expired.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Refused("invalid_grant", "Invalid assertion. The jti claim is required.")
        self._used_jti = {j: e for j, e in self._used_jti.items() if e > now - CLOCK_SKEW}
        if jti in self._used_jti:
            raise Refused(
                "invalid_grant", f"Invalid assertion. The jti {jti!r} has already been used."
            )
        self._used_jti[jti] = float(exp)

    def _authorization_details(self, details: Any, client: FakeClient) -> list[dict[str, Any]]:
        if details is None:
            return []
        if not isinstance(details, list):
            raise Refused("invalid_authorization_details", "authorization_details must be a list.")
        enriched = []
        for detail in details:
            if not isinstance(detail, dict) or detail.get("type") != SYSTEM_USER_TYPE:
                raise Refused(
                    "invalid_authorization_details",
                    f"Unsupported authorization_details type: {detail!r}",
                )
            owner = detail.get("systemuser_org", {})
            if (
                not isinstance(owner, dict)
                or owner.get("authority") != AUTHORITY
                or owner.get("ID") != f"0192:{client.organisation}"
            ):
                raise Refused(
                    "invalid_authorization_details",
                    f"The system user's organisation {owner!r} is not the client's "
                    f"(0192:{client.organisation}).",
                )
            if detail.get("externalRef") not in client.system_users:
                raise Refused(
                    "invalid_authorization_details",
                    f"No system user {detail.get('externalRef')!r} is registered for "
                    f"{client.client_id}.",
                )
            system_user_id = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{owner['ID']}/{detail['externalRef']}")
            )
            enriched.append({**detail, "systemuser_id": [system_user_id]})
        return enriched

    def verify_access_token(self, token: str, *, scope: str | None = None) -> dict[str, Any]:
        """The claims of a token this fake issued; raises :class:`InvalidToken`."""
        return self._verify(token, self._key.public_key(), scope)

    def verify_altinn_token(self, token: str, *, scope: str | None = None) -> dict[str, Any]:
        """The claims of an Altinn token this fake exchanged; raises :class:`InvalidToken`."""
        return self._verify(token, self._altinn_key.public_key(), scope)

    def _verify(self, token: str, key: rsa.RSAPublicKey, scope: str | None) -> dict[str, Any]:
        claims = self._verified.get((token, key.public_numbers().n))
        if claims is None:
            try:
                claims = jws.verify(token, public_key=key).json()
            except PackageError as exc:
                raise InvalidToken(f"the token is not one we issued: {exc}") from exc
            if isinstance(claims, dict):
                # A token's signature is checked once: fakes under load verify every request.
                if len(self._verified) >= VERIFIED_TOKENS:
                    self._verified.clear()
                self._verified[(token, key.public_numbers().n)] = claims
        if not isinstance(claims, dict) or float(claims.get("exp", 0)) <= self.clock():
            raise InvalidToken("the token has expired")
        if scope is not None and scope not in str(claims.get("scope", "")).split():
            raise InvalidToken(f"the token lacks the scope {scope}")
        return claims

    async def _exchange(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            return web.Response(status=401, text="Missing bearer token")
        try:
            claims = self.verify_access_token(authorization[7:].strip())
        except InvalidToken as exc:
            return web.Response(status=401, text=str(exc))
        now = int(self.clock())
        consumer = claims["consumer"]["ID"].split(":")[-1]
        altinn: dict[str, Any] = {
            "iss": f"{request.scheme}://{request.host}/authentication/api/v1/openid/",
            "scope": claims["scope"],
            "client_id": claims["client_id"],
            "consumer": claims["consumer"],
            "urn:altinn:orgNumber": consumer,
            "urn:altinn:authenticatemethod": "maskinporten",
            "urn:altinn:authlevel": 3,
            "iat": now,
            "nbf": now,
            "exp": now + self.altinn_lifetime,
            "jti": str(uuid.uuid4()),
        }
        if "authorization_details" in claims:
            altinn["authorization_details"] = claims["authorization_details"]
        self.exchanges += 1
        return web.Response(
            text=jws.sign(altinn, self._altinn_key, kid=self._altinn_kid), content_type="text/plain"
        )
