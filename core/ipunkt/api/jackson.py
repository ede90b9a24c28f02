"""JSON written exactly as the original's Jackson ``DefaultPrettyPrinter`` writes it.

``"key" : value``, two-space indent, arrays opened on the same line (``[ {``), empty objects
and arrays as ``{ }`` and ``[ ]``, non-ASCII kept as UTF-8. Byte for byte the same as the
documented answers, so that even ``Content-Length`` matches.
"""

from __future__ import annotations

import json
from typing import Any

_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def dumps(value: Any) -> bytes:
    parts: list[str] = []
    _write(value, 0, parts)
    return "".join(parts).encode("utf-8")


def _write(value: Any, depth: int, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{ }")
            return
        inner = "\n" + "  " * (depth + 1)
        out.append("{")
        first = True
        for key, item in value.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(_string(str(key)))
            out.append(" : ")
            _write(item, depth + 1, out)
        out.append("\n" + "  " * depth + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[ ]")
            return
        out.append("[ ")
        for index, item in enumerate(value):
            if index:
                out.append(", ")
            _write(item, depth, out)
        out.append(" ]")
    elif isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    else:
        out.append(json.dumps(value))
