"""The sealing toolkit's two pipelines, prefetch and the background digest: the same results
whether a stream is small enough to stay in the caller's thread or large enough for a worker,
and a stream stopped or failing in either part is closed and its error raised."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest
from ipunkt.package.digest import BackgroundSha256
from ipunkt.package.prefetch import prefetch

CHUNK = 64 << 10


class Source:
    """Chunks of ``count`` distinct blocks; remembers whether it was closed; can fail."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.closed = False

    def chunks(self) -> Iterator[bytes]:
        try:
            for index in range(self.count):
                if index == self.fail_at:
                    raise OSError(f"chunk {index} could not be read")
                yield bytes([index % 256]) * CHUNK
        finally:
            self.closed = True


@pytest.mark.parametrize("count", [0, 1, 3, 40])
def test_prefetch_yields_every_chunk_in_order(count: int) -> None:
    source = Source(count)
    got = list(prefetch(source.chunks(), inline_bytes=4 * CHUNK))
    assert got == list(Source(count).chunks())
    assert source.closed


@pytest.mark.parametrize("fail_at", [1, 20])
def test_prefetch_raises_the_sources_error(fail_at: int) -> None:
    source = Source(40, fail_at=fail_at)
    with pytest.raises(OSError, match=f"chunk {fail_at} could not be read"):
        list(prefetch(source.chunks(), inline_bytes=4 * CHUNK))
    assert source.closed


@pytest.mark.parametrize("taken", [2, 20])
def test_prefetch_stopped_early_closes_the_source(taken: int) -> None:
    source = Source(40)
    chunks = source.chunks()  # held here, so only prefetch closing it can close it
    stream = prefetch(chunks, inline_bytes=4 * CHUNK)
    for _ in range(taken):
        next(stream)
    stream.close()
    assert source.closed


@pytest.mark.parametrize("sizes", [[], [10], [CHUNK] * 3, [CHUNK] * 40, [5, 3 * CHUNK, 7]])
def test_background_digest_is_sha256(sizes: list[int]) -> None:
    digest = BackgroundSha256(inline_bytes=4 * CHUNK)
    expected = hashlib.sha256()
    for index, size in enumerate(sizes):
        chunk = bytes([index % 256]) * size
        digest.update(chunk)
        expected.update(chunk)
    assert digest.digest() == expected.digest()
    assert digest.digest() == expected.digest()


def test_a_cancelled_background_digest_leaves_no_thread() -> None:
    before = threading.active_count()
    digest = BackgroundSha256(inline_bytes=CHUNK)
    for _ in range(10):
        digest.update(b"x" * CHUNK)
    assert threading.active_count() == before + 1
    digest.cancel()
    digest.cancel()
    assert threading.active_count() == before
