"""The ``[store]`` config section, and opening the store it describes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from ipunkt.config_folder import beside_config
from ipunkt.secret_files import create_once, read_secret
from ipunkt.store.base import MessageStore
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import Keyring, MasterKey
from ipunkt.store.sqlite import SqliteStore

log = structlog.get_logger(__name__)
KEY_FILE = "store.key"


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    backend: Literal["sqlite"] = Field("sqlite", description="Where messages are kept: sqlite.")
    path: Path = Field(
        "data",
        validate_default=True,
        description=(
            "Folder of the database and the encrypted payload files (a relative path is "
            "read from the config file's folder)."
        ),
    )
    key: SecretStr | None = Field(
        None,
        description=(
            "Key that payloads are encrypted with at rest: 32 bytes as base64 or 64 hex digits "
            "(`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`). "
            "Unset: a key is generated once into <path>/store.key; keep it off backups."
        ),
    )
    previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Older keys that stored payloads may still be encrypted with.",
    )

    @field_validator("path")
    @classmethod
    def _beside_config(cls, value: Path, info: ValidationInfo) -> Path:
        return beside_config(value, info)

    @field_validator("key", "previous_keys")
    @classmethod
    def _keys_parse(cls, value: SecretStr | list[SecretStr] | None) -> object:
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                MasterKey.parse(item.get_secret_value())
        return value


def keyring(settings: StoreSettings) -> Keyring:
    """The configured keys, or the generated key file (created on first use, mode 0600, whole
    or not at all: :mod:`ipunkt.secret_files`)."""
    previous = [MasterKey.parse(k.get_secret_value()) for k in settings.previous_keys]
    if settings.key is not None:
        return Keyring(MasterKey.parse(settings.key.get_secret_value()), previous)
    path = settings.path / KEY_FILE
    payloads = settings.path / "payloads"
    if not path.exists() and any(p.is_file() for p in payloads.rglob("*")):
        raise ValueError(
            f"{path} is missing, but {payloads} holds payloads sealed with it: restore the key "
            "file, or give the key as store.key (a new key could not read them)"
        )
    if not path.exists() and create_once(path, MasterKey.generate().encoded() + "\n"):
        log.warning("generated a store key; set store.key to keep it elsewhere", path=str(path))
    return Keyring(MasterKey.parse(read_secret(path, "store key")), previous)


def create_store(settings: StoreSettings) -> MessageStore:
    """The store the settings name, not yet opened."""
    blobs = BlobStore(settings.path / "payloads", keyring(settings))
    return SqliteStore(settings.path / "ipunkt.sqlite3", blobs)
