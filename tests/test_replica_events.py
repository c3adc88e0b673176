"""The dashboard's feed and presence in replica mode: two gateways, one real redis-server.

Ids name the same event on every replica, so a dashboard resumes anywhere;
one replica speaks for each change (none told twice); lost data is a reset
and a fresh snapshot; who watches counts every replica's viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.appkeys import EVENTS, REPLICA
from gateway.config import RedisSettings
from gateway.local import LocalAgent
from gateway.replica.client import RedisLink
from gateway.replica.events import RedisEvents, speaks_for
from gateway.replica.placement import ranking
from gateway.replica.presence import SET_PART, Part

from .conftest import EventReader, GatewayFactory, browser, eventually
from .redisserver import RedisServer
from .replicas import PASSWORD, Client, PairFactory, direct, pair_factory


@pytest.fixture
def pair(gateway: GatewayFactory, redis_server: RedisServer, tmp_path: Path) -> PairFactory:
    return pair_factory(gateway, redis_server, tmp_path)


async def both_live(*clients: Client) -> None:
    """Until every replica's heartbeat has seen every other: they rank alike."""

    def agreed() -> bool:
        return all(len(c.app[REPLICA].live) == len(clients) for c in clients)

    await eventually(agreed, message="every replica sees the others live")


def mark(n: int, *clients: Client) -> None:
    """A fleet-wide event (like Docker's status): only one replica speaks for it."""
    for client in clients:
        client.app[EVENTS].publish("marker", {"n": n})


def is_mark(n: int) -> Any:
    return lambda event: event["event"] == "marker" and event["data"] == {"n": n}


async def open_events(
    http: aiohttp.ClientSession | Client, last_id: str | None = None, query: str = ""
) -> EventReader:
    headers = {} if last_id is None else {"Last-Event-ID": last_id}
    response = await http.get(f"/api/events{query}", headers=headers)
    assert response.status == 200, await response.text()
    return EventReader(response)


async def snapshot_id(http: aiohttp.ClientSession) -> str:
    reader = await open_events(http)
    try:
        first = await reader.next()
    finally:
        reader.response.close()
    assert first["event"] == "snapshot"
    return str(first["id"])


