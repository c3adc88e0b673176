"""The upstream ttyd client, against a real ttyd + tmux."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
from collections.abc import AsyncIterator

import pytest

from gateway.core import ttyd
from gateway.core.backoff import Backoff
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.core.upstream import Upstream
from gateway.errors import ConfigError, UpstreamUnavailable
from gateway.local import LocalAgent

from .conftest import AgentFactory, contains, eventually, frozen, timeout


class RecordingSink:
    """Collects what an Upstream reports."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.states: list[tuple[AgentState, float | None, str]] = []

    async def upstream_output(self, message: bytes) -> None:
        assert message[:1] == b"0"  # a whole ttyd output message
        self.output += message[1:]

    def upstream_state(self, state: AgentState, retry_in: float | None, message: str) -> None:
        self.states.append((state, retry_in, message))

    def upstream_resized(self, columns: int, rows: int) -> None:
        raise AssertionError("ttyd's upstream never reports a size")


@contextlib.asynccontextmanager
async def running(upstream: Upstream) -> AsyncIterator[Upstream]:
    task = asyncio.create_task(upstream.run())
    try:
        yield upstream
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def fast_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.2, rng=random.Random(1))


# --- sans-I/O parts -------------------------------------------------------------


def test_backoff_grows_exponentially_within_jitter_bounds() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(42))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling


def test_backoff_jitter_differs_between_clients() -> None:
    a = Backoff(rng=random.Random(1))
    b = Backoff(rng=random.Random(2))
    assert [a.next_delay() for _ in range(5)] != [b.next_delay() for _ in range(5)]


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(base=1.0, cap=100.0, rng=random.Random(0))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_backoff_survives_many_attempts() -> None:
    backoff = Backoff(base=1.0, cap=30.0)
    for _ in range(10_000):
        assert backoff.next_delay() <= 30.0


@pytest.mark.parametrize(
    "url", ["http://x/ws", "unix:relative.sock", "tcp://127.0.0.1:7681", "127.0.0.1:7681"]
)
def test_target_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        Target(url)


def test_target_auth_token_is_base64_of_credential() -> None:
    target = Target("ws://127.0.0.1:7681/ws", "alice:s3cret")
    assert base64.b64decode(target.auth_token) == b"alice:s3cret"
    assert "s3cret" not in repr(target)
    assert Target("unix:/tmp/x.sock").auth_token == ""


def test_target_refuses_credential_without_colon() -> None:
    with pytest.raises(ConfigError):
        Target("ws://127.0.0.1:7681/ws", "justapassword")


# --- against a real ttyd ---------------------------------------------------------


async def test_connects_relays_output_and_sends_input(agent: LocalAgent) -> None:
    sink = RecordingSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="connect")
        await upstream.send(ttyd.Input(b"echo up$((40+2))stream\r"))
        await eventually(lambda: b"up42stream" in sink.output, message="echo output")
        assert "up42stream" in await agent.capture()
        stats = upstream.statistics()
        assert stats.connects == 1
        assert stats.bytes_in >= len(sink.output)


async def test_input_is_refused_not_queued_while_down(agent: LocalAgent) -> None:
    sink = RecordingSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="connect")
        await agent.stop_ttyd()
        await eventually(lambda: upstream.state is not AgentState.CONNECTED, message="down")
        with pytest.raises(UpstreamUnavailable):
            await upstream.send(ttyd.Input(b"echo never-sent\r"))
        await agent.start_ttyd()
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="reconnect")
        await upstream.send(ttyd.Input(b"echo after-$((1+1))\r"))
        await eventually(lambda: b"after-2" in sink.output, message="echo after reconnect")
        # Nothing typed while down was replayed into the terminal.
        assert "never-sent" not in await agent.capture()
    states = [state for state, _, _ in sink.states]
    assert AgentState.RECONNECTING in states
    assert states[-1] is AgentState.STOPPED
    retry = [r for s, r, _ in sink.states if s is AgentState.RECONNECTING]
    assert all(r is not None and r > 0 for r in retry)
    assert upstream.statistics().connects == 2


