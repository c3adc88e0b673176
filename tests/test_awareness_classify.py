"""The classifier on real screens: every CLI in every state, through both backends.

The corpus is this repository's (tests/fixtures/agents/, made by ``python -m
capture``: the real CLIs, offline) plus the older captures in agent-tui/.
Each stream is replayed as a ttyd client received it, in its own pieces and
in others, on a fake clock, and looked at as the gateway would (after quiet,
at a bounded rate under continuous output): the final verdict must be the
label, the prompt parsed exactly, the timeline the scenario's (no flaps).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.awareness.classify import (
    IDLE_INTERVAL,
    LEAVE_AFTER,
    QUIET,
    Cadence,
    Facts,
    Tracker,
    Verdict,
)
from gateway.screen.ghostty import UNAVAILABLE, GhosttyScreen
from gateway.screen.reference import PyteScreen

from .test_screen_backends import BACKENDS

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "fixtures" / "agents"
OLDER = HERE / "fixtures" / "agent-tui"
WAITING = ("waiting_approval", "waiting_input", "setup_required")

#: None: the pieces ttyd sent; a number: pieces of that many bytes instead.
CHUNKS = [None, 256, 4096]


# The older captures have no label file: what their screens are.
def _option(n: int, label: str, role: str = "other") -> dict[str, Any]:
    return {"n": n, "label": label, "role": role, "key": "esc" if role == "deny" else str(n)}


OLDER_LABELS: dict[str, dict[str, Any]] = {
    "gemini": {
        "state": "setup_required",
        "prompt": {
            "kind": "trust",
            "question": "Do you trust the files in this folder?",
            "subject": "",
            "selected": 3,
            "options": [
                _option(1, "Trust folder (project)", "approve_once"),
                _option(2, "Trust parent folder (agent)"),
                _option(3, "Don't trust", "deny"),
            ],
        },
    },
    "codex": {
        "state": "setup_required",
        "prompt": {
            "kind": "setup",
            "question": "Welcome to Codex, OpenAI's command-line coding agent",
            "subject": "",
            "selected": 3,
            "options": [
                _option(1, "Sign in with ChatGPT"),
                _option(2, "Sign in with Device Code"),
                _option(3, "Sign in another way"),
            ],
        },
    },
    "gemini-flow": {"state": "setup_required"},
}


@dataclass(frozen=True)
class Case:
    name: str
    folder: Path
    cli: str
    label: dict[str, Any]
    columns: int = 120
    rows: int = 40


def _corpus() -> list[Case]:
    cases = []
    for path in sorted(RECORDED.glob("*.json")):
        if path.name.endswith(".times.json"):
            continue
        meta = json.loads(path.read_text())
        terminal = meta["terminal"]
        cases.append(
            Case(path.stem, RECORDED, meta["cli"], meta["label"], terminal["columns"],
                 terminal["rows"])
        )  # fmt: skip
    for name, label in OLDER_LABELS.items():
        cases.append(Case(name, OLDER, name.split("-")[0], label))
    return cases


CORPUS = _corpus()
NEGATIVES = [c for c in CORPUS if "quoted-prompt" in c.name]


def _pieces(case: Case, size: int | None) -> list[tuple[float, bytes]]:
    data = (case.folder / f"{case.name}.bin").read_bytes()
    times_path = case.folder / f"{case.name}.times.json"
    if times_path.exists():
        times = json.loads(times_path.read_text())
    else:  # no timing kept: a piece every 10 ms
        times = [[i * 0.01, offset] for i, offset in enumerate(range(0, len(data), 1024))]
    out = []
    for i, (at, offset) in enumerate(times):
        end = times[i + 1][1] if i + 1 < len(times) else len(data)
        step = size or max(end - offset, 1)
        out += [(at, data[k : min(k + step, end)]) for k in range(offset, end, step)]
    return out


Timeline = list[tuple[float, Verdict]]


def replay(case: Case, backend: Callable[[int, int], Any], size: int | None) -> Timeline:
    """The verdicts a gateway would reach, on a fake clock: (time, verdict) at each change."""
    screen = backend(case.columns, case.rows)
    tracker, cadence = Tracker(), Cadence()
    timeline: Timeline = []

    def look(now: float) -> None:
        changed = cadence.looked(now)
        lines = tuple(screen.text().split("\n")[: case.rows]) if changed else None
        verdict = tracker.update(Facts(lines, screen.cursor, screen.title, now))
        last = timeline[-1][1] if timeline else None
        if last is None or (last.profile, last.state) != (verdict.profile, verdict.state):
            timeline.append((now, verdict))
        else:
            timeline[-1] = (timeline[-1][0], verdict)

    def next_look() -> float:
        if not cadence.dirty:
            return cadence.last_look + IDLE_INTERVAL
        return min(cadence.last_output + QUIET, max(cadence.last_look, cadence.first_dirty) + 1.0)

    look(0.0)
    pieces = _pieces(case, size)
    for at, data in pieces:
        while (when := next_look()) < at:
            look(when)
        screen.feed(data)
        cadence.output(at)
        if cadence.due(at):
            look(at)
    end = pieces[-1][0]
    for later in (QUIET, 0.5, 1.0, 1.5, 2.0, 3.0):
        look(end + later)
    return timeline


def _options(prompt: Any) -> list[dict[str, Any]]:
    return [o.to_json() for o in prompt.options]


_replayed: dict[tuple[str, str, int | None], Timeline] = {}


def replayed(case: Case, backend: Any, size: int | None) -> Timeline:
    """:func:`replay`, once per case, backend and piece size for all the tests here."""
    key = (case.name, backend.__name__, size)
    if key not in _replayed:
        _replayed[key] = replay(case, backend, size)
    return _replayed[key]


@pytest.mark.parametrize("size", CHUNKS, ids=lambda s: f"pieces-{s or 'ttyd'}")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_the_verdict_is_the_label(case: Case, backend: Any, size: int | None) -> None:
    timeline = replayed(case, backend, size)
    final = timeline[-1][1]
    assert final.state == case.label["state"], [(round(t, 2), v.state) for t, v in timeline]
    want = case.label.get("prompt")
    if final.state in WAITING and want is not None:
        prompt = final.prompt
        assert prompt is not None
        assert (prompt.kind, prompt.question, prompt.subject, prompt.selected) == (
            want["kind"], want["question"], want["subject"], want["selected"],
        )  # fmt: skip
        assert _options(prompt) == want["options"]
        assert final.settled
    if final.state not in WAITING:
        assert final.prompt is None  # nothing anyone could answer
    # The scenario's course, among the CLI's own verdicts, in order.
    course = [v.state for _, v in timeline if v.reason.startswith(f"{case.cli}.")]
    expected = iter(course)
    assert all(state in expected for state in case.label.get("timeline", [])), course
    # No flaps: a state left and taken again only after another held a while
    # (the shell's idle, then the CLI's, is no flap: it started meanwhile).
    for (_, before), (at, middle), (until, after) in zip(
        timeline, timeline[1:], timeline[2:], strict=False
    ):
        if (before.profile, before.state) == (after.profile, after.state):
            assert until - at >= LEAVE_AFTER, (before.state, middle.state, at, until)


def test_waiting_recall_and_precision_over_the_corpus() -> None:
    """The issue's bar, over every case, backend and piece size: recall ≥ 0.98, precision ≥ 0.97."""
    hits = misses = false = 0
    backends = [PyteScreen] + ([GhosttyScreen] if UNAVAILABLE is None else [])
    for case in CORPUS:
        for backend in backends:
            for size in CHUNKS:
                got = replayed(case, backend, size)[-1][1].state in WAITING
                want = case.label["state"] in WAITING
                hits += got and want
                misses += want and not got
                false += got and not want
    assert hits > 0
    assert hits / (hits + misses) >= 0.98
    assert hits / (hits + false) >= 0.97


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", NEGATIVES, ids=lambda c: c.name)
def test_a_quoted_dialog_is_never_a_prompt(case: Case, backend: Any) -> None:
    """Model prose quoting every CLI's dialog, options and all: never waiting, nothing to answer."""
    for size in CHUNKS:
        for _, verdict in replayed(case, backend, size):
            assert verdict.state not in WAITING
            assert verdict.prompt is None


