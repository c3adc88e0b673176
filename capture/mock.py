"""A loopback mock of the model APIs the agent CLIs call, answering from a script.

Three dialects, each what one CLI speaks:

- ``anthropic``: Claude Code's Messages API (``POST /v1/messages``, SSE);
- ``gemini``: Gemini CLI's ``streamGenerateContent?alt=sse`` and the
  non-streaming ``generateContent`` its model router calls first;
- ``openai``: Codex CLI's Responses API (``POST /v1/responses``, SSE).

The answer to a request of the main conversation is the scenario's reply
number *n*, where *n* is how many answers the conversation already holds: a
tool result comes back with the first answer in it and gets the second. A
side request (a title, the router's choice of model) gets a short fixed
answer. Every request is logged as one JSON line (``--log``); ``--dump``
keeps whole bodies, for writing a new dialect.

Run inside the capture's network namespace by :mod:`capture.sandbox`.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import dataclasses
import itertools
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .script import Reply, Scenario, load

_ids = itertools.count(1)


def _sse(event: str | None, data: dict[str, Any]) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --- anthropic ---------------------------------------------------------------


def anthropic_turns(body: dict[str, Any]) -> int:
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def anthropic_main(body: dict[str, Any]) -> bool:
    # Claude Code's own side requests (a session title, a topic) offer no tools.
    return bool(body.get("tools"))


def side_title(body: dict[str, Any]) -> str:
    """A session title, as the CLI asks a small model for one: the user's first words."""
    text = json.dumps(body.get("messages", [])[:1])
    match = re.search(r"<session>\\n(.*?)\\n", text)
    words = (match.group(1) if match else "Agent session").split()[:3]
    return " ".join(words)


def anthropic_events(reply: Reply, model: str) -> list[bytes]:
    n = next(_ids)
    out = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_mock{n}", "type": "message", "role": "assistant",
                    "model": model, "content": [], "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        )
    ]  # fmt: skip
    index = 0
    text = reply.body()
    if text:
        out.append(_sse("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""},
        }))  # fmt: skip
        for piece in _chunks(text):
            out.append(_sse("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": piece},
            }))  # fmt: skip
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    tool: tuple[str, dict[str, Any]] | None = None
    if reply.shell:
        tool = ("Bash", {"command": reply.shell, "description": reply.why or reply.shell})
    elif reply.file:
        tool = ("Edit", {"file_path": reply.file, "old_string": reply.old, "new_string": reply.new})
    elif reply.tool:
        tool = (reply.tool, json.loads(reply.input or "{}"))
    if tool is not None:
        out.append(_sse("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": f"toolu_mock{n}", "name": tool[0],
                              "input": {}},
        }))  # fmt: skip
        out.append(_sse("content_block_delta", {
            "type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": json.dumps(tool[1])},
        }))  # fmt: skip
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(_sse("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 20},
    }))  # fmt: skip
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return out


def anthropic_error(status: int) -> dict[str, Any]:
    kinds = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}
    kind = kinds.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": f"mock {kind} ({status})"}}


# --- gemini ------------------------------------------------------------------


def gemini_turns(body: dict[str, Any]) -> int:
    """Answers already in the conversation: model turns that called a tool or spoke."""
    return sum(1 for c in body.get("contents", []) if c.get("role") == "model")


def gemini_chunk(parts: list[dict[str, Any]], finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-mock"}
    if finish:
        candidate["finishReason"] = "STOP"
        out["usageMetadata"] = {
            "promptTokenCount": 12, "candidatesTokenCount": 20, "totalTokenCount": 32,
        }  # fmt: skip
    return out


def gemini_events(reply: Reply) -> list[bytes]:
    out = []
    text = reply.body()
    pieces = _chunks(text, 48) if text else []
    call = None
    if reply.shell:
        call = {
            "name": "run_shell_command",
            "args": {"command": reply.shell, "description": reply.why or reply.shell},
        }
    elif reply.file:
        call = {
            "name": "replace",
            "args": {
                "file_path": reply.file,
                "old_string": reply.old,
                "new_string": reply.new,
                "instruction": reply.why,
            },
        }
    elif reply.tool:
        call = {"name": reply.tool, "args": json.loads(reply.input or "{}")}
    for i, piece in enumerate(pieces):
        out.append(
            _sse(None, gemini_chunk([{"text": piece}], call is None and i == len(pieces) - 1))
        )
    if call is not None:
        out.append(_sse(None, gemini_chunk([{"functionCall": call}], True)))
    if not out:
        out.append(_sse(None, gemini_chunk([{"text": ""}], True)))
    return out


def gemini_side(body: dict[str, Any]) -> dict[str, Any]:
    """A side request's JSON answer: the router picks flash, the user speaks next."""
    config = body.get("generationConfig", {})
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
    answer: dict[str, Any] = {}
    for key, prop in (schema.get("properties") or {}).items():
        if key == "next_speaker":
            answer[key] = "user"
        elif "enum" in prop:
            answer[key] = prop["enum"][0]
        elif prop.get("type") in ("boolean", "BOOLEAN"):
            answer[key] = False
        elif prop.get("type") in ("number", "integer", "NUMBER", "INTEGER"):
            answer[key] = 0
        else:
            answer[key] = "mock"
    return gemini_chunk([{"text": json.dumps(answer)}], True)


def gemini_error(status: int) -> dict[str, Any]:
    names = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}
    return {"error": {"code": status, "message": f"mock error ({status})",
                      "status": names.get(status, "INTERNAL")}}  # fmt: skip


