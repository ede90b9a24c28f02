"""Reading query parameters liberally: times with or without offset, a ``+`` sent unencoded."""

from __future__ import annotations

import re
from datetime import date, datetime, time

from multidict import MultiMapping

from ipunkt.messages.errors import BadParameter
from ipunkt.sbd.times import OSLO, TimeFormatError, parse_date, parse_datetime

_SPACE_OFFSET = re.compile(r"(\d) (\d{2}(?::?\d{2})?)$")
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def text(query: MultiMapping[str], name: str) -> str | None:
    """A parameter's value; ``name;`` counts too (an HTML-escaping slip seen in the wild)."""
    value = query.get(name, query.get(name + ";"))
    if value is None:
        return None
    value = value.strip()
    return value or None


LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MAX = 2**31 - 1


def java_long(raw: str) -> int:
    """A whole number as Java's ``Long.parseLong`` reads it: ValueError outside its range,
    as ids are (a larger one could never name a row, and the database cannot hold it)."""
    value = int(raw)
    if not LONG_MIN <= value <= LONG_MAX:
        raise ValueError(f"{raw} is out of range")
    return value


def integer(query: MultiMapping[str], name: str) -> int | None:
    value = text(query, name)
    if value is None:
        return None
    try:
        return java_long(value)
    except ValueError:
        raise BadParameter(f"Parameter '{name}' must be a whole number, not '{value}'") from None


def boolean(query: MultiMapping[str], name: str) -> bool | None:
    value = text(query, name)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise BadParameter(f"Parameter '{name}' must be true or false, not '{value}'")


def moment(query: MultiMapping[str], name: str, *, end_of_day: bool = False) -> datetime | None:
    """A date-time; a date alone means the start (or with ``end_of_day``, the end) of it."""
    value = text(query, name)
    if value is None:
        return None
    value = _SPACE_OFFSET.sub(r"\1+\2", value)
    try:
        if _DATE_ONLY.match(value):
            day = parse_date(value)
            return datetime.combine(day, time.max if end_of_day else time(), OSLO)
        return parse_datetime(value)
    except TimeFormatError as exc:
        raise BadParameter(f"Parameter '{name}': {exc}") from None


def day(query: MultiMapping[str], name: str) -> date | None:
    value = text(query, name)
    if value is None:
        return None
    value = _SPACE_OFFSET.sub(r"\1+\2", value)
    try:
        return parse_date(value)
    except TimeFormatError as exc:
        raise BadParameter(f"Parameter '{name}': {exc}") from None
