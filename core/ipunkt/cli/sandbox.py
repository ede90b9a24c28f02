"""``ipunkt sandbox``: the fakes of every installed channel and two integration points."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path

import click

from ipunkt.logconfig import configure_logging
from ipunkt.plugins import load_plugins
from ipunkt.sandbox import Sandbox, run_forever
from ipunkt.specs import specs_folder


@click.command()
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path),
              help="Keep keys, configs and data here (default: a new temporary folder).")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the URLs, organisations and credentials to this JSON file.")
@click.option("--fakes-only", is_flag=True,
              help="Start only the fakes; write a config per organisation for `ipunkt serve`.")
@click.option("--port-a", default=9093, show_default=True, help="Organisation A's API port.")
@click.option("--port-b", default=9094, show_default=True, help="Organisation B's API port.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def sandbox(folder: Path | None, state_file: Path | None, fakes_only: bool, port_a: int,
            port_b: int, log_level: str) -> None:
    """Run every installed channel's fakes, a fake Maskinporten and Service Registry, and two
    integration points (organisations A and B) on this machine, until Ctrl-C or SIGTERM."""
    configure_logging("auto", log_level)
    where = folder or Path(tempfile.mkdtemp(prefix="ipunkt-sandbox-"))
    box = Sandbox(where, load_plugins(), (port_a, port_b), fakes_only, specs_folder())
    asyncio.run(_run(box, state_file))


async def _run(box: Sandbox, state_file: Path | None) -> None:
    task = asyncio.create_task(run_forever(box, state_file))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
