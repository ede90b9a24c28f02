"""Maskinporten's JWT-bearer grant and Altinn's token exchange, with tokens cached.

The grant is a JWT signed with the organisation's key (RFC 7523): header ``x5c`` with the
*virksomhetssertifikat* (or ``kid`` for a key registered with the client), claims ``aud``
(Maskinporten's issuer), ``iss`` (the client id), ``scope``, ``iat``, ``exp`` = ``iat`` + 120 s
and a fresh ``jti``; optionally ``consumer_org`` (acting for another organisation, as DPI does
for its senders) and Altinn's system-user ``authorization_details``. Altinn 3 APIs want an
Altinn token instead, which the exchange endpoint trades for a Maskinporten token.

Tokens are cached per (scopes, consumer, system user) until shortly before they expire, and
concurrent callers of the same kind share one request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa

from ipunkt.package import jws
from ipunkt.package.keys import OrganisationKey

log = structlog.get_logger(__name__)

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 120
SYSTEM_USER_TYPE = "urn:altinn:systemuser"
AUTHORITY = "iso6523-actorid-upis"


TRANSIENT_STATUSES = frozenset({200, 408, 425, 429})
"""Statuses below 500 worth another try (200 only reaches an error when its body was no token)."""


class MaskinportenError(Exception):
    """A token request failed; ``transient`` says whether trying again later may help."""

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error

    @property
    def transient(self) -> bool:
        """No answer, a timeout (408), too early or too many (425, 429), a server error, or a
        200 that carried no token (a proxy's page, say): all may pass."""
        return self.status is None or self.status >= 500 or self.status in TRANSIENT_STATUSES


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float
    """Seconds since the epoch."""
    scope: str


@dataclass(frozen=True)
class SystemUser:
    """An Altinn system user the token acts as (``authorization_details``)."""

    organisation: str
    """The system user's owner, ``0192:<orgnr>`` or a bare organisation number."""
    name: str
    """The system user's ``externalRef``, e.g. ``<orgnr>_integrasjonspunkt``."""

    def claim(self) -> dict[str, Any]:
        identifier = self.organisation
        if identifier.isdigit():
            identifier = f"0192:{identifier}"
        return {
            "type": SYSTEM_USER_TYPE,
            "systemuser_org": {"authority": AUTHORITY, "ID": identifier},
            "externalRef": self.name,
        }


def _expiry_of(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it (it is ours, fresh from the server)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


class MaskinportenClient:
    """Fetches and caches Maskinporten (and Altinn) tokens for one client."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token_url: str,
        audience: str,
        client_id: str,
        key: OrganisationKey | rsa.RSAPrivateKey,
        kid: str | None = None,
        refresh_margin: float = 10.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if kid is None and not isinstance(key, OrganisationKey):
            raise ValueError("a bare RSA key needs the kid it is registered under")
        self._session = session
        self.token_url = token_url
        self.audience = audience
        self.client_id = client_id
        self._key = key
        self._kid = kid
        self._margin = refresh_margin
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._cache: dict[tuple[Any, ...], AccessToken] = {}
        self._locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    def assertion(
        self,
        scopes: Sequence[str],
        *,
        consumer_org: str | None = None,
        system_user: SystemUser | None = None,
    ) -> str:
        """The signed JWT grant for one token request."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "aud": self.audience,
            "iss": self.client_id,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        if consumer_org is not None:
            claims["consumer_org"] = consumer_org
        if system_user is not None:
            claims["authorization_details"] = [system_user.claim()]
        return jws.sign(claims, self._key, kid=self._kid)

    def _fresh(self, cache_key: tuple[Any, ...]) -> AccessToken | None:
        token = self._cache.get(cache_key)
        if token is not None and self._clock() < token.expires_at - self._margin:
            return token
        return None

    async def token(
        self,
        scopes: Sequence[str],
        *,
        consumer_org: str | None = None,
        system_user: SystemUser | None = None,
    ) -> AccessToken:
        """A Maskinporten access token for ``scopes``, from the cache while it lasts."""
        cache_key = ("maskinporten", tuple(sorted(scopes)), consumer_org, system_user)
        cached = self._fresh(cache_key)
        if cached is not None:
            return cached
        async with self._locks.setdefault(cache_key, asyncio.Lock()):
            cached = self._fresh(cache_key)
            if cached is not None:
                return cached
            token = await self._request(scopes, consumer_org, system_user)
            self._cache[cache_key] = token
            return token

    async def _request(
        self, scopes: Sequence[str], consumer_org: str | None, system_user: SystemUser | None
    ) -> AccessToken:
        form = {
            "grant_type": GRANT_TYPE,
            "assertion": self.assertion(scopes, consumer_org=consumer_org, system_user=system_user),
        }
        try:
            async with self._session.post(
                self.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MaskinportenError(
                f"Maskinporten is unreachable at {self.token_url}: {exc}"
            ) from exc
        if status != 200:
            raise _error(status, body)
        try:
            answer = json.loads(body)
            value = answer["access_token"]
            lifetime = float(answer["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MaskinportenError(
                f"Maskinporten answered 200 without a token: {body[:200]!r}", status=status
            ) from exc
        log.info(
            "maskinporten token issued",
            scope=answer.get("scope"),
            expires_in=lifetime,
            consumer_org=consumer_org,
        )
        return AccessToken(value, self._clock() + lifetime, str(answer.get("scope", "")))

    async def altinn_token(
        self,
        exchange_url: str,
        scopes: Sequence[str],
        *,
        consumer_org: str | None = None,
        system_user: SystemUser | None = None,
    ) -> AccessToken:
        """An Altinn token, exchanged for a Maskinporten token at ``exchange_url``."""
        cache_key = ("altinn", exchange_url, tuple(sorted(scopes)), consumer_org, system_user)
        cached = self._fresh(cache_key)
        if cached is not None:
            return cached
        async with self._locks.setdefault(cache_key, asyncio.Lock()):
            cached = self._fresh(cache_key)
            if cached is not None:
                return cached
            maskinporten = await self.token(
                scopes, consumer_org=consumer_org, system_user=system_user
            )
            token = await self._exchange(exchange_url, maskinporten)
            self._cache[cache_key] = token
            return token

    async def _exchange(self, exchange_url: str, maskinporten: AccessToken) -> AccessToken:
        try:
            async with self._session.get(
                exchange_url,
                headers={"Authorization": f"Bearer {maskinporten.value}"},
                timeout=self._timeout,
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MaskinportenError(f"Altinn is unreachable at {exchange_url}: {exc}") from exc
        if status != 200:
            raise MaskinportenError(
                f"Altinn refused the token exchange ({status}): {body[:300]!r}", status=status
            )
        value = body.decode("ascii", "replace").strip().strip('"')
        expires_at = _expiry_of(value)
        if expires_at is None:
            raise MaskinportenError(
                f"Altinn's exchange answered without a JWT: {body[:200]!r}", status=status
            )
        return AccessToken(value, expires_at, maskinporten.scope)


def _error(status: int, body: bytes) -> MaskinportenError:
    try:
        answer = json.loads(body)
        error = str(answer.get("error"))
        description = str(answer.get("error_description", ""))
    except (ValueError, AttributeError):
        return MaskinportenError(f"Maskinporten answered {status}: {body[:300]!r}", status=status)
    return MaskinportenError(
        f"Maskinporten refused the grant ({status} {error}): {description}",
        status=status,
        error=error,
    )
