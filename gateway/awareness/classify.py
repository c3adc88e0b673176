"""What an agent is doing, from its screen: a sans-I/O classifier with hysteresis.

:func:`observe` is one look: a profile applied to the screen's lines, cursor
and title, with no memory and no clock. :class:`Tracker` adds time (a clock
is passed in, never read): which profile (detected, then sticky), how long a
state has held, when a prompt was first seen, "unread" after a turn ends,
and hysteresis, so that a TUI that repaints the whole screen per key, or a
spinner that pauses, does not make the state flap.

One look, in order (the first that holds wins):

1. a dialog of the profile's (:class:`PromptRule`): its question (or
   footer) and the numbered menu right below it, with no live input box
   (composer) further down: model prose that quotes a dialog sits above the
   composer, and is not one;
2. the shell's prompt at a visible cursor: the CLI exited (for the shell
   profile: idle);
3. the profile's rules (errors, work), each in its region: the whole
   screen, the rows of the last turn above the composer, the rows below it
   (footers), or the title;
4. a composer: idle;
5. nothing: unknown (starting, shortly after the agent appeared).
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Final

from .profile import PROMPT_STATES, Profile, PromptRule, Rule, builtin

__all__ = [
    "ATTENTION",
    "LEAVE_AFTER",
    "SETTLE",
    "Facts",
    "Option",
    "Prompt",
    "Seen",
    "Tracker",
    "Verdict",
    "observe",
]

#: A prompt is answerable once it has held this long (a dialog being drawn,
#: or replaced by the next one, is not a dialog to answer).
SETTLE: Final = 0.5
#: A state is left only after this long without evidence for it (spinners
#: pause, TUIs repaint), unless what replaces it needs attention.
LEAVE_AFTER: Final = 1.0
#: An agent whose profile saw nothing yet, for this long, is starting.
STARTING_FOR: Final = 15.0
#: States that put an agent in the attention inbox (idle only when unread).
ATTENTION: Final = ("waiting_approval", "waiting_input", "setup_required", "errored", "exited")
#: States entered at once, whatever held before.
_IMMEDIATE: Final = (*PROMPT_STATES, "errored", "exited")

_BORDERS: Final = " │┃║╎╏"
_RULE_CHARS: Final = frozenset("─━═╌╍┄┅┈┉-_ ╭╮╰╯┌┐└┘├┤")
#: Lines a menu may start below its question, and non-option lines inside it.
_MENU_START: Final = 14
_MENU_GAP: Final = 3
_DETECTABLE: Final = ("claude", "gemini", "codex")


def shown(text: str) -> str:
    """``text`` with control and format characters (bidi overrides, zero widths) made visible.

    An agent prints what it likes; a browser would reorder or hide these in
    the inbox, and a terminal draws them otherwise: the two must not differ.
    """
    return "".join(
        f"\\u{ord(c):04x}" if c != "\n" and unicodedata.category(c) in ("Cc", "Cf") else c
        for c in text
    )


@dataclass(frozen=True)
class Option:
    n: int
    label: str
    role: str
    key: str

    def to_json(self) -> dict[str, object]:
        return {"n": self.n, "label": shown(self.label), "role": self.role, "key": self.key}


@dataclass(frozen=True)
class Prompt:
    kind: str
    question: str
    subject: str
    options: tuple[Option, ...]
    selected: int | None
    fingerprint: str
    rule: str
    first_seen_at: float = 0.0

    def option(self, role: str) -> Option | None:
        return next((o for o in self.options if o.role == role), None)

    def to_json(self, wall_offset: float = 0.0) -> dict[str, object]:
        return {
            "kind": self.kind,
            "question": shown(self.question),
            "subject": shown(self.subject),
            "options": [o.to_json() for o in self.options],
            "selected": self.selected,
            "fingerprint": self.fingerprint,
            "first_seen_at": round(self.first_seen_at + wall_offset, 3),
        }


@dataclass(frozen=True)
class Seen:
    """One look at a screen."""

    state: str
    reason: str
    prompt: Prompt | None = None


@dataclass(frozen=True)
class Facts:
    """What the tracker is told at one evaluation; ``now`` is the caller's clock.

    ``lines`` None: the screen has not changed since the last look, which is
    not taken again (time alone can change a verdict: hysteresis, settling).
    """

    lines: tuple[str, ...] | None
    cursor: tuple[int, int, bool]
    title: str
    now: float
    connected: bool = True
    #: When the agent (or its current connection) appeared.
    connected_since: float = 0.0
    viewers: int = 0
    #: Inputs typed so far (by anyone): a prompt records the count it was seen at.
    inputs: int = 0
    bells: int = 0
    command: str = ""


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str
    since: float
    profile: str
    prompt: Prompt | None = None
    unread: bool = False
    #: ``inputs`` when the prompt first appeared (input since then is a race).
    inputs_at_prompt: int = 0
    #: The prompt has held for :data:`SETTLE` (and still holds).
    settled: bool = False


# --- one look -------------------------------------------------------------------


def _clean(line: str) -> str:
    return line.strip(_BORDERS)


def _is_rule(line: str) -> bool:
    return bool(line) and all(c in _RULE_CHARS for c in line)


def _option(line: str, marks: str) -> tuple[int, str, bool] | None:
    """``(n, label, highlighted)`` of a menu line like ``❯ 1. Yes``."""
    text = line
    selected = bool(text) and text[0] in marks
    if selected:
        text = text[1:].lstrip()
    dot = text.find(". ")
    number = text[:dot]
    # ASCII digits only: "²" and "١" are digits to str.isdigit, not to int() or a key.
    if not 0 < dot <= 2 or not (number.isascii() and number.isdigit()):
        return None
    label = text[dot + 2 :].strip()
    if not label:
        return None
    return int(text[:dot]), label, selected


def _menu(
    lines: list[str], start: int, profile: Profile, footer: PromptRule | None
) -> tuple[list[tuple[int, str, bool]], int, int] | None:
    """The numbered block from ``start`` down: options 1, 2, ..., where it began and ended."""
    marks = profile.selected_marks
    first = None
    for i in range(start, min(start + _MENU_START, len(lines))):
        opt = _option(lines[i], marks)
        if opt and opt[0] == 1:
            first = i
            break
        if footer is not None and any(p.search(lines[i]) for p in footer.footer):
            return None
    if first is None:
        return None
    options: list[tuple[int, str, bool]] = []
    gap, end = 0, first
    for i in range(first, len(lines)):
        line = lines[i]
        if footer is not None and any(p.search(line) for p in footer.footer):
            break
        opt = _option(line, marks)
        if opt is not None:
            if opt[0] != len(options) + 1:
                break
            options.append(opt)
            gap, end = 0, i
            continue
        gap += 1
        if gap > _MENU_GAP:
            break
    return (options, first, end) if len(options) >= 2 else None


def _fingerprint(rule: PromptRule, context: list[str], options: list[tuple[int, str, bool]]) -> str:
    # The dialog, not where its highlight is: moving it is input (a race of
    # its own), and a digit answers whatever is highlighted.
    digest = hashlib.sha256(rule.id.encode())
    for line in context:
        digest.update(b"\n" + line.encode())
    for n, label, _ in options:
        digest.update(f"\n{n}. {label}".encode())
    return digest.hexdigest()[:16]


def _prompt(lines: list[str], composer: int | None, profile: Profile) -> Prompt | None:
    """The dialog lowest on the screen: the live one is drawn last, at the bottom.

    Model prose above it may quote any dialog (a fake "Bash command" above a
    real edit permission): whichever rule matches higher up loses.
    """
    best: tuple[int, Prompt] | None = None
    for rule in profile.prompts:
        found = _prompt_of(rule, lines, composer, profile)
        if found is not None and (best is None or found[0] > best[0]):
            best = found
    return None if best is None else best[1]


def _dialog_top(lines: list[str], at: int, above: int) -> int:
    """Where the dialog above line ``at`` starts: after a full-width rule, at most ``above`` up.

    Claude Code draws one over each dialog; what is above it is transcript.
    """
    for i in range(at - 1, max(-1, at - above - 1), -1):
        line = lines[i]
        if len(line) >= 40 and set(line) <= {"─", "━"}:
            return i + 1
    return max(0, at - above)


def _prompt_of(
    rule: PromptRule, lines: list[str], composer: int | None, profile: Profile
) -> tuple[int, Prompt] | None:
    subject = ""
    if rule.question:
        at = None
        for i in range(len(lines) - 1, -1, -1):
            for pattern in rule.question:
                match = pattern.search(lines[i])
                if match:
                    at = i
                    subject = (match.groupdict().get("subject") or "").strip()
                    break
            if at is not None:
                break
        if at is None or (composer is not None and composer > at):
            return None
        menu = _menu(lines, at + 1, profile, rule if rule.footer else None)
        if menu is None:
            return None
        question = lines[at]
    else:
        footer_at = next(
            (
                i
                for i in range(len(lines) - 1, -1, -1)
                if any(p.search(lines[i]) for p in rule.footer)
            ),
            None,
        )
        if footer_at is None or (composer is not None and composer > footer_at):
            return None
        top = max(0, footer_at - 40)
        start = next(
            (i for i in range(top, footer_at) if (o := _option(lines[i], profile.selected_marks))
             and o[0] == 1),
            None,
        )  # fmt: skip
        if start is None:
            return None
        menu = _menu(lines, start, profile, rule)
        if menu is None:
            return None
        at = start - 1
        while at >= 0 and (not lines[at] or _is_rule(lines[at])):
            at -= 1
        if at < 0:
            return None
        question = lines[at]
    options, first, end = menu
    if rule.footer and rule.question:
        tail = lines[end + 1 : end + 6]
        if not any(p.search(line) for line in tail for p in rule.footer):
            return None
    top = _dialog_top(lines, at, rule.subject_above)
    block = lines[top:at]
    context = [line for line in block if line]
    if not subject and rule.subject_after is not None:
        # The header nearest the dialog's top (a command may print one of its
        # own lower down), then every line up to the blank one: the command
        # and what the model says it does, all of it.
        after = next((i for i, line in enumerate(block) if rule.subject_after.search(line)), None)
        if after is None:
            return None  # that header is what tells this dialog from the next rule's
        rest = block[after + 1 :]
        while rest and not rest[0]:
            rest = rest[1:]
        cut = rest.index("") if "" in rest else len(rest)
        subject = "\n".join(rest[:cut])
    elif not subject:
        for line in [*context, *lines[at + 1 : end]]:
            for pattern in rule.subject:
                match = pattern.search(line)
                if match:
                    subject = (match.groupdict().get("subject") or match.group(0)).strip()
                    break
            if subject:
                break
    parsed = []
    for n, label, _ in options:
        role = profile.role_of(label)
        # One key press per answer: an option past 9 has none (it is shown, not sent).
        key = "esc" if role == "deny" and profile.deny_key == "esc" else str(n) if n <= 9 else ""
        parsed.append(Option(n, label, role, key))
    selected = next((n for n, _, sel in options if sel), None)
    return at, Prompt(
        kind=rule.kind,
        question=question,
        subject=subject,
        options=tuple(parsed),
        selected=selected,
        # All of the dialog: above the question, and what lies between it and
        # the menu (Codex's "$ command" and "Reason:").
        fingerprint=_fingerprint(rule, [*context, question, *lines[at + 1 : first]], options),
        rule=rule.id,
    )


def _region(rule: Rule, lines: list[str], composer: int | None, turn: int | None) -> list[str]:
    if rule.region == "screen":
        picked = lines
    elif composer is None:
        return []
    elif rule.region == "below_composer":
        picked = lines[composer + 1 :]
    else:  # the last turn: below the user's last message, above the composer
        picked = lines[(turn + 1 if turn is not None else 0) : composer]
    if rule.last:
        picked = [line for line in picked if line][-rule.last :]
    return picked


def observe(profile: Profile, lines: tuple[str, ...] | list[str], cursor: tuple[int, int, bool],
            title: str) -> Seen:  # fmt: skip
    """One look at a screen through ``profile``; no state, no clock."""
    clean = [_clean(line) for line in lines]
    if not any(clean):
        return Seen("unknown", f"{profile.name}.blank")
    composer = next(
        (
            i
            for i in range(len(clean) - 1, -1, -1)
            if any(p.search(clean[i]) for p in profile.composer)
        ),
        None,
    )
    prompt = _prompt(clean, composer, profile)
    if prompt is not None:
        dialog = next(r for r in profile.prompts if r.id == prompt.rule)
        return Seen(dialog.state, dialog.id, prompt)
    x, y, visible = cursor
    if visible and 0 <= y < len(lines) and profile.shell_prompt:
        # The prompt and what is typed after it, up to the cursor.
        at_cursor = lines[y][: x + 1].ljust(x + 1)
        if any(p.search(at_cursor) for p in profile.shell_prompt):
            state = "idle" if profile.name == "shell" else "exited"
            return Seen(state, f"{profile.name}.shell_prompt")
    turn = None
    if composer is not None:
        turn = next(
            (i for i in range(composer - 1, -1, -1)
             if any(p.search(clean[i]) for p in profile.turn)),
            None,
        )  # fmt: skip
    for rule in profile.rules:
        if rule.region == "title":
            if any(p.search(title) for p in rule.patterns):
                return Seen(rule.state, rule.id)
            continue
        for line in _region(rule, clean, composer, turn):
            if any(p.search(line) for p in rule.patterns):
                return Seen(rule.state, rule.id)
    if composer is not None:
        return Seen("idle", f"{profile.name}.composer")
    return Seen(profile.otherwise, f"{profile.name}.nothing")


# --- when to look ----------------------------------------------------------------

#: Output quiet this long: look (a dialog is drawn, then the output stops).
QUIET: Final = 0.04
#: Under continuous output, look at most this often (the fleet's budget:
#: 100 agents at this rate cost about 3 % of a core, at 0.3 ms a look).
BUSY_INTERVAL: Final = 1.0
#: With no output, reconsider this often (time alone moves hysteresis on).
IDLE_INTERVAL: Final = 0.5


@dataclass
class Cadence:
    """When an agent's screen is looked at: after output goes quiet, bounded under a flood."""

    last_output: float = float("-inf")
    last_look: float = float("-inf")
    #: When the output not looked at yet began.
    first_dirty: float = float("-inf")
    dirty: bool = False

    def output(self, now: float) -> None:
        if not self.dirty:
            self.first_dirty = now
        self.dirty = True
        self.last_output = now

    def due(self, now: float) -> bool:
        if self.dirty:
            quiet = now - self.last_output >= QUIET
            return quiet or now - max(self.last_look, self.first_dirty) >= BUSY_INTERVAL
        return now - self.last_look >= IDLE_INTERVAL

    def looked(self, now: float) -> bool:
        """Record a look; True if the screen changed since the last one."""
        changed, self.dirty, self.last_look = self.dirty, False, now
        return changed


