"""What each CLI needs to run offline against the mock: its home, its environment.

Each CLI is pointed at ``http://127.0.0.1:PORT`` (the mock, in the pane's own
network namespace) with a dummy key, and its first-run dialogs are answered
in its config files, unless the scenario wants to see them
(``trusted = false``, ``signed_in = false``). Nothing here reaches a network:
there is none in the namespace but loopback.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .script import Scenario

PORT = 18080
BASE = f"http://127.0.0.1:{PORT}"
CLAUDE_KEY = "sk-ant-api03-mock" + "0" * 76 + "-mockAA"
GEMINI_KEY = "AIzaSy-mock-key-000000000000000000000"
OPENAI_KEY = "sk-mock-0000000000000000000000000000"


@dataclass(frozen=True)
class Cli:
    name: str
    binary: str
    dialect: str
    package: str


CLIS = {
    "claude": Cli("claude", "claude", "anthropic", "@anthropic-ai/claude-code"),
    "gemini": Cli("gemini", "gemini", "gemini", "@google/gemini-cli"),
    "codex": Cli("codex", "codex", "openai", "@openai/codex"),
}


def base_env(home: Path, path: str) -> dict[str, str]:
    """The pane's environment: a shell as an agent container has, nothing of ours."""
    return {
        "HOME": str(home),
        "PATH": path,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "tmux-256color",
        "USER": "agent",
        "LOGNAME": "agent",
        "SHELL": "/bin/bash",
        "PS1": "agent@demo:\\W$ ",  # "$" even as root: the recorder waits for it
        "HISTFILE": "/dev/null",
        "TMPDIR": str(home / "tmp"),
        "NO_UPDATE_NOTIFIER": "1",
    }


def prepare(scenario: Scenario, home: Path, project: Path) -> dict[str, str]:
    """Write the CLI's config under ``home``; return the variables it needs."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    project.mkdir(parents=True, exist_ok=True)
    for name, content in scenario.files.items():
        (project / name).write_text(content)
    if scenario.git:
        subprocess.run(["git", "init", "-q", str(project)], check=True)
    if scenario.cli == "claude":
        return _claude(scenario, home, project)
    if scenario.cli == "gemini":
        return _gemini(scenario, home, project)
    if scenario.cli == "codex":
        return _codex(scenario, home, project)
    return {}


def _claude(scenario: Scenario, home: Path, project: Path) -> dict[str, str]:
    state: dict[str, object] = {
        "hasCompletedOnboarding": scenario.signed_in,
        "numStartups": 3,
        "customApiKeyResponses": {
            "approved": [CLAUDE_KEY[-20:]] if scenario.signed_in else [],
            "rejected": [],
        },
        "projects": {
            str(project): {
                "hasTrustDialogAccepted": scenario.trusted,
                "allowedTools": [],
                "hasCompletedProjectOnboarding": True,
            }
        },
    }
    (home / ".claude.json").write_text(json.dumps(state))
    (home / ".claude").mkdir(exist_ok=True)
    # The bell is what tmux lets through of a notification (OSC 9 it drops).
    (home / ".claude" / "settings.json").write_text(
        json.dumps({"preferredNotifChannel": "terminal_bell"})
    )
    return {
        "ANTHROPIC_BASE_URL": BASE,
        "ANTHROPIC_API_KEY": CLAUDE_KEY,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
    }


def _gemini(scenario: Scenario, home: Path, project: Path) -> dict[str, str]:
    conf = home / ".gemini"
    conf.mkdir(exist_ok=True)
    settings: dict[str, object] = {
        "general": {"enableNotifications": True, "disableAutoUpdate": True},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    if scenario.signed_in:
        settings["security"] = {"auth": {"selectedType": "gemini-api-key"}}
    (conf / "settings.json").write_text(json.dumps(settings))
    if scenario.trusted:
        (conf / "trustedFolders.json").write_text(json.dumps({str(project): "TRUST_FOLDER"}))
    return {"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": BASE}


def _codex(scenario: Scenario, home: Path, project: Path) -> dict[str, str]:
    conf = home / ".codex"
    conf.mkdir(exist_ok=True)
    lines = [
        'model = "gpt-mock"',
        'model_provider = "mock"',
        "check_for_update_on_startup = false",
    ]
    if scenario.trusted:
        # Codex asks whether to trust a folder only when no policy is set.
        lines += ['approval_policy = "on-request"', 'sandbox_mode = "workspace-write"']
    lines += [
        "[tui]",
        "notifications = true",
        "[model_providers.mock]",
        'name = "mock"',
        f'base_url = "{BASE}/v1"',
        'wire_api = "responses"',
        'env_key = "MOCK_OPENAI_API_KEY"',
        "request_max_retries = 0",
        "stream_max_retries = 0",
    ]
    if scenario.trusted:
        lines += [f'[projects."{project}"]', 'trust_level = "trusted"']
    (conf / "config.toml").write_text("\n".join(lines) + "\n")
    return {"MOCK_OPENAI_API_KEY": OPENAI_KEY}
