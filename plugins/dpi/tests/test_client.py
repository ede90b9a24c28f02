"""The access point client's error classification, against the fake and odd servers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ipunkt.plugin import PermanentError, TransientError
from ipunkt_dpi.client import AccessPointClient, retry_after
from ipunkt_dpi.fake import Fault


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry_after("120") == 120.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after(later) or 0) <= 30
    assert retry_after("soon") is None
    assert retry_after(None) is None


async def test_a_slow_access_point_times_out_as_transient(
    fake: Any, access_point: str, recorder: Any
) -> None:
    fake.add_fault(Fault(kind="slow", delay=1.0, path="/messages/in"))
    client = AccessPointClient(access_point, read_timeout=0.2, trace_configs=[recorder.config])
    try:
        with pytest.raises(TransientError, match="list receipts failed"):
            await client.inbox(token="t", kanal=None)
    finally:
        await client.close()


async def test_an_upload_the_access_point_stops_taking_fails_after_the_read_timeout(
    tmp_path: Path,
) -> None:
    """An access point that no longer reads the upload leaves aiohttp writing for ever (its
    read timeout starts only once the body is sent): the send fails once nothing moves."""
    held: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    package = tmp_path / "asic.cms"
    with package.open("wb") as out:
        for _ in range(48):
            out.write(bytes(1 << 20))
    client = AccessPointClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
                               read_timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match=r"take the message failed: nothing moved"):
            await client.send(jwt="a.b.c", package=package, kanal=None, token="t")
        assert time.monotonic() - started < 4
    finally:
        await client.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_without_a_token_the_access_point_refuses_for_good(
    access_point: str, recorder: Any
) -> None:
    client = AccessPointClient(access_point, trace_configs=[recorder.config])
    try:
        with pytest.raises(PermanentError, match=r"HTTP 401.*bearer token is required"):
            await client.inbox(token="", kanal=None)
    finally:
        await client.close()


async def test_mark_read_tolerates_a_receipt_already_gone(access_point: str, recorder: Any) -> None:
    client = AccessPointClient(access_point, trace_configs=[recorder.config])
    try:
        assert await client.mark_read("00000000-0000-0000-0000-000000000000", token="t") is False
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("status", "body", "error", "reason"),
    [
        (200, b"{not json", TransientError, "not JSON"),
        (200, b'{"status": "SENDT"}', TransientError, "not a JSON array"),
        (200, b'[{"status": 1}]', TransientError, "malformed status"),
        (504, b"<html>Gateway Timeout</html>", TransientError, "HTTP 504: <html>Gateway Timeout"),
        (408, b"", TransientError, "HTTP 408"),
        (
            404,
            b'{"title": "Not Found", "detail": "no such message"}',
            PermanentError,
            "HTTP 404: Not Found: no such message",
        ),
    ],
)
async def test_odd_answers_are_classified(
    aiohttp_server: Any, status: int, body: bytes, error: type[Exception], reason: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/dpi/messages/out/{id}/statuses", answer)
    server = await aiohttp_server(app)
    client = AccessPointClient(str(server.make_url("/dpi")))
    try:
        with pytest.raises(error, match=reason):
            await client.statuses("00000000-0000-0000-0000-000000000000", token="t")
    finally:
        await client.close()
