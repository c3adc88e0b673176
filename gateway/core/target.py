"""Where an agent's ttyd listens: a value config builds and the upstream dials.

Pure, so settings can name targets without loading websockets.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Target:
    """Where an agent's ttyd listens, and the credential it expects.

    ``url`` is ``ws://host:port/path``, ``wss://...`` or ``unix:/abs/path``
    (ttyd's ``-i`` socket; the WebSocket path is then ``/ws``).
    """

    url: str
    credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.url.startswith("unix:"):
            if not self.url[len("unix:") :].startswith("/"):
                raise ConfigError(f"unix socket url must be absolute (unix:/path): {self.url!r}")
        elif not self.url.startswith(("ws://", "wss://")):
            raise ConfigError(f"ttyd url must start with ws://, wss:// or unix:/ : {self.url!r}")
        if self.credential is not None and ":" not in self.credential:
            raise ConfigError("ttyd credential must look like 'user:password'")

    @property
    def auth_token(self) -> str:
        """The AuthToken ttyd compares with its ``-c user:pass`` (base64 of it)."""
        if self.credential is None:
            return ""
        return base64.b64encode(self.credential.encode()).decode()
