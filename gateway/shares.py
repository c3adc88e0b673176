"""Spectator links: read-only, bound to one agent, expiring, revocable.

A link is ``/s/<token>`` with 256 random bits. Only the token's SHA-256 is
kept (a leaked state file opens nothing), with the agent, creator, expiry,
use count and revocation, in ``shares.json`` in the state folder: a restart
neither loses a link nor brings a revoked one back. Every way a token can be
wrong (unknown, tampered, expired, revoked, used up) gives the same ``None``.

Retention: a link stays listed (and in the file) until :data:`RETENTION`
after its expiry, revoked or used up or not; then it is forgotten, at load
and at every save, so the file does not grow for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .auth import token_digest
from .errors import BadRequest
from .tasks import Workers

MIN_TTL, MAX_TTL = 60, 7 * 24 * 3600
MAX_USES = 10_000
# How long an expired link is kept for the record (the audit log keeps it for good).
RETENTION = 7 * 24 * 3600
# A label tells links apart in a list: a few words, not a document.
MAX_LABEL = 80
# Refused in a label: controls (NUL, ESC, newlines), format characters (the
# bidi overrides and isolates that would make "evil.txt" read as "txt.live",
# zero-width joiners), line and paragraph separators, lone surrogates and
# unassigned code points. What is left is drawn as text, never as markup.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})


def clean_label(raw: object) -> str | None:
    """A share's label from a request: None when absent or blank; BadRequest when unusable."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest("'label' must be a string")
    if len(raw) > MAX_LABEL:
        # Judged before any work on it, so a huge label costs nothing.
        raise BadRequest(f"'label' must be at most {MAX_LABEL} characters")
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in raw):
        raise BadRequest("'label' must not contain control or bidi characters")
    label = " ".join(raw.split())
    return label or None


@dataclass(slots=True)
class Share:
    """One spectator link (without its token)."""

    id: str
    token_sha256: str = dataclasses.field(repr=False)
    agent: str
    creator: str
    created_at: float
    expires_at: float
    max_uses: int | None = None
    uses: int = 0
    revoked: bool = False
    label: str | None = None

    def usable(self, now: float) -> bool:
        return (
            not self.revoked
            and now < self.expires_at
            and (self.max_uses is None or self.uses < self.max_uses)
        )

    def public(self) -> dict[str, Any]:
        """What the API shows: everything but the token's digest."""
        data = dataclasses.asdict(self)
        del data["token_sha256"]
        return data


class ShareStore:
    """Share links, persisted as JSON in ``path`` (written off the event loop)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._shares: dict[str, Share] = {}
        self._by_digest: dict[str, Share] = {}
        self._lock = asyncio.Lock()
        # A thread of its own, so a login flood cannot delay link creation.
        self._workers = Workers("shares")

    async def load(self) -> None:
        data = await self._workers.run(self._read)
        now = self._clock()
        for raw in data:
            share = Share(**raw)
            if not self._forgotten(share, now):
                self._shares[share.id] = share
                self._by_digest[share.token_sha256] = share

    def close(self) -> None:
        self._workers.close()

    def _forgotten(self, share: Share, now: float) -> bool:
        return now > share.expires_at + RETENTION

    async def create(
        self,
        agent: str,
        creator: str,
        ttl_seconds: int,
        max_uses: int | None,
        label: str | None = None,
    ) -> tuple[Share, str]:
        """A new link; returns it with its token (shown once, never stored).

        ``label`` has been through :func:`clean_label`.
        """
        token = secrets.token_urlsafe(32)
        now = self._clock()
        share = Share(
            id=secrets.token_urlsafe(9),
            token_sha256=token_digest(token),
            agent=agent,
            creator=creator,
            created_at=round(now, 3),
            expires_at=round(now + ttl_seconds, 3),
            max_uses=max_uses,
            label=label,
        )
        self._shares[share.id] = share
        self._by_digest[share.token_sha256] = share
        await self._save()
        return share, token

    async def redeem(
        self, token: str, backed: Callable[[Share], bool] = lambda share: True
    ) -> Share | None:
        """Use a link once: the share if it is valid now and ``backed``, else None."""
        share = self._by_digest.get(token_digest(token))
        if share is None or not share.usable(self._clock()) or not backed(share):
            return None
        share.uses += 1
        await self._save()
        return share

    async def revoke(self, share_id: str) -> Share | None:
        share = self._shares.get(share_id)
        if share is None:
            return None
        share.revoked = True
        await self._save()
        return share

    async def get(self, share_id: str) -> Share | None:
        return self._shares.get(share_id)

    async def active(self, share_id: str) -> bool:
        """Whether spectators who joined through this link may stay."""
        share = self._shares.get(share_id)
        return share is not None and not share.revoked and self._clock() < share.expires_at

    async def all(self) -> list[Share]:
        return sorted(self._shares.values(), key=lambda share: share.created_at)

    async def _save(self) -> None:
        now = self._clock()
        for share in [s for s in self._shares.values() if self._forgotten(s, now)]:
            del self._shares[share.id]
            del self._by_digest[share.token_sha256]
        snapshot = [dataclasses.asdict(share) for share in self._shares.values()]
        async with self._lock:
            await self._workers.run(self._write, snapshot)

    def _read(self) -> list[dict[str, Any]]:
        try:
            data: list[dict[str, Any]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return data

    def _write(self, snapshot: list[dict[str, Any]]) -> None:
        # Write-then-rename: a crash leaves the old file or the new, never half.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(snapshot, file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(self.path)
