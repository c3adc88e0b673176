"""Docker discovery: the adapter between the Docker Engine and the label planner.

The docker SDK's calls block: short ones (list, inspect) run in worker
threads, and the endless event stream has a thread of its own (a
:class:`~gateway.docker.stream.RetryingStream`) that only pokes the event
loop. Every poke leads to one full reconcile (list, then
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
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import docker
from docker.constants import DEFAULT_DOCKER_API_VERSION
from docker.utils import version_lt

from ..config import DockerSettings
from ..core.backoff import Backoff
from ..errors import ConfigError
from ..tasks import cancel
from .planner import Container, Desired, DesiredChange, changes, describe, plan
from .stream import API_TIMEOUT, RETRYABLE, RetryingStream

log = logging.getLogger(__name__)

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
        self.status = "starting"
        self.message = ""
        self.api_version: str | None = None
        self._desired: dict[str, Desired] = {}
        self._problems: set[str] = set()
        self.status_listeners: list[StatusListener] = []
        # Told when the container behind an agent id changes or (re)starts.
        self.container_listeners: list[ContainerListener] = []
        self._dirty = asyncio.Event()
        self._events = _EventWatcher(self, backoff or Backoff(base=0.5, cap=30.0))
        self._reconciler: asyncio.Task[None] | None = None

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
        self._reconciler = asyncio.create_task(self._reconcile_forever(), name="docker-reconcile")
        self._events.start()

    async def aclose(self) -> None:
        self._events.cancel()
        if self._reconciler is not None:
            await cancel(self._reconciler)
        await asyncio.to_thread(self._events.join, API_TIMEOUT)

    # --- called on the loop by the event thread -------------------------------

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


class _EventWatcher(RetryingStream):
    """The thread that follows Docker's events: every event is a poke, every failure a retry.

    The stream's own ending is a failure too (the daemon stopped, say): the
    status goes down until it is open again. Any error is retried, even an
    unexpected one, since discovery is worthless once it stops watching; a
    connection that held for a resync interval starts the backoff over.
    """

    retry_on = (Exception,)
    stable_after = RESYNC_INTERVAL

    def __init__(self, discovery: Discovery, backoff: Backoff) -> None:
        super().__init__("docker-events", backoff)
        self._discovery = discovery

    def session(self) -> None:
        discovery = self._discovery
        client = None
        try:
            client = discovery.client()
            events = client.events(
                decode=True,
                filters={"type": "container", "label": [discovery.settings.agent_label]},
            )
            with self.holding(events):
                self.call(discovery._set_status, "up", "")
                self.call(discovery._dirty.set)
                for _ in events:
                    self.call(discovery._dirty.set)
        except RETRYABLE:
            raise
        except Exception:
            log.exception("docker discovery: unexpected error")
            raise
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    def retrying(self, error: Exception | None, delay: float) -> None:
        if error is None:
            reason = "the Docker event stream ended"
        elif isinstance(error, RETRYABLE):
            reason = _reason(error)
        else:
            reason = "internal error (see the gateway log)"
        self.call(self._discovery._set_status, "down", f"{reason}; retrying in {delay:.1f}s")


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
