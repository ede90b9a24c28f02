"""The core's token provider for channels: Maskinporten, and Altinn's exchange, by config.

It is what :attr:`ipunkt.plugin.ChannelContext.tokens` holds. Failures come out as the plugin
contract's typed errors, so that a channel's send is retried when Maskinporten is down and
fails at once when the client lacks a scope.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from ipunkt.maskinporten.client import MaskinportenClient, MaskinportenError, SystemUser
from ipunkt.maskinporten.settings import MaskinportenSettings
from ipunkt.package.keys import OrganisationKey
from ipunkt.plugin import PermanentError, TokenProvider, TransientError


class MaskinportenTokens(TokenProvider):
    """Tokens for the organisation, from one Maskinporten client; the session opens lazily."""

    def __init__(
        self, settings: MaskinportenSettings, organisation: str, key: OrganisationKey
    ) -> None:
        if settings.token_url is None:
            raise ValueError("Maskinporten needs token_url")
        self.settings = settings
        self.organisation = organisation
        self.key = key
        self._session: aiohttp.ClientSession | None = None
        self._client: MaskinportenClient | None = None

    def _maskinporten(self) -> MaskinportenClient:
        if self._client is None:
            token_url = self.settings.token_url or ""
            audience = self.settings.audience or token_url.rsplit("token", 1)[0]
            self._session = aiohttp.ClientSession()
            self._client = MaskinportenClient(
                self._session,
                token_url=token_url,
                audience=audience,
                client_id=self.settings.client_id or f"MOVE_IP_{self.organisation}",
                key=self.key,
                kid=self.settings.kid,
            )
        return self._client

    async def token(
        self, scopes: Sequence[str], *, altinn: bool = False, organisation: str | None = None
    ) -> str:
        client = self._maskinporten()
        system_user = None
        consumer = None
        if self.settings.system_user is not None:
            system_user = SystemUser(organisation or self.organisation, self.settings.system_user)
        elif organisation not in (None, self.organisation):
            consumer = organisation
        try:
            if altinn:
                if self.settings.altinn_exchange_url is None:
                    raise PermanentError(
                        "an Altinn token is needed: set maskinporten.altinn_exchange_url"
                    )
                token = await client.altinn_token(
                    self.settings.altinn_exchange_url, scopes, consumer_org=consumer,
                    system_user=system_user,
                )
            else:
                token = await client.token(scopes, consumer_org=consumer, system_user=system_user)
        except MaskinportenError as exc:
            if exc.transient:
                raise TransientError(str(exc)) from exc
            raise PermanentError(str(exc)) from exc
        return token.value

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
