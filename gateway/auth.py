"""Users, password hashes, server-side sessions, roles and login throttling.

No routes here: handlers call :class:`Authenticator`. Password verification
is CPU-heavy by design (argon2id, RFC 9106's low-memory profile: 64 MiB,
3 passes), so :meth:`Authenticator.login` runs it in a worker thread.

Timing: an unknown user is verified against a dummy hash with the same
parameters, so "no such user" and "wrong password" take the same time and
raise the same :class:`~gateway.errors.LoginFailed`.

Guessing is bounded three ways, all decided before a hash is computed:

- the lock (:class:`LoginThrottle`) is per name *and* client address (an
  IPv6 client by its /64), so nobody can hold another address's login shut;
  an attempt is counted when it starts, so a burst of concurrent guesses
  meets the lock as a sequence would;
- hashing has a small pool of its own (:data:`HASH_THREADS`), and a
  :class:`LoginGate` lets :data:`LOGINS_IN_FLIGHT` attempts hash at once,
  the next ones wait their turn *per client* (round robin), at most
  :data:`LOGINS_IN_FLIGHT_PER_CLIENT` per address and :data:`LOGINS_WAITING`
  in all: a flood from a few addresses slows everyone a little instead of
  locking them out, and a larger one is refused at once;
- names are cut to :data:`MAX_NAME_CHARS` before anything keeps them, and
  the throttle's table is bounded in time and size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import LoginBusy, LoginFailed, LoginThrottled, PasswordTooLong
from .seams import LoginLinkBackend, SessionBackend, ThrottleBackend
from .tasks import Workers
from .users import ABSOLUTE_TIMEOUT, IDLE_TIMEOUT, Role, User

# Longer "passwords" are refused before hashing: argon2 would hash them, but
# a megabyte per attempt is a cheap way to burn our CPU.
MAX_PASSWORD_BYTES = 1024
# Throttling: after FREE_FAILURES failures an account is locked for
# 2, 4, 8, ... seconds, up to LOCK_CAP; a success clears it.
FREE_FAILURES = 3
LOCK_CAP = 15 * 60
# A name and address with no failure for this long start afresh; the table
# of failures holds at most THROTTLE_ENTRIES (the oldest go first).
FORGET_AFTER = LOCK_CAP
THROTTLE_ENTRIES = 10_000
# User names are 1-64 characters (config.USER_NAME): a longer one is no
# user, and is cut before it is kept anywhere.
MAX_NAME_CHARS = 64
# argon2id takes 64 MiB and a good part of a core per attempt.
HASH_THREADS = 2
# As many as hash at once: who goes next is the gate's to choose, fairly,
# not the executor's queue.
LOGINS_IN_FLIGHT = HASH_THREADS
LOGINS_IN_FLIGHT_PER_CLIENT = 2
# Attempts waiting for a place, and for how long at most.
LOGINS_WAITING = 64
LOGIN_PATIENCE = 5.0

_HASHER = argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for the config file."""
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise ValueError(f"passwords are limited to {MAX_PASSWORD_BYTES} bytes")
    return _HASHER.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> tuple[str, str]:
    """A fresh bearer token (256 bits) and the SHA-256 the config stores.

    SHA-256 suffices here, unlike for passwords: the token is random, so
    there is nothing to guess that a slow hash would protect.
    """
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_key(session_id: str) -> str:
    """What a session is kept and named by: the SHA-256 of its id.

    The id is a bearer secret: only the cookie holds it. Stores, the
    replicas' messages and the sockets' registry use this key instead, so
    none of them can be turned back into a login. Any text is accepted (a
    forged cookie may hold lone surrogates): it simply matches nothing.
    """
    return hashlib.sha256(session_id.encode(errors="surrogatepass")).hexdigest()


@dataclass(slots=True)
class Session:
    """One login. ``id`` is 256 random bits, sent only in the cookie."""

    # Empty when the session was read back from a shared store by its key
    # (only its creator, and the cookie, ever know the id).
    id: str = field(repr=False)
    user: str
    created: float
    last_seen: float
    # Set for a spectator who came through a share link: read-only, one agent.
    share_id: str | None = None
    agent: str | None = None
    key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.key and self.id:
            self.key = session_key(self.id)


