"""Payload encryption at rest: any size reads back, and any cut of the file is caught."""

from __future__ import annotations

from pathlib import Path

import pytest
from ipunkt.store.blobs import BlobStore
from ipunkt.store.encryption import (
    CHUNK_SIZE,
    HEADER_SIZE,
    DecryptionError,
    Keyring,
    MasterKey,
    Opener,
    Sealer,
)

KEYS = Keyring(MasterKey(b"e" * 32))


def open_all(sealed: bytes, length: int) -> bytes:
    opener = Opener(KEYS, b"id", sealed[:HEADER_SIZE], length)
    position, plain = HEADER_SIZE, b""
    for size in opener.record_lengths():
        plain += opener.open(sealed[position:position + size])
        position += size
    return plain


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 192, 200])
def test_every_size_reads_back_and_every_cut_is_caught(size: int) -> None:
    """64-byte chunks: sizes on and off the chunk boundaries, the file cut at every byte."""
    data = bytes(range(256))[:size]
    sealer = Sealer(KEYS, b"id", chunk_size=64)
    sealed = sealer.header + sealer.update(data) + sealer.finish()
    assert open_all(sealed, len(sealed)) == data
    for cut in range(HEADER_SIZE, len(sealed)):
        with pytest.raises(DecryptionError):
            open_all(sealed, cut)


async def chunks(data: bytes, piece: int = 100_000):
    for start in range(0, len(data), piece):
        yield data[start:start + piece]


async def test_a_payload_of_whole_chunks_reads_back(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path, KEYS)
    blobs.prepare()
    data = bytes(range(256)) * (2 * CHUNK_SIZE // 256)
    blob = await blobs.write(chunks(data))
    assert blob.size == 2 * CHUNK_SIZE
    assert await blobs.check(blob.blob_id) == 2 * CHUNK_SIZE
    assert b"".join([c async for c in blobs.read(blob.blob_id)]) == data
    path = blobs.path(blob.blob_id)
    path.write_bytes(path.read_bytes()[: HEADER_SIZE + CHUNK_SIZE + 16])  # one record's end
    with pytest.raises(DecryptionError):
        _ = [c async for c in blobs.read(blob.blob_id)]
