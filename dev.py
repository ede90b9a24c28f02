#!/usr/bin/env python3
"""Set up and run ipunkt from a checkout, with nothing but Python 3.11+.

    python3 dev.py sandbox [ARGS]  set up .venv, then `ipunkt sandbox`: every fake and two
                                   integration points (A on :9093, B on :9094)
    python3 dev.py run [ARGS]      set up .venv, then `ipunkt serve` on ./var/ipunkt.toml
    python3 dev.py test [ARGS]     set up .venv, then run every test (ARGS go to pytest)
    python3 dev.py faults [ARGS]   set up .venv, then run the faults, load and attack suite
                                   (tests/faults/) at full size and print its table; fails
                                   when a row lost, duplicated or failed anything
    python3 dev.py check-plugins   install the core alone, and each plugin, not editable,
                                   beside only the core, each in a clean environment; check
                                   that it loads and run its tests/smoke.py if it has one

The virtual environment is `.venv` beside this file; it is made, and the core and every
plugin under `plugins/` installed into it (editable), when missing or when a pyproject.toml
is newer than it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".ipunkt-installed"
PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
SMOKE = Path("tests") / "smoke.py"
"""A project's smoke test: a script run with its clean environment's python (see check-plugins)."""


def run(*command: str | Path, **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], check=True, **kwargs)  # type: ignore[call-overload]


def ensure_venv() -> None:
    """Make .venv and install the project into it, unless it is up to date."""
    projects = [ROOT / "pyproject.toml", *(p / "pyproject.toml" for p in PLUGINS)]
    if STAMP.exists() and all(p.stat().st_mtime < STAMP.stat().st_mtime for p in projects):
        return
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    editables = [arg for plugin in PLUGINS for arg in ("-e", str(plugin))]
    run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[test]",
        *editables)
    STAMP.touch()


def serve(args: list[str]) -> int:
    ensure_venv()
    config = ROOT / "var" / "ipunkt.toml"
    if not config.exists():
        run(BIN / "ipunkt", "init", config)
    return subprocess.call([str(BIN / "ipunkt"), "serve", "--config", str(config), *args])


def sandbox(args: list[str]) -> int:
    ensure_venv()
    return subprocess.call([str(BIN / "ipunkt"), "sandbox", *args])


def test(args: list[str]) -> int:
    ensure_venv()
    env = {**os.environ}
    env.setdefault("IPUNKT_SPECS", str(ROOT.parent / "shared" / "specs"))
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT, env=env)


FAULTS = Path("tests") / "faults"
FAULTS_COLUMNS = ("scenario", "messages", "lost", "duplicated", "errors", "recovery time")


def faults(args: list[str]) -> int:
    """The suite at full size (IPUNKT_FAULTS_FULL=1): each scenario appends its row to a
    report file (IPUNKT_FAULTS_REPORT), printed here as a table once every test ran."""
    ensure_venv()
    with tempfile.TemporaryDirectory(prefix="ipunkt-faults-") as scratch:
        report = Path(scratch) / "rows.jsonl"
        env = {**os.environ, "IPUNKT_FAULTS_FULL": "1", "IPUNKT_FAULTS_REPORT": str(report)}
        env.setdefault("IPUNKT_SPECS", str(ROOT.parent / "shared" / "specs"))
        code = subprocess.call([str(BIN / "python"), "-m", "pytest", str(FAULTS),
                                "--timeout=3600", "-q", *args], cwd=ROOT, env=env)
        rows = ([json.loads(line) for line in report.read_text().splitlines() if line]
                if report.exists() else [])
    print(faults_table(rows))
    for row in rows:
        if row.get("details"):
            print(f"{row['scenario']}: {row['details']}")
    failed = [r["scenario"] for r in rows if r["lost"] or r["duplicated"] or r["errors"]]
    if failed:
        print(f"lost, duplicated or failed: {', '.join(failed)}")
    if code != 0:
        print(f"pytest exited with {code}")
    return 1 if code != 0 or failed or not rows else 0


def faults_table(rows: list[dict[str, object]]) -> str:
    """The rows as an aligned text table; recovery time in seconds where it was measured."""
    lines = [FAULTS_COLUMNS]
    for row in rows:
        recovery = row.get("recovery_seconds")
        lines.append((str(row["scenario"]), str(row["messages"]), str(row["lost"]),
                      str(row["duplicated"]), str(row["errors"]),
                      f"{recovery:.1f} s" if isinstance(recovery, (int, float)) else "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(FAULTS_COLUMNS))]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def check_plugins() -> int:
    """Each plugin, installed from a wheel beside only the core, must load: this catches a
    dependency the plugin uses but does not declare, which the shared .venv would hide. The
    core alone must run too. A project's tests/smoke.py, if any, then runs in that clean
    environment, to show that it works there and not only loads."""
    failures = 0
    with tempfile.TemporaryDirectory(prefix="ipunkt-plugin-check-") as scratch:
        wheels = Path(scratch) / "wheels"
        run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", wheels, ROOT,
            *PLUGINS)
        core_wheel = next(wheels.glob("ipunkt-*.whl"))
        python = clean_environment(Path(scratch) / "env-core", core_wheel)
        records, listed = plugin_records(python, scratch)
        if not listed or any(r["status"] != "ok" or r["services"] for r in records):
            failures += 1
            print(f"FAIL the core alone: {records}", flush=True)
        else:
            print("ok   the core runs alone, no channel installed", flush=True)
        if not smoke(python, ROOT, scratch, "the core alone"):
            failures += 1
        for plugin in PLUGINS:
            name = plugin.name
            plugin_wheel = next(wheels.glob(f"ipunkt_{name}-*.whl"))
            python = clean_environment(Path(scratch) / f"env-{name}", core_wheel, plugin_wheel)
            records, listed = plugin_records(python, scratch)
            statuses = {r["name"]: (r["status"], r["error"]) for r in records}
            if not listed or statuses.get(name, ("missing",))[0] != "ok":
                failures += 1
                print(f"FAIL ipunkt-{name}: {statuses.get(name)}", flush=True)
                continue
            print(f"ok   ipunkt-{name} loads beside only the core", flush=True)
            if not smoke(python, plugin, scratch, f"ipunkt-{name} beside only the core"):
                failures += 1
    return 1 if failures else 0


def clean_environment(folder: Path, *wheels: Path) -> Path:
    """A new virtual environment holding only ``wheels`` (and their dependencies)."""
    venv.create(folder, with_pip=True)
    python = folder / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", *wheels)
    return python


def plugin_records(python: Path, cwd: str) -> tuple[list[dict[str, object]], bool]:
    """``ipunkt plugins --json`` in that environment, and whether it answered."""
    listing = subprocess.run([str(python), "-m", "ipunkt", "plugins", "--json"],
                             capture_output=True, text=True, cwd=cwd)
    if listing.returncode != 0:
        print(listing.stderr, flush=True)
    return json.loads(listing.stdout or "[]"), listing.returncode == 0


def smoke(python: Path, project: Path, cwd: str, what: str) -> bool:
    """Run the project's smoke script, if it has one, with the clean environment's python
    (``-P``: the script's folder is not put on the path, so only the installed code runs)."""
    script = project / SMOKE
    if not script.exists():
        return True
    print(f"+ {python} -P {script}", flush=True)
    passed = subprocess.run([str(python), "-P", str(script)], cwd=cwd).returncode == 0
    print(f"{'ok  ' if passed else 'FAIL'} {what}: {script.relative_to(ROOT)}", flush=True)
    return passed


def main(argv: list[str]) -> int:
    commands = {"sandbox": sandbox, "run": serve, "test": test, "faults": faults}
    if argv and argv[0] == "check-plugins":
        return check_plugins()
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
