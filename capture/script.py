"""A capture scenario: what the model answers, which keys are pressed, the label.

One TOML file per scenario, ``capture/scenarios/NAME.toml``::

    cli = "claude"                      # claude | gemini | codex | shell
    description = "asked to run hello.py, waits at its Bash permission"

    [[reply]]                           # the model's answers, turn by turn
    text = "I'll run it."
    shell = "python3 hello.py"          # a tool call: run this command
    why = "Run hello.py"

    [[step]]
    keys = "claude\\r"                  # sent as they are
    [[step]]
    wait = "\\? for shortcuts"          # a regex the pane's text must match
    [[step]]
    type = "Run hello.py"               # typed a character at a time

    [label]                             # what the final screen is
    state = "waiting_approval"

A reply is picked by how many answers the conversation already holds, so a
CLI that sends a request again (a retry, a second client) gets the same one.
Loading checks every key: a typo is an error naming the file and the key,
not a scenario that silently does something else.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.awareness.classify import Option
from gateway.awareness.profile import KINDS, ROLES, STATES

# Labels use the classifier's own words: a label is what it must say.
__all__ = ["CLIS", "KINDS", "ROLES", "STATES", "Label", "Option", "Prompt", "Reply",
           "Scenario", "ScriptError", "Step", "load"]  # fmt: skip

CLIS = ("claude", "gemini", "codex", "shell")


class ScriptError(ValueError):
    """A scenario file that cannot be used; the message names file and key."""


@dataclass(frozen=True)
class Reply:
    """One model answer: some text, then at most one tool call, or an error."""

    text: str = ""
    #: Numbered prose lines appended to ``text``: a long answer (scrollback).
    lines: int = 0
    shell: str = ""
    why: str = ""
    #: An edit: replace ``old`` by ``new`` in ``file`` (relative to the project).
    file: str = ""
    old: str = ""
    new: str = ""
    #: Any other tool call: the tool's name and its input as JSON (a question).
    tool: str = ""
    input: str = ""
    #: An HTTP error status instead of an answer (401, 429, 500, ...).
    error: int = 0
    #: Seconds to wait before answering (a model that thinks).
    delay: float = 0.0

    def body(self) -> str:
        if not self.lines:
            return self.text
        rows = [
            f"{n}. Line {n} of {self.lines}: the **quick** brown fox `jumps` over the lazy dog."
            for n in range(1, self.lines + 1)
        ]
        return "\n".join([self.text, "", *rows]) if self.text else "\n".join(rows)


@dataclass(frozen=True)
class Step:
    keys: str = ""
    type: str = ""
    wait: str = ""
    timeout: float = 30.0
    sleep: float = 0.0


@dataclass(frozen=True)
class Prompt:
    kind: str
    question: str
    subject: str
    selected: int
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Label:
    state: str
    prompt: Prompt | None = None
    notes: str = ""
    #: The states the agent goes through, in order (others may come between).
    timeline: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    cli: str
    description: str
    replies: tuple[Reply, ...]
    steps: tuple[Step, ...]
    label: Label
    columns: int = 120
    rows: int = 40
    #: Files of the project folder the CLI starts in (name → content).
    files: dict[str, str] = field(default_factory=dict)
    #: The CLI already trusts the project folder and is signed in: no dialogs.
    trusted: bool = True
    signed_in: bool = True
    #: The project folder is a git repository (Codex asks to trust only those).
    git: bool = False


DEFAULT_FILES = {"hello.py": 'print("hello from hello.py")\n'}


def _take(table: dict[str, Any], allowed: dict[str, type], where: str) -> dict[str, Any]:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ScriptError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(allowed)})")
    for key, value in table.items():
        want = allowed[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ScriptError(f"{where}: {key!r} must be {want.__name__}, not {value!r}")
    return table


def _reply(table: dict[str, Any], where: str) -> Reply:
    fields = {
        "text": str, "lines": int, "shell": str, "why": str, "file": str,
        "old": str, "new": str, "error": int, "delay": float, "tool": str, "input": str,
    }  # fmt: skip
    reply = Reply(**_take(table, fields, where))
    if sum(bool(x) for x in (reply.shell, reply.file, reply.tool)) > 1:
        raise ScriptError(f"{where}: one tool call per reply (shell, file or tool)")
    if reply.tool:
        try:
            if not isinstance(json.loads(reply.input or "{}"), dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise ScriptError(f"{where}: input must be a JSON object: {exc}") from None
    if reply.error and not 400 <= reply.error <= 599:
        raise ScriptError(f"{where}: error must be an HTTP error status, not {reply.error}")
    if not 0 <= reply.lines <= 5000:
        raise ScriptError(f"{where}: lines must be 0..5000")
    return reply


def _step(table: dict[str, Any], where: str) -> Step:
    fields = {"keys": str, "type": str, "wait": str, "timeout": float, "sleep": float}
    step = Step(**_take(table, fields, where))
    if sum(bool(x) for x in (step.keys, step.type, step.wait, step.sleep)) != 1:
        raise ScriptError(f"{where}: a step is exactly one of keys, type, wait, sleep")
    if step.wait:
        try:
            re.compile(step.wait)
        except re.error as exc:
            raise ScriptError(f"{where}: wait is not a regex: {exc}") from None
    return step


def _label(table: dict[str, Any], where: str) -> Label:
    _take(table, {"state": str, "prompt": dict, "notes": str, "timeline": list}, where)
    timeline = table.get("timeline", [])
    bad = [s for s in timeline if s not in STATES]
    if bad:
        raise ScriptError(f"{where}: timeline has {bad[0]!r}, not a state")
    state = table.get("state", "")
    if state not in STATES:
        raise ScriptError(f"{where}: state must be one of {', '.join(STATES)}, not {state!r}")
    prompt = None
    if "prompt" in table:
        p = table["prompt"]
        pw = f"{where}.prompt"
        _take(
            p,
            {"kind": str, "question": str, "subject": str, "selected": int, "options": list},
            pw,
        )
        if p.get("kind") not in KINDS:
            raise ScriptError(f"{pw}: kind must be one of {', '.join(KINDS)}")
        options = []
        for i, o in enumerate(p.get("options", [])):
            ow = f"{pw}.options[{i}]"
            if not isinstance(o, dict):
                raise ScriptError(f"{ow}: must be a table")
            _take(o, {"n": int, "label": str, "role": str, "key": str}, ow)
            if o.get("role") not in ROLES:
                raise ScriptError(f"{ow}: role must be one of {', '.join(ROLES)}")
            options.append(Option(o["n"], o["label"], o["role"], o["key"]))
        if not options:
            raise ScriptError(f"{pw}: a prompt has options")
        prompt = Prompt(
            p["kind"], p.get("question", ""), p.get("subject", ""),
            p.get("selected", 1), tuple(options),
        )  # fmt: skip
    return Label(state, prompt, table.get("notes", ""), tuple(timeline))


def load(path: Path) -> Scenario:
    """Read and check one scenario file."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScriptError(f"{where}: {exc}") from None
    top = {
        "cli": str, "description": str, "reply": list, "step": list, "label": dict,
        "columns": int, "rows": int, "files": dict, "trusted": bool, "signed_in": bool,
        "git": bool,
    }  # fmt: skip
    _take(data, top, where)
    if data.get("cli") not in CLIS:
        raise ScriptError(f"{where}: cli must be one of {', '.join(CLIS)}")
    if "label" not in data or not data.get("step"):
        raise ScriptError(f"{where}: a scenario has steps and a label")
    files = dict(DEFAULT_FILES)
    for name, content in data.get("files", {}).items():
        if not isinstance(content, str) or "/" in name or name.startswith("."):
            raise ScriptError(f"{where}: files.{name}: a plain file name and its text")
        files[name] = content
    return Scenario(
        name=path.stem,
        cli=data["cli"],
        description=data.get("description", ""),
        replies=tuple(
            _reply(r, f"{where}: reply[{i}]") for i, r in enumerate(data.get("reply", []))
        ),
        steps=tuple(_step(s, f"{where}: step[{i}]") for i, s in enumerate(data["step"])),
        label=_label(data["label"], f"{where}: label"),
        columns=data.get("columns", 120),
        rows=data.get("rows", 40),
        files=files,
        trusted=data.get("trusted", True),
        signed_in=data.get("signed_in", True),
        git=data.get("git", False),
    )
