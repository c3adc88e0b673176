"""Docker discovery: the adapter between the Docker Engine and the label planner.

The docker SDK's calls block: short ones (list, inspect) run in worker
threads, and the endless event stream has a thread of its own that only
pokes the event loop. Every poke leads to one full reconcile (list, then
:func:`~gateway.docker.planner.plan`), so missed or reordered events cannot
leave a wrong state behind. What an agent should be is decided in
:mod:`gateway.docker.planner`; this module only asks Docker and passes it on.

Discovery never touches the fleet: it emits each :class:`DesiredChange` to
an :class:`Applier`, which the app owns (``gateway.app.FleetApplier`` adds,
retargets and removes hubs). So the adapter knows Docker and the planner,
not hubs, and what it decides can be watched without a fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import docker
from docker.constants import DEFAULT_DOCKER_API_VERSION
from docker.errors import DockerException
from docker.utils import version_lt
from requests.exceptions import RequestException

from ..config import DockerSettings
from ..core.backoff import Backoff
from ..errors import ConfigError
from ..tasks import cancel
from .planner import Container, Desired, DesiredChange, changes, describe, plan

log = logging.getLogger(__name__)

# Calls to the Docker API (not the event stream) give up after this long.
API_TIMEOUT = 10
# Events arrive in bursts (die, stop, kill...): one reconcile after a short pause.
DEBOUNCE = 0.05
# A reconcile now and then, whatever the events said.
RESYNC_INTERVAL = 30.0

StatusListener = Callable[[str, str], None]
ContainerListener = Callable[[str, Container | None], None]


class Applier(Protocol):
    """Whoever owns the fleet, as discovery sees it."""

    def agent_ids(self) -> Iterable[str]:
        """Every agent id the fleet has now, Docker's own included."""
        ...

    async def apply(self, change: DesiredChange) -> None:
        """Make one agent what ``change.after`` says (``None``: remove it)."""
        ...