# --- the tracker and the cadence, on made-up moments ------------------------------


def _screen_of(name: str) -> tuple[str, ...]:
    screen = PyteScreen(120, 40)
    screen.feed((RECORDED / f"{name}.bin").read_bytes())
    return tuple(screen.text().split("\n")[:40])


IDLE = _screen_of("claude-idle-answered")
WORKING = _screen_of("claude-working")
ASKING = _screen_of("claude-approval-bash")
MOVED = _screen_of("claude-menu-moved")
EDIT = _screen_of("claude-approval-edit")
HIDDEN = (0, 0, False)


def _at(now: float, lines: tuple[str, ...] | None, **facts: Any) -> Facts:
    return Facts(lines, HIDDEN, "", now, **facts)


def test_a_prompt_settles_keeps_its_first_sighting_and_a_new_dialog_starts_over() -> None:
    tracker = Tracker("claude")
    first = tracker.update(_at(10.0, ASKING, inputs=3))
    assert (first.state, first.settled, first.inputs_at_prompt) == ("waiting_approval", False, 3)
    assert first.prompt is not None
    assert first.prompt.first_seen_at == 10.0
    later = tracker.update(_at(10.6, None, inputs=4))
    assert later.settled
    assert later.prompt is not None
    assert later.prompt.first_seen_at == 10.0
    assert later.inputs_at_prompt == 3  # input since the prompt appeared shows as 4 > 3
    # The highlight moved: the same dialog (its fingerprint ignores the highlight).
    moved = tracker.update(_at(11.0, MOVED, inputs=5))
    assert moved.prompt is not None
    assert (moved.prompt.fingerprint, moved.prompt.selected) == (first.prompt.fingerprint, 2)
    assert moved.prompt.first_seen_at == 10.0
    # Another dialog: another fingerprint, seen anew, not settled.
    edit = tracker.update(_at(11.2, EDIT, inputs=5))
    assert edit.prompt is not None
    assert edit.prompt.fingerprint != first.prompt.fingerprint
    assert (edit.prompt.first_seen_at, edit.settled, edit.inputs_at_prompt) == (11.2, False, 5)


