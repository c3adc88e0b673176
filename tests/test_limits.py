"""Rate and connection limits."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import ClientWebSocketResponse, WSServerHandshakeError

from gateway import limits
from gateway.appkeys import CONNECTIONS
from gateway.auth import hash_password, new_api_token
from gateway.limits import InputLimit, TokenBucket
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import GatewayFactory, equals, eventually, open_terminal


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_bursts_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    assert all(bucket.take() for _ in range(20))
    assert not bucket.take()
    clock.now += 0.5
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 100
    assert bucket.take(20)
    assert not bucket.take(0.5)


def test_refused_amount_is_not_spent() -> None:
    bucket = TokenBucket(rate=1, burst=10, clock=Clock())
    assert not bucket.take(11)
    assert bucket.take(10)


def test_input_limit_counts_messages_and_bytes() -> None:
    limit = InputLimit()
    assert limit.allow(limits.INPUT_BURST_BYTES)
    assert not limit.allow(10_000)


async def test_a_flood_is_closed_with_1008(agent: LocalAgent, gateway: GatewayFactory) -> None:
    client = await gateway(agent)
    flooder = await open_terminal(client, agent.name)
    await flooder.wait_text("$")
    # Far more than the burst: the bucket refills while the gateway works
    # through them (MESSAGES_PER_SECOND), the more so on a loaded machine.
    for _ in range(limits.MESSAGE_BURST * 10):
        if flooder.ws.closed:
            break
        await flooder.ws.send_bytes(b"0:")
    assert await flooder.wait_closed() == 1008
    # Others are unaffected. The flood's first messages were typed: once
    # the pane has settled, Ctrl-C clears them from the prompt (or they
    # prefix the command), and bash has shown its new prompt before the rest.
    calm = await open_terminal(client, agent.name)

    async def settled() -> bool:
        before = await agent.capture()
        await asyncio.sleep(0.5)
        return before == await agent.capture()

    async def interrupted() -> bool:
        return (await agent.capture()).rstrip().endswith("^C\n$")

    await eventually(settled, message="the flood's input typed")
    await calm.send_input(b"\x03")
    await eventually(interrupted, message="a fresh prompt")
    await calm.send_input(b"echo calm-$((6*7))\r")
    await calm.wait_text("\ncalm-42\n")
    await calm.close()


async def test_connections_per_user_are_capped(
    agent: LocalAgent, gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.web.identity.CONNECTIONS_PER_USER", 3)
    token, digest = new_api_token()
    user = User("bot", hash_password("x"), Role.VIEWER, ("*",), digest)
    client = await gateway(agent, users=(user,))
    path = f"/agents/{agent.name}/ws"
    headers = {"Authorization": f"Bearer {token}"}

    async def connect() -> ClientWebSocketResponse:
        return await client.ws_connect(path, protocols=("tty",), headers=headers)

    held = [await connect() for _ in range(3)]
    with pytest.raises(WSServerHandshakeError) as info:
        await connect()
    assert info.value.status == 429
    await held[0].close()
    connections = client.app[CONNECTIONS]
    await eventually(lambda: equals(connections.held("bot"), 2), message="the slot is freed")
    again = await connect()
    for ws in [*held[1:], again]:
        await ws.close()
    await eventually(lambda: equals(connections.held("bot"), 0), message="all slots freed")
    # A burst of upgrades at once: the cap holds, counted before any is accepted.
    burst = await asyncio.gather(*(connect() for _ in range(8)), return_exceptions=True)
    accepted = [ws for ws in burst if isinstance(ws, ClientWebSocketResponse)]
    refused = [e for e in burst if isinstance(e, WSServerHandshakeError)]
    assert (len(accepted), len(refused)) == (3, 5)
    assert {e.status for e in refused} == {429}
    for ws in accepted:
        await ws.close()
