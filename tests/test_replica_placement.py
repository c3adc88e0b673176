"""Who should own which agent (pure): rendezvous ranks, turns, hand-overs."""

from __future__ import annotations

from collections import Counter

from gateway.replica.placement import CONTEND_STEP, SETTLE, Placement, ranking


def test_every_replica_ranks_alike_and_agents_spread() -> None:
    replicas = ["r0", "r1", "r2"]
    agents = [f"agent-{i}" for i in range(300)]
    firsts = Counter(ranking(agent, replicas)[0] for agent in agents)
    assert set(firsts) == set(replicas)
    assert min(firsts.values()) > 60
    assert all(ranking(a, replicas) == ranking(a, list(reversed(replicas))) for a in agents)
    # A replica leaving moves only the agents it ranked first.
    moved = [a for a in agents if ranking(a, replicas)[0] != ranking(a, ["r0", "r1"])[0]]
    assert all(ranking(a, replicas)[0] == "r2" for a in moved)


def test_the_first_choice_contends_at_once_the_others_in_turn() -> None:
    live = {"r0": 0.0, "r1": 0.0}
    agent = "shell"
    first, second = ranking(agent, live)
    a, b = Placement(first), Placement(second)
    assert a.plan(10.0, {agent: None}, live).contend == (agent,)
    assert b.plan(10.0, {agent: None}, live).contend == ()
    assert b.plan(10.0 + CONTEND_STEP * 1.01, {agent: None}, live).contend == (agent,)


def test_an_owner_hands_over_to_a_settled_first_choice_one_agent_a_pass() -> None:
    agents = [f"agent-{i}" for i in range(20)]
    me = "r0"
    theirs = [a for a in agents if ranking(a, ["r0", "r1"])[0] == "r1"]
    owners = {a: me for a in agents}
    placement = Placement(me)
    # r1 only just came: nothing moves on a blip.
    assert placement.plan(10.0, owners, {"r0": 0.0, "r1": 9.0}).release == ()
    plan = placement.plan(9.0 + SETTLE, owners, {"r0": 0.0, "r1": 9.0})
    assert len(plan.release) == 1
    assert plan.release[0] in theirs
    # Having let go, it leaves the agent to r1 for a while, then takes it if nobody did.
    placement.handed_over(plan.release[0], 20.0)
    owners[plan.release[0]] = None
    assert plan.release[0] not in placement.plan(20.5, owners, {"r0": 0.0, "r1": 9.0}).contend
    assert plan.release[0] in placement.plan(20.0 + SETTLE + 1, owners, {"r0": 0.0}).contend


def test_back_from_an_outage_nothing_free_is_taken_until_the_hold_ends() -> None:
    live = {"r0": 0.0, "r1": 0.0}
    agent = "shell"
    first = ranking(agent, live)[0]
    placement = Placement(first)
    placement.hold_back_all(12.0)
    # The first choice would contend at once; its holder gets the time to re-take it.
    assert placement.plan(10.0, {agent: None}, live).contend == ()
    assert placement.plan(11.9, {agent: None}, live).contend == ()
    # A shorter hold later never shortens the one running.
    placement.hold_back_all(11.0)
    assert placement.plan(11.95, {agent: None}, live).contend == ()
    assert placement.plan(12.0, {agent: None}, live).contend == (agent,)


def test_a_replica_waiting_its_turn_is_told_when_it_comes() -> None:
    live = {"r0": 0.0, "r1": 0.0, "r2": 0.0}
    agent = "shell"
    third = ranking(agent, live)[2]
    placement = Placement(third)
    plan = placement.plan(10.0, {agent: None}, live)
    assert plan.contend == ()
    assert plan.next_turn == 10.0 + 2 * CONTEND_STEP
    assert placement.plan(plan.next_turn, {agent: None}, live).contend == (agent,)
    # Nothing free: no turn to wait for.
    assert placement.plan(11.0, {agent: "r0"}, live).next_turn is None
