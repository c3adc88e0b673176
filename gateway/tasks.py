"""Background tasks that live exactly as long as something else.

Every lifecycle in the gateway (a cleanup_ctx loop, a hub's emulator, the
Docker reconciler) starts a task and, on the way out, cancels it and waits
for it to finish, so nothing outlives what owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has finished."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running(coroutine: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``coroutine`` as a task for the duration of the ``async with``."""
    task = asyncio.create_task(coroutine, name=name)
    try:
        yield
    finally:
        await cancel(task)


class Workers:
    """Threads of their own for one kind of blocking work.

    ``asyncio.to_thread`` shares the loop's default executor with everything
    else, so a flood of one kind of work (password hashes) would delay all
    the others (the audit log, the share store). Each of those gets a pool
    of its own instead; one thread keeps its writes in order.
    """

    def __init__(self, name: str, threads: int = 1) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=name)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in one of these threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def close(self) -> None:
        """Let queued work finish in the background; accept no more."""
        self._executor.shutdown(wait=False)


class Signal:
    """Wakes every waiter at once: an :class:`asyncio.Event` that re-arms itself.

    Take :meth:`waiter` *before* looking at the state it guards, then wait on
    it: a fire between the look and the wait is not lost.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def waiter(self) -> asyncio.Event:
        return self._event
