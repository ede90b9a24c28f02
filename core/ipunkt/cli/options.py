"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from ipunkt.config import CONFIG_ENV, DEFAULT_CONFIG_PATH

F = TypeVar("F", bound=Callable[..., object])


def config_option(function: F) -> F:
    """``--config PATH``, defaulting to ``$IPUNKT_CONFIG`` or ``./ipunkt.toml``."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=CONFIG_ENV,
        default=DEFAULT_CONFIG_PATH,
        show_default=True,
        help=f"The config file (or ${CONFIG_ENV}).",
    )(function)
