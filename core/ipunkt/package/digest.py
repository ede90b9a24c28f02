"""SHA-256 of a stream, computed in a worker thread while the stream goes on elsewhere.

Sealing a large document digests it (for the signature), checksums and deflates it (for the
ZIP) and encrypts it (for CMS). hashlib releases the GIL, so moving the digest to its own
thread lets the three run on the cores there are instead of one after another. Chunks are
immutable ``bytes``, shared with the hashing thread, and the queue between them is bounded.
A small document is digested where it is read: starting a thread would cost more than the
hashing it saves.
"""

from __future__ import annotations

import hashlib
import queue
import threading

_END = b""
INLINE_BYTES = 1 << 20
"""Bytes digested in the caller's thread before the worker takes over."""


class BackgroundSha256:
    """``update`` hands a chunk to the hashing thread; ``digest`` waits for the result."""

    def __init__(self, depth: int = 8, inline_bytes: int = INLINE_BYTES) -> None:
        self._chunks: queue.Queue[bytes] = queue.Queue(maxsize=depth)
        self._inline_left = inline_bytes
        self._hash = hashlib.sha256()
        self._thread: threading.Thread | None = None
        """Started by the first chunk past ``inline_bytes``."""
        self._result: bytes | None = None

    def _work(self) -> None:
        while chunk := self._chunks.get():
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._thread is None and len(chunk) <= self._inline_left:
            self._inline_left -= len(chunk)
            self._hash.update(chunk)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="ipunkt-sha256", daemon=True)
            self._thread.start()
        self._chunks.put(chunk)

    def digest(self) -> bytes:
        if self._result is None:
            self._stop()
            self._result = self._hash.digest()
        return self._result

    def cancel(self) -> None:
        """Stop the thread without a result (the stream was abandoned)."""
        if self._result is None:
            self._stop()

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._chunks.put(_END)
            self._thread.join()
