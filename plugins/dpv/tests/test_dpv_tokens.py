"""Tokens come from ``context.tokens``: here the core's Maskinporten client against its fake,
and the fake Altinn lets in only an exchanged Altinn token with the scope eformidling:dpv."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
import pytest
from ipunkt.maskinporten.client import MaskinportenClient, MaskinportenError
from ipunkt.maskinporten.fake import EXCHANGE_PATH, FakeClient, FakeMaskinporten, InvalidToken
from ipunkt.package import testcerts
from ipunkt.plugin import ChannelContext, PermanentError, TransientError
from ipunkt_dpv.channel import DPVChannel

from .conftest import ORG, Altinn, ServerFactory, outgoing


class MaskinportenTokens:
    """The TokenProvider protocol over the core's Maskinporten client, its failures typed as
    the protocol says."""

    def __init__(self, client: MaskinportenClient, exchange_url: str) -> None:
        self.client = client
        self.exchange_url = exchange_url

    async def token(self, scopes: Sequence[str], *, altinn: bool = False,
                    organisation: str | None = None) -> str:
        try:
            if altinn:
                return (await self.client.altinn_token(self.exchange_url, scopes)).value
            return (await self.client.token(scopes)).value
        except MaskinportenError as exc:
            raise (TransientError if exc.transient else PermanentError)(str(exc)) from exc


@pytest.mark.parametrize(("scopes", "sent"), [
    (frozenset({"eformidling:dpv"}), True),
    (frozenset({"eformidling:dpo"}), False),
], ids=["granted", "wrong-scope"])
async def test_a_maskinporten_token_exchanged_for_altinn_opens_the_door(
    altinn: Altinn, aiohttp_server: ServerFactory, scopes: frozenset[str], sent: bool
) -> None:
    pki = testcerts.make_pki(ORG)
    maskinporten = FakeMaskinporten(trust=pki.trust)
    maskinporten.register(FakeClient("ipunkt-dpv-test", ORG, scopes))
    server = await aiohttp_server(maskinporten.app())

    def altinn_token_with_dpv(token: str) -> bool:
        try:
            maskinporten.verify_altinn_token(token, scope="eformidling:dpv")
        except InvalidToken:
            return False
        return True

    altinn.fake.accept_token = altinn_token_with_dpv
    async with aiohttp.ClientSession() as session:
        client = MaskinportenClient(session, token_url=str(server.make_url("/token")),
                                    audience=str(server.make_url("/")),
                                    client_id="ipunkt-dpv-test", key=pki[ORG])
        tokens = MaskinportenTokens(client, str(server.make_url(EXCHANGE_PATH)))
        channel = DPVChannel(ChannelContext(organisation=ORG, config=altinn.config(),
                                            tokens=tokens))
        await channel.start()
        altinn.channels.append(channel)
        if sent:
            result = await channel.send(outgoing("digital_dpv"))
            assert result.external_reference in altinn.fake.correspondences
            assert maskinporten.exchanges == 1
        else:
            with pytest.raises(PermanentError, match="scope"):
                await channel.send(outgoing("digital_dpv"))
            assert altinn.fake.requests == []
