"""JSON read as Jackson reads it: no ``NaN`` or ``Infinity``, each failure one error.

Python's :mod:`json` takes ``NaN``, ``Infinity`` and ``-Infinity``, which Jackson refuses and
which no JSON writer may write back; a number of more than 4,300 digits makes it raise a plain
``ValueError``, and deep nesting a ``RecursionError``; ``"\\ud800"`` decodes to a lone surrogate,
which is no character and which no store or writer takes. All of them are the client's
malformed JSON, so all of them come out as :class:`JsonError`.
"""

from __future__ import annotations

import json
import re
from typing import Any


class JsonError(ValueError):
    """The text is not JSON that Jackson would read."""


def loads(text: str | bytes) -> Any:
    try:
        if not isinstance(text, str):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        value = _DECODER.decode(text)
        if _SURROGATE_HINT.search(text) and _has_lone_surrogate(value):
            raise JsonError("a string holds a lone UTF-16 surrogate, which is no character")
        return value
    except RecursionError:
        raise JsonError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits, constants
        raise JsonError(str(exc)) from None


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
"""Text that may decode to a lone surrogate (a pair decodes to one character; checked then)."""


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False



def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""One decoder for every read (:func:`json.loads` makes one a call when given a hook)."""
