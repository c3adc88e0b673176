"""gateway.tasks: stopping helper tasks without losing the caller's own cancellation."""

from __future__ import annotations

import asyncio

import pytest

from gateway.tasks import cancel, running


async def test_cancel_waits_for_the_task_and_swallows_only_its_cancellation() -> None:
    stopped = asyncio.Event()

    async def helper() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(helper())
    await asyncio.sleep(0)
    await cancel(task)  # no CancelledError here: it was the helper's
    assert stopped.is_set()
    assert task.cancelled()


async def test_a_caller_cancelled_while_it_waits_is_cancelled_still() -> None:
    """A loop that stops a helper in a finally must not outlive its own cancellation."""
    release = asyncio.Event()
    rounds = 0

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # takes a moment to stop, as a socket's close does

    async def loop() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            helper = asyncio.create_task(slow_to_stop())
            await asyncio.sleep(0)
            await cancel(helper)

    outer = asyncio.create_task(loop())
    for _ in range(3):
        await asyncio.sleep(0)
    outer.cancel()  # arrives while the loop waits in cancel(helper)
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, 5)
    assert rounds == 1


async def test_running_stops_its_task_when_the_block_ends() -> None:
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    async with running(forever(), "forever"):
        await asyncio.sleep(0)
    assert stopped.is_set()
