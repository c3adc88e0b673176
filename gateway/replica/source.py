"""A hub's source in replica mode: ttyd while this replica owns the agent, its stream otherwise.

The hub does not know which: it gets output, status and sizes from a
:class:`~gateway.core.seams.Source` either way, and viewers on every
replica see the same terminal.

*Owner* (this replica holds the agent's lease): an
:class:`~gateway.core.upstream.Upstream` talks to ttyd as in a single
gateway, with this source as its sink. Each message is queued for the
node's writer (never awaited by the read loop) *before* the hub relays it,
so at every await point the hub's screen and the stream position agree:
a checkpoint taken then is the screen at exactly that position. Input and
resizes that other replicas forward through the agent's inbox are checked
(the owner they saw is still the owner; younger than
:data:`FORWARD_MAX_AGE_MS` on Redis's clock) and sent, or answered with why not.

*Follower*: a mirror. It starts from the latest checkpoint and the entries
after it (one script), then applies what the node's reader hands it, in
order; anything out of sequence (a trimmed stream, a queue that overflowed,
an owner that dropped output) means start again from a checkpoint: viewers
are repainted, never shown a gap or a byte twice. Input goes to the owner
through the inbox, and the answer comes back in the stream.

A new owner first reads the stream to its end (only it can write from
then on), then starts its output with CAN + RIS: that aborts any escape
sequence the old owner's last bytes left open, and tmux redraws everything
for its new client right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..core import ttyd
from ..core.backoff import Backoff
from ..core.seams import SourceSink
from ..core.state import AgentState
from ..core.target import Target
from ..core.upstream import Upstream, UpstreamStatistics
from ..errors import PeerProtocolError, RedisUnavailable, UpstreamUnavailable
from ..tasks import running
from .codec import (
    ORIGIN,
    Checkpoint,
    Entry,
    Forwarded,
    Keys,
    Kind,
    Position,
    StreamId,
    answer,
)
from .forwarding import FORWARD_MAX_AGE_MS, Forwarder
from .lua import Lua
from .scripts import BOOTSTRAP

if TYPE_CHECKING:
    from .client import RedisLink

log = logging.getLogger(__name__)
_BOOTSTRAP = Lua(BOOTSTRAP)

# A checkpoint after this much output, or this long after a change.
CHECKPOINT_BYTES = 512 * 1024
CHECKPOINT_SECONDS = 2.0
# What may wait for the writer per agent before it is dropped for a checkpoint.
MAX_PENDING_BYTES = 8 * 1024 * 1024
# What a follower may have received and not applied yet before it starts over.
MAX_INBOX_BYTES = 8 * 1024 * 1024
# Forwarded input waiting for the holder to type it (more is refused by timing out).
MAX_FORWARDED = 256
# Aborts a torn escape sequence, then resets the terminal (a new owner's redraw follows).
REPAINT = b"\x18\x1bc"
# Bounds a follower's retries while Redis does not answer.
RETRY_DELAY = 0.5
# How long a follower that found a gap past the checkpoint waits before it looks again.
GAP_RETRY = 0.1
# How long a hand-over keeps ttyd open after input was typed: ttyd kills its tmux
# client when the connection closes, and input that client had not read yet is lost.
INPUT_SETTLE = 0.2


class Replica(Protocol):
    """What a source asks of its node (:class:`~gateway.replica.node.Node`)."""

    replica: str
    link: RedisLink
    keys: Keys

    def attach(self, source: ReplicaSource) -> None: ...

    def detach(self, source: ReplicaSource) -> None: ...

    def reshape(self) -> None:
        """What this source reads changed: restart the blocking read."""

    def wake_writer(self) -> None: ...

    def contend_soon(self) -> None:
        """An owner let go: run an ownership pass now."""

    def redis_now_ms(self) -> float: ...

    async def flushed(self, source: ReplicaSource) -> None:
        """Wait until the writer has written everything ``source`` queued."""

    async def release(self, source: ReplicaSource, token: str) -> None: ...


class Role(enum.Enum):
    FOLLOW = "follow"
    OWN = "own"
    HAND_OVER = "hand over"
    IDLE = "idle"  # drained: neither owns nor follows


class ReplicaSource:
    def __init__(
        self,
        node: Replica,
        agent_id: str,
        target: Target,
        sink: SourceSink,
        size: Callable[[], tuple[int, int]],
        backoff: Backoff | None,
    ) -> None:
        self.agent_id = agent_id
        self._node = node
        self._sink = sink
        self._keys = node.keys
        self._upstream = Upstream(target, self, size, backoff=backoff)
        self._role = Role.FOLLOW
        self._after_hand_over = Role.FOLLOW
        self._changed = asyncio.Event()
        self._handed_over = asyncio.Event()
        # The lease token while this replica owns the agent (it fences every write).
        self.token: str | None = None
        # True once an owner has caught up with the stream and may append.
        self._owning = False
        # The owner the stream last named, for forwarded input (followers).
        self._owner: str | None = None
        # What the hub has seen of the stream (an owner: what it appended).
        self._position = Position()
        # The last id the writer confirmed, and the last the reader handed over.
        self.confirmed = ORIGIN
        self._received = ORIGIN
        self._synced = False
        # Owner: entries for the writer. Follower: entries from the reader.
        self._pending: deque[tuple[StreamId, Kind, bytes]] = deque()
        self._pending_bytes = 0
        # Bumped whenever the pending queue is dropped, so a batch in flight is not misread.
        self._batch_serial = 0
        # Whether this ownership wrote its OWNER entry (only then are there last words).
        self._wrote = False
        self._inbox: deque[Entry] = deque()
        self._inbox_bytes = 0
        self._inbox_ready = asyncio.Event()
        self._overflowed = False
        self._forwarded: deque[tuple[StreamId, Forwarded]] = deque()
        self._forwarded_ready = asyncio.Event()
        self._inbox_position = ORIGIN
        self._forwarder = Forwarder(node.link, node.keys, agent_id)
        self._repaint_next = False
        self._published: bytes | None = None
        self._since_checkpoint = 0
        self._checkpoint_at = 0.0
        self._checkpoint_due = False
        self.dropped = 0  # times the writer's queue overflowed
        self._typed_at = -INPUT_SETTLE  # loop time input was last sent to ttyd

    # --- Source ----------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        return self._upstream.state if self._owning else self._sink.status.state

    @property
    def mirrors(self) -> bool:
        return not self._owning

    def statistics(self) -> UpstreamStatistics:
        stats = self._upstream.statistics()
        stats.state = self.state
        if self._owning:
            stats.holder = self._node.replica
        elif self._owner is not None:
            stats.holder = self._owner.partition(":")[2]
        return stats

    async def send(self, message: ttyd.ClientMessage) -> None:
        if self._owning:
            if self._role is Role.HAND_OVER:
                # ttyd closes in a moment: input sent now could be lost (_input_settled).
                raise UpstreamUnavailable("the agent is moving to another replica; not sent")
            if isinstance(message, ttyd.Resize):
                self._append(Kind.RESIZE, message.serialize()[1:])
            await self._upstream.send(message)
            self._typed_at = asyncio.get_running_loop().time()
            return
        await self._forward(message)

    async def run(self) -> None:
        self._node.attach(self)
        try:
            while True:
                self._changed.clear()
                role = self._role
                body = asyncio.create_task(
                    self._body(role), name=f"replica:{self.agent_id}:{role.value}"
                )
                changed = asyncio.create_task(self._changed.wait())
                try:
                    await asyncio.wait({body, changed}, return_when=asyncio.FIRST_COMPLETED)
                    if role is Role.OWN and self._role is Role.HAND_OVER:
                        await self._input_settled()
                finally:
                    changed.cancel()
                    body.cancel()
                    # Waits without raising what the body raised (looked at below).
                    await asyncio.wait({body, changed})
                if not body.cancelled() and body.exception() is not None:
                    # A bug must not silence this agent for good: say so, and start the role again.
                    log.error(
                        "replica: %s: %s failed",
                        self.agent_id,
                        role.value,
                        exc_info=body.exception(),
                    )
                    await asyncio.sleep(RETRY_DELAY)
        finally:
            self._owning = False
            self._node.detach(self)
            self._forwarder.cancel()

    def _body(self, role: Role) -> Any:
        if role is Role.OWN and self.token is not None:
            return self._own(self.token)
        if role is Role.HAND_OVER and self.token is not None:
            return self._hand_over(self.token)
        if role is Role.FOLLOW:
            return self._follow()
        return asyncio.Event().wait()

    def _become(self, role: Role) -> None:
        self._role = role
        self._changed.set()

    @property
    def handing_over(self) -> bool:
        return self._role is Role.HAND_OVER

    # --- what the node tells it ------------------------------------------------

    def promote(self, token: str) -> None:
        """This replica took the agent's lease."""
        if self._owning and self._role is Role.OWN:
            # Our lease lapsed (Redis was away) and we took it again: keep the
            # terminal, and tell the followers whom to forward input to now.
            self.token = token
            self._append(Kind.OWNER, token.encode())
            return
        self.token = token
        self._become(Role.OWN)

    def demote(self) -> None:
        """Redis says another replica owns the agent (or nobody does): stop writing."""
        if self.token is None:
            return
        log.info("replica: %s is no longer ours", self.agent_id)
        self._drop_ownership()
        self._become(Role.FOLLOW)

    def hand_over(self, *, then: Role = Role.FOLLOW) -> asyncio.Event:
        """Let go on purpose: last words in the stream, then release the lease."""
        self._after_hand_over = then
        if self.token is None or self._role is Role.HAND_OVER:
            if self.token is None:
                self._handed_over.set()
            return self._handed_over
        self._handed_over.clear()
        self._become(Role.HAND_OVER)
        return self._handed_over

    def idle(self) -> None:
        """Draining: stop following too."""
        if self.token is None:
            self._become(Role.IDLE)

    def reset(self) -> None:
        """Redis lost its data (a new epoch): nothing we knew of the stream holds."""
        self._drop_ownership()
        self._position = Position()
        self.confirmed = self._received = ORIGIN
        self._synced = False
        self._become(Role.FOLLOW if self._role is not Role.IDLE else Role.IDLE)

    def _drop_ownership(self) -> None:
        self.token = None
        self._owning = False
        self._wrote = False
        self._clear_pending()
        # What a follower reads from: what it knows reached the stream.
        self._position = Position(self.confirmed)
        self._received = self.confirmed

    def wanted(self) -> tuple[str, StreamId] | None:
        """The stream the node's reader should read for this source, and from where."""
        if self._owning:
            return self._keys.inbox(self.agent_id), self._inbox_position
        if self._role is Role.FOLLOW and self._synced:
            return self._keys.output(self.agent_id), self._received
        return None

    def received(self, key: str, raw: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """Entries the reader got for :meth:`wanted`; never blocks."""
        # A read issued before a promotion or demotion may answer after it.
        wanted = self.wanted()
        if wanted is None or key != wanted[0]:
            return
        for raw_id, fields in raw:
            if self._owning:
                self._inbox_position = max(self._inbox_position, StreamId.parse(raw_id))
                if len(self._forwarded) >= MAX_FORWARDED:
                    continue  # the sender times out and says so; nothing is typed late
                try:
                    self._forwarded.append((StreamId.parse(raw_id), Forwarded.parse(fields)))
                except PeerProtocolError as exc:
                    log.warning("replica: %s: dropping an inbox entry: %s", self.agent_id, exc)
                self._forwarded_ready.set()
                continue
            try:
                entry = Entry.parse(raw_id, fields)
            except PeerProtocolError as exc:
                log.warning("replica: %s: dropping a stream entry: %s", self.agent_id, exc)
                continue
            if entry.id <= self._received:
                continue
            self._received = entry.id
            if self._inbox_bytes + len(entry.data) > MAX_INBOX_BYTES:
                # The hub is behind by more than a checkpoint is worth: start over.
                self._inbox.clear()
                self._inbox_bytes = 0
                self._overflowed = True
            else:
                self._inbox.append(entry)
                self._inbox_bytes += len(entry.data)
            self._inbox_ready.set()

    # --- the writer's side ------------------------------------------------------

    def pending(self, limit: int) -> tuple[str, int, list[tuple[StreamId, Kind, bytes]]] | None:
        """The token, the queue's serial and the next entries to write (about ``limit`` bytes)."""
        if self.token is None or not self._pending:
            return None
        batch: list[tuple[StreamId, Kind, bytes]] = []
        size = 0
        for item in self._pending:
            if batch and size + len(item[2]) > limit:
                break
            batch.append(item)
            size += len(item[2])
        return self.token, self._batch_serial, batch

    def written(self, token: str, serial: int, count: int) -> None:
        if token != self.token or serial != self._batch_serial:
            return
        for _ in range(count):
            entry_id, kind, data = self._pending.popleft()
            self._pending_bytes -= len(data)
            if kind is not Kind.CHECKPOINT:
                self.confirmed = entry_id

    def refused(self, token: str, fenced: bool) -> None:
        """The writer's append failed in Redis: fenced, or out of sequence (a bug)."""
        if token != self.token:
            return
        if fenced:
            self.demote()
            return
        # Our idea of the stream's end is wrong: drop what waits, start again from the end.
        log.error("replica: %s: the stream refused our entries; resynchronising", self.agent_id)
        self._become(Role.OWN)

    # --- owner -------------------------------------------------------------------

    async def _own(self, token: str) -> None:
        self._owning = False
        await self._retrying(self._catch_up)
        # Only forwarded input sent from now on is for us.
        self._inbox_position = await self._retrying(self._inbox_end)
        self._clear_pending()
        self._owning = True
        self._node.reshape()
        self._repaint_next = True
        self._published = None
        self._append(Kind.OWNER, token.encode())
        self._wrote = True
        self._checkpoint_at = asyncio.get_running_loop().time()
        log.info("replica: %s is ours (%s) from %s", self.agent_id, token, self._position.last)
        try:
            async with (
                running(self._checkpoints(), f"checkpoints:{self.agent_id}"),
                running(self._serve_forwarded(), f"forwarded:{self.agent_id}"),
            ):
                await self._upstream.run()
        finally:
            self._owning = False

    async def _catch_up(self) -> None:
        """Apply what the stream holds past our position; afterwards only we write."""
        client, key = self._node.link.client, self._keys.output(self.agent_id)
        raw = await self._node.link.call(client.xrange(key, f"({self._position.last}", "+"))
        entries = [Entry.parse(raw_id, fields) for raw_id, fields in raw]
        if not self._synced or (entries and not self._position.follows(entries[0])):
            await self._sync(repaint=True)
            return
        for entry in entries:
            await self._apply(entry)
        top = await self._node.link.call(client.xrevrange(key, "+", "-", count=1))
        if top and StreamId.parse(top[0][0]) != self._position.last:
            # Our idea of the end is not the stream's (a write of ours it refused).
            await self._sync(repaint=True)

    async def _inbox_end(self) -> StreamId:
        key = self._keys.inbox(self.agent_id)
        raw = await self._node.link.call(self._node.link.client.xrevrange(key, "+", "-", count=1))
        return StreamId.parse(raw[0][0]) if raw else ORIGIN

    def _append(self, kind: Kind, data: bytes) -> None:
        entry_id = (
            self._position.output(len(data)) if kind is Kind.OUTPUT else self._position.event()
        )
        self._queue(entry_id, kind, data)

    def _clear_pending(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0
        self._batch_serial += 1

    def _queue(self, entry_id: StreamId, kind: Kind, data: bytes) -> None:
        if self._pending_bytes + len(data) > MAX_PENDING_BYTES:
            # Redis is away or slow: drop, and let a checkpoint carry the screen instead.
            self._clear_pending()
            self._checkpoint_due = True
            self.dropped += 1
        self._pending.append((entry_id, kind, data))
        self._pending_bytes += len(data)
        self._node.wake_writer()

    def _checkpoint(self) -> None:
        repaint = self._sink.join_frames(Checkpoint.HISTORY)[1][1:]
        checkpoint = Checkpoint(self._position.last, self._sink.status, repaint)
        self._queue(checkpoint.id, Kind.CHECKPOINT, checkpoint.encode())
        self._since_checkpoint = 0
        self._checkpoint_due = False
        self._checkpoint_at = asyncio.get_running_loop().time()

    async def _checkpoints(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS / 4)
            stale = loop.time() - self._checkpoint_at >= CHECKPOINT_SECONDS
            if self._checkpoint_due or (self._since_checkpoint and stale):
                self._checkpoint()

    def _publish_status(self) -> None:
        status = self._sink.status.serialize()[1:]
        if status != self._published:
            self._published = status
            self._append(Kind.STATUS, status)

    async def _serve_forwarded(self) -> None:
        while True:
            await self._forwarded_ready.wait()
            self._forwarded_ready.clear()
            while self._forwarded:
                entry_id, forwarded = self._forwarded.popleft()
                error = await self._perform(self.token, entry_id, forwarded)
                if forwarded.request:
                    self._append(Kind.ANSWER, answer(forwarded.request, error))

    async def _perform(
        self, token: str | None, entry_id: StreamId, forwarded: Forwarded
    ) -> str | None:
        if forwarded.owner != token:
            return "the agent moved to another replica meanwhile; not sent"
        if self._role is Role.HAND_OVER:
            # ttyd closes in a moment: input typed now could be lost (_input_settled).
            return "the agent is moving to another replica; not sent"
        if self._node.redis_now_ms() - entry_id.offset > FORWARD_MAX_AGE_MS:
            return "it arrived too late to be typed; not sent"
        try:
            message = ttyd.parse_client(forwarded.message)
            if isinstance(message, ttyd.Resize):
                await self._sink.resize(message.columns, message.rows, **message.asker())
            elif isinstance(message, ttyd.Input):
                await self._upstream.send(message)
                self._typed_at = asyncio.get_running_loop().time()
            else:
                return "only input and resizes are forwarded"
        except UpstreamUnavailable as exc:
            return str(exc)
        except PeerProtocolError:
            return "a malformed message; not sent"
        return None

    # --- UpstreamSink (the owner's ttyd connection reports here) -------------------

    async def upstream_output(self, message: bytes) -> None:
        if len(message) <= 1:
            return
        if self._repaint_next:
            self._repaint_next = False
            message = b"0" + REPAINT + message[1:]
        # Queued first: the hub never holds a byte the stream position does not.
        self._append(Kind.OUTPUT, message[1:])
        self._since_checkpoint += len(message) - 1
        await self._sink.upstream_output(message)
        if self._since_checkpoint >= CHECKPOINT_BYTES or self._checkpoint_due:
            self._checkpoint()

    def upstream_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        self._sink.upstream_state(state, retry_in, message)
        if self._owning and state is not AgentState.STOPPED:
            self._publish_status()

    def upstream_resized(self, columns: int, rows: int, **asker: str) -> None:
        self._sink.upstream_resized(columns, rows, **asker)

    # --- hand over ----------------------------------------------------------------

    async def _input_settled(self) -> None:
        """Before a hand-over closes ttyd: let the tmux client read what was just typed.

        Input answered "typed" a moment before the hand-over was otherwise lost
        now and then: ttyd ends its tmux client as the connection closes. Only
        a deliberate hand-over waits; a replica Redis fenced stops at once.
        """
        wait = self._typed_at + INPUT_SETTLE - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _hand_over(self, token: str) -> None:
        # _own is cancelled by now: ttyd is closed and nothing more comes from it.
        self._owning = False
        if self._wrote:
            self._checkpoint()
            self._queue(self._position.event(), Kind.HANDOVER, token.encode())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2 * CHECKPOINT_SECONDS):
                    await self._node.flushed(self)
        await self._node.release(self, token)
        self._drop_ownership()
        self._handed_over.set()
        log.info("replica: %s handed over at %s", self.agent_id, self.confirmed)
        self._become(self._after_hand_over)

    # --- follower -----------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            try:
                if not self._synced or self._overflowed:
                    await self._sync(repaint=not self._synced or self._overflowed)
                await self._mirror()
            except RedisUnavailable as exc:
                self._synced = False
                self._status(AgentState.RECONNECTING, RETRY_DELAY, f"Redis: {exc}")
                await asyncio.sleep(RETRY_DELAY)

    def link_down(self, error: str) -> None:
        """The node's reader lost Redis: followers say so and start over when it is back."""
        if not self._owning and self._role is Role.FOLLOW and self._synced:
            self._synced = False
            self._status(AgentState.RECONNECTING, RETRY_DELAY, f"Redis: {error}")
            self._become(Role.FOLLOW)

    async def _mirror(self) -> None:
        while True:
            await self._inbox_ready.wait()
            self._inbox_ready.clear()
            if self._overflowed:
                return
            while self._inbox:
                entry = self._inbox.popleft()
                self._inbox_bytes -= len(entry.data)
                if entry.id <= self._position.last:
                    continue  # read again after a resync
                if not self._position.follows(entry):
                    log.info("replica: %s: a gap before %s; resyncing", self.agent_id, entry.id)
                    self._overflowed = True
                    return
                await self._apply(entry)

    async def _sync(self, *, repaint: bool) -> None:
        """Start (or resume) from the checkpoint and what follows it, in one step."""
        link, keys, agent = self._node.link, self._keys, self.agent_id
        keys_ = [keys.checkpoint(agent), keys.output(agent), keys.lease(agent), keys.status(agent)]
        ckpt_id, ckpt_data, owner, status, raw = await _BOOTSTRAP(link, keys_)
        # Inside Lua an entry's fields are a flat list: [field, value, field, value].
        entries = [
            Entry.parse(raw_id, dict(zip(flat[::2], flat[1::2], strict=True)))
            for raw_id, flat in raw
        ]
        checkpoint = None if ckpt_id is None else Checkpoint.decode(ckpt_id, ckpt_data)
        later = [entry for entry in entries if entry.id > self._position.last]
        resumable = not repaint and (
            (later and self._position.follows(later[0]))
            or (not later and (checkpoint is None or checkpoint.id <= self._position.last))
        )
        self._inbox.clear()
        self._inbox_bytes = 0
        self._overflowed = False
        if self._sink.status.state is AgentState.RECONNECTING:
            self._status(AgentState.CONNECTING, None, "")
        if not resumable:
            later = entries
            if checkpoint is not None:
                self._sink.upstream_resized(checkpoint.status.columns, checkpoint.status.rows)
                await self._sink.upstream_output(b"0" + REPAINT + checkpoint.repaint)
                self._position = Position(checkpoint.id)
            elif entries:
                self._position = Position(_before(entries[0]))
        self._owner = None if owner is None else owner.decode()
        if status is not None:
            self._mirror_status(status)
        elif self._owner is None:
            self._status(AgentState.CONNECTING, None, "waiting for a replica to hold this agent")
        gap = False
        for entry in later:
            if self._role is Role.FOLLOW and not self._position.follows(entry):
                # Output an owner dropped (its writer fell behind) lies past the
                # checkpoint, and the checkpoint that covers it is not written yet:
                # painting on would show a screen with a hole that nothing repairs.
                # Stop at the gap; the mirror meets it again and starts over.
                gap = True
                break
            await self._apply(entry)
        self._received = self._position.last
        self._synced = True
        self._node.reshape()
        if gap:
            log.info("replica: %s: a gap after the checkpoint; waiting for the next", self.agent_id)
            await asyncio.sleep(GAP_RETRY)

    async def _apply(self, entry: Entry) -> None:
        self._position.advance(entry)
        if entry.kind is Kind.OUTPUT:
            await self._sink.upstream_output(b"0" + entry.data)
        elif entry.kind is Kind.RESIZE:
            with contextlib.suppress(PeerProtocolError):
                resize = ttyd.Resize.parse(entry.data)
                self._sink.upstream_resized(resize.columns, resize.rows, **resize.asker())
        elif entry.kind is Kind.STATUS:
            self._mirror_status(entry.data)
        elif entry.kind is Kind.OWNER:
            self._owner = entry.data.decode(errors="replace")
        elif entry.kind is Kind.HANDOVER:
            self._owner = None
            self._node.contend_soon()
        elif entry.kind is Kind.ANSWER:
            self._forwarder.answered(entry.data)

    def _mirror_status(self, payload: bytes) -> None:
        try:
            status = ttyd.Status.parse(payload)
        except PeerProtocolError as exc:
            log.warning("replica: %s: a bad status in the stream: %s", self.agent_id, exc)
            return
        self._status(status.state, status.retry_in, status.message)

    def _status(self, state: AgentState, retry_in: float | None, message: str) -> None:
        if not self._owning:
            self._sink.upstream_state(state, retry_in, message)

    async def _forward(self, message: ttyd.ClientMessage) -> None:
        owner = self._owner
        if owner is None or not self._synced:
            raise UpstreamUnavailable("no replica holds this agent's terminal right now")
        await self._forwarder.send(owner, message)

    async def _retrying(self, step: Callable[[], Any]) -> Any:
        while True:
            try:
                return await step()
            except RedisUnavailable:
                await asyncio.sleep(RETRY_DELAY)


def _before(entry: Entry) -> StreamId:
    """The position just before ``entry`` (a stream with no checkpoint to start from)."""
    if entry.kind is Kind.OUTPUT:
        return StreamId(entry.id.offset - len(entry.data), 0)
    return StreamId(entry.id.offset, entry.id.seq - 1)
