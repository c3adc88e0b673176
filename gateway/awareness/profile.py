"""Per-CLI profiles: what Claude Code, Gemini CLI, Codex CLI and a shell draw, as data.

A profile is a TOML file (``gateway/awareness/profiles/NAME.toml``, or one an
operator points ``[awareness] profiles`` at). It is checked whole when it
loads: unknown keys, wrong types, empty or oversized lists, and regular
expressions that could take exponential time are errors that name the file
and the key. Python's ``re`` has no timeout, and a profile's patterns run
against text an agent (or the model behind it) controls: a pattern with a
quantifier inside a quantifier, or a back-reference, is refused outright.

The format, key by key, is in the README ("Agent states"); the shipped
profiles are its examples.
"""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# The parser re itself uses (Python 3.11+); its tree's shape is as old as re.
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Final

from ..errors import ProfileError

__all__ = [
    "BUILTIN",
    "KINDS",
    "PROFILES",
    "ROLES",
    "STATES",
    "Profile",
    "PromptRule",
    "Rule",
    "builtin",
    "load",
    "loads",
    "safe_regex",
]

STATES: Final = (
    "starting",
    "working",
    "waiting_approval",
    "waiting_input",
    "setup_required",
    "idle",
    "errored",
    "exited",
    "unknown",
)
#: States that a prompt puts an agent in.
PROMPT_STATES: Final = ("waiting_approval", "waiting_input", "setup_required")
ROLES: Final = ("approve_once", "approve_always", "deny", "other")
KINDS: Final = ("command", "edit", "tool", "question", "plan", "trust", "setup")
#: Where a rule looks (see :mod:`gateway.awareness.classify`).
REGIONS: Final = ("screen", "last_turn", "below_composer", "title")
BUILTIN: Final = ("claude", "gemini", "codex", "shell")
#: What an agent's ``profile`` may say (config, Docker label); "auto" detects the CLI.
PROFILES: Final = (*BUILTIN, "auto")

MAX_PATTERN: Final = 300
MAX_PATTERNS: Final = 32
MAX_RULES: Final = 64
#: A line is at most this wide (ttyd.MAX_COLUMNS); a pattern must stay fast on it.
MAX_COLUMNS: Final = 500
PROBE_LIMIT: Final = 0.005
_PROBE_UNITS: Final = ("a", " ", "a ", "│ ", "1. ", "─", "ab1 ", "\t", "é ")
_PROBE_WIDTHS: Final = (32, 64, 128, 256, MAX_COLUMNS)
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_ID = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def _nested_repeat(tree: Any, inside: bool) -> str | None:
    """What makes a parsed pattern unsafe, or None: a repeat in a repeat, a back-reference."""
    for op, av in tree:
        name = str(op)
        if op is sre_constants.GROUPREF or name in ("GROUPREF_EXISTS", "GROUPREF"):
            return "a back-reference"
        if (
            op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
            or name == "POSSESSIVE_REPEAT"
        ):
            _, high, sub = av
            unbounded_ish = high is sre_constants.MAXREPEAT or high > 16
            if inside and unbounded_ish:
                return "a quantifier inside a quantifier"
            found = _nested_repeat(sub, inside or high > 1)
            if found:
                return found
        elif op is sre_constants.SUBPATTERN:
            found = _nested_repeat(av[-1], inside)
            if found:
                return found
        elif op is sre_constants.BRANCH:
            for branch in av[1]:
                found = _nested_repeat(branch, inside)
                if found:
                    return found
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            found = _nested_repeat(av[1], inside)
            if found:
                return found
    return None


def _probe(compiled: re.Pattern[str], line: str) -> float:
    """CPU seconds a search of ``line`` takes: the least of three, if the first is slow.

    CPU time, and the least of tries, so that a busy machine or a collection
    pause cannot fail a pattern that is fast: a slow one is slow each time.
    """
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        compiled.search(line)
        best = min(best, time.process_time() - started)
        if best <= PROBE_LIMIT:
            break
    return best


