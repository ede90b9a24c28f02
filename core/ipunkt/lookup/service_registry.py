"""The HTTP client of the eFormidling Service Registry ("adressetjenesten").

It asks ``/identifier/{id}[/process/{process}]`` and ``/info/{id}`` as the integrasjonspunkt
does: a Maskinporten bearer token, ``securityLevel``, ``conversationId`` and ``print=false``
query parameters, and ``Accept: application/jose`` when answers must be signed. A signed
answer is a compact JWS (RS256, with ``kid`` and ``x5c``) that is verified against the
registry's JWK set (``<registry>/jwk``); an answer that is not signed, or whose signature does
not verify, is never used. Answers are cached for ``cache_ttl`` seconds.

The registry's statuses become the lookup errors: 404 is :class:`LookupNotFound`, 400
:class:`LookupRejected`, and everything that says nothing about the receiver (no connection,
timeouts, 401/403, 429, 5xx, unreadable or unverifiable answers) :class:`LookupUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import aiohttp
import structlog
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import Field, ValidationError, field_validator
from yarl import URL

from ipunkt import __version__
from ipunkt.lookup.cache import TtlCache
from ipunkt.lookup.records import IdentifierResource, InfoRecord
from ipunkt.lookup.source import (
    LookupNotFound,
    LookupQuery,
    LookupRejected,
    LookupSource,
    LookupSourceConfig,
    LookupSourceContext,
    LookupUnavailable,
)
from ipunkt.plugin import TokenProvider

log = structlog.get_logger(__name__)

JOSE = "application/jose"
BETA_HEADER = "X-Enable-Beta-Features"
MAX_ANSWER = 1024 * 1024
"""Registry answers are a few kilobytes; anything larger than this is refused unread."""
SIGNING_ALGORITHMS = ("RS256",)
MAX_JWS_HEADER = 64 * 1024
"""The registry's JWS header carries its certificate chain (``x5c``): a few kilobytes."""
SCOPED_SERVICES = ("DPO", "DPE", "DPV", "DPF", "DPI", "DPH")
"""The services that give the token a scope ``eformidling:<service>`` when enabled."""


