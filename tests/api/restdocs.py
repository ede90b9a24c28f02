"""The request/response examples of the published NextMove API documentation, as data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Exchange:
    first_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Example:
    section: str
    title: str
    request: Exchange | None
    response: Exchange

    @property
    def method(self) -> str:
        assert self.request is not None
        return self.request.first_line.split()[0]

    @property
    def target(self) -> str:
        assert self.request is not None
        target = self.request.first_line.split()[1]
        return target if target.startswith("/") else "/" + target

    @property
    def status(self) -> int:
        return int(self.response.first_line.split()[1])


def _block(lines: list[str], start: int) -> tuple[Exchange, int]:
    """An indented HTTP message starting after ``start`` (the 'Request'/'Response' label)."""
    i = start + 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    indent = len(lines[i]) - len(lines[i].lstrip())
    exchange = Exchange(lines[i].strip())
    i += 1
    while i < len(lines) and lines[i].strip():
        name, _, value = lines[i].strip().partition(":")
        exchange.headers.append((name.strip(), value.strip()))
        i += 1
    body: list[str] = []
    i += 1
    while i < len(lines) and (lines[i].startswith(" " * indent) or not lines[i].strip()):
        if (not lines[i].strip() and body and i + 1 < len(lines)
                and not lines[i + 1].startswith(" ")):
            break
        body.append(lines[i][indent:] if lines[i].strip() else "")
        i += 1
    exchange.body = "\n".join(body).strip("\n")
    return exchange, i


def load(specs: Path) -> dict[tuple[str, str], Example]:
    """Every example by (section heading, example heading)."""
    lines = (specs / "nextmove-api" / "restdocs.md").read_text(encoding="utf-8").split("\n")
    examples: dict[tuple[str, str], Example] = {}
    section = title = ""
    request: Exchange | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("### "):
            section, title, request = line[4:].strip(), "", None
        elif line.startswith("#### "):
            title, request = line[5:].strip(), None
        elif line.strip() == "Request" and re.match(r"\s*$", lines[i + 1]):
            request, i = _block(lines, i)
            continue
        elif line.strip() == "Response" and re.match(r"\s*$", lines[i + 1]):
            response, i = _block(lines, i)
            examples[(section, title or section)] = Example(section, title or section, request,
                                                            response)
            request = None
            continue
        i += 1
    return examples