async def test_credential_is_sent_as_ttyd_expects(make_agent: AgentFactory) -> None:
    agent = await make_agent(credential="gw:pa55")
    sink = RecordingSink()
    upstream = Upstream(
        Target(agent.url, "gw:pa55"), sink, lambda: (80, 24), backoff=fast_backoff()
    )
    async with running(upstream):
        await eventually(lambda: len(sink.output) > 0, message="output with credential")
        await upstream.send(ttyd.Input(b"echo authed\r"))
        await eventually(lambda: b"authed" in sink.output, message="echo")


async def test_wrong_credential_keeps_retrying_and_says_why(make_agent: AgentFactory) -> None:
    agent = await make_agent(credential="gw:pa55")
    sink = RecordingSink()
    upstream = Upstream(
        Target(agent.url, "gw:wrong"), sink, lambda: (80, 24), backoff=fast_backoff()
    )
    async with running(upstream):
        await eventually(
            lambda: sum(s is AgentState.RECONNECTING for s, _, _ in sink.states) >= 2,
            message="two failed attempts",
        )
        assert sink.output == b""
        assert upstream.statistics().last_error


async def test_unreachable_target_reports_reconnecting() -> None:
    sink = RecordingSink()
    upstream = Upstream(
        Target("unix:/nonexistent/ttyd.sock"), sink, lambda: (80, 24), backoff=fast_backoff()
    )
    async with running(upstream):
        await eventually(
            lambda: any(s is AgentState.RECONNECTING for s, _, _ in sink.states),
            message="reconnecting",
        )
    assert "cannot reach ttyd" in upstream.statistics().last_error


async def test_handshake_carries_current_size(agent: LocalAgent) -> None:
    upstream = Upstream(
        Target(agent.url), RecordingSink(), lambda: (100, 30), backoff=fast_backoff()
    )
    async with running(upstream):
        await eventually(lambda: _size_is(agent, (100, 30)), message="pane 100x30")


class FailingOnceSink(RecordingSink):
    """A sink with a bug that fires once: the upstream must outlive it."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def upstream_output(self, message: bytes) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("bug in the sink")
        await super().upstream_output(message)


async def test_unexpected_error_is_logged_and_the_upstream_reconnects(
    agent: LocalAgent, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FailingOnceSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        await eventually(lambda: upstream.statistics().connects == 2, message="second connect")
        await upstream.send(ttyd.Input(b"echo still-$((2*2))-here\r"))
        await eventually(lambda: b"still-4-here" in sink.output, message="output after the bug")
    # Said while it lasted; the reconnected session has no error to show.
    assert any("internal error" in message for _, _, message in sink.states)
    assert upstream.statistics().last_error == ""
    assert "bug in the sink" in caplog.text


async def _size_is(agent: LocalAgent, size: tuple[int, int]) -> bool:
    return await agent.pane_size() == size


# --- a frozen ttyd (SIGSTOP): its socket stays open, nothing answers ------------------


def _frozen_reported(sink: RecordingSink) -> bool:
    return any(
        state is AgentState.RECONNECTING
        and ("has not answered" in message or "took no input" in message)
        for state, _, message in sink.states
    )


async def test_a_frozen_idle_ttyd_is_reported_and_refused_input_never_typed(
    agent: LocalAgent,
) -> None:
    sink = RecordingSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="connect")
        with frozen(agent):
            # websockets' keepalive alone took 40 s to notice; the liveness check, seconds.
            await eventually(lambda: _frozen_reported(sink), message="the freeze reported")
            with pytest.raises(UpstreamUnavailable):
                await asyncio.wait_for(
                    upstream.send(ttyd.Input(b"echo never-$((6*7))\r")), timeout(10)
                )
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="reconnect")
        # Typed after the refused input: once it shows, the shell has read all before it.
        await upstream.send(ttyd.Input(b"echo resumed-$((6*7))\r"))
        await eventually(lambda: contains(agent.capture(), "resumed-42"), message="marker")
        assert "never-42" not in await agent.capture()


async def test_a_frozen_ttyd_with_input_pending_is_reported(make_agent: AgentFactory) -> None:
    # Input nobody echoes: the buffers fill with what a frozen ttyd does not read.
    agent = await make_agent(command=("sh", "-c", "stty raw -echo; exec cat >/dev/null"))
    sink = RecordingSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="connect")

        async def flood() -> None:
            while True:
                await upstream.send(ttyd.Input(b"x" * 60_000))

        with frozen(agent):
            pushing = asyncio.create_task(flood())
            try:
                # Before, the keepalive ping waited behind the blocked send: never noticed.
                await eventually(lambda: _frozen_reported(sink), message="the freeze reported")
                with pytest.raises(UpstreamUnavailable):
                    await asyncio.wait_for(pushing, timeout(10))
            finally:
                pushing.cancel()
                with contextlib.suppress(asyncio.CancelledError, UpstreamUnavailable):
                    await pushing
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="reconnect")


# --- tmux dies under ttyd: ttyd serves, its command exits at once ------------------------


async def _kill_tmux_server(agent: LocalAgent) -> None:
    """SIGKILL the agent's tmux server, as a crash would: its clients exit with an error."""
    pid = int((await agent.tmux("display-message", "-p", "#{pid}")).strip())
    os.kill(pid, signal.SIGKILL)


