"""The capture tool end to end, on a plain shell (the CLIs' own runs made the corpus).

A scenario is recorded for real: tmux, ttyd, a private network namespace,
pipe-pane, the freezer. What it writes must agree with itself (the stream a
ttyd client got ends on the screen tmux captured) and nothing may outlive it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from capture.record import record
from capture.script import load
from gateway.screen.reference import PyteScreen

from .test_screen import SGR

SCENARIO = r"""cli = "shell"
description = "coloured lines, more than a screen, then a marker"
columns = 80
rows = 24

[[step]]
type = '''for i in $(seq 1 60); do printf '\033[3%dmline %d\033[0m\n' $((i % 8)) $i; done'''
[[step]]
keys = "\r"
[[step]]
wait = "line 60"
[[step]]
keys = "ip -o link | wc -l; echo net-$((6*7))\r"
[[step]]
wait = "net-42"

[label]
state = "idle"
"""

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="the capture tool makes network namespaces: root and unshare",
)


@needs_root
async def test_a_recording_agrees_with_itself_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shell-probe.toml"
    path.write_text(SCENARIO)
    out = tmp_path / "out"
    meta = json.loads((await record(load(path), path, out)).read_text())

    stream = (out / "shell-probe.bin").read_bytes()
    screen_ansi = (out / "shell-probe.screen.ansi").read_text()
    screen = PyteScreen(80, 24, 1000)
    screen.feed(stream)
    assert screen.text() == SGR.sub("", screen_ansi)
    # The namespace has loopback only: `ip -o link` counts one.
    assert "\n1\nnet-42" in SGR.sub("", screen_ansi)
    history = (out / "shell-probe.history.ansi").read_text().splitlines()
    lines = [SGR.sub("", line) for line in history if SGR.sub("", line).startswith("line ")]
    assert lines == [f"line {i}" for i in range(1, 61)]
    assert "\x1b[31mline 1" in history  # with its colour
    # The pieces a ttyd client got, with their times, add up to the stream.
    times = json.loads((out / "shell-probe.times.json").read_text())
    assert times[0][1] == 0
    assert [t for t, _ in times] == sorted(t for t, _ in times)
    assert len(times) == meta["chunks"]
    assert meta["bytes"] == len(stream)
    assert b"line 60" in (out / "shell-probe.pane.bin").read_bytes()
    assert json.loads((out / "shell-probe.pane.times.json").read_text())
    assert meta["label"] == {"state": "idle"}
    assert [k["keys"] for k in meta["keys"]][-1].startswith("ip -o link")
    assert any("froze" in note for note in meta["notes"])
    # Nothing of the recording runs any more: no process names its folder.
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            assert b"capture/shell-probe" not in cmdline, cmdline
