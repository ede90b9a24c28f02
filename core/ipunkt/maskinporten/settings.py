"""The ``[maskinporten]`` config section: where tokens for the remote services come from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MaskinportenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    token_url: str | None = None
    """Maskinporten's token endpoint, e.g. https://test.maskinporten.no/token; unset: channels
    get no tokens (those that need them refuse to start)."""
    audience: str | None = None
    """Maskinporten's issuer, the assertion's aud (default: token_url without /token)."""
    client_id: str | None = None
    """Your Maskinporten client (default: MOVE_IP_<organisation number>)."""
    kid: str | None = None
    """Name a key registered with the client instead of sending the certificate (x5c)."""
    altinn_exchange_url: str | None = Field(
        None,
        description=(
            "Altinn's token exchange, e.g. https://platform.tt02.altinn.no/authentication/api/v1/"
            "exchange/maskinporten; needed by DPO and DPV."
        ),
    )
    system_user: str | None = None
    """Your Altinn system user's name (externalRef), e.g. <orgnr>_integrasjonspunkt."""
