"""Users, password hashes, server-side sessions, roles and login throttling.

No routes here: handlers call :class:`Authenticator`. Password verification
is CPU-heavy by design (argon2id, RFC 9106's low-memory profile: 64 MiB,
3 passes), so :meth:`Authenticator.login` runs it in a worker thread.

Timing: an unknown user is verified against a dummy hash with the same
parameters, so "no such user" and "wrong password" take the same time and
raise the same :class:`~gateway.errors.LoginFailed`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import LoginFailed, LoginThrottled

# Longer "passwords" are refused before hashing: argon2 would hash them, but
# a megabyte per attempt is a cheap way to burn our CPU.
MAX_PASSWORD_BYTES = 1024
# Idle and absolute session lifetimes (seconds).
IDLE_TIMEOUT = 30 * 60
ABSOLUTE_TIMEOUT = 12 * 60 * 60
# Throttling: after FREE_FAILURES failures an account is locked for
# 2, 4, 8, ... seconds, up to LOCK_CAP; a success clears it.
FREE_FAILURES = 3
LOCK_CAP = 15 * 60

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


class Role(enum.StrEnum):
    """What a user may do: admins and operators write, viewers only watch."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class User:
    """A configured user. ``agents`` are glob patterns of visible agent ids."""

    name: str
    password_hash: str = field(repr=False)
    role: Role
    agents: tuple[str, ...] = ("*",)
    # SHA-256 (hex) of this user's bearer token for scripts, if any.
    api_token_sha256: str | None = field(default=None, repr=False)

    def sees(self, agent_id: str) -> bool:
        return any(fnmatchcase(agent_id, pattern) for pattern in self.agents)

    @property
    def can_write(self) -> bool:
        return self.role is not Role.VIEWER


@dataclass(slots=True)
class Session:
    """One login. ``id`` is 256 random bits, sent only in the cookie."""

    id: str = field(repr=False)
    user: str
    created: float
    last_seen: float
    # Set for a spectator who came through a share link: read-only, one agent.
    share_id: str | None = None
    agent: str | None = None


class SessionStore:
    """Server-side sessions with idle and absolute timeouts."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        absolute_timeout: float = ABSOLUTE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self._idle = idle_timeout
        self._absolute = absolute_timeout
        self._clock = clock

    def create(
        self, user: str, *, share_id: str | None = None, agent: str | None = None
    ) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), user, now, now, share_id, agent)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id; an expired one is ended on the spot."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle or now - session.created > self._absolute:
            del self._sessions[session_id]
            return None
        if touch:
            session.last_seen = now
        return session

    def end(self, session_id: str) -> Session | None:
        return self._sessions.pop(session_id, None)

    def of_share(self, share_id: str) -> list[Session]:
        return [s for s in self._sessions.values() if s.share_id == share_id]

    def expire(self, keep_users: Iterable[str]) -> list[Session]:
        """End sessions that timed out or whose user is gone; return them."""
        keep = set(keep_users)
        ended = [
            s
            for s in list(self._sessions.values())
            if (s.share_id is None and s.user not in keep) or self.get(s.id, touch=False) is None
        ]
        for session in ended:
            self._sessions.pop(session.id, None)
        return ended

    def __len__(self) -> int:
        return len(self._sessions)


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Per-account exponential lock after repeated failures (sans I/O)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, _Failures] = {}

    def retry_after(self, name: str) -> float:
        entry = self._failures.get(name)
        return 0.0 if entry is None else max(0.0, entry.locked_until - self._clock())

    def failed(self, name: str) -> None:
        entry = self._failures.setdefault(name, _Failures())
        entry.count += 1
        if entry.count >= FREE_FAILURES:
            lock = min(LOCK_CAP, 2.0 ** (entry.count - FREE_FAILURES + 1))
            entry.locked_until = self._clock() + lock

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)


class Authenticator:
    """Checks logins against the configured users and keeps their sessions."""

    def __init__(self, users: Iterable[User], sessions: SessionStore | None = None) -> None:
        # Not `sessions or ...`: an empty store has len() 0 and is falsy.
        self.sessions = sessions if sessions is not None else SessionStore()
        self.throttle = LoginThrottle()
        self._once: dict[str, str] = {}
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

    def add_one_time_login(self, token: str, user: str) -> None:
        """A login link that works once (the demo prints one)."""
        self._once[token_digest(token)] = user

    def redeem_one_time_login(self, token: str) -> Session | None:
        user = self._once.pop(token_digest(token), None)
        return None if user is None else self.sessions.create(user)

    @property
    def enabled(self) -> bool:
        """Without users configured at start the gateway runs open (loopback only)."""
        return self._enabled

    async def login(self, name: str, password: str) -> Session:
        """A new session for valid credentials; LoginFailed or LoginThrottled otherwise."""
        # Throttle by the name asked for, known or not, so the lock itself
        # does not reveal which accounts exist.
        wait = self.throttle.retry_after(name)
        if wait > 0:
            raise LoginThrottled(wait)
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            self.throttle.failed(name)
            raise LoginFailed()
        user = self.users.get(name)
        stored = user.password_hash if user is not None else self._dummy_hash
        ok = await asyncio.to_thread(_verify, stored, password)
        if user is None or not ok:
            self.throttle.failed(name)
            raise LoginFailed()
        self.throttle.succeeded(name)
        return self.sessions.create(user.name)

    def user_of_token(self, token: str) -> User | None:
        """The user whose bearer token this is, or None."""
        return self._by_token.get(token_digest(token))

    def user_of(self, session_id: str | None) -> User | None:
        """The user behind a live session cookie, or None."""
        if not session_id:
            return None
        session = self.sessions.get(session_id)
        if session is None:
            return None
        if session.share_id is not None and session.agent is not None:
            return User(session.user, "", Role.VIEWER, (session.agent,))
        return self.users.get(session.user)