def safe_regex(pattern: Any, where: str) -> re.Pattern[str]:
    """Compile ``pattern``, refusing what could backtrack for ever on hostile text."""
    if not isinstance(pattern, str) or not pattern:
        raise ProfileError(f"{where}: a pattern is a non-empty string, not {pattern!r}")
    if len(pattern) > MAX_PATTERN:
        raise ProfileError(f"{where}: a pattern is at most {MAX_PATTERN} characters")
    try:
        compiled = re.compile(pattern)
        tree = sre_parse.parse(pattern)
    except re.error as exc:
        raise ProfileError(f"{where}: not a regular expression: {exc} in {pattern!r}") from None
    unsafe = _nested_repeat(tree, False)
    if unsafe:
        raise ProfileError(
            f"{where}: {pattern!r} has {unsafe}, which can take exponential time on"
            " hostile text; write it without"
        )
    # Polynomial blow-ups pass that test (\s*\S+\s*\S+\s*x takes 0.6 s on
    # 500 letters): try the pattern on the widest lines a screen can have.
    # Lines of growing width, so that a pattern too slow on a wide line is
    # caught on a narrower one first (a step at most doubles the width).
    literal = "".join(dict.fromkeys(c for c in pattern if c.isalnum() or c in " .:?")) or "a"
    for unit in (*_PROBE_UNITS, literal):
        for width in _PROBE_WIDTHS:
            if _probe(compiled, (unit * width)[:width]) > PROBE_LIMIT:
                raise ProfileError(
                    f"{where}: {pattern!r} is too slow on a {width}-column line;"
                    " anchor it (^) or use fewer overlapping repeats"
                )
    return compiled