class SessionStore:
    """Server-side sessions with idle and absolute timeouts, in this process."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        absolute_timeout: float = ABSOLUTE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # By key, not id: see session_key.
        self._sessions: dict[str, Session] = {}
        self._idle = idle_timeout
        self._absolute = absolute_timeout
        self._clock = clock

    async def create(
        self, user: str, *, share_id: str | None = None, agent: str | None = None
    ) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), user, now, now, share_id, agent)
        self._sessions[session.key] = session
        return session

    async def get(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id; an expired one is ended on the spot."""
        return self._live(session_key(session_id), touch=touch)

    def _live(self, key: str, *, touch: bool) -> Session | None:
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle or now - session.created > self._absolute:
            del self._sessions[key]
            return None
        if touch:
            session.last_seen = now
        return session

    async def alive(self, keys: Collection[str]) -> set[str]:
        return {key for key in keys if self._live(key, touch=False) is not None}

    async def end(self, key: str) -> Session | None:
        return self._sessions.pop(key, None)

    async def of_share(self, share_id: str) -> list[Session]:
        return [s for s in self._sessions.values() if s.share_id == share_id]

    async def expire(self, keep_users: Iterable[str]) -> list[Session]:
        """End sessions that timed out or whose user is gone; return them."""
        keep = set(keep_users)
        ended = [
            s
            for s in list(self._sessions.values())
            if (s.share_id is None and s.user not in keep) or self._live(s.key, touch=False) is None
        ]
        for session in ended:
            self._sessions.pop(session.key, None)
        return ended

    def __len__(self) -> int:
        return len(self._sessions)


class OneTimeLinks:
    """One-time login links in this process: the user of each token's digest."""

    def __init__(self) -> None:
        self._links: dict[str, str] = {}

    async def add(self, token_sha256: str, user: str) -> None:
        self._links[token_sha256] = user

    async def redeem(self, token_sha256: str) -> str | None:
        return self._links.pop(token_sha256, None)


def client_key(address: str | None) -> str:
    """Whom a login attempt is counted against: the address, an IPv6 one by its /64.

    One IPv6 host commonly holds a whole /64, so a per-address lock on
    single v6 addresses would not lock anyone.
    """
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last: float = 0.0
    # The lock whose first refusal was reported (see first_refusal).
    reported: float = 0.0


