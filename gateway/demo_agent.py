"""A stand-in for a busy coding agent, for the demo (``python -m gateway.demo_agent``).

It writes what real agent TUIs write: a coloured banner, a spinner redrawn in
place, tool-call blocks with 256-colour and truecolour diffs, a progress bar,
and now and then a full-screen panel on the alternate screen. A line typed
into it is echoed as a "user message". It runs inside tmux, never in the
gateway's process, so blocking sleeps are fine here.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import select
import sys
import time

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
FILES = ["gateway/hub.py", "gateway/screen.py", "tests/test_hub.py", "README.md"]
TASKS = ["Reading", "Editing", "Running tests for", "Reviewing"]


def out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def banner() -> None:
    orange, reset = "\x1b[1;38;5;208m", "\x1b[0m"
    name, tagline = "✻ Demo Agent", "pretending to code since now"
    width = len(name) + len(tagline) + 4
    out("\x1b]2;busy-agent — demo\x07\x1b[2J\x1b[H")
    out(f"{orange}╭{'─' * width}╮{reset}\r\n")
    out(f"{orange}│{reset} \x1b[1m{name}{reset}  \x1b[2m{tagline}{reset} {orange}│{reset}\r\n")
    out(f"{orange}╰{'─' * width}╯{reset}\r\n\r\n")


def spin(label: str, seconds: float) -> None:
    end = time.monotonic() + seconds
    for frame in itertools.cycle(SPINNER):
        if time.monotonic() > end:
            break
        out(
            f"\r\x1b[K\x1b[38;2;255;170;0m{frame}\x1b[0m {label}\x1b[2m … (esc to interrupt)\x1b[0m"
        )
        time.sleep(0.08)
    out("\r\x1b[K")


def tool_call(rng: random.Random) -> None:
    path, task = rng.choice(FILES), rng.choice(TASKS)
    spin(f"{task} {path}", rng.uniform(0.8, 2.0))
    out(f"\x1b[32m●\x1b[0m \x1b[1m{task}\x1b[0m({path})\r\n")
    for n in range(rng.randint(2, 5)):
        line = rng.randint(10, 400)
        if rng.random() < 0.5:
            out(f"  \x1b[48;2;40;70;40m\x1b[32m+ {line:4d}  value = compute({n})\x1b[0m\r\n")
        else:
            out(f"  \x1b[48;2;80;40;40m\x1b[31m- {line:4d}  value = legacy({n})\x1b[0m\r\n")
    out("\r\n")


def progress() -> None:
    for pct in range(0, 101, 4):
        filled = pct // 4
        out(f"\r\x1b[Ktests \x1b[36m{'█' * filled}{'░' * (25 - filled)}\x1b[0m {pct:3d}%")
        time.sleep(0.04)
    out("\r\x1b[K\x1b[1;32m✓ 42 passed\x1b[0m\r\n\r\n")


def panel() -> None:
    out("\x1b[?1049h\x1b[H\x1b[2J\x1b[?25l")
    rows, columns = _size()
    for row in range(1, rows + 1):
        colour = 17 + (row * 6) % 200
        out(f"\x1b[{row};1H\x1b[48;5;{colour}m{' ' * columns}\x1b[0m")
    out(f"\x1b[{rows // 2};{max(1, columns // 2 - 8)}H\x1b[1;7m  planning …  \x1b[0m")
    time.sleep(1.5)
    out("\x1b[?25h\x1b[?1049l")


def _size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size()
    except OSError:
        return 24, 80
    return size.lines, size.columns


def echo_typed() -> None:
    ready, _, _ = select.select([sys.stdin], [], [], 0)
    if ready:
        line = sys.stdin.readline().strip()
        if line:
            out(f"\x1b[1;34m> {line}\x1b[0m\r\n\x1b[2m(noted)\x1b[0m\r\n\r\n")


def main() -> None:
    rng = random.Random()  # noqa: S311 (fake work, not cryptography)
    banner()
    for turn in itertools.count(1):
        echo_typed()
        tool_call(rng)
        if turn % 3 == 0:
            progress()
        if turn % 7 == 0:
            panel()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
