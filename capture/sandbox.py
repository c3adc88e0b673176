"""The pane's command: a network of its own, the mock on its loopback, then the shell.

``unshare -n -- python -m capture.sandbox SPEC.json`` brings the new
namespace's ``lo`` up, starts :mod:`capture.mock` on it, waits until it
listens, and execs the shell in the project folder with the CLI's
environment. The CLI started from that shell can reach nothing but the mock.

Started by tmux as the pane's command, before anyone watches: it waits for
one line on its terminal first (the recorder sends it once ``pipe-pane``
records), so the recording holds every byte the pane ever wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    sys.stdin.readline()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    ready = Path(spec["ready"])
    ready.unlink(missing_ok=True)
    if spec.get("dialect"):
        subprocess.Popen(
            [
                sys.executable, "-m", "capture.mock", spec["scenario"],
                "--dialect", spec["dialect"], "--port", str(spec["port"]),
                "--log", spec["log"], *(["--dump", spec["dump"]] if spec.get("dump") else []),
                "--ready", str(ready), "--project", spec["project"],
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(spec["log"] + ".err", "ab"),  # noqa: SIM115 - inherited by the mock
            env={**os.environ, "PYTHONPATH": spec["pythonpath"]},
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not ready.exists():
            if time.monotonic() > deadline:
                sys.exit("capture: the mock did not start (see its .err log)")
            time.sleep(0.05)
    os.chdir(spec["project"])
    os.execve("/bin/bash", ["bash", "--norc", "--noprofile"], spec["env"])  # noqa: S606


if __name__ == "__main__":
    main()