# --- over time --------------------------------------------------------------------


def detect(lines: tuple[str, ...] | list[str], title: str, command: str) -> str | None:
    """The CLI a screen shows (its banner, its title), else the one ``command`` runs."""
    clean = [_clean(line) for line in lines]
    for name in _DETECTABLE:
        p = builtin(name)
        if any(t.search(title) for t in p.detect_title) or any(
            s.search(line) for line in clean for s in p.detect_screen
        ):
            return name
    for name in _DETECTABLE:
        if command and any(c.search(command) for c in builtin(name).detect_command):
            return name
    return None


@dataclass
class Tracker:
    """One agent's state over time. ``profile`` ``"auto"`` detects the CLI, then keeps it."""

    profile: str = "auto"
    _current: Verdict | None = field(default=None, init=False)
    _evidence_at: float = field(default=0.0, init=False)
    _detected: str | None = field(default=None, init=False)
    _profile_since: float | None = field(default=None, init=False)
    _seen: Seen | None = field(default=None, init=False)
    #: The profile saw a state of its own: what it does not recognise is unknown now.
    _started: bool = field(default=False, init=False)
    #: The prompt held was not on the screen at a look since (hysteresis kept it).
    _prompt_gone: bool = field(default=False, init=False)

    def profile_for(self, facts: Facts) -> Profile:
        if self.profile != "auto":
            return builtin(self.profile)
        if facts.lines is not None and (
            self._detected is None
            or (self._current is not None and self._current.state in ("exited", "unknown"))
        ):
            found = detect(facts.lines, facts.title, facts.command)
            if found is not None and found != self._detected:
                self._detected, self._profile_since = found, facts.now
                self._started = False
        return builtin(self._detected or "shell")

    @property
    def verdict(self) -> Verdict | None:
        return self._current

    def update(self, facts: Facts) -> Verdict:
        now = facts.now
        if self._profile_since is None:
            self._profile_since = facts.connected_since or now
        if not facts.connected:
            seen = Seen("unknown", "transport.down")
            profile = self.profile_for(facts)
        elif facts.lines is None and self._seen is not None:
            seen, profile = self._seen, self.profile_for(facts)
        else:
            profile = self.profile_for(facts)
            seen = observe(profile, facts.lines or (), facts.cursor, facts.title)
        self._seen = seen if facts.connected else None
        if seen.state not in ("unknown", "starting"):
            self._started = True
        starting = not self._started and now - (self._profile_since or now) < STARTING_FOR
        if seen.state == "unknown" and facts.connected and starting:
            seen = Seen("starting", f"{profile.name}.starting")
        current = self._current
        verdict = self._next(current, seen, facts, profile.name)
        self._current = verdict
        return verdict

    def _next(self, current: Verdict | None, seen: Seen, facts: Facts, profile: str) -> Verdict:
        now = facts.now
        if current is not None and seen.state == current.state and current.profile == profile:
            self._evidence_at = now
            gone, self._prompt_gone = self._prompt_gone, False
            prompt = seen.prompt
            inputs_at = current.inputs_at_prompt
            if prompt is not None:
                # The same dialog only if it was there at the last look: one
                # that went and came back (the same command again) is new.
                same = (
                    current.prompt is not None
                    and current.prompt.fingerprint == prompt.fingerprint
                    and not gone
                )
                first = current.prompt.first_seen_at if same and current.prompt else now
                inputs_at = current.inputs_at_prompt if same else facts.inputs
                prompt = replace(prompt, first_seen_at=first)
            unread = current.unread and not self._looked(facts, current)
            return replace(
                current,
                reason=seen.reason,
                prompt=prompt,
                unread=unread,
                profile=profile,
                inputs_at_prompt=inputs_at,
                settled=prompt is not None and now - prompt.first_seen_at >= SETTLE,
            )
        if (
            current is not None
            and current.profile == profile  # another CLI started: nothing to hold
            and seen.state not in _IMMEDIATE
            and current.state not in ("starting", "unknown")
            and seen.reason != "transport.down"
            and now - self._evidence_at < LEAVE_AFTER
        ):
            # Not yet: a pause in a spinner, a repaint, a dialog being redrawn.
            if current.prompt is not None:
                self._prompt_gone = True
                return replace(current, settled=False)
            return current
        self._evidence_at = now
        self._prompt_gone = False
        turn_ended = current is not None and current.state in ("working", *PROMPT_STATES)
        unread = seen.state == "idle" and turn_ended and facts.viewers == 0
        prompt = replace(seen.prompt, first_seen_at=now) if seen.prompt else None
        return Verdict(
            state=seen.state,
            reason=seen.reason,
            since=now,
            profile=profile,
            prompt=prompt,
            unread=unread,
            inputs_at_prompt=facts.inputs,
            settled=False,
        )

    def _looked(self, facts: Facts, current: Verdict) -> bool:
        """Someone watched the agent, or typed, since its turn ended."""
        return facts.viewers > 0 or facts.inputs > current.inputs_at_prompt
