"""Payload encryption at rest: AES-256-GCM over fixed-size chunks, a stream at a time.

Each stored file starts with a header (magic, version, the key's id, a random salt, the chunk
size). The file's own key is derived from the configured master key and the salt with HKDF, so
no two files share a key. Chunk ``i`` is sealed with the nonce ``i`` (11 bytes) followed by a
"last chunk" flag byte, and with the header plus the file's identity as associated data: a
chunk cannot be moved, dropped, swapped into another file, or the file cut short without the
tag check failing (the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár).

Plain functions over bytes, no I/O: :mod:`ipunkt.store.blobs` does the streaming.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"IPKTBLOB"
VERSION = 1
CHUNK_SIZE = 1024 * 1024
TAG_SIZE = 16
_HEADER = struct.Struct(">8sB8s16sI")
HEADER_SIZE = _HEADER.size


class DecryptionError(Exception):
    """The stored bytes are not what was written: corrupt or tampered."""


class UnknownKey(Exception):
    """Sealed with a store key that is not configured: the payload may well be sound, the
    configuration is not (a key missing from ``store.previous_keys``, a backup restored without
    its key). Never a reason to give the payload up."""


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key; ``key_id`` names it in file headers without revealing it."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("a store key must be 32 bytes (256 bits)")

    @property
    def key_id(self) -> bytes:
        return hashlib.sha256(b"ipunkt store key id\0" + self.secret).digest()[:8]

    @classmethod
    def parse(cls, text: str) -> MasterKey:
        """A key written as 64 hex digits or as base64 of 32 bytes."""
        text = text.strip()
        try:
            raw = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
        except ValueError:
            raise ValueError("a store key must be 64 hex digits or base64 of 32 bytes") from None
        return cls(raw)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(32))

    def encoded(self) -> str:
        return base64.b64encode(self.secret).decode("ascii")


class Keyring:
    """The key new files are sealed with, and older keys that files may still be sealed with."""

    def __init__(self, current: MasterKey, previous: Iterable[MasterKey] = ()) -> None:
        self.current = current
        self._by_id = {key.key_id: key for key in (current, *previous)}

    def find(self, key_id: bytes) -> MasterKey:
        try:
            return self._by_id[key_id]
        except KeyError:
            raise UnknownKey(
                f"sealed with the store key {key_id.hex()}, which is not configured: add it to "
                "store.key or store.previous_keys"
            ) from None


def _file_cipher(key: MasterKey, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"ipunkt blob v1").derive(
        key.secret
    )
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class Sealer:
    """Seals one stream: feed plaintext with :meth:`update`, end with :meth:`finish`."""

    def __init__(self, keyring: Keyring, identity: bytes, chunk_size: int = CHUNK_SIZE) -> None:
        key = keyring.current
        salt = os.urandom(16)
        self.header = _HEADER.pack(MAGIC, VERSION, key.key_id, salt, chunk_size)
        self._aad = self.header + identity
        self._cipher = _file_cipher(key, salt)
        self._chunk = chunk_size
        self._pending = bytearray()
        self._index = 0
        self.plaintext_size = 0

    def update(self, data: bytes) -> bytes:
        """Sealed records for every full chunk now available (keeps one chunk back)."""
        self._pending += data
        self.plaintext_size += len(data)
        out = bytearray()
        while len(self._pending) > self._chunk:
            out += self._seal(bytes(self._pending[: self._chunk]), last=False)
            del self._pending[: self._chunk]
        return bytes(out)

    def finish(self) -> bytes:
        """The last record (possibly of an empty chunk), which marks the end."""
        record = self._seal(bytes(self._pending), last=True)
        self._pending.clear()
        return record

    def _seal(self, chunk: bytes, last: bool) -> bytes:
        record = self._cipher.encrypt(_nonce(self._index, last), chunk, self._aad)
        self._index += 1
        return record


class Opener:
    """Opens a sealed file given its header and total size; records are fed in order."""

    def __init__(self, keyring: Keyring, identity: bytes, header: bytes, sealed_size: int) -> None:
        if len(header) != HEADER_SIZE:
            raise DecryptionError("the file is too short to hold a header")
        magic, version, key_id, salt, chunk = _HEADER.unpack(header)
        if magic != MAGIC or version != VERSION or chunk <= 0:
            raise DecryptionError("not a sealed ipunkt file")
        self._cipher = _file_cipher(keyring.find(key_id), salt)
        self._aad = header + identity
        self.record_size = chunk + TAG_SIZE
        body = sealed_size - HEADER_SIZE
        # The last record is short, or full when the plaintext fills whole chunks; a file cut
        # at a record's end still fails, as its last record was not sealed as the last.
        self.last_record = body % self.record_size or min(body, self.record_size)
        if self.last_record < TAG_SIZE:
            raise DecryptionError("the file has been cut short")
        self.records = -(-body // self.record_size)
        self.plaintext_size = body - self.records * TAG_SIZE
        self._index = 0

    def record_lengths(self) -> Iterator[int]:
        """The size of each record on disk, in order."""
        for index in range(self.records):
            yield self.last_record if index == self.records - 1 else self.record_size

    def open(self, record: bytes) -> bytes:
        last = self._index == self.records - 1
        try:
            chunk = self._cipher.decrypt(_nonce(self._index, last), record, self._aad)
        except InvalidTag:
            raise DecryptionError(f"chunk {self._index} fails its integrity check") from None
        self._index += 1
        return chunk
