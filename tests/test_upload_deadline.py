"""``upload_deadline``: an upload that keeps moving goes on; one that stands still fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from ipunkt.plugin import upload_deadline


async def _chunks(pauses: list[float]) -> AsyncIterator[bytes]:
    for pause in pauses:
        await asyncio.sleep(pause)
        yield b"x"


async def test_chunks_that_keep_coming_outlast_the_deadline() -> None:
    async with upload_deadline(0.1) as deadline:
        sent = [chunk async for chunk in deadline.watch(_chunks([0.05] * 6))]
    assert len(sent) == 6


async def test_an_upload_that_stands_still_fails() -> None:
    with pytest.raises(TimeoutError):
        async with upload_deadline(0.1) as deadline:
            async for _ in deadline.watch(_chunks([0.01, 0.5])):
                pass


async def test_once_the_body_is_sent_the_deadline_is_lifted() -> None:
    async with upload_deadline(0.1) as deadline:
        async for _ in deadline.watch(_chunks([0.01])):
            pass
        await asyncio.sleep(0.2)  # waiting for the answer: the read timeout's business


async def test_a_part_that_is_not_the_last_keeps_the_deadline() -> None:
    with pytest.raises(TimeoutError):
        async with upload_deadline(0.1) as deadline:
            async for _ in deadline.watch(_chunks([0.01]), last=False):
                pass
            await asyncio.sleep(0.3)
