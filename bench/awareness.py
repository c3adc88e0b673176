"""B11 (issue 15): what knowing each agent's state costs, per look and for a fleet.

A look is what gateway.awareness.watch does when an agent is due: the
screen's text (the backend's work) and one classification (the profile's
patterns). Measured on the final screens of the recorded corpus
(tests/fixtures/agents/, the real CLIs at 120x40), CPU time, many rounds.
The fleet figure is the bound the service keeps: under continuous output an
agent is looked at once a second at most, so 100 busy agents cost 100 looks
a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.awareness.classify import BUSY_INTERVAL, observe
from gateway.awareness.profile import builtin
from gateway.screen import ghostty
from gateway.screen.reference import PyteScreen

from .harness import percentile
from .workloads import Row, row

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "agents"
ROUNDS = 200


def _screens(make: Callable[[int, int], Any]) -> list[tuple[Any, str]]:
    screens = []
    for stream in sorted(CORPUS.glob("*.bin")):
        if ".pane" in stream.name:
            continue
        screen = make(120, 40)
        screen.feed(stream.read_bytes())
        screens.append((screen, stream.name.split("-")[0]))
    return screens


def b11_awareness(rounds: int = ROUNDS) -> list[Row]:
    makers: dict[str, Callable[[int, int], Any]] = {"pyte": PyteScreen}
    if ghostty.UNAVAILABLE is None:
        makers["ghostty"] = ghostty.GhosttyScreen
    rows = []
    for backend, make in makers.items():
        looks, classify = [], []
        for screen, cli in _screens(make):
            profile = builtin(cli)
            started = time.process_time()
            for _ in range(rounds):
                lines = tuple(screen.text().split("\n")[: screen.rows])
                observe(profile, lines, screen.cursor, screen.title)
            looks.append((time.process_time() - started) / rounds)
            lines = tuple(screen.text().split("\n")[: screen.rows])
            started = time.process_time()
            for _ in range(rounds):
                observe(profile, lines, screen.cursor, screen.title)
            classify.append((time.process_time() - started) / rounds)
        look_p50 = percentile(looks, 50)
        note = f"{len(looks)} real screens, 120x40"
        rows.append(row("B11", f"{backend}: a look (text + classify), p50", look_p50 * 1e3,
                        None, "ms", note))  # fmt: skip
        rows.append(row("B11", f"{backend}: a look, max", max(looks) * 1e3, None, "ms", ""))
        rows.append(row("B11", f"{backend}: classify alone, p50", percentile(classify, 50) * 1e3,
                        None, "ms", "the profile's patterns; target 0.3 ms"))  # fmt: skip
        share = 100 * (1 / BUSY_INTERVAL) * look_p50 * 100
        rows.append(row("B11", f"{backend}: 100 busy agents", share, None, "% of a core",
                        "a look a second each (the bound); target 5 %"))  # fmt: skip
    return rows
