"""Run a producer of chunks in a worker thread, a bounded number of chunks ahead.

Sealing is two kinds of work that each fill a core: zipping and digesting the documents, and
encrypting the result. Both release the GIL in their C code (zlib, hashlib, OpenSSL through
cryptography), so a producer thread and the consuming thread run in parallel; the bounded queue
keeps memory flat whichever side is slower. The first chunks, up to ``inline_bytes``, are
produced in the consumer's thread: a small package is done before a thread would have started.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator

_DONE = object()
INLINE_BYTES = 1 << 20


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(
    source: Iterator[bytes],
    *,
    depth: int = 4,
    inline_bytes: int = INLINE_BYTES,
    name: str = "ipunkt-prefetch",
) -> Generator[bytes, None, None]:
    """Yield ``source``'s chunks: the first ``inline_bytes`` produced here, the rest in a
    worker thread at most ``depth`` chunks ahead.

    An exception in ``source`` is raised here; stopping early (``close()`` or an exception in
    the consumer) stops the worker and closes ``source``.
    """
    produced = 0
    try:
        while produced < inline_bytes:
            chunk = next(source, None)
            if chunk is None:
                return
            produced += len(chunk)
            yield chunk
    except BaseException:
        close = getattr(source, "close", None)
        if close is not None:
            close()
        raise
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which raises it
            put(_Failed(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
