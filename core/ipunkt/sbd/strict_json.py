"""JSON read as Jackson reads it: no ``NaN`` or ``Infinity``, each failure one error.

Python's :mod:`json` takes ``NaN``, ``Infinity`` and ``-Infinity``, which Jackson refuses and
which no JSON writer may write back; a number of more than 4,300 digits makes it raise a plain
``ValueError``, and deep nesting a ``RecursionError``. All of them are the client's malformed
JSON, so all of them come out as :class:`JsonError`.
"""

from __future__ import annotations

import json
from typing import Any


class JsonError(ValueError):
    """The text is not JSON that Jackson would read."""


def loads(text: str | bytes) -> Any:
    try:
        if not isinstance(text, str):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return _DECODER.decode(text)
    except RecursionError:
        raise JsonError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits, constants
        raise JsonError(str(exc)) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""One decoder for every read (:func:`json.loads` makes one a call when given a hook)."""
