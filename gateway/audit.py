"""The audit trail: append-only JSON lines of who did what to which agent.

:meth:`AuditLog.record` is synchronous and never blocks: it queues the entry,
and a writer task appends queued entries to the file from a worker thread.
Passwords, tokens and cookies are never passed in; the operator's input
text is, on purpose (it is what an audit of a shell needs).

Each line: ``{"ts": <unix seconds>, "event": "...", ...fields}``.

The writer must never stop, whatever an entry holds: it is the control
against operators. A field that is not valid Unicode (a lone surrogate from
JSON) is written escaped; an entry that cannot be written at all, and lines
a failing disk refused, are logged and counted in :attr:`AuditLog.dropped_total`
(``gateway_audit_dropped_total``), and the writer goes on. :attr:`status`
says whether it is alive and writing (``/healthz``).
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
from typing import Any, Literal

from .tasks import Workers, cancel

log = logging.getLogger(__name__)

# Entries waiting for the disk; beyond this they are counted, not kept.
MAX_PENDING = 10_000


class AuditLog:
    """An append-only JSON-lines file, written off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: deque[dict[str, Any]] = deque()
        # Not yet reported in the file (an "audit_dropped" entry), and in all.
        self._dropped = 0
        self.dropped_total = 0
        self._failing = False
        # A thread of its own: a login flood in the default executor must
        # not hold up the audit trail.
        self._workers = Workers("audit")
        self._wakeup = asyncio.Event()
        # One write at a time, so a flush also waits for the one in flight.
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def record(self, event: str, **fields: Any) -> None:
        """Queue one entry; returns at once."""
        if len(self._pending) >= MAX_PENDING:
            self._drop(1)
            return
        self._pending.append({"ts": round(time.time(), 3), "event": event, **fields})
        self._wakeup.set()

    @property
    def status(self) -> Literal["ok", "failing", "stopped"]:
        """``stopped`` if the writer is not running, ``failing`` if its last write failed."""
        if self._task is None or self._task.done():
            return "stopped"
        return "failing" if self._failing else "ok"

    async def start(self) -> None:
        await self._workers.run(self._prepare)
        self._task = asyncio.create_task(self._write_loop(), name="audit-writer")

    async def aclose(self) -> None:
        """Write what is queued, then stop."""
        if self._task is not None:
            await cancel(self._task)
            self._task = None
        with contextlib.suppress(OSError):
            await self.flush()
        self._workers.close()

    async def flush(self) -> None:
        """Write every queued entry now (after any write already under way).

        OSError if the file cannot be written; those lines are counted as dropped.
        """
        async with self._writing:
            lines, count = self._take()
            if not lines:
                return
            try:
                await self._workers.run(self._append, lines)
            except OSError:
                self._failing = True
                self._drop(count)
                raise
            self._failing = False

    async def read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Entries ``offset .. offset+limit`` (0 is the oldest) and the total count."""
        with contextlib.suppress(OSError):
            await self.flush()
        return await self._workers.run(self._read, offset, limit)

    def _drop(self, count: int) -> None:
        self._dropped += count
        self.dropped_total += count

    def _take(self) -> tuple[bytes, int]:
        entries = list(self._pending)
        self._pending.clear()
        self._wakeup.clear()
        if self._dropped:
            entries.append({"ts": round(time.time(), 3), "event": "audit_dropped",
                            "count": self._dropped})  # fmt: skip
            self._dropped = 0
        lines = []
        for entry in entries:
            try:
                lines.append(entry_line(entry))
            except (TypeError, ValueError, RecursionError) as exc:
                # A bug of ours (a field json cannot write): say so, keep going.
                log.error("audit: an %r entry could not be written: %s", entry.get("event"), exc)
                self._drop(1)
        return b"".join(lines), len(lines)

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            try:
                await self.flush()
            except OSError as exc:
                log.error("audit log %s: cannot write: %s", self.path, exc.strerror or exc)
                # Not a busy loop on a broken disk: new entries wake it again.
                await asyncio.sleep(1.0)
            except Exception:
                # Whatever it was, the trail must go on.
                log.exception("audit log %s: writer error", self.path)

    def _prepare(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.close(fd)

    def _append(self, lines: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(lines)
            while view:
                view = view[os.write(fd, view) :]
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


def entry_line(entry: dict[str, Any]) -> bytes:
    """One JSON line, UTF-8; text that is not valid Unicode is written \\u-escaped."""
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate: ASCII-only JSON escapes it and reads back the same.
        return json.dumps(entry, separators=(",", ":")).encode() + b"\n"