def _table(data: Any, allowed: dict[str, type | tuple[type, ...]], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: must be a table")
    for key, value in data.items():
        if key not in allowed:
            raise ProfileError(f"{where}: unknown key {key!r} (known: {', '.join(allowed)})")
        want = allowed[key]
        if not isinstance(value, want) or (isinstance(value, bool) and want is int):
            raise ProfileError(f"{where}.{key}: wrong type ({type(value).__name__})")
    return data


def _patterns(data: dict[str, Any], key: str, where: str) -> tuple[re.Pattern[str], ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_PATTERNS:
        raise ProfileError(f"{where}.{key}: a list of at most {MAX_PATTERNS} patterns")
    return tuple(safe_regex(p, f"{where}.{key}[{i}]") for i, p in enumerate(value))


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    value = data.get(key)
    if value not in choices:
        raise ProfileError(f"{where}.{key}: one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _rule_id(data: dict[str, Any], where: str) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ProfileError(f"{where}.id: a rule id like 'claude.working', not {value!r}")
    return value


@dataclass(frozen=True)
class Rule:
    """A state seen when any pattern matches a line of the region."""

    id: str
    state: str
    region: str
    patterns: tuple[re.Pattern[str], ...]
    #: Only among the last this many non-blank lines of the region (0: all).
    last: int = 0


@dataclass(frozen=True)
class PromptRule:
    """A dialog: a question line (or a footer), then a numbered menu."""

    id: str
    kind: str
    state: str
    #: The question's line; a ``subject`` group in it is the subject.
    question: tuple[re.Pattern[str], ...]
    #: A line below the menu that marks the dialog (needed without ``question``).
    footer: tuple[re.Pattern[str], ...]
    #: Where the subject is when the question does not hold it.
    subject: tuple[re.Pattern[str], ...]
    #: Lines above the question the dialog may start (the subject, the fingerprint).
    subject_above: int = 30
    #: The subject is on the first line after this header (Claude's "Bash command").
    subject_after: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Role:
    role: str
    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class Profile:
    name: str
    cli: str
    tested_on: tuple[str, ...]
    detect_command: tuple[re.Pattern[str], ...]
    detect_screen: tuple[re.Pattern[str], ...]
    detect_title: tuple[re.Pattern[str], ...]
    #: A line of the live input box or its footer: the CLI takes a new message.
    composer: tuple[re.Pattern[str], ...]
    #: The shell's prompt is back: the CLI exited (needs a visible cursor on it).
    shell_prompt: tuple[re.Pattern[str], ...]
    #: The echo of the user's message: where the last turn starts.
    turn: tuple[re.Pattern[str], ...]
    prompts: tuple[PromptRule, ...]
    rules: tuple[Rule, ...]
    roles: tuple[Role, ...]
    #: Characters that mark a menu's highlighted option.
    selected_marks: str
    #: The option role whose key is Esc, not its number (the CLIs' "No").
    deny_key: str
    #: The state when nothing matched (a shell: a command runs).
    otherwise: str = "unknown"
    source: str = ""

    def role_of(self, label: str) -> str:
        for role in self.roles:
            if any(p.search(label) for p in role.patterns):
                return role.role
        return "other"


_TOP: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "cli": str,
    "tested_on": list,
    "detect": dict,
    "composer": (list, str),
    "shell_prompt": (list, str),
    "turn": (list, str),
    "otherwise": str,
    "prompt": list,
    "rule": list,
    "role": list,
    "selected_marks": str,
    "deny_key": str,
}


def loads(text: str, source: str) -> Profile:
    """Parse and check one profile; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not TOML: {exc}") from None
    _table(data, _TOP, source)
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProfileError(f"{source}.name: a short lowercase name, not {name!r}")
    tested = data.get("tested_on", [])
    if not all(isinstance(v, str) for v in tested) or len(tested) > MAX_PATTERNS:
        raise ProfileError(f"{source}.tested_on: a list of version strings")
    detect = _table(
        data.get("detect", {}), {"command": (list, str), "screen": (list, str),
                                 "title": (list, str)}, f"{source}.detect",
    )  # fmt: skip
    prompts: list[PromptRule] = []
    rules: list[Rule] = []
    roles: list[Role] = []
    for key in ("prompt", "rule", "role"):
        if len(data.get(key, [])) > MAX_RULES:
            raise ProfileError(f"{source}.{key}: at most {MAX_RULES}")
    for i, p in enumerate(data.get("prompt", [])):
        where = f"{source}.prompt[{i}]"
        _table(p, {"id": str, "kind": str, "state": str, "question": (list, str),
                   "footer": (list, str), "subject": (list, str), "subject_above": int,
                   "subject_after": str},
               where)  # fmt: skip
        rule = PromptRule(
            _rule_id(p, where),
            _choice(p, "kind", KINDS, where),
            _choice(p, "state", PROMPT_STATES, where),
            _patterns(p, "question", where),
            _patterns(p, "footer", where),
            _patterns(p, "subject", where),
            p.get("subject_above", 30),
            safe_regex(p["subject_after"], f"{where}.subject_after")
            if "subject_after" in p
            else None,
        )
        if not rule.question and not rule.footer:
            raise ProfileError(f"{where}: a prompt needs a question or a footer pattern")
        if not 0 <= rule.subject_above <= 40:
            raise ProfileError(f"{where}.subject_above: 0 to 40 lines")
        prompts.append(rule)
    for i, r in enumerate(data.get("rule", [])):
        where = f"{source}.rule[{i}]"
        _table(r, {"id": str, "state": str, "region": str, "match": (list, str), "last": int},
               where)  # fmt: skip
        patterns = _patterns(r, "match", where)
        if not patterns:
            raise ProfileError(f"{where}.match: at least one pattern")
        last = r.get("last", 0)
        if not 0 <= last <= 200:
            raise ProfileError(f"{where}.last: 0 to 200 lines")
        rules.append(
            Rule(
                _rule_id(r, where),
                _choice(r, "state", STATES, where),
                _choice(r, "region", REGIONS, where),
                patterns,
                last,
            )
        )
    for i, r in enumerate(data.get("role", [])):
        where = f"{source}.role[{i}]"
        _table(r, {"role": str, "match": (list, str)}, where)
        roles.append(Role(_choice(r, "role", ROLES, where), _patterns(r, "match", where)))
    marks = data.get("selected_marks", "❯›●>")
    if not 1 <= len(marks) <= 8 or any(c.isalnum() or c.isspace() for c in marks):
        raise ProfileError(f"{source}.selected_marks: 1 to 8 symbols")
    return Profile(
        name=name,
        cli=data.get("cli", name),
        tested_on=tuple(tested),
        detect_command=_patterns(detect, "command", f"{source}.detect"),
        detect_screen=_patterns(detect, "screen", f"{source}.detect"),
        detect_title=_patterns(detect, "title", f"{source}.detect"),
        composer=_patterns(data, "composer", source),
        shell_prompt=_patterns(data, "shell_prompt", source),
        turn=_patterns(data, "turn", source),
        otherwise=_choice(data, "otherwise", ("unknown", "working", "idle"), source)
        if "otherwise" in data
        else "unknown",
        prompts=tuple(prompts),
        rules=tuple(rules),
        roles=tuple(roles),
        selected_marks=marks,
        deny_key=_choice(data, "deny_key", ("esc", "number"), source)
        if "deny_key" in data
        else "esc",
        source=source,
    )


def load(path: Path) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    return loads(text, str(path))


_cache: dict[str, Profile] = {}


def builtin(name: str) -> Profile:
    """One of the shipped profiles (loaded once)."""
    if name not in BUILTIN:
        raise ProfileError(f"no profile {name!r} (known: {', '.join(BUILTIN)})")
    if name not in _cache:
        text = resources.files(__package__).joinpath(f"profiles/{name}.toml").read_text("utf-8")
        _cache[name] = loads(text, f"profiles/{name}.toml")
    return _cache[name]
