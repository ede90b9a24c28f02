"""JSON written exactly as the original's Jackson ``DefaultPrettyPrinter`` writes it.

``"key" : value``, two-space indent, arrays opened on the same line (``[ {``), empty objects
and arrays as ``{ }`` and ``[ ]``, non-ASCII kept as UTF-8. Byte for byte the same as the
documented answers, so that even ``Content-Length`` matches.

Text written once can be embedded again as :class:`Raw` (the store keeps each SBD as this
text, and a page of SBDs embeds them without parsing and writing them again): JSON strings
hold no raw line breaks, so indenting a nested value is inserting spaces after each one.
"""

from __future__ import annotations

import json
from typing import Any

_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


class Raw:
    """A value already written by :func:`render`, embedded as it is (re-indented)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def render(value: Any) -> str:
    parts: list[str] = []
    _write(value, 0, parts)
    return "".join(parts)


def dumps(value: Any) -> bytes:
    return render(value).encode("utf-8")


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
    elif kind is Raw:
        out.append(value.text.replace("\n", "\n" + "  " * depth) if depth else value.text)
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
