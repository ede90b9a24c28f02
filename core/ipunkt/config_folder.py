"""Relative paths in the config file are read from the config file's folder.

An operator who runs ``ipunkt serve --config /etc/ipunkt/ipunkt.toml`` from any working
directory gets ``/etc/ipunkt/data`` for ``store.path = "data"``, not a folder wherever the
command happened to start. :func:`ipunkt.config.load_settings` passes the folder to validation
as context; settings built without a file (tests, code) keep relative paths as given.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo

CONTEXT_KEY = "config_folder"


def beside_config(value: Path, info: ValidationInfo) -> Path:
    """``value`` if absolute, else ``value`` inside the config file's folder (when known)."""
    folder = (info.context or {}).get(CONTEXT_KEY)
    if folder is None or value.is_absolute():
        return value
    return Path(folder) / value
