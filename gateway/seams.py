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
:class:`EventSink`            the dashboard's feed (numbered, resumable)  events.EventBus
:class:`AuditSink`            the audit trail                             audit.AuditLog
============================  ==========================================  ====================

The terminal core has two more (:mod:`gateway.core.seams`): where a hub's
output comes from, and the bus its output, resizes and status go to.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from .auth import Session
    from .events import Event
    from .ring import Ring
    from .shares import Share
    from .tasks import Signal


class SessionBackend(Protocol):
    def create(
        self, user: str, *, share_id: str | None = None, agent: str | None = None
    ) -> Session: ...

    def get(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id; an expired one is ended on the spot."""

    def end(self, session_id: str) -> Session | None: ...

    def of_share(self, share_id: str) -> list[Session]: ...

    def expire(self, keep_users: Iterable[str]) -> list[Session]:
        """End sessions that timed out or whose user is gone; return them."""

    def __len__(self) -> int: ...


class ThrottleBackend(Protocol):
    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` may try again (0: now)."""

    def failed(self, key: Hashable) -> None: ...

    def succeeded(self, key: Hashable) -> None: ...

    def first_refusal(self, key: Hashable) -> bool:
        """Whether this is the first refusal under the current lock (audited once)."""


class ShareBackend(Protocol):
    async def load(self) -> None: ...

    def close(self) -> None: ...

    async def create(
        self, agent: str, creator: str, ttl_seconds: int, max_uses: int | None
    ) -> tuple[Share, str]: ...

    async def redeem(self, token: str, backed: Callable[[Share], bool] = ...) -> Share | None:
        """Use a link once, in one step: the share if valid now and ``backed``."""

    async def revoke(self, share_id: str) -> Share | None: ...

    def get(self, share_id: str) -> Share | None: ...

    def active(self, share_id: str) -> bool: ...

    def all(self) -> list[Share]: ...


class ConnectionBackend(Protocol):
    def __getitem__(self, name: str) -> int: ...

    def acquire(self, name: str, limit: int | None) -> bool:
        """Check and count in one step; False when ``name`` holds ``limit``."""

    def release(self, name: str) -> None: ...


class EventSink(Protocol):
    @property
    def ring(self) -> Ring[Event]: ...

    @property
    def signal(self) -> Signal: ...

    def publish(self, kind: str, data: dict[str, Any], *, agent: str | None = None) -> None: ...


class AuditSink(Protocol):
    @property
    def status(self) -> Literal["ok", "failing", "stopped"]: ...

    def record(self, event: str, **fields: Any) -> None:
        """Append an entry; never raises, never blocks the event loop."""

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def read(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]: ...
