"""The capture tool's model-API mock: each dialect answers as the CLI expects.

The CLIs themselves are the real test (tests/fixtures/agents/ was recorded
against this mock); this pins the parts a CLI upgrade may need changed: the
reply picked by the conversation's length, tool calls in each wire format,
errors, and the side requests that must not use a scripted reply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from capture.mock import Mock
from capture.script import load

SCRIPT = """cli = "claude"
[[reply]]
text = "I'll run it."
shell = "python3 hello.py"
why = "Run hello.py"
[[reply]]
text = "It printed hello."
[[reply]]
error = 429
[[step]]
keys = "x"
[label]
state = "idle"
"""


@pytest.fixture
async def mock(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    path = tmp_path / "s.toml"
    path.write_text(SCRIPT)
    server = Mock(load(path), request.param, tmp_path / "log.jsonl", None, str(tmp_path))
    async with TestClient(TestServer(server.app())) as client:
        yield client


def events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def said(anthropic: list[dict[str, Any]]) -> str:
    deltas = [e["delta"] for e in anthropic if e["type"] == "content_block_delta"]
    return "".join(d.get("text", "") for d in deltas)


@pytest.mark.parametrize("mock", ["anthropic"], indirect=True)
async def test_anthropic_replies_by_turn_with_a_bash_tool_use(mock: TestClient[Any, Any]) -> None:
    ask: dict[str, Any] = {"model": "m", "stream": True, "tools": [{"name": "Bash"}],
                           "messages": [{"role": "user", "content": "run"}]}  # fmt: skip
    first = events(await (await mock.post("/v1/messages?beta=true", json=ask)).text())
    text = said(first)
    tool = [e["content_block"] for e in first if e["type"] == "content_block_start"][-1]
    args = json.loads(next(e["delta"]["partial_json"] for e in first
                           if e.get("delta", {}).get("type") == "input_json_delta"))  # fmt: skip
    assert (text, tool["name"], args["command"]) == ("I'll run it.", "Bash", "python3 hello.py")
    assert first[-2]["delta"]["stop_reason"] == "tool_use"
    ask["messages"] += [{"role": "assistant", "content": []}, {"role": "user", "content": []}]
    second = events(await (await mock.post("/v1/messages", json=ask)).text())
    assert "It printed hello." in json.dumps(second)
    ask["messages"] += [{"role": "assistant", "content": []}, {"role": "user", "content": []}]
    third = await mock.post("/v1/messages", json=ask)
    assert third.status == 429
    assert (await third.json())["error"]["type"] == "rate_limit_error"
    # A title request (no tools) never takes a scripted reply.
    session = "<session>\nRun hello.py now\n</session>"
    side = {"model": "h", "stream": True, "tools": [], "messages": [
        {"role": "user", "content": [{"type": "text", "text": session}]}]}  # fmt: skip
    titled = events(await (await mock.post("/v1/messages", json=side)).text())
    assert json.loads(said(titled)) == {"title": "Run hello.py now"}


@pytest.mark.parametrize("mock", ["gemini"], indirect=True)
async def test_gemini_replies_by_turn_with_a_function_call(mock: TestClient[Any, Any]) -> None:
    url = "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    ask: dict[str, Any] = {"tools": [{"functionDeclarations": []}],
                           "contents": [{"role": "user", "parts": [{"text": "run"}]}]}  # fmt: skip
    first = events(await (await mock.post(url, json=ask)).text())
    parts = [p for e in first for p in e["candidates"][0]["content"]["parts"]]
    assert parts[-1]["functionCall"]["name"] == "run_shell_command"
    assert parts[-1]["functionCall"]["args"]["command"] == "python3 hello.py"
    assert first[-1]["candidates"][0]["finishReason"] == "STOP"
    ask["contents"] += [{"role": "model", "parts": []}, {"role": "user", "parts": []}]
    assert "It printed hello." in await (await mock.post(url, json=ask)).text()
    # The router's classifier: a JSON answer fitting the schema it asks for.
    schema = {"properties": {"model_choice": {"enum": ["flash", "pro"]},
                             "complexity_score": {"type": "INTEGER"}}}  # fmt: skip
    router = await mock.post("/v1beta/models/lite:generateContent",
                             json={"generationConfig": {"responseJsonSchema": schema}})  # fmt: skip
    text = (await router.json())["candidates"][0]["content"]["parts"][0]["text"]
    assert json.loads(text) == {"model_choice": "flash", "complexity_score": 0}


@pytest.mark.parametrize("mock", ["openai"], indirect=True)
async def test_openai_replies_by_turn_with_an_escalated_exec(
    mock: TestClient[Any, Any],
) -> None:
    user = {"type": "message", "role": "user", "content": []}
    ask: dict[str, Any] = {"tools": [{"name": "exec_command"}], "stream": True, "input": [user]}
    first = events(await (await mock.post("/v1/responses", json=ask)).text())
    call = [e["item"] for e in first if e["type"] == "response.output_item.done"][-1]
    assert call["name"] == "exec_command"
    assert json.loads(call["arguments"])["sandbox_permissions"] == "require_escalated"
    assert first[-1]["type"] == "response.completed"
    # A message and its tool call are one answer; their output does not count.
    ask["input"] += [{"type": "message", "role": "assistant"}, call,
                     {"type": "function_call_output", "output": "ok"}]  # fmt: skip
    assert "It printed hello." in await (await mock.post("/v1/responses", json=ask)).text()


@pytest.mark.parametrize("mock", ["anthropic"], indirect=True)
async def test_what_is_not_mocked_is_a_404_and_logged(
    mock: TestClient[Any, Any], tmp_path: Path
) -> None:
    assert (await mock.get("/v1/models")).status == 404
    assert (await mock.head("/")).status == 200
    logged = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(e["path"], e["status"]) for e in logged] == [("/v1/models", 404), ("/", 200)]
