"""Times as the integrasjonspunkt reads and writes them.

Reading is liberal, because fagsystemer in the field are varied: ISO-8601 with ``T`` or a space,
with or without seconds, with up to nine fraction digits, with ``Z``, ``+01:00``, ``+0100`` or
``+01``, optionally followed by a ``[Zone/Id]`` as Java's ``ZonedDateTime`` prints it. A time
without an offset is local time in Europe/Oslo, as the original's JDBC and Jackson settings make
it. Writing is strict: Java's ``OffsetDateTime.toString()`` shape (seconds always, fraction only
when non-zero in groups of three digits, ``Z`` for UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")

_DATETIME = re.compile(
    r"""^\s*(?P<date>\d{4}-\d{2}-\d{2})[Tt ]
        (?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?
        \s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?
        (?:\[(?P<zone>[^\]]+)\])?\s*$""",
    re.VERBOSE,
)
_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})\s*$")


class TimeFormatError(ValueError):
    """The text is not a time this reader understands."""


def parse_datetime(text: str) -> datetime:
    """An aware datetime from ISO-8601 text (no offset means Europe/Oslo)."""
    match = _DATETIME.match(text)
    if match is None:
        raise TimeFormatError(f"'{text}' is not an ISO-8601 date-time")
    day = _parse_date_part(match["date"], text)
    fraction = (match["f"] or "").ljust(6, "0")[:6]
    try:
        naive = datetime(
            day.year, day.month, day.day, int(match["h"]), int(match["m"]),
            int(match["s"] or 0), int(fraction),
        )
    except ValueError as exc:
        raise TimeFormatError(f"'{text}' is not a valid date-time: {exc}") from None
    tz = match["tz"]
    if tz is None:
        zone = match["zone"]
        return naive.replace(tzinfo=_zone(zone, text) if zone else OSLO)
    if tz in ("Z", "z"):
        return naive.replace(tzinfo=UTC)
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 18 or minutes > 59:
        raise TimeFormatError(f"'{text}' has an impossible UTC offset")
    return naive.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))


def parse_date(text: str) -> date:
    """A calendar date from ``yyyy-MM-dd``, or the date part of a date-time in its own offset."""
    if _DATE.match(text):
        return _parse_date_part(text.strip(), text)
    return parse_datetime(text).date()


def format_datetime(value: datetime) -> str:
    """Java's ``OffsetDateTime.toString()``: ``2019-03-25T11:38:23+01:00``, ``...23.120Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=OSLO)
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    micros = value.microsecond
    if micros:
        text += f".{micros // 1000:03d}" if micros % 1000 == 0 else f".{micros:06d}"
    offset = value.utcoffset()
    if not offset:
        return text + "Z"
    total = offset.days * 86_400 + offset.seconds
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{text}{sign}{total // 3600:02d}:{total % 3600 // 60:02d}"


def format_date(value: date) -> str:
    return value.isoformat()


def now_oslo() -> datetime:
    """Now, in Europe/Oslo, as the original's clock zone."""
    return datetime.now(OSLO)


def _parse_date_part(text: str, original: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise TimeFormatError(f"'{original}' is not a valid date") from None


def _zone(name: str, original: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        raise TimeFormatError(f"'{original}' names an unknown time zone {name!r}") from None
