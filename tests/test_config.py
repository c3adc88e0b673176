"""Config loading: valid files, and one clear line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway import config
from gateway.app import create_app
from gateway.docker.discovery import read_credential
from gateway.errors import ConfigError
from gateway.screen import ghostty, screen_backend
from gateway.screen.ghostty import GhosttyScreen
from gateway.screen.reference import PyteScreen

GOOD = """
[server]
listen = "127.0.0.1:9000"
public_origin = "http://127.0.0.1:9000"
state_dir = "var"

[[agents]]
id = "claude-1"
url = "ws://127.0.0.1:7681/ws"
credential = "gw:hunter2"

[[agents]]
id = "local"
url = "unix:/run/agents/local.sock"
columns = 9999
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_good_config(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, GOOD))
    assert (settings.host, settings.port) == ("127.0.0.1", 9000)
    assert settings.state_dir == tmp_path / "var"
    assert settings.audit_log == tmp_path / "var" / "audit.jsonl"
    first, second = settings.agents
    assert first.target().auth_token  # the credential made it through
    assert second.columns == 500  # clamped like any resize
    assert "hunter2" not in repr(settings)


def test_defaults(tmp_path: Path) -> None:
    settings = config.load(write(tmp_path, ""))
    assert settings.listen == "127.0.0.1:8080"
    assert settings.public_origin == "http://127.0.0.1:8080"
    assert settings.agents == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nlisten = 8080\n", "server.listen must be str"),
        ("[server]\nlisten = '127.0.0.1'\n", "must be 'host:port'"),
        ("[server]\nlisten = '127.0.0.1:99999'\n", "out of range"),
        ("[server]\nlisten = '0.0.0.0:8080'\n", "only listens on loopback"),
        ("[server]\nlisten = '192.168.1.5:8080'\n", "only listens on loopback"),
        ("[server]\nlisen = 'x'\n", "unknown key server.lisen"),
        ("[[users]]\nname = 'a'\n", "users[0].password_hash is required"),
        (
            "[[users]]\nname = 'a'\npassword_hash = 'plain'\nrole = 'admin'\n",
            "must be an argon2id hash",
        ),
        (
            "[[users]]\nname = 'a'\npassword_hash = '$argon2id$x'\nrole = 'root'\n",
            "role must be one of admin, operator, viewer",
        ),
        (
            "[[users]]\nname = 'a b'\npassword_hash = '$argon2id$x'\nrole = 'admin'\n",
            "users[0].name must be",
        ),
        (
            "[[users]]\nname = 'a'\npassword_hash = '$argon2id$x'\nrole = 'admin'\nagents = ['']\n",
            "glob patterns",
        ),
        (
            "[[users]]\nname = 'a'\npassword_hash = '$argon2id$x'\nrole = 'admin'\n"
            "api_token_sha256 = 'abc'\n",
            "64 hex digits",
        ),
        (
            "[server]\npublic_origin = 'http://x/path'\n",
            "public_origin: an origin is scheme://host",
        ),
        ("[server]\npublic_origin = 'ftp://x'\n", "public_origin: an origin is scheme://host"),
        ("[[agents]]\nurl = 'ws://127.0.0.1:1/ws'\n", "agents[0].id is required"),
        ("[[agents]]\nid = 'a'\n", "agents[0].url is required"),
        ("[[agents]]\nid = '../x'\nurl = 'ws://h/ws'\n", "agents[0].id '../x' must be"),
        ("[[agents]]\nid = 'a'\nurl = 'http://h/ws'\n", "agents[0]: ttyd url must start"),
        ("[[agents]]\nid = 'a'\nurl = 'ws://h/ws'\ncredential = 'x'\n", "user:password"),
        ("[[agents]]\nid = 'a'\nurl = 'ws://h/ws'\nrows = true\n", "agents[0].rows must be int"),
        (
            "[[agents]]\nid = 'a'\nurl = 'ws://h/ws'\nprofile = 'vim'\n",
            "agents[0].profile must be one of claude, gemini, codex, shell, auto, not 'vim'",
        ),
        (
            "[[agents]]\nid = 'a'\nurl = 'ws://h/ws'\n[[agents]]\nid = 'a'\nurl = 'ws://h/ws'\n",
            "configured twice",
        ),
        ("[server]\nviewer_queue_bytes = 1\n", "viewer_queue_bytes must be 4096.."),
        ("[server]\nscreen = 'vt100'\n", "server.screen must be one of auto, ghostty, pyte"),
        ("[server]\nextra_origins = ['https://a.example/x']\n", "extra_origins: an origin is"),
        ("[server]\nextra_origins = [1]\n", "extra_origins must be a list of strings"),
        ("[server]\nsession_idle_seconds = 0\n", "1 <= idle <= max"),
        (
            "[server]\nsession_idle_seconds = 100\nsession_max_seconds = 50\n",
            "1 <= idle <= max",
        ),
        ("[server\n", "invalid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        config.load(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["auto", "ghostty", "pyte"])
def test_screen_backend(tmp_path: Path, name: str) -> None:
    settings = config.load(write(tmp_path, f"[server]\nscreen = '{name}'\n"))
    assert settings.screen == name
    backend = screen_backend(name)
    assert backend is (PyteScreen if name == "pyte" else GhosttyScreen)
    assert config.load(write(tmp_path, "")).screen == "auto"


def test_a_ghostty_that_cannot_load_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Config checks the name only; the backend choice refuses it, before the app starts.
    monkeypatch.setattr(ghostty, "UNAVAILABLE", "pyghostty cannot be loaded: no wheel")
    screen_backend.cache_clear()
    try:
        settings = config.load(write(tmp_path, "[server]\nscreen = 'ghostty'\n"))
        message = "^server.screen = 'ghostty', but pyghostty cannot be loaded: no wheel$"
        with pytest.raises(ConfigError, match=message):
            screen_backend("ghostty")
        with pytest.raises(ConfigError, match=message):
            create_app(settings)
        with caplog.at_level("WARNING", logger="gateway.screen"):
            assert screen_backend("auto") is PyteScreen
        assert "no wheel; emulating with pyte" in caplog.text
    finally:
        screen_backend.cache_clear()


# What must stay out of the process that only reads settings: an emulator
# (pyte, pyghostty and its cffi), the network stack, the Docker SDK, argon2.
HEAVY = (
    "asyncio",
    "aiohttp",
    "websockets",
    "docker",
    "cffi",
    "_cffi_backend",
    "pyghostty",
    "pyte",
    "argon2",
)


def test_config_imports_nothing_heavy() -> None:
    code = f"import gateway.config, sys; print(sorted(set({HEAVY!r}) & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.strip() == "[]"


def test_users(tmp_path: Path) -> None:
    text = (
        "[[users]]\nname = 'ann'\npassword_hash = '$argon2id$v=19$x'\nrole = 'viewer'\n"
        "agents = ['claude-*']\n"
    )
    (user,) = config.load(write(tmp_path, text)).users
    assert (user.name, user.role.value, user.agents) == ("ann", "viewer", ("claude-*",))
    assert user.sees("claude-7")
    assert not user.sees("codex-1")
    assert not user.can_write
    assert "argon2" not in repr(user)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")


def test_secret_is_masked() -> None:
    secret = config.Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert secret.reveal() == "hunter2"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert config.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.evil"])
def test_non_loopback_hosts(host: str) -> None:
    assert not config.is_loopback(host)


def test_shipped_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "deploy" / "gateway.example.toml"
    settings = config.load(example)
    assert [agent.id for agent in settings.agents] == ["claude-1", "codex-1"]


def test_docker_table(tmp_path: Path) -> None:
    (tmp_path / "cred").write_text("ttyd:s3cret\n")
    settings = config.load(
        write(
            tmp_path,
            '[docker]\nurl = "tcp://proxy:2375"\nlabel_prefix = "acme.io"\n'
            'network = "agents"\ncredential_file = "cred"\nlog_lines = 50\n',
        )
    )
    docker = settings.docker
    assert docker is not None
    assert (docker.url, docker.agent_label, docker.network, docker.log_lines) == (
        "tcp://proxy:2375",
        "acme.io.agent",
        "agents",
        50,
    )
    assert read_credential(docker) == "ttyd:s3cret"
    # Read at each use: a rotated file is picked up without a restart.
    (tmp_path / "cred").write_text("ttyd:rotated\n")
    assert read_credential(docker) == "ttyd:rotated"
    (tmp_path / "cred").write_text("no colon\n")
    with pytest.raises(ConfigError, match="must hold 'user:password'"):
        read_credential(docker)
    assert config.load(write(tmp_path, "")).docker is None
    assert config.load(write(tmp_path, "[docker]\n")).docker == config.DockerSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('url = "/var/run/docker.sock"', "docker.url must look like"),
        ('label_prefix = "Gate Way"', "docker.label_prefix"),
        ("port = 0", "docker.port 0 is out of range"),
        ("log_lines = 0", "docker.log_lines must be"),
        ("socket = 1", "unknown key docker.socket"),
    ],
)
def test_bad_docker_table(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load(write(tmp_path, f"[docker]\n{text}\n"))


def test_redis_table(tmp_path: Path) -> None:
    settings = config.load(
        write(
            tmp_path,
            '[redis]\nurl = "rediss://gateway@redis:6380/2"\npassword_file = "pw"\n'
            'key_prefix = "fleet-a:"\nlease_ms = 5000\n',
        )
    )
    assert settings.redis == config.RedisSettings(
        "rediss://gateway@redis:6380/2", tmp_path / "pw", "fleet-a:", 5000
    )
    defaults = config.load(write(tmp_path, '[redis]\nurl = "unix:///run/redis.sock"\n')).redis
    assert defaults == config.RedisSettings("unix:///run/redis.sock")
    assert (defaults.key_prefix, defaults.lease_ms) == ("gateway:", 2000)
    assert config.load(write(tmp_path, "")).redis is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "redis.url is required"),
        ('url = "localhost:6379"', "redis.url must look like"),
        ('url = "http://redis:6379"', "redis.url must look like"),
        ('url = "redis://"', "redis.url must look like"),
        ('url = "redis://:hunter2@redis:6379"', "must not hold a password"),
        ('url = "redis://user:hunter2@redis:6379"', "must not hold a password"),
        ('url = "redis://r"\nkey_prefix = ""', "redis.key_prefix"),
        ('url = "redis://r"\nkey_prefix = "a{b}"', "redis.key_prefix"),
        ('url = "redis://r"\nkey_prefix = "a b"', "redis.key_prefix"),
        ('url = "redis://r"\nlease_ms = 100', "redis.lease_ms must be 500..60000"),
        ('url = "redis://r"\nlease_ms = 600000', "redis.lease_ms must be"),
        ('url = "redis://r"\nttl = 1', "unknown key redis.ttl"),
    ],
)
def test_bad_redis_table(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        config.load(write(tmp_path, f"[redis]\n{text}\n"))
    assert "hunter2" not in str(caught.value)


def test_the_demo_is_one_process(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--demo runs its agents inside this one process"):
        config.load(write(tmp_path, '[redis]\nurl = "redis://r"\n'), demo=True)
