"""The faults, load and attack suite: each scenario reports one row of the suite's table.

``python3 dev.py faults`` runs this folder at full size (``IPUNKT_FAULTS_FULL=1``) and prints
the rows as a table; the normal test run runs the same scenarios at the small size that fits
CI's time. A row says how many messages the scenario sent and how many were lost, delivered
twice, or answered with an error, and how long recovery took where something was killed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

REPORT_ENV = "IPUNKT_FAULTS_REPORT"
"""A file the scenarios append their rows to (JSON lines), set by ``dev.py faults``."""
FULL_ENV = "IPUNKT_FAULTS_FULL"
"""Set to 1 for the full sizes the issue asks for (2,000 messages, five minutes' soak)."""


@dataclass(frozen=True)
class Row:
    scenario: str
    messages: int
    lost: int
    duplicated: int
    errors: int
    recovery_seconds: float | None = None


@pytest.fixture
def size() -> Callable[[float, float], float]:
    """``size(small, full)``: the scenario's size, ``full`` under ``dev.py faults``."""
    return lambda small, full: full if os.environ.get(FULL_ENV) == "1" else small


@pytest.fixture
def report() -> Callable[..., None]:
    """``report(scenario=..., messages=..., lost=..., duplicated=..., errors=...,
    recovery_seconds=...)`` records the scenario's row (printed, and kept for the table)."""

    def record(**fields: object) -> None:
        row = Row(**fields)  # type: ignore[arg-type]
        print("faults:", json.dumps(asdict(row)))
        target = os.environ.get(REPORT_ENV)
        if target:
            with Path(target).open("a") as sink:
                sink.write(json.dumps(asdict(row)) + "\n")

    return record
