"""Dynamic batching: requests that arrive close together run as one batch on a worker thread.

A model generating one sequence leaves most of the accelerator idle; generating sixteen at once
costs little more per step. The batcher waits up to ``window_s`` after the first request for others
to join (or until ``max_batch_size`` are waiting), splits what it collected into groups that can
share one call (same ``key``), runs each group, and hands every caller its own result.

``held_until(count)`` makes the worker wait for ``count`` requests before it starts collecting,
so which requests run together no longer depends on how quickly the callers reach ``submit``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(slots=True)
class _Pending(Generic[Req, Res]):
    request: Req
    future: asyncio.Future[Res]
    loop: asyncio.AbstractEventLoop


class DynamicBatcher(Generic[Req, Res]):
    """Collects requests from any event loop and runs them in batches on one worker thread."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Req]], list[Res]],
        *,
        key: Callable[[Req], Hashable],
        max_batch_size: int,
        window_s: float,
        name: str = "batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._run_batch = run_batch
        self._key = key
        self._max = max_batch_size
        self._window_s = max(window_s, 0.0)
        self._queue: queue.Queue[_Pending[Req, Res] | None] = queue.Queue()
        # Guards the hold and is notified on every arrival, for ``held_until``.
        self._arrivals = threading.Condition()
        self._hold: tuple[int, float] | None = None
        self._closed = False
        self.batch_sizes: list[int] = []
        """Size of every batch run so far, in order (for monitoring and tests)."""
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def submit(self, request: Req) -> Res:
        """Queue ``request`` and wait for its result (or its exception)."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        with self._arrivals:
            self._queue.put(_Pending(request, future, loop))
            self._arrivals.notify_all()
        return await future

    @contextmanager
    def held_until(self, count: int, *, timeout_s: float = 60.0) -> Iterator[None]:
        """Inside, the next collection starts only once ``count`` requests are queued.

        Enter it while no request is queued. The requests are then collected as if they had all
        arrived at the same instant (batches of at most ``max_batch_size``, split by key), however
        slowly the callers got to ``submit``. Should fewer come, collecting starts after
        ``timeout_s``, or on leaving the block.
        """
        with self._arrivals:
            self._hold = (count, timeout_s)
        try:
            yield
        finally:
            with self._arrivals:
                self._hold = None
                self._arrivals.notify_all()

    def close(self) -> None:
        """Finish the queued requests, then stop the worker thread."""
        if self._closed:
            return
        with self._arrivals:
            self._closed = True
            self._queue.put(None)
            self._arrivals.notify_all()
        self._thread.join()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._wait_for_hold()
            pending, stop = self._collect(first)
            self._run_groups(pending)
            if stop:
                return

    def _wait_for_hold(self) -> None:
        """Let a hold that is set fill up (``first`` already taken off the queue counts as one)."""
        with self._arrivals:
            if self._hold is None:
                return
            count, timeout_s = self._hold
            self._arrivals.wait_for(
                lambda: self._closed or self._hold is None or self._queue.qsize() + 1 >= count,
                timeout_s,
            )
            self._hold = None

    def _collect(self, first: _Pending[Req, Res]) -> tuple[list[_Pending[Req, Res]], bool]:
        """The first request plus whatever joins within the window; whether close was asked."""
        pending = [first]
        deadline = time.monotonic() + self._window_s
        while len(pending) < self._max:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return pending, True
            pending.append(item)
        return pending, False

    def _run_groups(self, pending: list[_Pending[Req, Res]]) -> None:
        groups: dict[Hashable, list[_Pending[Req, Res]]] = {}
        for item in pending:
            groups.setdefault(self._key(item.request), []).append(item)
        for group in groups.values():
            self.batch_sizes.append(len(group))
            try:
                results = self._run_batch([item.request for item in group])
            except Exception as exc:
                # Every caller of the group hears about the failure; the worker lives on.
                for item in group:
                    call_in_loop(item.loop, _set_exception, item.future, exc)
                continue
            for item, result in zip(group, results, strict=True):
                call_in_loop(item.loop, _set_result, item.future, result)


def call_in_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: object
) -> None:
    """Schedule ``callback(*args)`` on ``loop`` from another thread.

    A loop that has closed meanwhile had its caller leave (a finished ``asyncio.run``): there is
    nobody to tell, so nothing is scheduled.
    """
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        if not loop.is_closed():
            raise


def _set_result(future: asyncio.Future[Res], result: Res) -> None:
    # The caller may have been cancelled (client went away) while the batch ran.
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Res], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
