"""``ipunkt serve``: run the gateway until SIGTERM or Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import click
import structlog
from aiohttp import web

from ipunkt.api.settings import exposure_problem
from ipunkt.app import create_app
from ipunkt.cli.options import config_option
from ipunkt.config import ConfigError
from ipunkt.gateway import load_gateway
from ipunkt.gc_tuning import tune_for_serving
from ipunkt.logconfig import configure_logging
from ipunkt.plugin import ConfigurationError


@click.command()
@config_option
@click.option("--host", help="Listen on this address instead of the config's server.host.")
@click.option("--port", type=int, help="Listen on this port instead of the config's server.port.")
def serve(config_path: Path, host: str | None, port: int | None) -> None:
    """Run the integration point's HTTP API and its channels.

    Stops gracefully on SIGTERM or Ctrl-C: in-flight requests get server.shutdown_timeout
    seconds to finish.
    """
    try:
        gateway = load_gateway(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    settings = gateway.settings
    configure_logging(settings.logging.format, settings.logging.level)
    log = structlog.get_logger("ipunkt.serve")
    for record in gateway.plugins.failed():
        log.warning("plugin not loaded", plugin=record.name, error=record.error)
    try:
        app = create_app(settings, gateway.plugins, gateway.channel_configs, gateway.key)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    if problem := exposure_problem(settings.api, host):
        raise click.ClickException(problem)
    scheme = "https" if settings.api.tls_certificate is not None else "http"
    log.info("ipunkt starting", url=f"{scheme}://{host}:{port}", config=str(config_path))
    tune_for_serving()
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            access_log=None,
            print=None,
            shutdown_timeout=settings.server.shutdown_timeout,
            ssl_context=settings.api.ssl_context(),
        )
    except ConfigurationError as exc:  # a channel found its config unusable as it started
        raise click.ClickException(str(exc)) from None
    log.info("ipunkt stopped")