def test_a_state_is_left_after_a_second_without_it_and_a_prompt_comes_at_once() -> None:
    tracker = Tracker("claude")
    assert tracker.update(_at(0.0, WORKING)).state == "working"
    assert tracker.update(_at(0.5, IDLE)).state == "working"  # a spinner's pause
    assert tracker.update(_at(0.9, None)).state == "working"
    assert tracker.update(_at(1.0, None)).state == "idle"
    assert tracker.update(_at(1.1, WORKING)).state == "idle"  # both ways
    assert tracker.update(_at(2.0, None)).state == "working"
    assert tracker.update(_at(2.1, ASKING)).state == "waiting_approval"  # attention: at once


def test_unread_until_someone_looks_or_types() -> None:
    tracker = Tracker("claude")
    tracker.update(_at(0.0, WORKING))
    done = tracker.update(_at(2.0, IDLE))
    assert (done.state, done.unread) == ("idle", True)
    assert tracker.update(_at(3.0, None)).unread
    assert not tracker.update(_at(4.0, None, viewers=1)).unread
    assert not tracker.update(_at(5.0, None)).unread  # looked at is read
    # A turn that ends while someone watches is read already; typing reads too.
    tracker.update(_at(6.0, WORKING, viewers=1))
    assert not tracker.update(_at(8.0, IDLE, viewers=1)).unread
    tracker.update(_at(9.0, WORKING, inputs=1))
    assert tracker.update(_at(11.0, IDLE, inputs=1)).unread
    assert not tracker.update(_at(12.0, None, inputs=2)).unread


def test_a_lost_connection_is_unknown_at_once_and_a_blank_screen_is_starting() -> None:
    tracker = Tracker("claude")
    assert tracker.update(_at(0.0, ("",) * 40)).state == "starting"
    assert tracker.update(_at(1.0, ASKING)).state == "waiting_approval"
    lost = tracker.update(_at(1.1, None, connected=False))
    assert (lost.state, lost.reason, lost.prompt) == ("unknown", "transport.down", None)


def test_auto_detects_the_cli_and_keeps_it_when_its_banner_is_gone() -> None:
    tracker = Tracker()
    assert tracker.update(_at(0.0, ASKING)).profile == "claude"
    plain = tuple(line.replace("Claude Code", "") for line in IDLE)
    assert tracker.update(_at(5.0, plain)).profile == "claude"
    # A command line names the CLI before anything is drawn.
    other = Tracker()
    assert other.update(_at(0.0, ("",) * 40, command="gemini --yolo")).profile == "gemini"


def test_the_cadence_looks_after_quiet_and_at_most_every_busy_interval() -> None:
    cadence = Cadence()
    cadence.looked(0.0)
    assert not cadence.due(0.1)
    cadence.output(0.2)
    assert not cadence.due(0.21)
    assert cadence.due(0.2 + QUIET)
    assert cadence.looked(0.25)  # the screen changed since
    # A flood: output every 10 ms, never quiet; a look once a second.
    looks = []
    for tick in range(1, 400):
        now = 0.25 + tick * 0.01
        cadence.output(now)
        if cadence.due(now):
            looks.append(now)
            cadence.looked(now)
    assert len(looks) == 3
    assert cadence.looked(5.0)  # the flood's end, once quiet
    assert not cadence.looked(5.1)  # nothing new since
    assert not cadence.due(5.1 + IDLE_INTERVAL / 2)
    assert cadence.due(5.1 + IDLE_INTERVAL)  # time alone moves hysteresis on