class Discovery:
    """Keeps the Docker agents' desired state in step with the Docker Engine.

    Each change goes to ``applier`` and then to ``container_listeners``, one
    agent at a time, so a listener already finds the fleet changed.

    ``status`` is ``starting``, ``up`` or ``down`` (with ``message``); while
    the daemon is down everything already known stays as it is and the
    connection is retried with backoff.
    """

    def __init__(
        self,
        settings: DockerSettings,
        applier: Applier,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self._applier = applier
        self._backoff = backoff or Backoff(base=0.5, cap=30.0)
        self.status = "starting"
        self.message = ""
        self.api_version: str | None = None
        self._desired: dict[str, Desired] = {}
        self._problems: set[str] = set()
        self.status_listeners: list[StatusListener] = []
        # Told when the container behind an agent id changes or (re)starts.
        self.container_listeners: list[ContainerListener] = []
        self._dirty = asyncio.Event()
        self._stopping = threading.Event()
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- what the rest of the gateway asks ----------------------------------

    def container_of(self, agent_id: str) -> Container | None:
        """The container behind a Docker agent (None for other agents)."""
        want = self._desired.get(agent_id)
        return None if want is None else want.container

    def container_ids(self) -> set[str]:
        return {want.container.id for want in self._desired.values() if want.container}

    def client(self) -> docker.DockerClient:
        """A new docker SDK client (each blocking stream wants its own).

        The API version is negotiated once, by hand: the SDK's own ``auto``
        leaks a socket whenever the daemon is down, as it is on every retry.
        """
        if self.api_version is None:
            probe = self._client(DEFAULT_DOCKER_API_VERSION)
            try:
                server = probe.api.version(api_version=False)["ApiVersion"]
            finally:
                probe.close()
            ours = DEFAULT_DOCKER_API_VERSION
            self.api_version = server if version_lt(server, ours) else ours
        return self._client(self.api_version)

    def _client(self, version: str) -> docker.DockerClient:
        if self.settings.url is None:
            return docker.from_env(version=version, timeout=API_TIMEOUT)
        return docker.DockerClient(base_url=self.settings.url, version=version, timeout=API_TIMEOUT)

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reconciler = asyncio.create_task(self._reconcile_forever(), name="docker-reconcile")
        self._thread = threading.Thread(target=self._watch, name="docker-events", daemon=True)
        self._thread.start()

    async def aclose(self) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if self._reconciler is not None:
            await cancel(self._reconciler)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, API_TIMEOUT)

    # --- the event thread -----------------------------------------------------

    def _watch(self) -> None:
        """Thread: follow Docker's events; every event is a poke, every failure a retry."""
        while not self._stopping.is_set():
            started = time.monotonic()
            client = None
            try:
                client = self.client()
                self._stream = client.events(
                    decode=True,
                    filters={"type": "container", "label": [self.settings.agent_label]},
                )
                self._call(self._set_status, "up", "")
                self._call(self._dirty.set)
                for _ in self._stream:
                    self._call(self._dirty.set)
                reason = "the Docker event stream ended"
            except (DockerException, RequestException, OSError, ValueError) as exc:
                reason = _reason(exc)
            except Exception:
                log.exception("docker discovery: unexpected error")
                reason = "internal error (see the gateway log)"
            finally:
                self._stream = None
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.close()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > RESYNC_INTERVAL:
                self._backoff.reset()
            delay = self._backoff.next_delay()
            self._call(self._set_status, "down", f"{reason}; retrying in {delay:.1f}s")
            self._stopping.wait(delay)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(callback, *args)

    def _set_status(self, status: str, message: str) -> None:
        if (status, message) == (self.status, self.message):
            return
        if status == "down":
            log.warning("docker: %s", message)
        elif self.status != status:
            log.info("docker: connected (API %s)", self.api_version)
        self.status, self.message = status, message
        for listener in self.status_listeners:
            listener(status, message)

    # --- reconciling ------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), RESYNC_INTERVAL)
            if self.status != "up":
                # Coming back up marks it dirty again; until then, nothing to ask.
                self._dirty.clear()
                continue
            await asyncio.sleep(DEBOUNCE)
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception as exc:  # the daemon went away mid-list: the thread notices
                log.warning("docker: reconcile failed: %s", _reason(exc))

    async def reconcile(self) -> None:
        """List the labelled containers and have the fleet brought in line with them."""
        containers = await asyncio.to_thread(self._list)
        # Ids the fleet has from elsewhere (the config file, the demo) are taken.
        reserved = {a for a in self._applier.agent_ids() if a not in self._desired}
        desired, problems = plan(containers, reserved)
        for problem in sorted(set(problems) - self._problems):
            log.warning("docker: %s", problem)
        self._problems = set(problems)
        await self.publish(desired)

    def _list(self) -> list[Container]:
        credential = read_credential(self.settings)
        client = self.client()
        try:
            found = client.containers.list(
                all=True, filters={"label": [self.settings.agent_label]}, sparse=False
            )
            described = (describe(c.attrs, self.settings, credential) for c in found)
            return [c for c in described if c is not None]
        finally:
            client.close()

    async def publish(self, desired: Mapping[str, Desired]) -> None:
        """Emit what changed since the last plan to the applier, then to the listeners."""
        for change in changes(self._desired, desired):
            if change.after is None:
                del self._desired[change.agent_id]
            else:
                self._desired[change.agent_id] = change.after
            await self._applier.apply(change)
            self._tell(change.agent_id, None if change.after is None else change.after.container)

    def _tell(self, agent_id: str, container: Container | None) -> None:
        for listener in self.container_listeners:
            listener(agent_id, container)


def read_credential(settings: DockerSettings) -> str | None:
    """The credential file's first line, read at each listing so that it can be rotated.

    Config only names the file: what it holds is checked here, where it is
    used, and a bad file fails one reconcile (logged), not the gateway.
    """
    if settings.credential_file is None:
        return None
    try:
        text = settings.credential_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"docker.credential_file {settings.credential_file}: {exc.strerror}"
        ) from None
    line = text.strip().splitlines()[0] if text.strip() else ""
    if ":" not in line:
        raise ConfigError(
            f"docker.credential_file {settings.credential_file} must hold 'user:password'"
        )
    return line


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # requests' messages nest the whole connection pool story; the first line is enough.
    return text.splitlines()[0][:300]
