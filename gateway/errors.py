"""The gateway's one exception tree.

Every error the gateway raises on purpose derives from :class:`GatewayError`;
foreign errors (OSError, websockets, json, tomllib) are translated at the
boundary with ``raise ... from exc`` so callers catch ours only::

    GatewayError
    ├── ConfigError            the config file or a command-line value is invalid
    │   └── ProfileError         an agent profile (gateway/awareness/profiles) is invalid
    ├── ProtocolError          a ttyd frame could not be parsed
    │   ├── PeerProtocolError  ... because the peer sent something malformed
    │   └── LocalProtocolError ... because we were asked to send something invalid
    ├── UpstreamError          the connection to an agent's ttyd
    │   ├── UpstreamUnavailable  not connected right now (input is refused, never queued)
    │   │   └── InputUnconfirmed   handed on, not confirmed: it may have been typed
    │   └── UpstreamRejected     ttyd refused us (bad credential, wrong path)
    ├── AgentNotFound          no such agent (or not visible to the caller)
    ├── BadRequest             a request body the API cannot use (the message is for the client)
    ├── AuthError              who the caller is, or whether they may act
    │   ├── LoginFailed          unknown user or wrong password (one answer for both)
    │   ├── LoginThrottled       too many failures for this name from this client: wait
    │   ├── LoginBusy            too many login attempts in flight (this client's, or all)
    │   └── PasswordTooLong      refused before hashing, and not counted as a failure
    ├── LocalAgentError        spawning a local ttyd + tmux agent failed
    ├── PaneUnavailable        an agent's tmux could not be asked for its history
    ├── ReplicaError           replica mode ([redis]): Redis cannot be used as configured
    │   └── RedisUnavailable     Redis did not answer (nothing is assumed; the caller retries)
    └── EmulatorError          the native terminal emulator refused a call (out of memory)

Like h11, protocol errors say whose fault they are: a peer's malformed frame
closes that peer's connection with 1002/1003; a local one is a bug of ours.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid; the message is one line meant for a human."""


class ProfileError(ConfigError):
    """An agent profile cannot be used; the message names the file and the key."""


class ProtocolError(GatewayError):
    """A ttyd protocol frame could not be parsed or built."""


class PeerProtocolError(ProtocolError):
    """The peer sent a malformed frame."""


class LocalProtocolError(ProtocolError):
    """We were asked to build a frame the protocol cannot carry."""


class UpstreamError(GatewayError):
    """Something about the connection to an agent's ttyd."""


class UpstreamUnavailable(UpstreamError):
    """The upstream is not connected; the operation was refused, not queued."""


class InputUnconfirmed(UpstreamUnavailable):
    """Input handed on whose arrival nobody confirmed: it may have been typed.

    Two ways: forwarded to the replica holding the agent, whose answer did
    not come in time (the holder types forwarded input only while it is
    fresh, and the sender waits longer than that, so it is never typed
    later); or written to a ttyd that stopped taking it, whose connection
    was then reset (what its socket had already accepted may be typed if
    it resumes). Either way a retry could type it twice: audited as
    unconfirmed, never as refused.
    """


class UpstreamRejected(UpstreamError):
    """ttyd closed the connection during or right after the handshake."""


class AgentNotFound(GatewayError):
    """No agent with this id, or none the caller may see."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"no agent {agent_id!r}")
        self.agent_id = agent_id


class BadRequest(GatewayError):
    """An API request body is unusable; the message is safe to show the client."""


class AuthError(GatewayError):
    """Authentication or authorisation refused the caller."""


class LoginFailed(AuthError):
    """Unknown user or wrong password; deliberately indistinguishable."""

    def __init__(self) -> None:
        super().__init__("unknown user or wrong password")


class LoginThrottled(AuthError):
    """Too many recent failures for this name from this client."""

    def __init__(self, retry_after: float, *, first: bool = True) -> None:
        super().__init__(f"too many failed logins; retry in {retry_after:.0f}s")
        self.retry_after = retry_after
        # The first refusal under this lock (the one worth recording).
        self.first = first


class LoginBusy(AuthError):
    """Too many login attempts are being checked: ``scope`` is "client" or "gateway"."""

    def __init__(self, scope: str) -> None:
        whose = "from your address" if scope == "client" else "at the moment"
        super().__init__(f"too many login attempts {whose}; retry in a moment")
        self.scope = scope


class PasswordTooLong(AuthError):
    """A password longer than any a user can have; refused before hashing."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"passwords are limited to {limit} bytes")
        self.limit = limit


class LocalAgentError(GatewayError):
    """Starting or stopping a locally spawned ttyd + tmux agent failed."""


class PaneUnavailable(GatewayError):
    """An agent's tmux could not be asked for its history (no container, tmux gone, a timeout)."""


class ReplicaError(GatewayError):
    """Replica mode cannot work as configured (an old Redis, a bad password file)."""


class RedisUnavailable(ReplicaError):
    """Redis did not answer; nothing is assumed about what it holds."""


class EmulatorError(GatewayError):
    """libghostty-vt returned an error: out of memory, or a call this code got wrong."""
