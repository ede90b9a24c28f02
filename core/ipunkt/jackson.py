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

_string = json.encoder.encode_basestring


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
    """Append ``value`` at nesting ``depth``; scalars are written inline, saving a call each."""
    append = out.append
    kind = type(value)
    if kind is dict:
        if not value:
            append("{ }")
            return
        inner = _NEWLINES[depth + 1] if depth + 1 < len(_NEWLINES) else "\n" + "  " * (depth + 1)
        separator = "{" + inner
        for key, item in value.items():
            append(separator)
            separator = "," + inner
            append(_string(key) if type(key) is str else _string(str(key)))
            append(" : ")
            item_kind = type(item)
            if item_kind is str:
                append(_string(item))
            elif item_kind is bool:
                append("true" if item else "false")
            elif item_kind is int:
                append(int.__repr__(item))
            elif item is None:
                append("null")
            else:
                _write(item, depth + 1, out)
        append(inner[: -2] + "}")
    elif kind is list or kind is tuple:
        if not value:
            append("[ ]")
            return
        separator = "[ "
        for item in value:
            append(separator)
            separator = ", "
            if type(item) is str:
                append(_string(item))
            else:
                _write(item, depth, out)
        append(" ]")
    elif kind is str:
        append(_string(value))
    elif kind is Raw:
        append(value.text.replace("\n", "\n" + "  " * depth) if depth else value.text)
    elif value is None:
        append("null")
    elif value is True:
        append("true")
    elif value is False:
        append("false")
    elif isinstance(value, dict):
        _write(dict(value), depth, out)
    elif isinstance(value, list | tuple):
        _write(list(value), depth, out)
    else:
        append(json.dumps(value))


_NEWLINES = tuple("\n" + "  " * depth for depth in range(16))
