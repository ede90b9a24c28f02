"""A large file streams through the channel and the fake: memory stays flat."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from ipunkt.plugin import Attachment

from .conftest import Altinn, outgoing

SIZE = 128 << 20
CHUNK = 64 << 10


@pytest.mark.slow
async def test_a_128_mib_file_uploads_with_flat_memory(altinn: Altinn) -> None:
    digest = hashlib.sha256()

    async def generate() -> AsyncIterator[bytes]:
        block = bytearray(CHUNK)
        for index in range(SIZE // CHUNK):
            block[:8] = index.to_bytes(8, "big")
            chunk = bytes(block)
            digest.update(chunk)
            yield chunk

    big = Attachment("stor.pdf", "application/pdf", SIZE, generate, title="Stor")
    channel = await altinn.channel(request_timeout=120)
    tracemalloc.start()
    try:
        result = await channel.send(outgoing("digital_dpv", files=[big]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stored = altinn.fake.correspondences[result.external_reference or ""].files[0]
    assert stored.size == SIZE
    assert stored.sha256 == digest.hexdigest()
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB while uploading {SIZE >> 20} MiB"
