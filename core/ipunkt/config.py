"""The TOML config: loading, validation and the commented starter file of ``ipunkt init``.

Every key is validated; an error names the key's path and what is wrong, and unknown keys are
errors (a typo must not silently fall back to a default). Any value may instead be given as
``{env = "VAR"}`` or ``{file = "/path"}``, so that secrets stay out of the file. Each channel's
section, ``[channels.<service>]``, is validated by that channel plugin's own schema.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import tomli_w
from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ipunkt.api.settings import ApiSettings
from ipunkt.config_folder import CONTEXT_KEY as CONFIG_FOLDER
from ipunkt.delivery.settings import DeliverySettings, WebhookSettings
from ipunkt.lookup.settings import LookupSettings, RoutingSettings
from ipunkt.maskinporten.settings import MaskinportenSettings
from ipunkt.messages.settings import MessagesSettings
from ipunkt.plugin import ChannelConfig
from ipunkt.plugins import PluginHost, PluginStatus
from ipunkt.store.settings import StoreSettings

CONFIG_ENV = "IPUNKT_CONFIG"
DEFAULT_CONFIG_PATH = Path("ipunkt.toml")


class ConfigError(Exception):
    """The config cannot be used; the message names each bad key and what is wrong."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class OrganisationSettings(Section):
    number: str = Field(description="Your organisation number (9 digits).")
    name: str = Field("", description="Your organisation's name, shown on the status page.")
    key: Path | None = Field(
        None,
        description=(
            "Your virksomhetssertifikat's private key and certificate chain: PKCS#12 or PEM "
            "(relative paths are read from the config file's folder)."
        ),
    )
    key_password: SecretStr | None = Field(None, description="The key file's password.")
    certificate: Path | None = Field(
        None, description="The certificate chain, when the PEM key file holds only the key."
    )
    trust_anchors: list[Path] = Field(
        default_factory=list,
        description="CA certificates (PEM) your certificate must chain to; checked at start-up.",
    )

    @field_validator("number")
    @classmethod
    def _nine_digits(cls, value: str) -> str:
        if len(value) != 9 or not value.isdigit():
            raise ValueError("must be a 9-digit organisation number")
        return value


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(9093, ge=0, le=65535, description="Port of the HTTP API.")
    shutdown_timeout: float = Field(
        30.0, gt=0, description="Seconds that in-flight requests get to finish on SIGTERM."
    )


class LoggingSettings(Section):
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json, console, or auto: console on a terminal, else JSON lines."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")


class PluginSettings(Section):
    allow: list[str] = Field(
        default_factory=list, description="Load only these plugins (names); empty loads all."
    )
    disable: list[str] = Field(default_factory=list, description="Never load these plugins.")
    required_plugins: list[str] = Field(
        default_factory=list,
        description='Refuse to start unless these load, e.g. ["ipunkt-dpo>=0.1"].',
    )

    @field_validator("required_plugins")
    @classmethod
    def _requirements(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                Requirement(value)
            except InvalidRequirement as exc:
                raise ValueError(f"{value!r} is not a requirement specifier: {exc}") from None
        return values


class Settings(Section):
    """The whole config file."""

    organisation: OrganisationSettings
    server: ServerSettings = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    logging: LoggingSettings = Field(default_factory=LoggingSettings)  # type: ignore[arg-type]
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    lookup: LookupSettings = Field(default_factory=LookupSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    store: StoreSettings = Field(default_factory=dict, validate_default=True)
    messages: MessagesSettings = Field(default_factory=MessagesSettings)  # type: ignore[arg-type]
    api: ApiSettings = Field(default_factory=dict, validate_default=True)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)  # type: ignore[arg-type]
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)  # type: ignore[arg-type]
    maskinporten: MaskinportenSettings = Field(
        default_factory=MaskinportenSettings  # type: ignore[arg-type]
    )
    channels: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="One table per channel, [channels.<service>], checked by its plugin.",
    )


