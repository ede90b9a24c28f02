"""Reading request bodies: JSON by its type and within a size, files as a stream.

A body sent as another type than the operation reads is answered 415, as Spring answers it; a
missing Content-Type is read as the operation's own (liberal reading). A body that cannot be
read at all, because its Content-Encoding does not decode or the client went away half-way, is
the client's malformed request (400), never the server's error. A body that stops coming for
``api.body_idle_seconds`` is answered 408 and its request ended, so that a stalled client
cannot hold a request (and its half-written file) open for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ipunkt.messages import errors

READ_CHUNK = 256 * 1024
BODY_IDLE_SECONDS = web.AppKey("body_idle_seconds", float)
"""How long a request body may stop coming before it is refused (``api.body_idle_seconds``)."""
UNREADABLE = (web.RequestPayloadError, HttpProcessingError, ConnectionResetError)
"""What reading a body raises when the bytes cannot be had: a broken encoding, a lost client."""


def header_text(value: str | None) -> str | None:
    """A header's text as Tomcat reads it: UTF-8, else ISO-8859-1, which many Java clients
    send (aiohttp keeps bytes that are not UTF-8 as lone surrogates, which no store takes)."""
    if value is None or value.isascii():
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


def require_json(request: web.Request) -> None:
    """415 unless the body is declared JSON (``application/json`` or ``+json``), or undeclared."""
    if "Content-Type" not in request.headers:
        return
    kind = request.content_type
    if kind != "application/json" and not kind.endswith("+json"):
        raise errors.UnsupportedMediaType(request.headers["Content-Type"])


def require_multipart(request: web.Request) -> None:
    """415 unless the body is declared ``multipart/...``, or undeclared."""
    if "Content-Type" in request.headers and not request.content_type.startswith("multipart/"):
        raise errors.UnsupportedMediaType(request.headers["Content-Type"])


async def read_json(request: web.Request, limit: int, what: str) -> bytes | str:
    """The JSON body, refused unread when its declared length passes ``limit``: its bytes, or
    its text when it declares a charset other than UTF's (as Jackson reads it, through that
    charset; JSON in UTF-8, -16 or -32 tells its encoding itself)."""
    require_json(request)
    if request.content_length is not None and request.content_length > limit:
        raise errors.MessageNotReadable(f"{what} is larger than {limit} bytes")
    raw = await read_limited(request.content, limit, what, idle=request.app[BODY_IDLE_SECONDS])
    charset = (request.charset or "utf-8").lower()
    if charset.startswith("utf"):
        return raw
    try:
        return raw.decode(charset)
    except (LookupError, UnicodeDecodeError) as exc:
        raise errors.MessageNotReadable(f"{what} is not readable as {charset}: {exc}") from None


async def read_limited(
    source: StreamReader | BodyPartReader, limit: int, what: str, *, idle: float
) -> bytes:
    """At most ``limit`` bytes of a body or part; refused as soon as it passes them."""
    data = bytearray()
    async for chunk in chunks(source, idle=idle):
        data += chunk
        if len(data) > limit:
            raise errors.MessageNotReadable(f"{what} is larger than {limit} bytes")
    return bytes(data)


async def chunks(source: StreamReader | BodyPartReader, *, idle: float) -> AsyncIterator[bytes]:
    """A body or part as it arrives, in chunks of at most :data:`READ_CHUNK` bytes; 408 when
    nothing comes for ``idle`` seconds.

    What has already arrived is taken without a wait (and so without a timer): most JSON
    bodies come whole with their headers, and a timer per read was a tenth of a create's cost.
    """
    while True:
        try:
            chunk = _arrived(source)
            if chunk is None:
                async with asyncio.timeout(idle):
                    chunk = await _read(source)
        except TimeoutError:
            raise errors.BodyStalled(idle) from None
        except UNREADABLE as exc:
            raise errors.MessageNotReadable(f"The request body could not be read: {exc}") from None
        if not chunk:
            return
        yield chunk


def _arrived(source: StreamReader | BodyPartReader) -> bytes | None:
    """What a body already holds, ``b""`` at its end, or None when a read has to wait (a
    part's reader cannot say, so a part always waits)."""
    if isinstance(source, StreamReader):
        chunk = source.read_nowait(READ_CHUNK)
        if chunk or source.at_eof():
            return chunk
    return None


async def _read(source: StreamReader | BodyPartReader) -> bytes:
    if isinstance(source, BodyPartReader):
        return await source.read_chunk(READ_CHUNK)
    return await source.read(READ_CHUNK)
