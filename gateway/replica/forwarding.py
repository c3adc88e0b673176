"""A follower's side of input forwarding: send to the holder's inbox, wait for its answer.

Input typed on a replica that does not hold the agent goes into the agent's
inbox stream with the lease token the sender saw; the holder types it (or
says why not) and answers in the agent's output stream, which every mirror
reads anyway. The sender waits twice as long as the holder would still
type it (:data:`FORWARD_MAX_AGE_MS` on Redis's clock), so a refusal here is
never followed by the input being typed late. Resizes are sent and not
waited for: the new size comes back in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING, Any

from ..core import ttyd
from ..errors import InputUnconfirmed, PeerProtocolError, RedisUnavailable, UpstreamUnavailable
from .codec import Forwarded, Keys, parse_answer

if TYPE_CHECKING:
    from .client import RedisLink

# Forwarded input older than this (Redis's clock) is dropped by the holder, never typed late.
FORWARD_MAX_AGE_MS = 1000
ANSWER_TIMEOUT = 2 * FORWARD_MAX_AGE_MS / 1000
# An agent's inbox keeps about this many entries (only the newest matter).
INBOX_LENGTH = 1000


class Forwarder:
    def __init__(self, link: RedisLink, keys: Keys, agent_id: str) -> None:
        self._link = link
        self._key = keys.inbox(agent_id)
        self._answers: dict[str, asyncio.Future[str | None]] = {}

    async def send(self, owner: str, message: ttyd.ClientMessage) -> None:
        """Forward to the holder with token ``owner``; UpstreamUnavailable if not typed."""
        if not isinstance(message, ttyd.Input):
            with contextlib.suppress(RedisUnavailable):
                await self._link.call(self._xadd(Forwarded("", owner, message.serialize())))
            return
        request = secrets.token_hex(8)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._answers[request] = future
        try:
            try:
                await self._link.call(self._xadd(Forwarded(request, owner, message.serialize())))
            except RedisUnavailable as exc:
                raise UpstreamUnavailable(f"cannot reach Redis: {exc}") from exc
            try:
                async with asyncio.timeout(ANSWER_TIMEOUT):
                    error = await future
            except TimeoutError:
                raise InputUnconfirmed(
                    "the replica holding this agent did not confirm this input:"
                    " it may have been typed, and will not be typed later"
                ) from None
        finally:
            self._answers.pop(request, None)
        if error is not None:
            raise UpstreamUnavailable(error)

    def answered(self, data: bytes) -> None:
        """An ANSWER entry of the agent's stream (for this replica's request or another's)."""
        with contextlib.suppress(PeerProtocolError):
            request, error = parse_answer(data)
            future = self._answers.get(request)
            if future is not None and not future.done():
                future.set_result(error)

    def cancel(self) -> None:
        for future in self._answers.values():
            future.cancel()

    def _xadd(self, forwarded: Forwarded) -> Any:
        fields = forwarded.fields()
        return self._link.client.xadd(self._key, fields, maxlen=INBOX_LENGTH, approximate=True)