class LoginThrottle:
    """Exponential lock after repeated failures, per key (sans I/O).

    Keys are whatever the caller counts by (:class:`Authenticator`: the name
    and the client). Bounded: an entry is forgotten :data:`FORGET_AFTER`
    its last failure once unlocked, and beyond ``capacity`` entries the
    least recently failed go first.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, capacity: int = THROTTLE_ENTRIES
    ) -> None:
        self._clock = clock
        self._capacity = capacity
        # Oldest failure first: what expires or is evicted is at the front.
        self._failures: OrderedDict[Hashable, _Failures] = OrderedDict()

    async def retry_after(self, key: Hashable) -> float:
        entry = self._failures.get(key)
        return 0.0 if entry is None else max(0.0, entry.locked_until - self._clock())

    async def failed(self, key: Hashable) -> None:
        now = self._clock()
        self._forget_stale(now)
        entry = self._failures.pop(key, None) or _Failures()
        self._failures[key] = entry
        entry.count += 1
        entry.last = now
        if entry.count >= FREE_FAILURES:
            lock = min(LOCK_CAP, 2.0 ** (entry.count - FREE_FAILURES + 1))
            entry.locked_until = now + lock
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)

    async def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    async def first_refusal(self, key: Hashable) -> bool:
        """True for the first attempt refused under the current lock of ``key``.

        Refusals cost an attacker nothing: recording each one would let them
        fill the audit log at will; one per lock says the same.
        """
        entry = self._failures.get(key)
        if entry is None or entry.reported == entry.locked_until:
            return False
        entry.reported = entry.locked_until
        return True

    def __len__(self) -> int:
        return len(self._failures)

    def counted(self) -> list[Hashable]:
        """What is counted now, oldest failure first."""
        return list(self._failures)

    def _forget_stale(self, now: float) -> None:
        while self._failures:
            entry = next(iter(self._failures.values()))
            if now - entry.last <= FORGET_AFTER or now < entry.locked_until:
                return
            self._failures.popitem(last=False)


class LoginGate:
    """Login attempts in flight: so many at once, taken in turn across clients.

    At most ``total`` attempts hash at once. Beyond that an attempt waits,
    and each freed place goes to the next *client* in turn (round robin),
    not to the next request: a few clients flooding with fresh names cannot
    keep a legitimate user out, they only slow everyone equally. A client
    has at most ``per_client`` attempts running or waiting (else
    ``LoginBusy("client")``, a 429); at most ``waiting`` wait in all, each
    for at most ``patience`` seconds (else ``LoginBusy("gateway")``, a 503).
    """

    def __init__(
        self,
        total: int = LOGINS_IN_FLIGHT,
        per_client: int = LOGINS_IN_FLIGHT_PER_CLIENT,
        waiting: int = LOGINS_WAITING,
        patience: float = LOGIN_PATIENCE,
    ) -> None:
        self._total = total
        self._per_client = per_client
        self._max_waiting = waiting
        self._patience = patience
        self._running: Counter[str] = Counter()
        # Clients with attempts waiting, in the order they get the next place.
        self._queues: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def admit(self, client: str) -> AsyncIterator[None]:
        """Hold a place for one attempt, waiting for one if need be; LoginBusy if not."""
        queued = len(self._queues.get(client, ()))
        if self._running[client] + queued >= self._per_client:
            raise LoginBusy("client")
        if self._queues or self._running.total() >= self._total:
            await self._wait(client)
        else:
            self._running[client] += 1
        try:
            yield
        finally:
            self._release(client)

    async def _wait(self, client: str) -> None:
        if self._waiting >= self._max_waiting:
            raise LoginBusy("gateway")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(client, deque()).append(turn)
        self._waiting += 1
        try:
            async with asyncio.timeout(self._patience):
                await turn
        except (TimeoutError, asyncio.CancelledError) as exc:
            # Cancelling the wait cancels ``turn`` too, unless it was given a
            # place just before: then that place is taken, or passed on.
            given = turn.done() and not turn.cancelled()
            if not given:
                self._forget(client, turn)
            if isinstance(exc, asyncio.CancelledError):
                if given:
                    self._release(client)
                raise
            if not given:
                raise LoginBusy("gateway") from None

    def _release(self, client: str) -> None:
        self._running[client] -= 1
        if self._running[client] <= 0:
            del self._running[client]
        while self._queues and self._running.total() < self._total:
            next_client, queue = next(iter(self._queues.items()))
            turn = queue.popleft()
            self._waiting -= 1
            if queue:
                self._queues.move_to_end(next_client)
            else:
                del self._queues[next_client]
            if turn.done():
                continue  # its waiter left; _forget will not find it
            self._running[next_client] += 1
            turn.set_result(None)

    def _forget(self, client: str, turn: asyncio.Future[None]) -> None:
        queue = self._queues.get(client)
        if queue is not None and turn in queue:
            queue.remove(turn)
            self._waiting -= 1
            if not queue:
                del self._queues[client]

    @property
    def in_flight(self) -> int:
        """Attempts holding a place now (hashing, or about to)."""
        return self._running.total()

    @property
    def waiting(self) -> int:
        return self._waiting


class Authenticator:
    """Checks logins against the configured users and keeps their sessions."""

    def __init__(
        self,
        users: Iterable[User],
        sessions: SessionBackend | None = None,
        throttle: ThrottleBackend | None = None,
        links: LoginLinkBackend | None = None,
    ) -> None:
        # Not `sessions or ...`: an empty store has len() 0 and is falsy.
        self.sessions: SessionBackend = sessions if sessions is not None else SessionStore()
        self.throttle: ThrottleBackend = throttle if throttle is not None else LoginThrottle()
        self.links: LoginLinkBackend = links if links is not None else OneTimeLinks()
        self.gate = LoginGate()
        # Keys the digests of unknown names in the audit log (see recorded_name).
        self._name_key = secrets.token_bytes(32)
        self._hashing = Workers("argon2", HASH_THREADS)
        self._dummy_hash = ""
        self.replace_users(users)
        # Fixed at start: a reload that removes every user locks everyone
        # out, it never turns the login off.
        self._enabled = bool(self.users)

    def replace_users(self, users: Iterable[User]) -> None:
        """Swap in a reloaded user list; sessions of removed users stop resolving."""
        self.users = {user.name: user for user in users}
        self._by_token = {u.api_token_sha256: u for u in self.users.values() if u.api_token_sha256}
        if self.users and not self._dummy_hash:
            self._dummy_hash = hash_password(secrets.token_urlsafe(16))

    async def add_one_time_login(self, token: str, user: str) -> None:
        """A login link that works once (the demo prints one)."""
        await self.links.add(token_digest(token), user)

    async def drop_one_time_login(self, token: str) -> None:
        """The link stops working (the demo printed a fresh one), used or not."""
        await self.links.redeem(token_digest(token))

    async def redeem_one_time_login(self, token: str) -> Session | None:
        user = await self.links.redeem(token_digest(token))
        return None if user is None else await self.sessions.create(user)

    @property
    def enabled(self) -> bool:
        """Without users configured at start the gateway runs open (loopback only)."""
        return self._enabled

    def close(self) -> None:
        self._hashing.close()

    def recorded_name(self, name: str) -> str:
        """``name`` as the audit log may keep it: a user's name, or a short digest.

        What is typed into the name field of a failed login is often a
        password. A digest still shows that attempts repeat a name; keyed
        with a secret of this run, it cannot be checked against guesses.
        """
        if name in self.users:
            return name
        digest = hmac.new(self._name_key, name.encode(errors="surrogatepass"), "sha256")
        return f"unknown:{digest.hexdigest()[:12]}"

    async def login(self, name: str, password: str, client: str | None = None) -> Session:
        """A new session for valid credentials from ``client`` (an address).

        Raises PasswordTooLong (before anything is counted: no user has such
        a password, and it must not lock anyone), LoginThrottled, LoginBusy,
        or LoginFailed.
        """
        if len(password.encode(errors="surrogatepass")) > MAX_PASSWORD_BYTES:
            raise PasswordTooLong(MAX_PASSWORD_BYTES)
        who = client_key(client)
        # Throttle by the name asked for, known or not, so the lock itself
        # does not reveal which accounts exist.
        key = (name[:MAX_NAME_CHARS], who)
        await self._check_lock(key)
        user = self.users.get(name)
        stored = user.password_hash if user is not None else self._dummy_hash
        async with self.gate.admit(who):
            # Again: attempts that waited for a place may have locked it meanwhile.
            await self._check_lock(key)
            # Counted now, undone on success: concurrent guesses meet the lock.
            await self.throttle.failed(key)
            ok = await self._hashing.run(_verify, stored, password)
        if user is None or not ok:
            raise LoginFailed()
        await self.throttle.succeeded(key)
        return await self.sessions.create(user.name)

    async def _check_lock(self, key: Hashable) -> None:
        wait = await self.throttle.retry_after(key)
        if wait > 0:
            raise LoginThrottled(wait, first=await self.throttle.first_refusal(key))

    def user_of_token(self, token: str) -> User | None:
        """The user whose bearer token this is, or None."""
        return self._by_token.get(token_digest(token))

    async def user_of(self, session_id: str | None, *, touch: bool = True) -> User | None:
        """The user behind a live session cookie, or None."""
        if not session_id:
            return None
        session = await self.sessions.get(session_id, touch=touch)
        if session is None:
            return None
        if session.share_id is not None and session.agent is not None:
            return User(session.user, "", Role.VIEWER, (session.agent,))
        return self.users.get(session.user)
