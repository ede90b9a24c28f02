"""Checking an incoming package while it is stored, so that a hostile one is refused at once.

A channel hands the core a package exactly as it came: CMS-encrypted to this organisation. The
core stores it that way and decrypts it only when the client pops it. What is wrong inside (a
zip bomb, entries that escape their folder or come twice, unsafe XML, a signature that does not
verify, a CMS for someone else's key) would then come to light only at the client, long after
the sender could be told. :class:`PackageScreen` opens the package as its bytes stream past
on their way to the store: a worker thread decrypts, unpacks within :class:`Limits` and
verifies it (:func:`ipunkt.package.seal.open_package`, writing nothing), and the stream ends
only once the package passed. A refusal is raised in the stream, usually long before its end
(a bomb within its first megabytes), so the store keeps nothing, and is kept in
:attr:`PackageScreen.refusal` for the channel to tell the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator

import structlog

from ipunkt.package.asic import Limits
from ipunkt.package.errors import PackageError
from ipunkt.package.keys import OrganisationKey
from ipunkt.package.seal import DEFAULT_LIMITS, Opened, open_package
from ipunkt.package.trust import TrustStore

log = structlog.get_logger(__name__)

DEPTH = 4
"""Chunks handed to the worker before the stream waits for it."""
_END = object()
_ABANDONED = object()


class _Abandoned(Exception):
    """The stream was not read to its end; the worker stops."""


class PackageScreen:
    """Screens one package: ``stream`` passes its bytes through while a worker opens them."""

    def __init__(
        self,
        *,
        key: OrganisationKey,
        trust: TrustStore | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.key = key
        self.trust = trust
        self.limits = limits
        self.refusal: PackageError | None = None
        """Why the package was refused, once it was."""
        self.opened: Opened | None = None
        """What the package holds, once it passed."""

    def _open(self, source: Iterator[bytes]) -> Opened:
        try:
            return open_package(source, key=self.key, trust=self.trust, limits=self.limits)
        except (PackageError, _Abandoned):
            raise
        except Exception as exc:  # a reader's bug must refuse the package, not let it pass
            log.exception("a package could not be checked")
            raise PackageError(
                f"the package could not be read ({type(exc).__name__}: {exc})"
            ) from exc

    async def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` unchanged; raises the refusal (a :class:`PackageError`) instead of ending
        when the package is not sound."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=DEPTH)
        verdict: asyncio.Future[Opened] = loop.create_future()

        def source() -> Iterator[bytes]:
            while True:
                item = asyncio.run_coroutine_threadsafe(queue.get(), loop).result()
                if item is _END:
                    return
                if item is _ABANDONED:
                    raise _Abandoned
                yield item  # type: ignore[misc]

        def settle(result: Opened | None, error: BaseException | None) -> None:
            if verdict.done():
                return
            if error is not None:
                verdict.set_exception(error)
            else:
                verdict.set_result(result)  # type: ignore[arg-type]

        def work() -> None:
            try:
                result = self._open(source())
            except BaseException as error:  # handed to the stream, which raises it
                outcome: tuple[Opened | None, BaseException | None] = (None, error)
            else:
                outcome = (result, None)
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, *outcome)
            del outcome  # the error's traceback holds this frame: no cycle left for the GC

        threading.Thread(target=work, name="ipunkt-screen", daemon=True).start()
        ended = False
        try:
            async for chunk in chunks:
                await self._hand(queue, chunk, verdict)
                yield chunk
            await self._hand(queue, _END, verdict)
            ended = True
            self.opened = await self._outcome(verdict)
        finally:
            if not ended:
                # The worker, or the thread it decrypts in, may still wait for a chunk, also
                # after it refused the package: tell it that none will come.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_ABANDONED)
            if not verdict.done():
                await asyncio.wait({verdict})
            if not verdict.cancelled():
                verdict.exception()  # retrieved: the reader of the stream learnt what it needs

    async def _hand(
        self, queue: asyncio.Queue[object], item: object, verdict: asyncio.Future[Opened]
    ) -> None:
        """Queue ``item`` for the worker, unless it has already decided."""
        if not verdict.done():
            put: asyncio.Future[object] = asyncio.ensure_future(queue.put(item))
            pending: set[asyncio.Future[object]] = {put, verdict}  # type: ignore[arg-type]
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if put.done():
                return
            put.cancel()
        await self._outcome(verdict)
        self.refusal = PackageError("the package ended before the data did")
        raise self.refusal

    async def _outcome(self, verdict: asyncio.Future[Opened]) -> Opened:
        try:
            return await asyncio.shield(verdict)
        except PackageError as exc:
            self.refusal = exc
            raise