def config_path(given: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: the argument, else ``$IPUNKT_CONFIG``, else ``./ipunkt.toml``."""
    if given:
        return Path(given)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(path: Path) -> Settings:
    """Read, resolve secrets in and validate the config file at ``path``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (write one with `ipunkt init`)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_settings(raw, source=str(path), folder=path.parent)


def parse_settings(
    raw: Mapping[str, Any], *, source: str = "config", folder: Path | None = None
) -> Settings:
    """Validate a config; relative paths in it are read from ``folder`` (the file's) if given."""
    resolved = resolve_references(raw, (), source)
    context = {CONFIG_FOLDER: folder} if folder is not None else None
    try:
        return Settings.model_validate(resolved, context=context)
    except ValidationError as exc:
        raise ConfigError(describe(exc, source)) from None


def resolve_references(value: Any, path: tuple[str, ...], source: str) -> Any:
    """Replace every ``{env = "VAR"}`` and ``{file = "/path"}`` table by what it names."""
    if isinstance(value, Mapping):
        if len(value) == 1 and set(value) <= {"env", "file"}:
            return _dereference(value, path, source)
        return {k: resolve_references(v, (*path, k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, (*path, str(i)), source) for i, v in enumerate(value)]
    return value


def _dereference(reference: Mapping[str, Any], path: tuple[str, ...], source: str) -> str:
    key = ".".join(path)
    if "env" in reference:
        name = reference["env"]
        if name not in os.environ:
            raise ConfigError(f"{source}: {key}: environment variable {name!r} is not set")
        return os.environ[name]
    file = Path(str(reference["file"]))
    try:
        return file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{source}: {key}: cannot read {file}: {exc.strerror}") from None


def describe(exc: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> str:
    """Turn pydantic's errors into one line per bad key: ``file: a.b.c: what is wrong``."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in (*prefix, *error["loc"]))
        if error["type"] == "extra_forbidden":
            problem = "unknown key"
        elif error["type"] == "missing":
            problem = "required key is missing"
        else:
            problem = f"{error['msg']} (got {error['input']!r})"
        lines.append(f"{source}: {key}: {problem}")
    return "\n".join(lines)


def channel_configs(settings: Settings, host: PluginHost) -> dict[str, ChannelConfig]:
    """Validate each ``[channels.<service>]`` table with its plugin's schema.

    A section that no loaded plugin provides is an error, unless some plugin failed or was
    disabled: then it may be that plugin's, and the plugin list already says why it is missing.
    """
    providers = {info.service.lower(): info for info in host.channels.values()}
    some_missing = any(r.status is not PluginStatus.OK for r in host.records)
    configs: dict[str, ChannelConfig] = {}
    errors = []
    for name, table in settings.channels.items():
        info = providers.get(name.lower())
        if info is None:
            if not some_missing:
                installed = ", ".join(sorted(providers)) or "none"
                errors.append(
                    f"config: channels.{name}: no installed plugin provides this channel "
                    f"(installed: {installed})"
                )
            continue
        try:
            configs[info.service] = info.config_schema.model_validate(table)
        except ValidationError as exc:
            errors.append(describe(exc, "config", ("channels", name)))
    if errors:
        raise ConfigError("\n".join(errors))
    for service, info in host.channels.items():
        configs.setdefault(service, info.config_schema())
    return configs


def starter_config(host: PluginHost, organisation: str) -> str:
    """A commented config covering the core and every installed channel plugin."""
    parts = [
        "# ipunkt config. Every key is checked at start-up; unknown keys are errors.",
        '# Any value may be given as {env = "VAR"} or {file = "/path"} instead.',
        "",
    ]
    sections: dict[str, tuple[type[BaseModel], dict[str, Any]]] = {
        name: (field.annotation, {})
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    }
    sections["organisation"][1]["number"] = organisation
    for name, (model, values) in sections.items():
        parts += _render_section(name, model, values)
    for info in sorted(host.channels.values(), key=lambda i: i.service):
        transport = "" if info.has_transport else " (this plugin has no transport yet)"
        parts.append(f"# {info.name}: {', '.join(sorted(info.message_types))}{transport}")
        parts.append("# Fill in its keys, then set enabled = true.")
        parts += _render_section(
            f"channels.{info.service.lower()}", info.config_schema, {"enabled": False}
        )
    return "\n".join(parts)


def _render_section(name: str, model: type[BaseModel], values: dict[str, Any]) -> list[str]:
    lines = [f"[{name}]"]
    for key, field in model.model_fields.items():
        if field.description:
            lines.append(f"# {' '.join(field.description.split())}")
        if key in values:
            value = values[key]
        elif field.is_required():
            lines.append(f"# {key} = ... (required)")
            continue
        else:
            value = field.get_default(call_default_factory=True)
        if _is_secret(field.annotation):
            variable = f"{name}.{key}".upper().replace(".", "_")
            lines.append(f'# {key} = {{env = "{variable}"}}  (or {{file = "/path"}})')
            continue
        if value is None:
            lines.append(f"# {key} = (not set)")
            continue
        lines.append(tomli_w.dumps({key: value}).strip())
    lines.append("")
    return lines



def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)
