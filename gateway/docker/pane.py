"""A Docker agent's tmux, asked through ``docker exec``: its pane's history.

The hub asks after tmux drew less than it scrolled (see
:mod:`gateway.core.repair`). The command runs inside the agent's own
container, as its user, next to its tmux server: the gateway never talks to
a tmux socket an agent controls (a tmux server may tell its client to run
a command). What comes back is the agent's to choose, so it is bounded
here and cleaned by the repair before any screen sees it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import docker
import docker.errors

from ..errors import PaneUnavailable
from .planner import Container
from .stream import RETRYABLE

__all__ = ["DockerPane"]

log = logging.getLogger(__name__)

#: The most a capture may print per line asked for; a longer answer is refused.
BYTES_PER_LINE: Final = 4096
#: How long the whole ``docker exec`` may take (10,000 lines take tmux ~20 ms).
EXEC_TIMEOUT: Final = 10.0


class DockerPane:
    """:class:`~gateway.core.seams.PaneHistory` of the container behind ``agent_id`` now."""

    def __init__(
        self,
        agent_id: str,
        container_of: Callable[[str], Container | None],
        client: Callable[[], docker.DockerClient],
    ) -> None:
        self._agent_id = agent_id
        self._container_of = container_of
        self._client = client
        self._refused = ""

    async def history(self, lines: int) -> bytes:
        if self._refused:
            raise PaneUnavailable(self._refused)
        container = self._container_of(self._agent_id)
        if container is None or not container.running:
            raise PaneUnavailable(f"{self._agent_id} has no running container")
        try:
            return await asyncio.to_thread(self._capture, container.id, lines)
        except docker.errors.APIError as exc:
            if exc.status_code in (401, 403, 405):
                # A Docker API proxy that allows no exec (the deploy's does
                # not): said once, and not asked again.
                self._refused = f"docker exec is not allowed here ({exc.status_code})"
                log.warning(
                    "%s: %s, so a flood's history is what tmux drew (see README, Scrollback)",
                    self._agent_id,
                    self._refused,
                )
                raise PaneUnavailable(self._refused) from exc
            raise PaneUnavailable(f"docker exec failed: {exc}") from exc
        except RETRYABLE as exc:
            raise PaneUnavailable(f"docker exec failed: {exc}") from exc

    def _capture(self, container_id: str, lines: int) -> bytes:
        """In a worker thread, bounded in time and size by itself.

        The SDK reads exec output with no timeout at all, so a command that
        never ends would hold this thread, and the gateway's exit, for ever:
        the socket is read here instead, against a deadline.
        """
        deadline = time.monotonic() + EXEC_TIMEOUT
        client = self._client()
        try:
            api = client.api
            # tmux needs a UTF-8 locale in the container (the agent image sets LANG).
            command = ["tmux", "-u", "capture-pane", "-p", "-e", "-S", f"-{lines}"]
            exec_id = api.exec_create(container_id, command, stdout=True, stderr=False)["Id"]
            stream: Any = api.exec_start(exec_id, socket=True)
            raw: Any = getattr(stream, "_sock", stream)
            try:
                out = _read_stdout(raw, deadline, (lines + 1000) * BYTES_PER_LINE)
            finally:
                stream.close()
                raw.close()  # the connection was taken over: nothing reuses it
            code = _exit_code(api, exec_id, deadline)
            if code != 0:
                raise PaneUnavailable(f"tmux capture-pane exited with {code}")
            return out
        finally:
            client.close()


def _read_stdout(sock: socket.socket, deadline: float, limit: int) -> bytes:
    """Docker's multiplexed stream (an 8-byte header per frame): stdout's bytes."""
    buffer = bytearray()
    out = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PaneUnavailable(f"docker exec took more than {EXEC_TIMEOUT:g} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue  # the deadline decides
        if not chunk:
            return bytes(out)
        buffer += chunk
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            if buffer[0] == 1:
                out += buffer[8 : 8 + size]
            del buffer[: 8 + size]
        if len(out) > limit:
            raise PaneUnavailable(f"tmux printed more than {limit} bytes")


def _exit_code(api: Any, exec_id: str, deadline: float) -> Any:
    # The stream may end a moment before Docker records the exit.
    while True:
        state = api.exec_inspect(exec_id)
        if not state.get("Running") or time.monotonic() > deadline:
            return state.get("ExitCode")
        time.sleep(0.01)
