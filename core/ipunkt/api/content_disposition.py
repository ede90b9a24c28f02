"""``Content-Disposition`` as fagsystemer send it: RFC 6266 and RFC 5987, and worse.

Accepted: any disposition type (or none), parameter names in any case, quoted values with
backslash escapes, unquoted values (even with spaces, as the original's own documentation
sends: ``attachment; name=Before The Law; filename=before_the_law.txt``), ``filename*`` and
``name*`` in RFC 5987 form (``UTF-8''%c3%a6.txt``, charset UTF-8 or ISO-8859-1, language tag
optional), which win over their plain forms, and a percent-encoded UTF-8 plain ``filename``
as browsers send it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote


class ContentDispositionError(ValueError):
    """The header cannot be understood."""


@dataclass(frozen=True)
class ContentDisposition:
    type: str
    name: str | None
    filename: str | None


def parse(header: str) -> ContentDisposition:
    parts = _split(header)
    if not parts:
        raise ContentDispositionError("the header is empty")
    kind = parts[0].strip().lower() if "=" not in parts[0] else ""
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for part in parts[1:] if kind else parts:
        if "=" not in part:
            if part.strip():
                raise ContentDispositionError(f"'{part.strip()}' is not a name=value parameter")
            continue
        key, _, raw = part.partition("=")
        key = key.strip().lower()
        value = raw.strip()
        if key.endswith("*"):
            extended[key[:-1]] = _decode_extended(_unquote(value))
        elif key not in params:
            params[key] = _unquote(value)
    name = extended.get("name", params.get("name"))
    filename = extended.get("filename")
    if filename is None and "filename" in params:
        filename = _maybe_percent_encoded(params["filename"])
    if filename is not None:
        filename = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return ContentDisposition(kind, name if name else None, filename if filename else None)


def _split(header: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    parts, current, quoted, escaped = [], [], False, False
    for ch in header:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            current.append(ch)
            escaped = True
        elif ch == '"':
            current.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in (part.strip() for part in parts) if p]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, escaped = value[1:-1], [], False
        for ch in inner:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return value


def _decode_extended(value: str) -> str:
    charset, sep, rest = value.partition("'")
    if not sep:
        return unquote(value)
    _language, sep, encoded = rest.partition("'")
    if not sep:
        raise ContentDispositionError(f"'{value}' is not an RFC 5987 value")
    encoding = charset.strip().lower() or "utf-8"
    if encoding not in ("utf-8", "iso-8859-1", "us-ascii", "latin-1", "latin1"):
        raise ContentDispositionError(f"charset {charset!r} is not UTF-8 or ISO-8859-1")
    try:
        return unquote(encoded, encoding=encoding, errors="strict")
    except (UnicodeDecodeError, LookupError):
        raise ContentDispositionError(f"'{value}' does not decode as {charset}") from None


def _maybe_percent_encoded(value: str) -> str:
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        return value
