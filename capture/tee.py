"""``pipe-pane``'s command: keep what the pane's program writes, and when.

Writes the bytes to ``FILE`` and one ``seconds offset`` line per read to
``FILE.times``, so a replay can write the stream into a fresh pane in the
pieces, and at the pace, the program wrote it.
"""

from __future__ import annotations

import os
import sys
import time


def main() -> None:
    started = time.monotonic()
    offset = 0
    with open(sys.argv[1], "wb") as data, open(sys.argv[1] + ".times", "w") as times:
        while chunk := os.read(0, 65536):
            times.write(f"{time.monotonic() - started:.4f} {offset}\n")
            data.write(chunk)
            offset += len(chunk)
            data.flush()
            times.flush()


if __name__ == "__main__":
    main()
