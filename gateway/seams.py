"""The state a replicated gateway will share, each behind an interface.

Every seam names what the handlers and the policies use, and nothing more;
today's in-process class is the default and the only implementation, and
mypy holds it to the interface (``appkeys`` and :class:`~gateway.auth.
Authenticator` are typed by these, not by the classes). A Redis-backed
replica set (``../shared/SCALEOUT.md``) plugs in here, and so do tests.

============================  ==========================================  ====================
seam                          what it holds                               in process
============================  ==========================================  ====================
:class:`SessionBackend`       logins, idle and absolute timeouts          auth.SessionStore
:class:`ThrottleBackend`      failed logins and locks, per name+address   auth.LoginThrottle
:class:`ShareBackend`         spectator links (redeem is one step)        shares.ShareStore
:class:`ConnectionBackend`    open terminals and streams per user         limits.ConnectionCount
:class:`LoginLinkBackend`     one-time login links                        auth.OneTimeLinks
:class:`ControlChannel`       what one replica tells the others           events.Loopback
:class:`EventSink`            the dashboard's feed (numbered, resumable)  events.EventBus
:class:`PresenceView`         who watches each agent, fleet-wide          events.LocalPresence
:class:`AuditSink`            the audit trail                             audit.AuditLog
============================  ==========================================  ====================

Whatever may live in another process is asynchronous, even where the
in-process class answers at once: Redis is a round trip away
(:mod:`gateway.replica`). Sessions are found by their *key*, the SHA-256 of
the cookie's id (:func:`gateway.auth.session_key`): only the cookie holds the
id itself, so no store, log or message between replicas ever does.

The terminal core has one more (:mod:`gateway.core.seams`): where a hub's
output comes from (ttyd, or in replica mode the agent's Redis stream).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .auth import Session
    from .events import Event
    from .ring import Ring
    from .shares import Share
    from .tasks import Signal


class SessionBackend(Protocol):
    async def create(
        self, user: str, *, share_id: str | None = None, agent: str | None = None
    ) -> Session: ...

    async def get(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id; an expired one is ended on the spot."""

    async def alive(self, keys: Collection[str]) -> set[str]:
        """Which of these session keys are live sessions now (touching none)."""

    async def end(self, key: str) -> Session | None:
        """End the session with this key (see :func:`gateway.auth.session_key`)."""

    async def of_share(self, share_id: str) -> list[Session]: ...

    async def expire(self, keep_users: Iterable[str]) -> list[Session]:
        """End sessions that timed out or whose user is gone; return them."""


class ThrottleBackend(Protocol):
    async def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again (0: now)."""

    async def failed(self, key: Hashable) -> None: ...

    async def succeeded(self, key: Hashable) -> None: ...

    async def first_refusal(self, key: Hashable) -> bool:
        """Whether this is the first refusal under the current lock (audited once)."""


class LoginLinkBackend(Protocol):
    async def add(self, token_sha256: str, user: str) -> None: ...

    async def redeem(self, token_sha256: str) -> str | None:
        """The user of this one-time link, which is used up by this call; None if none."""


class ShareBackend(Protocol):
    async def load(self) -> None: ...

    def close(self) -> None: ...

    async def create(
        self,
        agent: str,
        creator: str,
        ttl_seconds: int,
        max_uses: int | None,
        label: str | None = None,
    ) -> tuple[Share, str]: ...

    async def redeem(self, token: str, backed: Callable[[Share], bool] = ...) -> Share | None:
        """Use a link once, in one step: the share if valid now and ``backed``."""

    async def revoke(self, share_id: str) -> Share | None: ...

    async def get(self, share_id: str) -> Share | None: ...

    async def active(self, share_id: str) -> bool: ...

    async def all(self) -> list[Share]: ...


class ConnectionBackend(Protocol):
    async def held(self, name: str) -> int:
        """How many terminals and streams ``name`` holds open now."""

    async def acquire(self, name: str, limit: int | None) -> bool:
        """Check and count in one step; False when ``name`` holds ``limit``."""

    async def release(self, name: str) -> None:
        """Give one back; never raises (what it could not tell is corrected later)."""


class ControlChannel(Protocol):
    """Tells the other replicas what they must act on too (a session ended)."""

    async def publish(self, kind: str, value: str) -> None:
        """Send ``kind`` (``"session"``: ``value`` is a session key) to every other replica."""


class EventSink(Protocol):
    @property
    def ring(self) -> Ring[Event]: ...

    @property
    def signal(self) -> Signal: ...

    def publish(self, kind: str, data: dict[str, Any], *, agent: str | None = None) -> None: ...

    async def resume(self, last_event_id: str | None) -> int | None:
        """Where a client that last saw ``last_event_id`` continues (see Ring.resume)."""


class PresenceView(Protocol):
    def fleet_wide(
        self, agent_id: str, viewers: int, presence: Mapping[str, int]
    ) -> tuple[int, dict[str, int]]:
        """Viewers and who watches ``agent_id`` fleet-wide, given this replica's own."""


class AuditSink(Protocol):
    @property
    def status(self) -> Literal["ok", "failing", "stopped"]: ...

    def record(self, event: str, **fields: Any) -> None:
        """Append an entry; never raises, never blocks the event loop."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]: ...
