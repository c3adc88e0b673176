"""The label planner: describe and plan, on hand-written inspect documents."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gateway.config import DockerSettings
from gateway.core.state import AgentState
from gateway.core.target import Target
from gateway.docker.planner import (
    Container,
    DesiredChange,
    changes,
    describe,
    plan,
    reconnect_needed,
)

SETTINGS = DockerSettings()


def inspect_document(
    labels: dict[str, str],
    *,
    status: str = "running",
    networks: dict[str, Any] | None = None,
    ports: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parts of `docker inspect` that discovery reads, shaped as Docker 20.10 returns them."""
    return {
        "Id": "f" * 64,
        "Name": "/agent-1",
        "Created": "2026-11-23T10:00:00.000000000Z",
        "Config": {"Labels": labels, "Tty": False},
        "State": {
            "Status": status,
            "StartedAt": "2026-11-23T10:00:01.000000000Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
        },
        "NetworkSettings": {"Networks": networks or {}, "Ports": ports or {}},
    }


# --- describe -------------------------------------------------------------------------


def test_unlabelled_containers_are_not_agents() -> None:
    assert describe(inspect_document({"other": "x"}), SETTINGS) is None


def test_the_url_label_wins() -> None:
    doc = inspect_document(
        {"gateway.agent": "a", "gateway.ttyd.url": "unix:/run/ttyd/a.sock"},
        ports={"7681/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]},
    )
    container = describe(doc, SETTINGS)
    assert container is not None
    assert container.target == Target("unix:/run/ttyd/a.sock")
    assert (container.agent_id, container.name, container.running) == ("a", "agent-1", True)


def test_the_profile_label_is_taken_as_it_is_and_auto_without_it() -> None:
    labels = {"gateway.agent": "a", "gateway.ttyd.url": "unix:/x.sock"}
    plain = describe(inspect_document(labels), SETTINGS)
    assert plain is not None
    assert plain.profile == "auto"
    # Checked where it is used (the awareness service logs an unknown one and
    # detects the CLI): a label must not make the container unusable.
    odd = describe(inspect_document({**labels, "gateway.profile": "x" * 100}), SETTINGS)
    assert odd is not None
    assert odd.profile == "x" * 32
    named = describe(inspect_document({**labels, "gateway.profile": "codex"}), SETTINGS)
    assert named is not None
    assert named.profile == "codex"


def test_the_configured_network_gives_the_address() -> None:
    doc = inspect_document(
        {"gateway.agent": "a", "gateway.ttyd.port": "7000"},
        networks={"agents": {"IPAddress": "10.9.0.5"}, "other": {"IPAddress": "10.8.0.5"}},
    )
    container = describe(doc, DockerSettings(network="agents"))
    assert container is not None
    assert container.target == Target("ws://10.9.0.5:7000/ws")
    # Without the setting, a network address is never guessed.
    unset = describe(doc, SETTINGS)
    assert unset is not None
    assert unset.target is None
    assert "no ttyd address" in unset.problem


@pytest.mark.parametrize(
    ("host_ip", "expected"),
    [
        ("0.0.0.0", "ws://127.0.0.1:49153/ws"),
        ("", "ws://127.0.0.1:49153/ws"),
        ("::", "ws://[::1]:49153/ws"),
        ("127.0.0.2", "ws://127.0.0.2:49153/ws"),
    ],
)
def test_a_published_port_is_reached_on_the_host(host_ip: str, expected: str) -> None:
    doc = inspect_document(
        {"gateway.agent": "a"}, ports={"7681/tcp": [{"HostIp": host_ip, "HostPort": "49153"}]}
    )
    container = describe(doc, SETTINGS)
    assert container is not None
    assert container.target == Target(expected)


def test_credentials_from_the_label_or_the_file() -> None:
    labels = {"gateway.agent": "a", "gateway.ttyd.url": "ws://127.0.0.1:1/ws"}
    from_file = describe(inspect_document(labels), SETTINGS, "file:secret")
    assert from_file is not None
    assert from_file.target is not None
    assert from_file.target.credential == "file:secret"
    labels["gateway.ttyd.credential"] = "label:secret"
    from_label = describe(inspect_document(labels), SETTINGS, "file:secret")
    assert from_label is not None
    assert from_label.target is not None
    assert from_label.target.credential == "label:secret"
    assert "secret" not in repr(from_label)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"gateway.ttyd.url": "http://x/"}, "must start with ws://"),
        ({"gateway.ttyd.port": "seventy"}, "must be a port number"),
        ({"gateway.ttyd.url": "ws://h/ws", "gateway.ttyd.credential": "nocolon"}, "user:password"),
    ],
)
def test_bad_labels_are_a_problem_not_a_crash(labels: dict[str, str], problem: str) -> None:
    container = describe(inspect_document({"gateway.agent": "a", **labels}), SETTINGS)
    assert container is not None
    assert container.target is None
    assert problem in container.problem


