"""What a file of a message may be named: a name that the ASiC-E and the receiver can take.

The name becomes an entry of the ASiC-E, which the receiver unpacks onto its own disk. A path
in it was already cut off where the name was read (:mod:`ipunkt.api.content_disposition`, as
RFC 6266 asks); what is left is refused here, before a byte of the file is stored, when it
could still escape or mislead there: a name of dots alone (``..`` is the parent folder), a
control character (NUL ends a name in C, a line break forges log lines), a bidirectional
control (U+202E shows ``txt.exe`` as ``exe.txt``), or more bytes than a file system's name
takes (255).
"""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 255
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def problem(name: str) -> str | None:
    """Why ``name`` cannot name a file of a message, or None if it can."""
    if "/" in name or "\\" in name:
        return "it holds a path (/ or \\)"
    if set(name) == {"."}:
        return "it is only dots"
    for char in name:
        if unicodedata.category(char) == "Cc":
            return f"it holds the control character U+{ord(char):04X}"
        if char in BIDI_CONTROLS:
            return f"it holds the bidirectional control U+{ord(char):04X}"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"it is longer than {MAX_NAME_BYTES} bytes in UTF-8"
    return None
