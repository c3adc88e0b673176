"""``python -m tests.replay STREAM TIMES GO DONE``: a recorded CLI, played into a pane.

The pane's command in tests that need what a real agent CLI wrote to its
terminal (``NAME.pane.bin`` of the capture corpus, tests/fixtures/agents/),
without the CLI. The terminal is put in raw mode without echo first: the
stream asks the terminal questions (colours, cursor), and tmux's answers
would otherwise be echoed onto the screen. The pieces are written as the
CLI wrote them, at its pace, gaps cut to ``MAX_GAP``, from when ``GO``
exists (a test attaches the gateway first: tmux sends no history to a client
that attaches late); then ``DONE`` is made and the pane stays as the CLI left
it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import termios
import time
import tty
from pathlib import Path

MAX_GAP = 0.02


def main() -> None:
    stream = Path(sys.argv[1]).read_bytes()
    times = json.loads(Path(sys.argv[2]).read_text())
    tty.setraw(0, termios.TCSANOW)
    attrs = termios.tcgetattr(0)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(0, termios.TCSANOW, attrs)
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.01)
    previous = 0.0
    for i, (at, offset) in enumerate(times):
        end = times[i + 1][1] if i + 1 < len(times) else len(stream)
        time.sleep(min(max(at - previous, 0.0), MAX_GAP))
        previous = at
        os.write(1, stream[offset:end])
    Path(sys.argv[4]).touch()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