def test_the_label_prefix_is_configurable() -> None:
    doc = inspect_document({"acme.agent": "a", "acme.ttyd.url": "unix:/s"})
    assert describe(doc, SETTINGS) is None
    container = describe(doc, DockerSettings(label_prefix="acme"))
    assert container is not None
    assert container.target == Target("unix:/s")


# --- plan -----------------------------------------------------------------------------


def container(
    agent_id: str, name: str, state: str = "running", changed_at: str = "2026-11-23T10:00:00Z"
) -> Container:
    return Container(
        id=name * 4,
        name=name,
        agent_id=agent_id,
        state=state,
        health=None,
        tty=False,
        target=Target(f"unix:/run/{name}.sock"),
        changed_at=changed_at,
    )


def test_one_running_container_is_connected() -> None:
    desired, problems = plan([container("a", "one")], reserved=())
    assert problems == []
    assert desired["a"].state is AgentState.CONNECTING
    assert desired["a"].target == Target("unix:/run/one.sock")


def test_two_running_containers_with_one_id_are_a_conflict() -> None:
    desired, problems = plan([container("a", "one"), container("a", "two")], reserved=())
    assert desired["a"].state == "conflict"
    assert desired["a"].target is None
    assert "one (" in desired["a"].message
    assert "two (" in desired["a"].message
    assert len(problems) == 1
    assert "2 running containers" in problems[0]


def test_a_running_container_outranks_stopped_ones_with_its_id() -> None:
    desired, problems = plan(
        [container("a", "old", "exited"), container("a", "new"), container("a", "x", "created")],
        reserved=(),
    )
    assert problems == []
    assert desired["a"].state is AgentState.CONNECTING
    assert desired["a"].container is not None
    assert desired["a"].container.name == "new"


def test_the_latest_stopped_container_stands_for_a_stopped_agent() -> None:
    desired, _ = plan(
        [
            container("a", "older", "exited", "2026-11-23T09:00:00Z"),
            container("a", "newer", "exited", "2026-11-23T11:00:00Z"),
        ],
        reserved=(),
    )
    assert desired["a"].state == "stopped"
    assert desired["a"].message == "container newer is exited"


def test_ids_of_the_config_and_invalid_ids_are_refused() -> None:
    desired, problems = plan(
        [container("static", "c1"), container("no/slash", "c2"), container("ok", "c3")],
        reserved={"static"},
    )
    assert set(desired) == {"ok"}
    assert any("config file defines" in p for p in problems)
    assert any("is not valid" in p for p in problems)


# --- changes, and when a hub must reconnect ----------------------------------------------


def test_changes_are_new_and_changed_agents_then_gone_ones() -> None:
    before, _ = plan([container("a", "one"), container("b", "two"), container("c", "three")], ())
    after, _ = plan(
        [container("d", "four"), container("b", "two", "exited"), container("a", "one")], ()
    )
    assert changes(before, after) == [
        DesiredChange("d", None, after["d"]),
        DesiredChange("b", before["b"], after["b"]),
        DesiredChange("c", before["c"], None),
    ]
    assert changes(after, after) == []


def test_only_a_new_target_state_message_or_container_means_reconnecting() -> None:
    (want,) = plan([container("a", "one")], ())[0].values()
    assert want.container is not None
    assert reconnect_needed(None, want)
    assert not reconnect_needed(want, want)
    # Health and names show in the agent's JSON; the connection stays.
    renamed = replace(want, container=replace(want.container, name="new", health="healthy"))
    assert not reconnect_needed(want, renamed)
    # The same address in a recreated container is a dead connection.
    recreated = replace(want, container=replace(want.container, id="recreated"))
    assert reconnect_needed(want, recreated)
    moved = replace(want, target=Target("unix:/run/elsewhere.sock"))
    assert reconnect_needed(want, moved)
    # Without a target there is no connection to lose: only the message counts.
    (stopped,) = plan([container("a", "one", "exited")], ())[0].values()
    assert stopped.container is not None
    other = replace(stopped, container=replace(stopped.container, id="another"))
    assert not reconnect_needed(stopped, other)
    assert reconnect_needed(stopped, replace(stopped, message="container one is dead"))