async def test_a_connection_is_a_session_once_its_command_has_printed(
    agent: LocalAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not by the time limit: only tmux's first screen can make it a session here.
    monkeypatch.setattr("gateway.core.upstream.ESTABLISH_MAX", 3600.0)
    sink = RecordingSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        # Before, ttyd's title and preferences, which come first, hid the output
        # from the check: every connection waited out the whole time limit.
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="a session")
        assert [state for state, _, _ in sink.states] == [AgentState.CONNECTED]
        assert b"$" in sink.output


async def test_a_terminal_that_exits_is_said_so_and_its_retries_neither_connect_nor_paint(
    agent: LocalAgent,
) -> None:
    sink = RecordingSink()
    upstream = Upstream(Target(agent.url), sink, lambda: (80, 24), backoff=fast_backoff())
    async with running(upstream):
        await eventually(lambda: upstream.state is AgentState.CONNECTED, message="connect")
        await upstream.send(ttyd.Input(b"echo kept-$((6*7))\r"))
        await eventually(lambda: b"kept-42" in sink.output, message="the screen before")
        await _kill_tmux_server(agent)
        await eventually(
            lambda: any(s is AgentState.RECONNECTING for s, _, _ in sink.states),
            message="the loss reported",
        )
        died = len(sink.states)
        output_at_death = len(sink.output)
        # Every retry finds ttyd up and `tmux attach` failing ("no sessions").
        await eventually(
            lambda: sum(s is AgentState.CONNECTING for s, _, _ in sink.states[died:]) >= 3,
            message="three retries",
        )
    after = sink.states[died - 1 :]
    # Not "connection lost (sent 1002 (protocol error) ...)": ttyd's close code 1006
    # is how it says its command exited with an error.
    reasons = [message for state, _, message in after if state is AgentState.RECONNECTING]
    assert reasons
    assert all("terminal exited" in reason for reason in reasons), reasons
    assert all("1002" not in reason for reason in reasons), reasons
    # A retry's reason is what the command said on its way out (plain text).
    said = ("no sessions", "no server running")
    assert any(words in reason for reason in reasons[1:] for words in said), reasons
    # A retry that ends before it becomes a session never flashes "connected"...
    assert AgentState.CONNECTED not in [state for state, _, _ in sink.states[died:]]
    # ... nor writes tmux's complaint over the screen kept from before.
    assert b"no server" not in sink.output[output_at_death:]
    assert b"no sessions" not in sink.output[output_at_death:]
    assert upstream.statistics().connects == 1