# --- what a hostile agent (or the model behind it) may print -----------------------

CODEX_ASKING = _screen_of("codex-approval-bash")


def _look(lines: tuple[str, ...] | list[str], profile: str = "claude") -> Any:
    from gateway.awareness.classify import observe
    from gateway.awareness.profile import builtin

    return observe(builtin(profile), list(lines), HIDDEN, "")


@pytest.mark.parametrize("digit", ["²", "①", "١", "߁", "９"])
def test_digits_that_are_not_ascii_are_no_option_and_no_crash(digit: str) -> None:
    lines = ["Do you want to proceed?", f"❯ {digit}. Yes", "  2. No", "Esc to cancel", *[""] * 36]
    seen = _look(lines)
    assert seen.prompt is None


def test_a_dialog_quoted_above_the_real_one_is_not_the_one_shown() -> None:
    """Prose drawing a harmless "Bash command" dialog above a real edit permission."""
    fake = ["─" * 120, " Bash command", "   echo safe", " Do you want to proceed?", " ❯ 1. Yes",
            "   2. Yes, and don’t ask again for: echo *", "   3. No", " Esc to cancel"]  # fmt: skip
    lines = (fake + list(EDIT))[:40]
    seen = _look(lines)
    assert seen.prompt is not None
    assert (seen.prompt.kind, seen.prompt.subject) == ("edit", "hello.py")


def test_the_fingerprint_covers_the_command_between_question_and_menu() -> None:
    swapped = [line.replace("$ python3 hello.py", "$ rm -rf ~") for line in CODEX_ASKING]
    real, evil = _look(CODEX_ASKING, "codex"), _look(swapped, "codex")
    assert real.prompt is not None
    assert evil.prompt is not None
    assert evil.prompt.subject == "rm -rf ~"
    assert evil.prompt.fingerprint != real.prompt.fingerprint


def test_a_prompt_that_went_and_came_back_is_a_new_one() -> None:
    tracker = Tracker("claude")
    tracker.update(_at(0.0, ASKING))
    assert tracker.update(_at(1.0, None)).settled
    tracker.update(_at(1.1, IDLE))  # answered outside the gateway: gone (hysteresis holds)
    again = tracker.update(_at(1.3, ASKING, inputs=1))  # the same command asked again
    assert again.prompt is not None
    assert (again.prompt.first_seen_at, again.settled, again.inputs_at_prompt) == (1.3, False, 1)


def test_an_option_past_nine_has_no_key_and_controls_are_shown_not_obeyed() -> None:
    menu = [f"  {n}. Option {n}" for n in range(1, 13)]
    lines = [
        "Do you want to make this edit to \u202erm -rf.py?",
        *menu,
        "Esc to cancel",
        *[""] * 26,
    ]
    seen = _look(lines)
    assert seen.prompt is not None
    assert [o.key for o in seen.prompt.options][8:] == ["9", "", "", ""]
    shown = seen.prompt.to_json()  # what leaves the gateway: a browser would reorder it
    assert shown["subject"] == "\\u202erm -rf.py"
    assert "\u202e" not in json.dumps(shown, ensure_ascii=False)


def test_an_answer_by_role_needs_exactly_one_option_with_it() -> None:
    """Claude's plan dialog has three "yes"es: "approve_once" must not pick one of them."""
    from gateway.awareness.classify import Option, Prompt
    from gateway.web.prompts import _option

    options = (Option(1, "Yes, and bypass permissions", "approve_once", "1"),
               Option(2, "Yes, and manually approve edits", "approve_once", "2"),
               Option(3, "No, keep planning", "deny", "esc"),
               Option(10, "Tenth", "other", ""))  # fmt: skip
    plan = Prompt("plan", "Would you like to proceed?", "", options, 1, "0" * 16, "claude.plan")
    assert _option(plan, {"action": "approve_once"}) is None
    assert _option(plan, {"action": "deny"}) == options[2]
    assert _option(plan, {"action": "option", "n": 2}) == options[1]
    assert _option(plan, {"action": "option", "n": 10}) is None  # no single key for it