# --- openai (responses) ------------------------------------------------------


def openai_turns(body: dict[str, Any]) -> int:
    """Answers already in the conversation: each assistant message or tool call."""
    items = body.get("input", [])
    calls = {"function_call", "custom_tool_call", "local_shell_call"}
    turns, in_answer = 0, False
    for item in items:
        answered = item.get("type") in calls or (
            item.get("type", "message") == "message" and item.get("role") == "assistant"
        )
        if answered and not in_answer:
            turns += 1
        in_answer = answered
    return turns


def openai_events(reply: Reply, tool: dict[str, Any] | None) -> list[bytes]:
    n = next(_ids)
    rid, mid = f"resp_mock{n}", f"msg_mock{n}"
    out = [_sse("response.created", {"type": "response.created", "response": {"id": rid}})]
    text = reply.body()
    if text:
        item = {"type": "message", "role": "assistant", "id": mid, "content": []}
        out.append(
            _sse(
                "response.output_item.added",
                {"type": "response.output_item.added", "output_index": 0, "item": item},
            )
        )
        for piece in _chunks(text):
            out.append(
                _sse(
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "item_id": mid,
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                    },
                )
            )
        done = {**item, "content": [{"type": "output_text", "text": text, "annotations": []}]}
        out.append(
            _sse(
                "response.output_item.done",
                {"type": "response.output_item.done", "output_index": 0, "item": done},
            )
        )
    if tool is not None:
        out.append(
            _sse(
                "response.output_item.done",
                {
                    "type": "response.output_item.done",
                    "output_index": 1,
                    "item": {**tool, "id": f"fc_mock{n}", "call_id": f"call_mock{n}"},
                },
            )
        )
    out.append(
        _sse(
            "response.completed",
            {
                "type": "response.completed",
                "response": {
                    "id": rid,
                    "usage": {
                        "input_tokens": 12,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": 20,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 32,
                    },
                },
            },
        )
    )
    return out  # fmt: skip


def openai_title(body: dict[str, Any]) -> str:
    for item in body.get("input", []):
        if item.get("role") == "user":
            for part in item.get("content", []):
                text = part.get("text", "")
                if not text.startswith("<") and "title" not in text:
                    return " ".join(text.split()[:3])
    return "Agent session"


def openai_tool(reply: Reply, body: dict[str, Any]) -> dict[str, Any] | None:
    """The reply's tool call, in the shape of a tool the request offers."""
    if reply.tool:
        return {"type": "function_call", "name": reply.tool, "arguments": reply.input or "{}"}
    if not (reply.shell or reply.file):
        return None
    names = {t.get("name") for t in body.get("tools", [])}
    if reply.shell:
        args: dict[str, Any] = {
            "cmd": reply.shell, "sandbox_permissions": "require_escalated",
            "justification": reply.why or f"Run {reply.shell}",
        }  # fmt: skip
        name = "exec_command" if "exec_command" in names else "shell_command"
        if name == "shell_command":
            args = {"command": reply.shell, "with_escalated_permissions": True,
                    "justification": args["justification"]}  # fmt: skip
        return {"type": "function_call", "name": name, "arguments": json.dumps(args)}
    patch = (
        f"*** Begin Patch\n*** Update File: {reply.file}\n@@\n"
        + "".join(f"-{line}\n" for line in reply.old.splitlines())
        + "".join(f"+{line}\n" for line in reply.new.splitlines())
        + "*** End Patch\n"
    )
    return {"type": "custom_tool_call", "name": "apply_patch", "input": patch}


def openai_error(status: int) -> dict[str, Any]:
    return {"error": {"message": f"mock error ({status})", "type": "mock_error", "code": None}}


# --- the server --------------------------------------------------------------


