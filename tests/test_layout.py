"""The rules of the layout (gateway/__init__.py), read from the source itself."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import gateway

ROOT = Path(gateway.__file__).parent
MAX_LINES = 700

# Lowest first; a module's layer is the longest prefix listed. Imports go
# to the same layer or lower, never up.
LAYERS: list[set[str]] = [
    {"errors"},
    {
        "users",
        "limits",
        "origins",
        "proxies",
        "ring",
        "readiness",
        "core.target",
        "core.state",
        "core.backoff",
        "core.ttyd",
        "screen.base",
        "awareness",
        "awareness.profile",
        "awareness.classify",
        "config",
    },
    {"tasks", "logsafe", "seams", "auth", "shares", "audit", "events"},
    {"screen", "core"},
    {"docker", "replica", "metrics", "local", "demo_agent", "bundle", "awareness.watch"},
    {"appkeys"},
    {"web"},
    {"app", "cli", "__main__"},
]
HANDLERS = {
    "web.api",
    "web.favicon",
    "web.login",
    "web.pages",
    "web.prompts",
    "web.streams",
    "web.terminal",
}
# web's own layers, lowest first (see gateway/web/__init__.py).
WEB_LAYERS: list[set[str]] = [
    {"web.common", "web.closing", "web.sse", "web.wsmask"},
    {"web.identity"},
    {"web.middleware", "web.accesslog"},
    HANDLERS,
    {"web.routes"},
]
HEAVY = (
    "asyncio",
    "aiohttp",
    "websockets",
    "docker",
    "redis",
    "cffi",
    "_cffi_backend",
    "pyghostty",
    "pyte",
)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(ROOT.rglob("*.py"))}


@cache
def imports(module: str) -> frozenset[str]:
    """The gateway modules ``module`` imports at run time (TYPE_CHECKING skipped)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                for alias in node.names:
                    whole = ".".join([*target, alias.name])
                    found.add(whole if whole in MODULES else ".".join(target))
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                if node.module == "gateway" or node.module.startswith("gateway."):
                    base = node.module.removeprefix("gateway").lstrip(".")
                    for alias in node.names:
                        whole = ".".join(filter(None, [base, alias.name]))
                        found.add(whole if whole in MODULES else base)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("gateway."):
                        found.add(alias.name.removeprefix("gateway."))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return frozenset(name for name in found if name in MODULES and name != module)


def _layer(module: str, layers: list[set[str]]) -> int | None:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for rank, members in enumerate(layers):
            if prefix in members:
                return rank
    return None


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if m and _layer(m, LAYERS) is None] == []


@pytest.mark.parametrize("module", [m for m in MODULES if m])
def test_nothing_imports_upward(module: str) -> None:
    rank = _layer(module, LAYERS)
    assert rank is not None
    upward = [m for m in imports(module) if m and (_layer(m, LAYERS) or 0) > rank]
    assert upward == [], f"{module} imports from above its layer"


def test_web_modules_keep_their_own_layers_and_handlers_stay_apart() -> None:
    for module in (m for m in MODULES if m.startswith("web.")):
        rank = _layer(module, WEB_LAYERS)
        assert rank is not None, module
        for target in imports(module):
            if target.startswith("web."):
                assert (_layer(target, WEB_LAYERS) or 0) <= rank, (module, target)
                if module in HANDLERS:
                    assert target not in HANDLERS, f"handler {module} imports handler {target}"


def test_the_core_knows_no_http_docker_or_auth() -> None:
    forbidden = ("web", "docker", "auth", "app", "appkeys", "config", "metrics")
    for module in (m for m in MODULES if m.split(".")[0] in ("core", "screen")):
        for target in imports(module):
            assert target.split(".")[0] not in forbidden, (module, target)
        source = MODULES[module].read_text(encoding="utf-8")
        assert "import aiohttp" not in source, module
        assert "from aiohttp" not in source, module
        assert "import docker" not in source, module


def test_there_is_no_import_cycle() -> None:
    done: set[str] = set()

    def walk(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in imports(module):
            walk(target, (*path, module))
        done.add(module)

    for module in MODULES:
        walk(module, ())


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: _name(p) or "gateway")
def test_no_module_is_over_700_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


@pytest.mark.parametrize(
    "module",
    ["config", "core", "core.target", "core.state", "screen.base", "web", "docker", "replica"],
)
def test_low_modules_import_nothing_heavy(module: str) -> None:
    if module not in MODULES:
        pytest.fail(f"no module gateway.{module}")
    probe = (
        f"import sys, gateway.{module}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, check=True, text=True
    ).stdout.strip()
    assert loaded == "[]", f"importing gateway.{module} loads {loaded}"


def test_a_single_gateway_never_imports_redis(tmp_path: Path) -> None:
    # The contract of replica mode: without [redis], the package is not even loaded.
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gateway.app import create_app\n"
        "from gateway.config import Settings\n"
        f"create_app(Settings(state_dir=Path({str(tmp_path)!r})))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'"
        " or m.startswith('gateway.replica.')))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, check=True, text=True
    ).stdout.strip()
    assert loaded == "[]", f"a gateway without [redis] loads {loaded}"
