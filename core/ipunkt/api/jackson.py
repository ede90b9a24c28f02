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
    kind = type(value)
    if kind is dict:
        if not value:
            out.append("{ }")
            return
        inner = "\n" + "  " * (depth + 1)
        separator = "{" + inner
        for key, item in value.items():
            out.append(separator)
            separator = "," + inner
            out.append(_string(str(key)))
            out.append(" : ")
            if type(item) is str:
                out.append(_string(item))
            else:
                _write(item, depth + 1, out)
        out.append("\n" + "  " * depth + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[ ]")
            return
        separator = "[ "
        for item in value:
            out.append(separator)
            separator = ", "
            if type(item) is str:
                out.append(_string(item))
            else:
                _write(item, depth, out)
        out.append(" ]")
    elif kind is str:
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, dict):
        _write(dict(value), depth, out)
    elif isinstance(value, list | tuple):
        _write(list(value), depth, out)
    else:
        out.append(json.dumps(value))