class ServiceRegistryConfig(LookupSourceConfig):
    url: str = "https://test.eformidling.no/adressetjeneste"
    """The registry's base URL (production: https://eformidling.no/adressetjeneste)."""
    verify_signatures: bool = True
    """Ask for signed answers (application/jose) and verify them against the JWK set."""
    jwk_url: str | None = None
    """The registry's JWK set; by default <url>/jwk."""
    cache_ttl: Annotated[float, Field(ge=0)] = 300.0
    """Seconds a registry answer is reused (0: never)."""
    timeout: Annotated[float, Field(gt=0)] = 30.0
    """Seconds one registry request may take."""
    print_lookup: bool = True
    """Let the registry look up postal addresses for print; false sends print=false."""
    beta_features: bool = False
    """Send X-Enable-Beta-Features: true (needed for DPH records)."""
    scopes: list[str] | None = None
    """The token's scopes; by default eformidling:<service> for each enabled channel."""

    @field_validator("url", "jwk_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and URL(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class ServiceRegistryClient(LookupSource):
    """A lookup source that asks the Service Registry over HTTP."""

    name = "service-registry"

    def __init__(
        self,
        config: ServiceRegistryConfig,
        *,
        tokens: TokenProvider | None = None,
        scopes: Sequence[str] = (),
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self.base = URL(config.url)
        self.jwk_url = URL(config.jwk_url) if config.jwk_url else self.base / "jwk"
        self.tokens = tokens
        self.scopes = list(config.scopes) if config.scopes is not None else list(scopes)
        self._session = session
        self._own_session = session is None
        self._keys: KeySet | None = None
        self._keys_lock = asyncio.Lock()
        self.cache: TtlCache[IdentifierResource] = TtlCache(config.cache_ttl)

    @classmethod
    def from_context(cls, context: LookupSourceContext) -> ServiceRegistryClient:
        config = context.config
        if not isinstance(config, ServiceRegistryConfig):
            raise TypeError(f"expected ServiceRegistryConfig, got {type(config).__name__}")
        scopes = [f"eformidling:{s.lower()}" for s in SCOPED_SERVICES if s in context.services]
        return cls(config, tokens=context.tokens, scopes=scopes)

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": f"ipunkt/{__version__}"},
            )

    async def stop(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def describe(self) -> str:
        signed = "signed answers" if self.config.verify_signatures else "UNSIGNED answers"
        return f"Service Registry {self.base} ({signed}, cache {self.config.cache_ttl:g} s)"

    async def lookup(self, query: LookupQuery) -> IdentifierResource:
        if not self.config.print_lookup and query.print is None:
            query = LookupQuery(
                query.identifier, query.process, query.security_level, query.conversation_id,
                print=False,
            )
        url = self.base / "identifier" / query.identifier
        if query.process:
            url = url / "process" / query.process
        params: dict[str, str] = {}
        if query.security_level is not None:
            params["securityLevel"] = str(query.security_level)
        if query.conversation_id:
            params["conversationId"] = query.conversation_id
        if query.print is False:
            params["print"] = "false"
        url = url.with_query(params)
        return await self.cache.get(
            ("identifier", *query.cache_key()), lambda: self._fetch(url, query)
        )

    async def info(self, identifier: str) -> InfoRecord:
        url = self.base / "info" / identifier
        query = LookupQuery(identifier)
        resource = await self.cache.get(("info", identifier), lambda: self._fetch(url, query))
        if resource.info_record is None:
            raise LookupNotFound(identifier, description=f"No info record for '{identifier}'")
        return resource.info_record

    async def _fetch(self, url: URL, query: LookupQuery) -> IdentifierResource:
        status, headers, body = await self._get(url, await self._headers())
        if status == 200:
            payload = await self._payload(body, headers)
            try:
                return IdentifierResource.model_validate_json(payload)
            except ValidationError as exc:
                raise LookupUnavailable(
                    f"Service Registry answer for {query.identifier} is not a registry record: "
                    f"{exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}"
                ) from None
        description = _error_description(body)
        if status == 404:
            raise LookupNotFound(
                query.identifier,
                process=query.process,
                description=description,
                identifier_known=bool(description and description.startswith("Process ")),
            )
        if status in (401, 403):
            raise LookupUnavailable(
                f"Service Registry refused our credentials ({status}): "
                f"{description or 'check the Maskinporten client and its scopes'}"
            )
        if status == 429 or status >= 500:
            raise LookupUnavailable(
                f"Service Registry answered {status}: {description or 'try again later'}",
                retry_after=_retry_after(headers),
            )
        raise LookupRejected(
            f"Service Registry answered {status}: {description or 'no reason given'}",
            status=status,
        )

    async def _headers(self) -> dict[str, str]:
        # As the original: JSON stays acceptable, so that the registry's (unsigned) error
        # answers are not refused with 406; a 200 must still be a JWS (see _payload).
        json_only = "application/json"
        headers = {"Accept": f"{JOSE}, {json_only}" if self.config.verify_signatures else json_only}
        if self.config.beta_features:
            headers[BETA_HEADER] = "true"
        if self.tokens is not None:
            try:
                token = await self.tokens.token(self.scopes)
            except Exception as exc:  # the token client may fail in any way; it is transient here
                raise LookupUnavailable(
                    f"no Maskinporten token for the Service Registry: {exc}"
                ) from exc
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _get(
        self, url: URL, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        if self._session is None:
            await self.start()
        session = self._session
        if session is None:
            raise LookupUnavailable("the Service Registry client is stopped")
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        raise LookupUnavailable(
                            f"Service Registry answer from {url} exceeds {MAX_ANSWER} bytes"
                        )
                    chunks.append(chunk)
                return response.status, response.headers, b"".join(chunks)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or type(exc).__name__
            raise LookupUnavailable(f"Service Registry unreachable at {url}: {reason}") from exc

    async def _payload(self, body: bytes, headers: Mapping[str, str]) -> bytes:
        """The answer's JSON: the body itself, or, when signed answers are required, the JWS's."""
        if not self.config.verify_signatures:
            return body
        token = body.strip()
        if token.count(b".") != 2 or token.startswith(b"{"):
            raise LookupUnavailable(
                "Service Registry answer is not signed (expected application/jose, got "
                f"{headers.get('Content-Type', 'no content type')}); refusing to use it"
            )
        registry = _jws_registry()
        try:
            header = jws.extract_compact(token, registry=registry).headers()
        except (JoseError, ValueError) as exc:
            raise LookupUnavailable(f"Service Registry answer is not a valid JWS: {exc}") from None
        kid = header.get("kid")
        keys = await self._key_set(kid)
        # The registry names its key; an answer without a kid is tried against each key.
        candidates: list[Any] = [keys] if kid is not None else list(keys.keys)
        problem: Exception = LookupUnavailable("the registry's JWK set has no keys")
        for key in candidates:
            try:
                return jws.deserialize_compact(token, key, registry=registry).payload
            except (JoseError, ValueError) as exc:
                problem = exc
        log.error("service registry answer failed signature verification", error=str(problem))
        raise LookupUnavailable(
            f"Service Registry answer's signature does not verify ({problem}); refusing to use it"
        )

    async def _key_set(self, kid: object) -> KeySet:
        """The registry's JWK set, fetched again when the answer names a key it lacks."""
        async with self._keys_lock:
            if self._keys is None or (kid is not None and not _has_kid(self._keys, kid)):
                self._keys = await self._fetch_keys()
            return self._keys

    async def _fetch_keys(self) -> KeySet:
        status, _, body = await self._get(self.jwk_url, {"Accept": "application/json"})
        if status != 200:
            raise LookupUnavailable(f"Service Registry JWK set {self.jwk_url} answered {status}")
        try:
            return KeySet.import_key_set(json.loads(body))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise LookupUnavailable(
                f"Service Registry JWK set {self.jwk_url} is not a JWK set: {exc}"
            ) from None


def _jws_registry() -> jws.JWSRegistry:
    """RS256 only, and room for the registry's ``x5c`` chain (joserfc allows 512 header bytes)."""
    registry = jws.JWSRegistry(algorithms=SIGNING_ALGORITHMS)
    registry.max_header_length = MAX_JWS_HEADER
    registry.max_payload_length = MAX_ANSWER
    return registry


def _has_kid(keys: KeySet, kid: object) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _error_description(body: bytes) -> str | None:
    """The registry's reason: ``error_description`` (``{error_code, error_description}``) or
    ``message`` (its answer for citizens it cannot find)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:200] or None
    if isinstance(parsed, dict):
        for key in ("error_description", "message", "error"):
            if isinstance(parsed.get(key), str) and parsed[key]:
                return str(parsed[key])
    return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
