"""The audit log: append-only JSON lines, written off the event loop."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gateway import audit
from gateway.audit import AuditLog

from .conftest import eventually


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


async def test_an_entry_that_is_not_valid_text_is_written_escaped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    await log.start()
    log.record("login_failed", user="\ud800", address="127.0.0.1")
    log.record("input", user="ann", text="caf\xe9 \U0001f600 \udcff")
    await log.flush()
    assert log.status == "ok"
    log.record("logout", user="ann")  # the writer is still alive
    entries, total = await log.read(0, 10)
    await log.aclose()
    assert total == 3
    assert [e["event"] for e in entries] == ["login_failed", "input", "logout"]
    # Read back as the same text; the file itself is valid UTF-8.
    assert entries[0]["user"] == "\ud800"
    assert entries[1]["text"] == "caf\xe9 \U0001f600 \udcff"
    (tmp_path / "audit.jsonl").read_bytes().decode("utf-8")
    assert log.dropped_total == 0


async def test_the_writer_survives_what_it_cannot_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    await log.start()
    log.record("bad", value=object())  # a bug of ours: json cannot write it
    log.record("after", user="ann")
    await eventually(lambda: log.dropped_total == 1, message="the bad entry counted")
    entries, _ = await log.read(0, 10)
    assert [e["event"] for e in entries] == ["after", "audit_dropped"]
    assert log.status == "ok"
    assert "could not be written" in caplog.text
    await log.aclose()


async def test_a_failing_disk_is_counted_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    await log.start()
    path.unlink()
    path.mkdir()  # opening it for writing now fails with EISDIR
    log.record("input", user="ann", text="ls\r")
    await eventually(lambda: log.status == "failing", message="the writer says it fails")
    assert log.dropped_total == 1
    path.rmdir()
    log.record("input", user="ann", text="pwd\r")
    await eventually(lambda: log.status == "ok", within=5, message="the writer recovers")
    entries, _ = await log.read(0, 10)
    await log.aclose()
    # What it could not write is not silently gone: the next write says how much.
    assert [e["event"] for e in entries] == ["input", "audit_dropped"]
    assert entries[1]["count"] == 1
