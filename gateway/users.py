"""Users and roles as configured: pure values, read by config and by auth."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

# Idle and absolute session lifetimes (seconds).
IDLE_TIMEOUT = 30 * 60
ABSOLUTE_TIMEOUT = 12 * 60 * 60


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
