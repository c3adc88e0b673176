"""The inbox and safe answers, end to end, with the real Claude Code in tmux behind ttyd.

The CLI is the npm package (capture/package.json, ``make clis``), run offline
the way the corpus was recorded: the pane has a network namespace of its
own, with the model API's mock on its loopback (capture/mock.py), which
answers from a scenario of capture/scenarios/. The gateway in front of it is
a real one; the keys reach the CLI through the gateway, ttyd and tmux.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from capture.record import NODE_BIN, end_pane, pane_command
from capture.script import load
from gateway.auth import hash_password, new_api_token
from gateway.awareness import classify
from gateway.local import LocalAgent
from gateway.users import Role, User

from .conftest import AgentFactory, GatewayFactory, browser, eventually, timeout
from .test_shares import make_link, spectate

SCENARIOS = Path(__file__).resolve().parent.parent / "capture" / "scenarios"
TOKEN, TOKEN_SHA256 = new_api_token()
VIEWER_TOKEN, VIEWER_SHA256 = new_api_token()
PASSWORD = "pw"

pytestmark = pytest.mark.skipif(
    not (NODE_BIN / "claude").exists() or os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs the agent CLIs (make clis) and root for the pane's network namespace",
)


def users() -> tuple[User, ...]:
    hashed = hash_password(PASSWORD)
    return (
        User("olga", hashed, Role.ADMIN, ("*",), TOKEN_SHA256),
        User("vic", hashed, Role.VIEWER, ("*",), VIEWER_SHA256),
    )


async def claude(make_agent: AgentFactory, tmp_path: Path, name: str, scenario: str) -> LocalAgent:
    """A pane running the sandbox of ``scenario``: a shell, where ``claude`` is typed next."""
    work = tmp_path / name
    work.mkdir()
    path = SCENARIOS / f"{scenario}.toml"
    agent = await make_agent(name, command=pane_command(load(path), path, work), columns=120,
                             rows=40)  # fmt: skip
    await agent.tmux("send-keys", "-t", agent.name, "Enter")  # the sandbox may start
    await eventually(lambda: _shows(agent, "agent@demo:demo-project$"), message="its shell")
    return agent


def script(client: TestClient[Any, Any], token: str = TOKEN) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=str(client.make_url("")), headers={"Authorization": f"Bearer {token}"}
    )


async def agent_of(http: aiohttp.ClientSession, agent_id: str) -> dict[str, Any]:
    agents = (await (await http.get("/api/agents")).json())["agents"]
    found: dict[str, Any] = next(a for a in agents if a["id"] == agent_id)
    return found


async def type_into(http: aiohttp.ClientSession, agent_id: str, data: str) -> None:
    response = await http.post(f"/api/agents/{agent_id}/input", json={"data": data})
    assert response.status == 200, await response.text()


async def ask(http: aiohttp.ClientSession, agent_id: str, words: str) -> dict[str, Any]:
    """Start Claude Code at the pane's shell, ask it ``words``; return its prompt, settled."""

    async def state(want: str) -> bool:
        agent = await agent_of(http, agent_id)
        return bool(agent["profile"] == "claude" and agent["state"] == want)

    async def connected() -> bool:
        return bool((await agent_of(http, agent_id))["status"] == "connected")

    await eventually(connected, message="the gateway's connection to the agent")
    await type_into(http, agent_id, "claude\r")
    await eventually(lambda: state("idle"), within=timeout(60), message="Claude Code's prompt")
    await type_into(http, agent_id, words)
    await type_into(http, agent_id, "\r")

    async def settled() -> bool:
        listed = (await (await http.get("/api/attention")).json())["agents"]
        mine = [a for a in listed if a["id"] == agent_id and a["state"] == "waiting_approval"]
        return bool(mine and mine[0]["prompt"]["settled"])

    await eventually(settled, within=timeout(60), message="the permission prompt in the inbox")
    prompt: dict[str, Any] = (await agent_of(http, agent_id))["prompt"]
    return prompt


async def answer(http: aiohttp.ClientSession, agent_id: str, fingerprint: str,
                 **body: Any) -> aiohttp.ClientResponse:  # fmt: skip
    return await http.post(f"/api/agents/{agent_id}/prompt/{fingerprint}/answer", json=body)


async def test_approve_from_the_inbox_runs_the_command(
    make_agent: AgentFactory, gateway: GatewayFactory, tmp_path: Path
) -> None:
    agent = await claude(make_agent, tmp_path, "yes", "claude-approved")
    client = await gateway(agent, users=users())
    async with script(client) as olga:
        try:
            prompt = await ask(olga, "yes", "Run hello.py")
            # The command, and what the model says it does (Claude shows both).
            assert (prompt["kind"], prompt["subject"]) == (
                "command",
                "python3 hello.py\nRun hello.py",
            )
            assert prompt["question"] == "Do you want to proceed?"
            roles = [(o["n"], o["role"], o["key"]) for o in prompt["options"]]
            assert roles == [
                (1, "approve_once", "1"),
                (2, "approve_always", "2"),
                (3, "deny", "esc"),
            ]
            response = await answer(olga, "yes", prompt["fingerprint"], action="approve_once")
            assert response.status == 200, await response.text()
            assert await response.json() == {
                "agent": "yes", "result": "verified", "key": "1", "option": 1,
            }  # fmt: skip
            # The command ran: its output is on the screen, and Claude answers.
            ran = "hello from hello.py"
            await eventually(lambda: _shows(agent, ran), within=timeout(30), message="it ran")
            await eventually(lambda: _shows(agent, "It printed"), message="the answer")
            audit = (await (await olga.get("/api/audit")).json())["entries"]
            events = [e["event"] for e in audit if e.get("agent") == "yes"]
            assert "prompt_answer" in events
            answered = next(e for e in audit if e["event"] == "prompt_answered")
            assert (answered["user"], answered["result"], answered["key"]) == (
                "olga",
                "verified",
                "1",
            )
            metrics = await (await olga.get("/metrics")).text()
            assert 'gateway_prompt_answers_total{result="verified"} 1.0' in metrics
            assert 'gateway_agents_by_state{state="' in metrics
        finally:
            await end_pane(agent)


