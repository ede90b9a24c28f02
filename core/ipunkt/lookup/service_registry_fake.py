"""A fake eFormidling Service Registry: an aiohttp app that serves a local registry file.

It answers ``/identifier/{id}``, ``/identifier/{id}/process/{process}`` and ``/info/{id}`` in
exactly the registry's JSON shape, with its error bodies (``{error_code, error_description}``
404s, the 400 "security level not found", the citizen 404 ``{message}``), signs answers as a
compact JWS (RS256 with ``kid`` and ``x5c``) when asked with ``Accept: application/jose``, and
publishes its key at ``/jwk``. Error answers are never signed, as in the real registry.
Tests and ``ipunkt sandbox`` use it; :attr:`FakeServiceRegistry.requests` records what was
asked, so a test can see what reached the registry.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jws
from joserfc.jwk import KeySet, RSAKey

from ipunkt.lookup.registry import LocalRegistry
from ipunkt.lookup.source import LookupNotFound, LookupQuery, LookupRejected

JOSE = "application/jose"
BETA_HEADER = "X-Enable-Beta-Features"


@dataclass(frozen=True)
class SeenRequest:
    """One request the fake answered."""

    path: str
    query: dict[str, str]
    accept: str
    authorization: str | None
    status: int


class FakeServiceRegistry:
    """The registry, answering from ``registry``; signing with an RSA key of its own (``key``,
    else a fresh one: a fake restarted with the same key keeps its clients, who keep the key
    they fetched once)."""

    def __init__(
        self,
        registry: LocalRegistry,
        *,
        require_token: bool = False,
        key_id: str = "fake-service-registry",
        key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        self.registry = registry
        self.require_token = require_token
        self.requests: list[SeenRequest] = []
        self.rotate_key(key_id, key)

    def rotate_key(self, key_id: str, key: rsa.RSAPrivateKey | None = None) -> None:
        """Sign with ``key`` (a new one by default) from now on; ``/jwk`` publishes only it."""
        private_key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = _self_signed(private_key, "Fake Service Registry")
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        chain = [base64.b64encode(der).decode()]
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.key = RSAKey.import_key(pem, parameters={"kid": key_id, "use": "sig", "x5c": chain})
        self.key_id = key_id
        self._chain = chain

    def jwk_set(self) -> dict[str, Any]:
        """The public JWK set served at ``/jwk``."""
        return dict(KeySet([self.key]).as_dict(private=False))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/identifier/{identifier}", self._identifier)
        app.router.add_get("/identifier/{identifier}/process/{process}", self._identifier)
        app.router.add_get("/info/{identifier}", self._info)
        app.router.add_get("/jwk", self._jwk)
        return app

    def sign(self, payload: bytes) -> str:
        header = {"alg": "RS256", "kid": self.key_id, "x5c": self._chain}
        return jws.serialize_compact(header, payload, self.key)

    async def _identifier(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        identifier = request.match_info["identifier"]
        process = request.match_info.get("process")
        try:
            level = _optional_int(request.query.get("securityLevel"))
        except ValueError:
            return self._error(request, 400, "securityLevel must be an integer")
        query = LookupQuery(
            identifier,
            process=process,
            security_level=level,
            conversation_id=request.query.get("conversationId"),
            print=request.query.get("print", "true").lower() != "false",
        )
        beta = request.headers.get(BETA_HEADER, "false").lower() == "true"
        try:
            resource = self.registry.answer(query, beta_features=beta)
        except LookupNotFound as exc:
            if process is None and len(identifier) == 11:
                message = f"No service record found for citizen: {identifier}"
                return self._answer(request, 404, {"message": message})
            return self._error(request, 404, exc.description)
        except LookupRejected as exc:
            return self._error(request, exc.status or 400, exc.reason)
        return self._answer(request, 200, resource.to_wire())

    async def _info(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        try:
            info = await self.registry.info(request.match_info["identifier"])
        except LookupNotFound:
            self._seen(request, 404)
            return web.Response(status=404)
        return self._answer(request, 200, {"infoRecord": info.to_wire(), "serviceRecords": []})

    async def _jwk(self, request: web.Request) -> web.StreamResponse:
        return self._answer(request, 200, self.jwk_set(), signable=False)

    def _refuse(self, request: web.Request) -> web.Response | None:
        if not self.require_token:
            return None
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Bearer ") and len(authorization) > len("Bearer "):
            return None
        response = self._error(request, 401, "Full authentication is required")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def _error(self, request: web.Request, status: int, description: str) -> web.Response:
        return self._answer(
            request, status, {"error_code": "", "error_description": description}, signable=False
        )

    def _answer(
        self, request: web.Request, status: int, body: Any, *, signable: bool = True
    ) -> web.Response:
        self._seen(request, status)
        text = json.dumps(body, indent=2, ensure_ascii=False)
        if signable and status == 200 and JOSE in request.headers.get("Accept", ""):
            return web.Response(status=status, text=self.sign(text.encode()), content_type=JOSE)
        return web.Response(status=status, text=text, content_type="application/json")

    def _seen(self, request: web.Request, status: int) -> None:
        self.requests.append(
            SeenRequest(
                path=request.path,
                query=dict(request.query),
                accept=request.headers.get("Accept", ""),
                authorization=request.headers.get("Authorization"),
                status=status,
            )
        )


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)


def _self_signed(key: rsa.RSAPrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
