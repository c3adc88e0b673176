"""The audit trail: append-only JSON lines of who did what to which agent.

:meth:`AuditLog.record` is synchronous and never blocks: it queues the entry,
and a writer task appends queued entries to the file from a worker thread.
Passwords, tokens and cookies are never passed in; the operator's input
text is, on purpose (it is what an audit of a shell needs).

Each line: ``{"ts": <unix seconds>, "event": "...", ...fields}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Entries waiting for the disk; beyond this they are counted, not kept.
MAX_PENDING = 10_000


class AuditLog:
    """An append-only JSON-lines file, written off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: deque[dict[str, Any]] = deque()
        self._dropped = 0
        self._wakeup = asyncio.Event()
        # One write at a time, so a flush also waits for the one in flight.
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, event: str, **fields: Any) -> None:
        """Queue one entry; returns at once."""
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            return
        self._pending.append({"ts": round(time.time(), 3), "event": event, **fields})
        self._wakeup.set()

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._task = asyncio.create_task(self._write_loop(), name="audit-writer")

    async def aclose(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write every queued entry now (after any write already under way)."""
        async with self._writing:
            lines = self._take()
            if lines:
                await asyncio.to_thread(self._append, lines)

    async def read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Entries ``offset .. offset+limit`` (0 is the oldest) and the total count."""
        await self.flush()
        return await asyncio.to_thread(self._read, offset, limit)

    def _take(self) -> str:
        entries = list(self._pending)
        self._pending.clear()
        self._wakeup.clear()
        if self._dropped:
            entries.append({"ts": round(time.time(), 3), "event": "audit_dropped",
                            "count": self._dropped})  # fmt: skip
            self._dropped = 0
        return "".join(
            json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in entries
        )

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            try:
                await self.flush()
            except OSError as exc:
                log.error("audit log %s: cannot write: %s", self.path, exc.strerror)

    def _prepare(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.close(fd)

    def _append(self, lines: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)

    def _read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        entries: list[dict[str, Any]] = []
        total = 0
        with self.path.open(encoding="utf-8") as file:
            for total, line in enumerate(file, 1):
                if offset < total <= offset + limit:
                    entries.append(json.loads(line))
        return entries, total
