"""The capture tool's scenarios: every file in capture/scenarios loads; typos are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture.script import STATES, ScriptError, load

SCENARIOS = sorted(
    (Path(__file__).resolve().parent.parent / "capture" / "scenarios").glob("*.toml")
)
MINIMAL = """cli = "shell"
[[step]]
keys = "echo hi\\r"
[label]
state = "idle"
"""


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_loads(path: Path) -> None:
    scenario = load(path)
    assert scenario.name == path.stem
    assert scenario.cli == path.stem.split("-")[0]
    assert scenario.label.state in STATES
    prompt = scenario.label.prompt
    if prompt is not None:
        assert [o.n for o in prompt.options] == list(range(1, len(prompt.options) + 1))
        assert prompt.selected in {o.n for o in prompt.options}


def test_the_corpus_covers_every_state_of_every_cli() -> None:
    seen = {(load(p).cli, load(p).label.state) for p in SCENARIOS}
    for cli in ("claude", "gemini", "codex"):
        for state in ("working", "waiting_approval", "setup_required", "idle", "errored", "exited"):
            assert (cli, state) in seen, (cli, state)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (MINIMAL.replace('cli = "shell"', 'cli = "vim"'), "cli must be one of"),
        (MINIMAL + "colour = 1\n", "unknown key 'colour'"),
        (MINIMAL.replace('keys = "echo hi\\r"', "keys = 3"), "'keys' must be str"),
        (MINIMAL.replace('keys = "echo hi\\r"', 'wait = "("'), "wait is not a regex"),
        (MINIMAL.replace('keys = "echo hi\\r"', 'keys = "a"\ntype = "b"'), "exactly one of"),
        (MINIMAL.replace('state = "idle"', 'state = "sleeping"'), "state must be one of"),
        (MINIMAL + '[[reply]]\nshell = "ls"\nfile = "x"\n', "one tool call per reply"),
        (MINIMAL + "[[reply]]\nerror = 200\n", "HTTP error status"),
        (MINIMAL + '[[reply]]\ntool = "T"\ninput = "[1]"\n', "input must be a JSON object"),
        (MINIMAL + '[files]\n"../x" = "y"\n', "a plain file name"),
        (MINIMAL + '[label.prompt]\nkind = "command"\noptions = []\n', "a prompt has options"),
        (
            MINIMAL + '[label.prompt]\nkind = "command"\n'
            'options = [{n = 1, label = "Yes", role = "maybe", key = "1"}]\n',
            "role must be one of",
        ),
        ("cli = \n", "bad.toml"),
    ],
)
def test_a_bad_scenario_is_a_clear_error(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ScriptError, match=error) as caught:
        load(write(tmp_path, text))
    assert "bad.toml" in str(caught.value)