def number(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


def epoch(event_id: str) -> str:
    return event_id.rsplit("-", 1)[0]


async def test_a_dashboard_resumes_on_the_other_replica_with_exactly_what_it_missed(
    pair: PairFactory,
) -> None:
    a, b = await pair()
    await both_live(a, b)
    on_a, on_b = await browser(a, "op", PASSWORD), await browser(b, "op", PASSWORD)
    readers: list[EventReader] = []
    try:
        keeper = await open_events(on_a)
        leaver = await open_events(on_a)
        readers += [keeper, leaver]
        for reader in (keeper, leaver):
            assert (await reader.next())["event"] == "snapshot"
        for n in range(1, 4):
            mark(n, a, b)
        last = (await leaver.until(is_mark(3)))[-1]["id"]
        leaver.response.close()

        for n in range(4, 21):
            mark(n, a, b)
        kept = await keeper.until(is_mark(20))
        ids = [e["id"] for e in kept]
        missed = kept[ids.index(last) + 1 :]
        # One replica spoke for each event: none was told twice.
        assert [e["data"]["n"] for e in missed] == list(range(4, 21))

        resumed = await open_events(on_b, last)
        readers.append(resumed)
        got = await resumed.take(len(missed))
        assert got == missed  # same ids, same order, same data: no snapshot, no gap
        assert [number(e["id"]) for e in got] == list(range(number(last) + 1, number(last) + 18))
        mark(21, a, b)
        assert is_mark(21)(await resumed.next())
        assert is_mark(21)(await keeper.next())
        # A fresh dashboard's snapshot on either replica names the same position.
        snapshots: list[str] = []

        async def same_position() -> bool:
            snapshots[:] = [await snapshot_id(h) for h in (on_a, on_b)]
            return snapshots[0] == snapshots[1]

        await eventually(same_position, message="both mirrors at the same position")
        assert number(snapshots[0]) == number(got[-1]["id"]) + 1
    finally:
        # Streams closed before their sessions: none is left for the collector to warn of.
        for reader in readers:
            reader.response.close()
        await on_a.close()
        await on_b.close()


@pytest.fixture
async def links(redis_server: RedisServer) -> AsyncIterator[list[RedisLink]]:
    made: list[RedisLink] = []

    async def link(name: str) -> RedisLink:
        opened = RedisLink(RedisSettings(redis_server.url, key_prefix="u:"), name)
        await opened.open()
        made.append(opened)
        return opened

    yield [await link("w"), await link("r")]
    for opened in made:
        await opened.aclose()


async def test_a_mirror_behind_the_client_reads_up_to_its_id_first(
    links: list[RedisLink],
) -> None:
    """The client saw events on a replica whose mirror is ahead of this one's."""
    writer = RedisEvents(links[0], "u:", "w", holder=lambda _: None, live=lambda: ["w"])
    # This replica's mirror does not run: it reads only when a client asks.
    behind = RedisEvents(links[1], "u:", "r", holder=lambda _: None, live=lambda: ["w"])
    async with _running(writer.run()):
        for n in range(1, 6):
            writer.publish("marker", {"n": n})
        await eventually(lambda: writer.ring.next_seq == 6, message="five events read back")
        # Not loaded yet: the first resume loads, then answers.
        assert await behind.resume(writer.ring.event_id(3)) == 4
        assert behind.ring.epoch == writer.ring.epoch
        assert [e.data["n"] for _, e in behind.ring.since(4)] == [4, 5]
        for n in range(6, 9):
            writer.publish("marker", {"n": n})
        await eventually(lambda: writer.ring.next_seq == 9, message="three more")
        # Loaded but behind: it catches up to the client's id.
        assert await behind.resume(writer.ring.event_id(7)) == 8
        assert [e.data["n"] for _, e in behind.ring.since(8)] == [8]
        # Never ahead of Redis itself: an id nobody was given is no position.
        assert await behind.resume(writer.ring.event_id(9)) is None
        assert await behind.resume(writer.ring.event_id(8)) == 9


@contextlib.asynccontextmanager
async def _running(coroutine: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(coroutine)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_lost_redis_data_is_a_reset_and_a_fresh_snapshot_never_a_wrong_position(
    pair: PairFactory, redis_server: RedisServer
) -> None:
    # Open mode: a Redis restart would end every session (and stream) otherwise.
    a, b = await pair(users=())
    await both_live(a, b)
    live = await open_events(b)
    assert (await live.next())["event"] == "snapshot"
    for n in range(1, 6):
        mark(n, a, b)
    old = (await live.until(is_mark(5)))[-1]["id"]

    redis_server.restart()
    # The open stream starts over by itself: a reset, then a snapshot of the new epoch.
    seen = await live.until(lambda e: e["event"] == "snapshot", within=20)
    assert [e["event"] for e in seen] == ["reset", "snapshot"]
    fresh = seen[-1]["id"]
    assert epoch(fresh) != epoch(old)
    # A dashboard that comes back with its old id, on either replica, starts over too.
    for client in (a, b):

        async def told_to_start_over(client: Client = client) -> bool:
            # Until this replica's pool has met the restarted Redis, it answers 503.
            response = await client.get("/api/events", headers={"Last-Event-ID": old})
            if response.status == 503:
                response.close()
                return False
            assert response.status == 200, await response.text()
            reader = EventReader(response)
            events = [(await reader.next())["event"], (await reader.next())["event"]]
            return events == ["reset", "snapshot"]

        await eventually(told_to_start_over, message="an old epoch's id is a reset")
    # Numbers start again in the new epoch; both replicas agree on them.
    mark(6, a, b)
    after = await live.until(is_mark(6))
    assert epoch(after[-1]["id"]) == epoch(fresh)
    resumed = await open_events(a, fresh)
    assert (await resumed.until(is_mark(6)))[-1]["id"] == after[-1]["id"]

    # A flush (no restart) is lost data too.
    redis = direct(redis_server)
    await redis.flushall()
    await redis.aclose()
    seen = await live.until(lambda e: e["event"] == "snapshot", within=20)
    assert [e["event"] for e in seen] == ["reset", "snapshot"]
    assert epoch(seen[-1]["id"]) not in (epoch(old), epoch(fresh))


async def test_forged_huge_and_foreign_ids_get_a_reset_and_a_snapshot(
    pair: PairFactory,
) -> None:
    a, b = await pair(users=())
    await both_live(a, b)
    first = await open_events(b)
    snapshot = await first.next()
    mark(1, a, b)
    here = (await first.until(is_mark(1)))[-1]["id"]
    current = epoch(here)
    forged = [
        f"{current}-999999999999999999",  # far in the future
        f"{current}-{number(here) + 3}",  # just ahead: nobody was given it
        f"{current}-{number(here) + 10**6}",
        "0123456789abcdef-1",  # another epoch (another fleet, a lost Redis)
        f"{current}--1",
        f"{current}-1e3",
        "../../etc/passwd",
        "a" * 4000,
        f"{current}-{number(here)}" + "0" * 60,
    ]
    for last in forged:
        reader = await open_events(b, last)
        assert [(await reader.next())["event"] for _ in range(2)] == ["reset", "snapshot"], last
        reader.response.close()
    # Through the query as well (a page passes its id after a reload).
    reader = await open_events(b, query="?last_event_id=" + "f" * 3000)
    assert [(await reader.next())["event"] for _ in range(2)] == ["reset", "snapshot"]
    # Nothing was published or moved by any of it; a real id still resumes exactly.
    assert snapshot["event"] == "snapshot"
    mark(2, a, b)
    resumed = await open_events(a, here)
    assert is_mark(2)(await resumed.next())


def test_one_replica_speaks_for_each_agent() -> None:
    live = ["a", "b", "c"]
    # The holder speaks; nobody else does, whatever the ranking says.
    assert [speaks_for("x", me, "b", live) for me in live] == [False, True, False]
    # An upstream with no holder known yet: nobody (its holder will, once it holds).
    assert not any(speaks_for("x", me, "", live) for me in live)
    # No upstream (a parked agent, Docker's status): the first in rendezvous order.
    for agent in ("x", "y", None):
        speakers = [me for me in live if speaks_for(agent, me, None, live)]
        assert speakers == [ranking(agent or "", live)[0]]
    # A replica not yet in the live set still counts itself.
    assert speaks_for("x", "solo", None, [])


async def agents_of(client: Client, http: aiohttp.ClientSession) -> dict[str, Any]:
    del client
    async with http.get("/api/agents") as response:
        body = await response.json()
    return {agent["id"]: agent for agent in body["agents"]}


async def test_presence_counts_viewers_on_every_replica_and_each_change_is_told_once(
    pair: PairFactory, agent: LocalAgent, redis_server: RedisServer
) -> None:
    a, b = await pair(agent)
    await both_live(a, b)
    on_a, on_b = await browser(a, "op", PASSWORD), await browser(b, "op", PASSWORD)
    try:
        holders: list[str | None] = [None, None]

        async def one_holder() -> bool:
            for i, (c, h) in enumerate(((a, on_a), (b, on_b))):
                holders[i] = ((await agents_of(c, h))[agent.name]["upstream"] or {}).get("holder")
            return holders[0] is not None and holders[0] == holders[1]

        await eventually(one_holder, message="both name the same holder")
        # The viewer joins where the agent is *not* held: the holder must hear of it.
        elsewhere = on_b if holders[0] == a.app[REPLICA].replica else on_a
        dashboards = [await open_events(on_a), await open_events(on_b)]
        for dashboard in dashboards:
            assert (await dashboard.next())["event"] == "snapshot"

        ws = await elsewhere.ws_connect(f"/agents/{agent.name}/ws", protocols=("tty",))
        await ws.send_bytes(b'{"AuthToken": ""}')

        async def watched_everywhere(who: dict[str, int], viewers: int) -> bool:
            for c, h in ((a, on_a), (b, on_b)):
                shown = (await agents_of(c, h))[agent.name]
                if (shown["presence"], shown["viewers"]) != (who, viewers):
                    return False
            return True

        await eventually(lambda: watched_everywhere({"op": 1}, 1), message="presence on both")

        def watched(event: dict[str, Any]) -> bool:
            return event["event"] == "agent" and event["data"]["agent"]["presence"] == {"op": 1}

        for dashboard in dashboards:
            await dashboard.until(watched)
        mark(1, a, b)
        for dashboard in dashboards:
            between = await dashboard.until(is_mark(1))
            assert not any(watched(e) for e in between), "the join was told twice"

        await ws.close()
        await eventually(lambda: watched_everywhere({}, 0), message="presence gone on both")
        for dashboard in dashboards:
            await dashboard.until(
                lambda e: e["event"] == "agent" and e["data"]["agent"]["viewers"] == 0
            )
    finally:
        await on_a.close()
        await on_b.close()


async def test_a_crashed_replica_s_viewers_lapse(
    pair: PairFactory, agent: LocalAgent, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part nobody refreshes stops counting (what a kill -9 leaves behind)."""
    monkeypatch.setattr("gateway.replica.presence.TTL_MS", 900)  # replicas refresh every 0.3 s
    a, b = await pair(agent, users=())
    await both_live(a, b)
    # A replica that wrote its part with a short lease and died at once.
    link = RedisLink(RedisSettings(redis_server.url, key_prefix="t:"), "ghost")
    await link.open()
    try:
        part = Part(2, {"someone": 2}).json()
        await SET_PART(link, [f"t:presence:{{{agent.name}}}"], ["ghost", part, 3000])
    finally:
        await link.aclose()

    async def shown(client: Client, viewers: int) -> bool:
        async with client.get("/api/agents") as response:
            (found,) = (await response.json())["agents"]
        return bool(found["viewers"] == viewers)

    dashboard = await open_events(b)
    assert (await dashboard.next())["event"] == "snapshot"
    # Read at the next refresh (nobody announced it), then gone once its lease ran out.
    for client in (a, b):
        await eventually(lambda c=client: shown(c, 2), message="the ghost's viewers")
    for client in (a, b):
        await eventually(lambda c=client: shown(c, 0), message="the ghost's viewers lapse")
    await dashboard.until(lambda e: e["event"] == "agent" and e["data"]["agent"]["viewers"] == 0)
