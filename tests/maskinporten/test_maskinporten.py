"""The Maskinporten client against the fake, over real HTTP; the fake refuses bad grants."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from ipunkt.maskinporten.client import (
    GRANT_TYPE,
    MaskinportenClient,
    MaskinportenError,
    SystemUser,
)
from ipunkt.maskinporten.fake import EXCHANGE_PATH, FakeClient, FakeMaskinporten
from ipunkt.package import jws, testcerts
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.testcerts import ThrowawayPki
from joserfc.jwk import RSAKey

ORG = "910077473"
CUSTOMER = "910075918"
STRANGER = "987654321"
SCOPE = "digitalpostinnbygger:send"
BROKER = ("altinn:broker.read", "altinn:broker.write")

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    fake: FakeMaskinporten
    server: TestServer
    session: aiohttp.ClientSession
    clock: Clock
    kid_key: rsa.RSAPrivateKey

    def url(self, path: str = "/") -> str:
        return str(self.server.make_url(path))

    def client(self, key: Any = None, **overrides: Any) -> MaskinportenClient:
        options: dict[str, Any] = {
            "token_url": self.url("/token"),
            "audience": self.url("/"),
            "client_id": "ipunkt-test",
            "key": key,
            "clock": self.clock,
        }
        options.update(overrides)
        return MaskinportenClient(self.session, **options)

    async def post(self, assertion: str, grant_type: str = GRANT_TYPE) -> tuple[int, Any]:
        form = {"grant_type": grant_type, "assertion": assertion}
        async with self.session.post(self.url("/token"), data=form) as response:
            return response.status, await response.json()


@pytest.fixture
async def setup(pki: ThrowawayPki, aiohttp_server: ServerFactory) -> AsyncIterator[Setup]:
    clock = Clock()
    fake = FakeMaskinporten(trust=pki.trust, clock=clock)
    kid_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake.register(
        FakeClient(
            "ipunkt-test",
            ORG,
            frozenset({SCOPE, *BROKER}),
            keys={"registered-key": kid_key.public_key()},
            consumers=frozenset({CUSTOMER}),
            system_users=frozenset({f"{ORG}_integrasjonspunkt"}),
        )
    )
    server = await aiohttp_server(fake.app())
    async with aiohttp.ClientSession() as session:
        yield Setup(fake, server, session, clock, kid_key)


async def test_token_with_x5c_and_the_grant_it_sends(setup: Setup, pki: ThrowawayPki) -> None:
    client = setup.client(pki[ORG])
    grant = jws.verify(client.assertion([SCOPE]), trust=pki.trust, organisation=ORG)
    claims = grant.json()
    assert claims["exp"] - claims["iat"] == 120
    assert claims["aud"] == setup.url("/") and claims["iss"] == "ipunkt-test"
    assert claims["scope"] == SCOPE and claims["jti"]
    assert claims["jti"] != jws.verify(client.assertion([SCOPE]), trust=pki.trust).json()["jti"]

    token = await client.token([SCOPE])
    issued = setup.fake.verify_access_token(token.value, scope=SCOPE)
    assert issued["consumer"] == {"authority": "iso6523-actorid-upis", "ID": f"0192:{ORG}"}
    assert issued["client_amr"] == "virksomhetssertifikat"
    assert token.expires_at == setup.clock.now + 120


async def test_tokens_are_cached_until_shortly_before_expiry(
    setup: Setup, pki: ThrowawayPki
) -> None:
    client = setup.client(pki[ORG])
    tokens = await asyncio.gather(*(client.token([SCOPE]) for _ in range(5)))
    assert len({t.value for t in tokens}) == 1
    assert len(setup.fake.issued) == 1, "concurrent callers share one request"
    setup.clock.now += 105
    assert (await client.token([SCOPE])).value == tokens[0].value
    setup.clock.now += 10
    assert (await client.token([SCOPE])).value != tokens[0].value
    assert len(setup.fake.issued) == 2
    await client.token(list(reversed(BROKER)))
    await client.token(list(BROKER))
    assert len(setup.fake.issued) == 3, "scopes are a set"


async def test_kid_grant_with_a_registered_key(setup: Setup) -> None:
    client = setup.client(setup.kid_key, kid="registered-key")
    token = await client.token([SCOPE])
    assert setup.fake.verify_access_token(token.value)["client_amr"] == "private_key_jwt"
    stranger = setup.client(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), kid="registered-key"
    )
    with pytest.raises(MaskinportenError, match=r"invalid_grant.*does not verify"):
        await stranger.token([SCOPE])


async def test_acting_for_a_consumer_and_as_a_system_user(setup: Setup, pki: ThrowawayPki) -> None:
    client = setup.client(pki[ORG])
    token = await client.token([SCOPE], consumer_org=CUSTOMER)
    claims = setup.fake.verify_access_token(token.value)
    assert claims["consumer"]["ID"] == f"0192:{CUSTOMER}"
    assert claims["supplier"]["ID"] == f"0192:{ORG}"
    with pytest.raises(MaskinportenError, match=r"invalid_scope.*has not delegated"):
        await client.token([SCOPE], consumer_org=STRANGER)

    system_user = SystemUser(ORG, f"{ORG}_integrasjonspunkt")
    token = await client.token(list(BROKER), system_user=system_user)
    (detail,) = setup.fake.verify_access_token(token.value)["authorization_details"]
    assert detail["type"] == "urn:altinn:systemuser"
    assert detail["systemuser_org"] == {"authority": "iso6523-actorid-upis", "ID": f"0192:{ORG}"}
    assert detail["externalRef"] == f"{ORG}_integrasjonspunkt" and detail["systemuser_id"]
    with pytest.raises(MaskinportenError, match="invalid_authorization_details"):
        await client.token(list(BROKER), system_user=SystemUser(ORG, "someone_else"))


async def test_altinn_token_exchange(setup: Setup, pki: ThrowawayPki) -> None:
    client = setup.client(pki[ORG])
    exchange = setup.url(EXCHANGE_PATH)
    system_user = SystemUser(ORG, f"{ORG}_integrasjonspunkt")
    token = await client.altinn_token(exchange, list(BROKER), system_user=system_user)
    claims = setup.fake.verify_altinn_token(token.value, scope="altinn:broker.write")
    assert claims["urn:altinn:orgNumber"] == ORG
    assert token.expires_at == setup.clock.now + 1800
    assert (await client.altinn_token(exchange, list(BROKER), system_user=system_user)) == token
    assert setup.fake.exchanges == 1

    for authorization in ("Bearer not-a-token", f"Bearer {token.value}"):
        async with setup.session.get(
            exchange, headers={"Authorization": authorization}
        ) as response:
            assert response.status == 401, "only Maskinporten tokens are exchanged"


def _grant(key: OrganisationKey, audience: str, now: float, **changes: Any) -> str:
    claims = {
        "aud": audience,
        "iss": "ipunkt-test",
        "scope": SCOPE,
        "iat": int(now),
        "exp": int(now) + 120,
        "jti": "fixed-jti",
    }
    claims.update(changes)
    return jws.sign({k: v for k, v in claims.items() if v is not None}, key)


@pytest.mark.parametrize(
    ("changes", "error", "description"),
    [
        ({"aud": "https://maskinporten.no/"}, "invalid_grant", "aud claim"),
        ({"iat_offset": -60}, "invalid_grant", "iat claim is -60 s"),
        ({"exp_offset": 300}, "invalid_grant", "exceeds max of 120 seconds"),
        ({"iat_offset": -5, "exp_offset": -116}, "invalid_grant", "has expired"),
        ({"jti": None}, "invalid_grant", "jti claim is required"),
        ({"iss": "unknown-client"}, "invalid_client", "Unknown client"),
        ({"scope": "ks:fiks"}, "invalid_scope", "not allowed for client ipunkt-test: ks:fiks"),
        ({"scope": ""}, "invalid_scope", "Missing the scope"),
    ],
    ids=[
        "audience",
        "clock-skew",
        "too-long",
        "expired",
        "no-jti",
        "unknown-client",
        "scope",
        "no-scope",
    ],
)
async def test_bad_claims_are_refused_in_maskinportens_shape(
    setup: Setup, pki: ThrowawayPki, changes: dict[str, Any], error: str, description: str
) -> None:
    now = setup.clock.now
    iat = now + changes.pop("iat_offset", 0)
    exp = iat + 120 + changes.pop("exp_offset", 0)
    status, body = await setup.post(
        _grant(pki[ORG], setup.url("/"), now, iat=int(iat), exp=int(exp), **changes)
    )
    assert status == 400
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert description in body["error_description"]


async def test_bad_certificates_and_signatures_are_refused(setup: Setup, pki: ThrowawayPki) -> None:
    audience, now = setup.url("/"), setup.clock.now
    impostor = OrganisationKey(pki[STRANGER].private_key, pki[ORG].certificate, pki[ORG].chain)
    untrusted = testcerts.make_ca("not trusted").issue(ORG)
    for key, description in (
        (impostor, "does not verify"),
        (pki[STRANGER], "signed by organisation 987654321, not 910077473"),
        (untrusted, "does not chain to a trusted CA"),
    ):
        status, body = await setup.post(_grant(key, audience, now, jti=description))
        assert (status, body["error"]) == (400, "invalid_grant")
        assert description in body["error_description"]


async def test_replayed_grant_and_wrong_grant_type(setup: Setup, pki: ThrowawayPki) -> None:
    grant = _grant(pki[ORG], setup.url("/"), setup.clock.now)
    assert (await setup.post(grant))[0] == 200
    status, body = await setup.post(grant)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert "already been used" in body["error_description"]
    status, body = await setup.post(grant, grant_type="client_credentials")
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_client_errors_say_whether_to_retry(
    setup: Setup, pki: ThrowawayPki, aiohttp_server: ServerFactory
) -> None:
    with pytest.raises(MaskinportenError) as refused:
        await setup.client(pki[ORG], audience="https://wrong/").token([SCOPE])
    assert refused.value.status == 400 and refused.value.error == "invalid_grant"
    assert not refused.value.transient

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503, text="maintenance")

    app = web.Application()
    app.router.add_post("/token", broken)
    down = await aiohttp_server(app)
    with pytest.raises(MaskinportenError, match="503") as unavailable:
        await setup.client(pki[ORG], token_url=str(down.make_url("/token"))).token([SCOPE])
    assert unavailable.value.transient

    async def garbled(request: web.Request) -> web.Response:
        if request.path == "/timeout":
            return web.Response(status=408, text="Request Timeout")
        return web.Response(text="<html>proxy maintenance page</html>")

    app = web.Application()
    app.router.add_post("/timeout", garbled)
    app.router.add_post("/token", garbled)
    proxy = await aiohttp_server(app)
    for path, message in (("/timeout", "408"), ("/token", "200 without a token")):
        with pytest.raises(MaskinportenError, match=message) as passing:
            await setup.client(pki[ORG], token_url=str(proxy.make_url(path))).token([SCOPE])
        assert passing.value.transient

    with pytest.raises(MaskinportenError, match="unreachable") as unreachable:
        await setup.client(pki[ORG], token_url="http://127.0.0.1:9/token").token([SCOPE])
    assert unreachable.value.transient


async def test_metadata_and_jwks_let_others_verify_tokens(setup: Setup, pki: ThrowawayPki) -> None:
    async with setup.session.get(setup.url("/.well-known/oauth-authorization-server")) as response:
        metadata = await response.json()
    assert metadata["issuer"] == setup.url("/")
    assert metadata["token_endpoint"] == setup.url("/token")
    async with setup.session.get(metadata["jwks_uri"]) as response:
        (key,) = (await response.json())["keys"]
    token = await setup.client(pki[ORG]).token([SCOPE])
    public = RSAKey.import_key(key).public_key
    claims = json.loads(jws.verify(token.value, public_key=public).payload)
    assert claims["iss"] == setup.url("/") and jws.header_of(token.value)["kid"] == key["kid"]
