"""Background tasks that live exactly as long as something else.

Every lifecycle in the gateway (a cleanup_ctx loop, a hub's emulator, the
Docker reconciler) starts a task and, on the way out, cancels it and waits
for it to finish, so nothing outlives what owns it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


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
