"""DER's tag-length-value encoding, for the structures the toolkit writes by hand.

CMS and CAdES write their per-message parts as bytes around cached DER pieces: building them
with asn1crypto for each message took longer than the public-key work itself.
"""

from __future__ import annotations


def length(n: int) -> bytes:
    """A DER length: short form below 128, else long form."""
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    """``content`` under the one-byte ``tag``, with its DER length."""
    return bytes((tag,)) + length(len(content)) + content
