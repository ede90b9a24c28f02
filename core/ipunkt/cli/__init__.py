"""The ``ipunkt`` command. Each command group lives in its own module and is added here."""

from __future__ import annotations

import click

from ipunkt import __version__
from ipunkt.logconfig import configure_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ipunkt")
def main() -> None:
    """ipunkt: a self-hosted eFormidling integration point.

    Start with `ipunkt init` to write a config file, then `ipunkt serve`.
    """
    configure_logging("auto", "warning")


# Each command joins the group above; a helper adding one adds an import and a line.
from ipunkt.cli.certs import certs_group
from ipunkt.cli.init import init
from ipunkt.cli.lookup import lookup_command
from ipunkt.cli.package import package_group
from ipunkt.cli.plugins import plugins_command
from ipunkt.cli.sandbox import sandbox
from ipunkt.cli.serve import serve

main.add_command(init)
main.add_command(serve)
main.add_command(plugins_command)
main.add_command(lookup_command)
main.add_command(package_group)
main.add_command(certs_group)
main.add_command(sandbox)
