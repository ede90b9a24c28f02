"""``ipunkt sandbox``: the fakes of every installed channel and two integration points."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from pathlib import Path

import click

from ipunkt.fault_injection import FaultKind, FaultPlan, FaultSpecError, parse_spec
from ipunkt.gc_tuning import tune_for_serving
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
@click.option("--faults", "fault_specs", multiple=True, metavar="NAME:KIND=RATE,...",
              callback=lambda _ctx, _param, values: _check_faults(values),
              help="Make the fake NAME (as listed under Fakes, or * for all) misbehave: KIND is "
                   f"one of {', '.join(k.value for k in FaultKind)}; RATE the fraction of its "
                   "requests, e.g. 'altinn-broker:5xx=0.05,lost=0.02'. Repeatable; a fake's "
                   "own rates win over those of *.")
@click.option("--fault-seed", type=int, help="Seed the faults' draws, to repeat a run.")
@click.option("--fault-delay", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds a slow answer is delayed.")
@click.option("--fault-retry-after", type=click.IntRange(min=0), default=1, show_default=True,
              help="The Retry-After (seconds) of a 429.")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def sandbox(folder: Path | None, state_file: Path | None, fakes_only: bool, port_a: int,
            port_b: int, fault_specs: tuple[str, ...], fault_seed: int | None,
            fault_delay: float, fault_retry_after: int, log_level: str) -> None:
    """Run every installed channel's fakes, a fake Maskinporten and Service Registry, and two
    integration points (organisations A and B) on this machine, until Ctrl-C or SIGTERM.

    With --faults, fakes answer some requests with 5xx (before acting on them), 429 with
    Retry-After, slowly, not at all (timeout: until the client gives up), with a body cut
    short (truncate), or not at all after acting on them (lost), at the given rates.
    """
    configure_logging("auto", log_level)
    where = folder or Path(tempfile.mkdtemp(prefix="ipunkt-sandbox-"))
    faults = None
    if fault_specs:
        try:
            faults = FaultPlan.parse(fault_specs, seed=fault_seed, slow_seconds=fault_delay,
                                     retry_after_seconds=fault_retry_after)
        except FaultSpecError as exc:
            raise click.BadParameter(str(exc), param_hint="--faults") from None
    box = Sandbox(where, load_plugins(), (port_a, port_b), fakes_only, specs_folder(),
                  faults=faults)
    tune_for_serving()
    asyncio.run(_run(box, state_file))


def _check_faults(values: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a --faults value that cannot be read, naming what is wrong."""
    for value in values:
        try:
            parse_spec(value)
        except FaultSpecError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


async def _run(box: Sandbox, state_file: Path | None) -> None:
    task = asyncio.create_task(run_forever(box, state_file))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
