"""``ipunkt init``: write a commented starter config for the installed plugins."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ipunkt.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, starter_config
from ipunkt.plugins import load_plugins

SAMPLE_ORGANISATION = "910077473"


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--org",
    "organisation",
    default=SAMPLE_ORGANISATION,
    show_default=True,
    help="Your organisation number (the default is a test organisation).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path | None, organisation: str, force: bool) -> None:
    """Write a starter config to PATH (default: $IPUNKT_CONFIG or ./ipunkt.toml)."""
    target = path or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists; use --force to overwrite it")
    text = starter_config(load_plugins(), organisation)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    click.echo(f"wrote {target}; start with: ipunkt serve --config {target}")
