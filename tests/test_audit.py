"""The audit log: append-only JSON lines, written off the event loop."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from gateway import audit
from gateway.audit import AuditLog


async def test_entries_are_appended_as_json_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "state" / "audit.jsonl")
    await log.start()
    log.record("login", user="ann", address="127.0.0.1")
    log.record("input", user="ann", agent="a", bytes=3, text="ls\r")
    await log.aclose()
    lines = (tmp_path / "state" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["login", "input"]
    assert json.loads(lines[1])["text"] == "ls\r"
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "audit.jsonl").stat().st_mode) == 0o600
    # A restart appends; nothing is rewritten.
    again = AuditLog(tmp_path / "state" / "audit.jsonl")
    await again.start()
    again.record("logout", user="ann")
    entries, total = await again.read(0, 10)
    await again.aclose()
    assert total == 3
    assert [e["event"] for e in entries] == ["login", "input", "logout"]


async def test_overflow_is_counted_not_kept(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    await log.start()
    for i in range(audit.MAX_PENDING + 5):
        log.record("input", n=i)
    entries, total = await log.read(0, audit.MAX_PENDING + 10)
    await log.aclose()
    assert total == audit.MAX_PENDING + 1
    assert entries[-1]["event"] == "audit_dropped"
    assert entries[-1]["count"] == 5
