"""A private redis-server for the tests (Debian's package), on a free loopback port.

No persistence (``--save ""``, no AOF): a test that wants lost data kills the
server or flushes it; ``stop(save=True)`` shuts it down with a snapshot that
the next ``start()`` loads, as a restart of a persistent Redis keeps its data.
``DEBUG SLEEP`` is allowed from loopback, so a test can freeze Redis for a
while; ``stop()`` kills by pid, ``pause()``/``resume()`` send SIGSTOP/SIGCONT.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT = 10.0


def unavailable_reason() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``url`` is where to reach it."""

    def __init__(self, root: Path, *, password: str | None = None) -> None:
        self.root = root
        self.password = password
        self.port = free_port()
        self.socket = root / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--enable-debug-command", "local",
            "--dir", str(self.root),
            "--logfile", str(self.root / "redis.log"),
        ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        self._process = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    return
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start: see {self.root / 'redis.log'}")

    def stop(self, *, save: bool = False) -> None:
        if self._process is None:
            return
        if save:
            with socket.create_connection(("127.0.0.1", self.port), timeout=START_TIMEOUT) as conn:
                auth = b"" if self.password is None else b"AUTH %s\r\n" % self.password.encode()
                conn.sendall(auth + b"SHUTDOWN SAVE\r\n")
                with contextlib.suppress(OSError):
                    while conn.recv(4096):
                        pass  # closed once it has saved and gone
            self._process.wait(START_TIMEOUT)
            self._process = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._process.pid, signal.SIGCONT)
            os.kill(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Kill and start again on the same port: every key is gone."""
        self.stop()
        self.start()

    def pause(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGCONT)
