"""Agent profiles: the shipped ones load; a bad one is a precise error, never a slow regex."""

from __future__ import annotations

import pytest

from gateway.awareness.profile import BUILTIN, PROBE_LIMIT, _probe, builtin, loads, safe_regex
from gateway.errors import ConfigError, ProfileError

MINIMAL = 'name = "mine"\ncomposer = ["^> "]\n'


@pytest.mark.parametrize("name", BUILTIN)
def test_the_shipped_profiles_load(name: str) -> None:
    profile = builtin(name)
    assert profile.name == name
    assert profile.tested_on
    if name != "shell":
        assert profile.prompts
        assert profile.composer
        assert profile.detect_screen


@pytest.mark.parametrize(
    "pattern",
    [
        r"(a+)+$",  # the classic
        r"(\s*\S)*x",
        r"(?:a|aa)*b{2,}(c+)*",
        r"(x\d{1,20})+",
        r"(.)\1",  # a back-reference
        r"(?P<q>a)(?P=q)",
    ],
)
def test_a_catastrophic_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ProfileError, match=r"exponential time|back-reference") as caught:
        safe_regex(pattern, "test.match[0]")
    assert "test.match[0]" in str(caught.value)


@pytest.mark.parametrize("pattern", [r"\s*\S+\s*\S+\s*\S+\s*x", r".*.*.*y"])
def test_a_polynomial_blow_up_is_refused_by_its_probe(pattern: str) -> None:
    """No nested quantifier, yet 0.1 s or more on one wide line: refused at load."""
    with pytest.raises(ProfileError, match="too slow"):
        safe_regex(pattern, "where")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_shipped_pattern_is_fast_on_hostile_lines(name: str) -> None:
    """What the probe checks, checked again on lines an agent could print."""
    profile = builtin(name)
    patterns = [*profile.composer, *profile.turn, *profile.shell_prompt]
    for rule in profile.rules:
        patterns += rule.patterns
    for prompt in profile.prompts:
        patterns += [*prompt.question, *prompt.footer, *prompt.subject]
    hostile = ["│ " * 250, "❯ " * 250, "1. " * 166, "? Shell " * 60, "\u202e" * 500, "🤖" * 250]
    for pattern in patterns:
        for line in hostile:
            # CPU time, the least of tries: a busy machine is not a slow pattern.
            assert _probe(pattern, line) < PROBE_LIMIT, (pattern.pattern, line[:10])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name = 3\n", "wrong type"),
        ('name = "Has Caps"\n', "short lowercase name"),
        (MINIMAL + "colour = 1\n", "unknown key 'colour'"),
        (MINIMAL + "composer = 1\n", "not TOML"),  # a key twice
        (
            MINIMAL + '[[rule]]\nid = "r"\nstate = "busy"\nregion = "screen"\nmatch = "x"\n',
            "state: one of",
        ),
        (
            MINIMAL + '[[rule]]\nid = "r"\nstate = "working"\nregion = "top"\nmatch = "x"\n',
            "region: one of",
        ),
        (
            MINIMAL
            + '[[rule]]\nid = "Bad Id"\nstate = "working"\nregion = "screen"\nmatch = "x"\n',
            "rule id",
        ),
        (
            MINIMAL + '[[rule]]\nid = "r"\nstate = "working"\nregion = "screen"\nmatch = []\n',
            "at least one pattern",
        ),
        (
            MINIMAL + '[[rule]]\nid = "r"\nstate = "working"\nregion = "screen"\nmatch = "("\n',
            "not a regular expression",
        ),
        (
            MINIMAL + '[[prompt]]\nid = "p"\nkind = "command"\nstate = "waiting_approval"\n',
            "needs a question or a footer",
        ),
        (
            MINIMAL + '[[prompt]]\nid = "p"\nkind = "command"\nstate = "idle"\nquestion = "x"\n',
            "state: one of",
        ),
        (MINIMAL + '[[role]]\nrole = "approve_maybe"\nmatch = "x"\n', "role: one of"),
        (MINIMAL + 'shell_prompt = ["' + "x" * 301 + '"]\n', "at most 300 characters"),
        (MINIMAL + "shell_prompt = [" + ", ".join(['"x"'] * 33) + "]\n", "at most 32"),
        (MINIMAL + 'selected_marks = "ab"\n', "symbols"),
    ],
)
def test_a_bad_profile_names_the_file_and_the_key(text: str, error: str) -> None:
    with pytest.raises(ProfileError, match=error) as caught:
        loads(text, "mine.toml")
    assert str(caught.value).startswith("mine.toml")
    assert isinstance(caught.value, ConfigError)  # one exception tree: a config error


def test_an_unknown_builtin_is_an_error() -> None:
    with pytest.raises(ProfileError, match="no profile 'vim'"):
        builtin("vim")
