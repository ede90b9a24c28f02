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



from ipunkt.cli.init import init  # noqa: E402  (commands come after the group they join)
from ipunkt.cli.plugins import plugins_command  # noqa: E402
from ipunkt.cli.serve import serve  # noqa: E402

main.add_command(init)
main.add_command(serve)
main.add_command(plugins_command)
