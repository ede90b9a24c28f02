"""The ``ipunkt`` command. Each command group lives in its own module and is added here."""

from __future__ import annotations

import click

from ipunkt import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ipunkt")
def main() -> None:
    """ipunkt: a self-hosted eFormidling integration point.

    Start with `ipunkt init` to write a config file, then `ipunkt serve`.
    """
