"""``ipunkt plugins``: what is installed, what loaded, and why something did not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ipunkt.cli.options import config_option
from ipunkt.config import ConfigError, load_settings
from ipunkt.plugins import PluginHost, load_plugins


@click.command("plugins")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(config_path: Path, as_json: bool) -> None:
    """List the installed plugins: distribution, version, services, status and error.

    The config's plugins.allow and plugins.disable lists apply when the config file exists.
    """
    allow: list[str] = []
    disable: list[str] = []
    if config_path.exists():
        try:
            settings = load_settings(config_path)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        allow, disable = settings.plugins.allow, settings.plugins.disable
    host = load_plugins(allow, disable)
    listing = describe_plugins(host)
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    if not listing:
        click.echo("no plugins installed")
    for entry in listing:
        click.echo(
            f"{entry['name']}: {entry['distribution']} {entry['version']} - {entry['status']}"
        )
        for service in entry["services"]:
            click.echo(
                f"  {service['service']} ({service['name']}): transport: {service['transport']}; "
                f"carries {', '.join(service['message_types'])}; "
                f"max size {service['max_size']} bytes"
            )
        if entry["error"]:
            click.echo(f"  error: {entry['error']}")


def describe_plugins(host: PluginHost) -> list[dict[str, Any]]:
    """The plugin records with each registered channel's declaration spelled out."""
    listing = []
    for record in host.records:
        entry = record.as_json()
        entry["services"] = [
            {
                "service": info.service,
                "name": info.name,
                "transport": "implemented" if info.has_transport else "not implemented",
                "message_types": sorted(info.message_types),
                "max_size": info.max_size,
                "default_ttl_hours": info.default_ttl.total_seconds() / 3600,
                "config_schema": info.config_schema.model_json_schema(),
            }
            for info in (host.channels[s] for s in record.services)
        ]
        listing.append(entry)
    return listing