async def test_deny_sends_esc_and_the_command_never_runs(
    make_agent: AgentFactory, gateway: GatewayFactory, tmp_path: Path
) -> None:
    agent = await claude(make_agent, tmp_path, "no", "claude-denied")
    client = await gateway(agent, users=users())
    async with script(client) as olga:
        try:
            prompt = await ask(olga, "no", "Run hello.py")
            response = await answer(olga, "no", prompt["fingerprint"], action="deny")
            assert (await response.json())["result"] == "verified"
            assert (await response.json())["key"] == "esc"
            await eventually(lambda: _shows(agent, "Interrupted"), message="denied")
            assert not await _shows(agent, "hello from hello.py")
        finally:
            await end_pane(agent)


async def test_what_is_refused_and_who_may_not_answer(
    make_agent: AgentFactory,
    gateway: GatewayFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = await claude(make_agent, tmp_path, "guarded", "claude-menu-moved")
    client = await gateway(agent, users=users())
    async with script(client) as olga, script(client, VIEWER_TOKEN) as vic:
        try:
            prompt = await ask(olga, "guarded", "Run hello.py")
            fingerprint = prompt["fingerprint"]
            # Broadcast input would press Enter on the dialog: refused unless overridden.
            sent = await olga.post("/api/input", json={"agents": ["guarded"], "data": "ls\r"})
            result = (await sent.json())["results"]["guarded"]
            assert (result["ok"], result["error"]) == (False, "awaiting_approval")
            bad = await olga.post("/api/input", json={"agents": ["guarded"], "data": "x",
                                                      "override": "yes"})  # fmt: skip
            assert bad.status == 400
            # Viewers and spectators watch; they never answer.
            refused = await answer(vic, "guarded", fingerprint, action="approve_once")
            assert (refused.status, (await refused.json())["error"]) == (403, "read_only")
            async with await browser(client, "olga", PASSWORD) as olga_browser:
                link = await make_link(olga_browser, "guarded")
            async with aiohttp.ClientSession(
                base_url=str(client.make_url("")),
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                headers={"Origin": f"http://127.0.0.1:{client.port}"},
            ) as guest:
                assert (await spectate(guest, link["url"])).status in (302, 303)
                watched = await answer(guest, "guarded", fingerprint, action="approve_once")
                assert watched.status == 403
            # A prompt that is not the one on screen; an option it does not have.
            stale = await answer(olga, "guarded", "0" * 16, action="approve_once")
            assert (stale.status, (await stale.json())["error"]) == (409, "prompt_changed")
            missing = await answer(olga, "guarded", fingerprint, action="option", n=7)
            assert (missing.status, (await missing.json())["error"]) == (422, "no_such_option")
            for body in ({"action": "approve"}, {"action": "option", "n": "1"}, {}):
                assert (await answer(olga, "guarded", fingerprint, **body)).status == 400
            assert (await answer(olga, "guarded", "../../x", action="deny")).status in (400, 404)
            # Too young: a prompt answered before it has held still.
            monkeypatch.setattr(classify, "SETTLE", 3600.0)
            await settled(olga, "guarded", False)
            young = await answer(olga, "guarded", fingerprint, action="approve_once")
            assert (young.status, (await young.json())["error"]) == (409, "not_settled")
            monkeypatch.setattr(classify, "SETTLE", 0.5)
            await settled(olga, "guarded", True)
            # Someone typed since it appeared (the highlight moved): the click is stale.
            await type_into(olga, "guarded", "\x1b[A")
            raced = await answer(olga, "guarded", fingerprint, action="approve_once")
            assert (raced.status, (await raced.json())["error"]) == (409, "input_race")
            assert not await _shows(agent, "hello from hello.py")  # nothing was approved
            # Overridden on purpose, broadcast input goes through.
            forced = await olga.post("/api/input", json={"agents": ["guarded"], "data": "\x1b",
                                                         "override": True})  # fmt: skip
            assert (await forced.json())["results"]["guarded"]["ok"]
        finally:
            await end_pane(agent)


async def settled(http: aiohttp.ClientSession, agent_id: str, want: bool) -> None:
    """Until the agent's prompt is (or, with SETTLE raised, is no longer) answerable."""

    async def holds() -> bool:
        prompt = (await agent_of(http, agent_id))["prompt"]
        return bool(prompt and prompt["settled"] is want)

    await eventually(holds, message=f"the prompt settled: {want}")


async def _shows(agent: LocalAgent, text: str) -> bool:
    return text in await agent.capture()
