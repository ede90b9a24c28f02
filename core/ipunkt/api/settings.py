"""The ``[api]`` config section: who may call the Next Move API, and TLS."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ipunkt.config_folder import beside_config


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    username: str | None = Field(
        None, description="HTTP Basic user of /api (required unless listening on loopback)."
    )
    password: SecretStr | None = Field(None, description="HTTP Basic password of /api.")
    tls_certificate: Path | None = Field(
        None,
        description=(
            "PEM certificate chain: serve HTTPS instead of HTTP (a relative path is read from "
            "the config file's folder)."
        ),
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_certificate.")
    body_idle_seconds: float = Field(
        60, gt=0,
        description="A request body that stops coming for this long is refused (408).",
    )

    @field_validator("tls_certificate", "tls_key")
    @classmethod
    def _beside_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else beside_config(value, info)

    @model_validator(mode="after")
    def _pairs(self) -> ApiSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("api.username and api.password go together: set both or neither")
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("api.tls_certificate and api.tls_key go together")
        return self

    @property
    def credentials(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password.get_secret_value()

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_certificate is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_certificate, self.tls_key)
        return context


def exposure_problem(settings: ApiSettings, host: str) -> str | None:
    """Why the API may not listen on ``host`` with these settings, or None if it may."""
    if settings.credentials is not None or is_loopback(host):
        return None
    return (
        f"server.host {host!r} is not a loopback address: set api.username and api.password "
        "so that the Next Move API requires HTTP Basic authentication"
    )


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