class Mock:
    def __init__(
        self,
        scenario: Scenario,
        dialect: str,
        log: Path | None,
        dump: Path | None,
        project: str = "",
    ):
        self.scenario = scenario
        self.project = project
        self.dialect = dialect
        self._log = log
        self._dump = dump
        self._started = time.monotonic()

    def record(self, request: web.Request, body: Any, what: str, status: int) -> None:
        entry = {
            "t": round(time.monotonic() - self._started, 3),
            "method": request.method,
            "path": request.path_qs,
            "answer": what,
            "status": status,
        }
        if isinstance(body, dict):
            for key in ("model", "stream"):
                if key in body:
                    entry[key] = body[key]
        if self._log:
            with self._log.open("a") as log:
                log.write(json.dumps(entry) + "\n")
        if self._dump:
            self._dump.mkdir(parents=True, exist_ok=True)
            n = len(list(self._dump.iterdir()))
            (self._dump / f"{n:03d}.json").write_text(
                json.dumps({"entry": entry, "headers": dict(request.headers), "body": body},
                           indent=1)
            )  # fmt: skip

    def reply(self, turn: int) -> Reply:
        replies = self.scenario.replies
        if turn >= len(replies):
            return Reply(text="Done.")
        # Tools want absolute paths: "{project}" is the folder the CLI runs in.
        reply = replies[turn]
        return dataclasses.replace(
            reply,
            file=reply.file.replace("{project}", self.project),
            input=reply.input.replace("{project}", self.project),
        )

    async def _stream(self, request: web.Request, events: list[bytes]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(event)
            await asyncio.sleep(0.01)  # a model streams; a TUI draws as it arrives
        await response.write_eof()
        return response

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", "claude"))
        if not anthropic_main(body):
            reply = Reply(text=json.dumps({"title": side_title(body)}))
            self.record(request, body, "side", 200)
        else:
            turn = anthropic_turns(body)
            reply = self.reply(turn)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.error:
                self.record(request, body, f"reply {turn}: error", reply.error)
                return web.json_response(anthropic_error(reply.error), status=reply.error)
            self.record(request, body, f"reply {turn}", 200)
        if not body.get("stream"):
            return web.json_response({
                "id": f"msg_mock{next(_ids)}", "type": "message", "role": "assistant",
                "model": model, "content": [{"type": "text", "text": reply.body()}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 3},
            })  # fmt: skip
        return await self._stream(request, anthropic_events(reply, model))

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        method = request.match_info["method"]
        if method == "countTokens":
            self.record(request, body, "count", 200)
            return web.json_response({"totalTokens": 12})
        if method != "streamGenerateContent" or not body.get("tools"):
            self.record(request, body, "side", 200)
            answer = gemini_side(body)
            if method == "streamGenerateContent":
                return await self._stream(request, [_sse(None, answer)])
            return web.json_response(answer)
        turn = gemini_turns(body)
        reply = self.reply(turn)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error:
            self.record(request, body, f"reply {turn}: error", reply.error)
            return web.json_response(gemini_error(reply.error), status=reply.error)
        self.record(request, body, f"reply {turn}", 200)
        return await self._stream(request, gemini_events(reply))

    async def openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("tools"):  # the thread's title, asked for apart
            self.record(request, body, "side", 200)
            title = Reply(text=json.dumps({"title": openai_title(body)}))
            return await self._stream(request, openai_events(title, None))
        turn = openai_turns(body)
        reply = self.reply(turn)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.error:
            self.record(request, body, f"reply {turn}: error", reply.error)
            return web.json_response(openai_error(reply.error), status=reply.error)
        self.record(request, body, f"reply {turn}", 200)
        return await self._stream(request, openai_events(reply, openai_tool(reply, body)))

    async def other(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")[:2000]
        if request.method == "HEAD" or request.path == "/":
            self.record(request, body, "root", 200)
            return web.Response(text="ok")
        self.record(request, body, "unknown", 404)
        return web.json_response({"error": {"message": "not mocked"}}, status=404)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        routes: dict[str, list[tuple[str, str, Callable[..., Any]]]] = {
            "anthropic": [("POST", "/v1/messages", self.anthropic)],
            "gemini": [("POST", "/{version}/models/{model}:{method}", self.gemini)],
            "openai": [("POST", "/v1/responses", self.openai)],
        }
        for method, path, handler in routes.get(self.dialect, []):
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self.other)
        return app


def _die_with_parent() -> None:
    # The sandbox execs the CLI's shell after starting us: when that ends,
    # so do we (PR_SET_PDEATHSIG), instead of holding the namespace open.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)
    if os.getppid() == 1:
        sys.exit(0)


async def serve(mock: Mock, port: int, ready: Path | None) -> None:
    runner = web.AppRunner(mock.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if ready:
        ready.write_text(str(os.getpid()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m capture.mock")
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--dialect", required=True, choices=["anthropic", "gemini", "openai"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--project", default="")
    args = parser.parse_args(argv)
    _die_with_parent()
    mock = Mock(load(args.scenario), args.dialect, args.log, args.dump, args.project)
    asyncio.run(serve(mock, args.port, args.ready))


if __name__ == "__main__":
    main()
