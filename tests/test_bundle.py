"""The front-end bundle: only its built files, by exact name, never anything else.

The route is public (the login page needs it), so these requests come from
nobody in particular: the gateway has users and the client has no session.
Every path goes over a raw socket, byte for byte, so no client library
normalises ``..`` or ``%2F`` away before the gateway sees it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway import bundle
from gateway.auth import hash_password
from gateway.bundle import Bundle
from gateway.users import Role, User

from .conftest import GatewayFactory, raw_http

REPO_STATIC = Path(__file__).resolve().parent.parent / "static"
MARKER = "SECRET-MARKER-7f3a"


async def raw_get(port: int, target: str) -> tuple[int, dict[str, str], bytes]:
    """``GET target`` exactly as written, on a connection of its own."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    raw = await raw_http(port, request.encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    """The repository's pages, and a dist/ with a real file and hostile extras."""
    folder = tmp_path / "static"
    (folder / "dist").mkdir(parents=True)
    for page in ("index.html", "login.html", "terminal.html"):
        shutil.copy(REPO_STATIC / page, folder / page)
    (folder / "dist" / "terminal.js").write_text("console.log('the bundle');\n")
    (folder / "dist" / "login.css").write_text("body { color: black; }\n")
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{MARKER} outside the bundle\n")
    # A built name that is a symlink (an agent with write access to a shared
    # volume could plant one), and files esbuild never writes.
    (folder / "dist" / "wall.js").symlink_to(secret)
    (folder / "dist" / "evil.html").write_text(f"<script>{MARKER}</script>")
    (folder / "dist" / "evil.js").write_text(f"alert('{MARKER}')")
    (folder / "dist" / ".hidden.js").write_text(MARKER)
    (folder / "dist" / "sub").mkdir()
    (folder / "dist" / "sub" / "terminal.js").write_text(MARKER)
    return folder


@pytest.fixture
async def client(gateway: GatewayFactory, static_dir: Path, tmp_path: Path) -> Any:
    users = (User("ann", hash_password("pw-for-the-bundle-tests"), Role.ADMIN),)
    gw = await gateway(users=users, static_dir=static_dir)
    # The files an attacker wants: config, share state, audit log.
    config = tmp_path / "gateway.toml"
    config.write_text(f'# {MARKER}\n[[users]]\npassword_hash = "$argon2id$..."\n')
    state = tmp_path / "state"
    (state / "shares.json").write_text(f'[{{"note": "{MARKER}"}}]')
    with (state / "audit.jsonl").open("a") as audit:
        audit.write(f'{{"event": "{MARKER}"}}\n')
    return gw


async def test_the_built_files_are_served_with_their_type(client: TestClient[Any, Any]) -> None:
    status, headers, body = await raw_get(client.port, "/static/dist/terminal.js")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert body == b"console.log('the bundle');\n"
    status, css, _ = await raw_get(client.port, "/static/dist/login.css")
    assert (status, css["content-type"]) == (200, "text/css; charset=utf-8")
    # Revalidation answers 304 for the file's own ETag, the file for another's.
    script = "/static/dist/terminal.js"
    cached = await client.get(script, headers={"If-None-Match": headers["etag"]})
    assert cached.status == 304
    other = await client.get(script, headers={"If-None-Match": css["etag"]})
    assert other.status == 200


def attacks(tmp_path: Path) -> list[str]:
    def encoded(path: Path | str) -> str:
        return quote(str(path), safe="")

    state = tmp_path / "state"
    return [
        "/static/dist/%2Fetc%2Fpasswd",
        "/static/dist/%2fetc%2fpasswd",
        "/static/dist/%252Fetc%252Fpasswd",
        "/static/dist/..%2F..%2Fgateway.toml",
        "/static/dist/%2e%2e%2f%2e%2e%2fgateway.toml",
        "/static/dist/%2E%2E/%2E%2E/gateway.toml",
        "/static/dist/..%5C..%5Cgateway.toml",
        "/static/dist/%5C..%5C..%5Csecret.txt",
        "/static/dist/..\\..\\secret.txt",
        "/static/dist/" + encoded(tmp_path / "gateway.toml"),
        "/static/dist/" + encoded(state / "shares.json"),
        "/static/dist/" + encoded(state / "audit.jsonl"),
        "/static/dist/" + encoded(tmp_path / "secret.txt"),
        "/static/dist/" + encoded("/proc/self/fd/1"),
        "/static/dist/" + encoded("/proc/self/fd/2"),
        "/static/dist/" + encoded("/proc/self/environ"),
        "/static/dist/" + encoded("/proc/self/cmdline"),
        "/static/dist/wall.js",  # a symlink to secret.txt
        "/static/dist/evil.html",
        "/static/dist/evil.js",
        "/static/dist/.hidden.js",
        "/static/dist/sub%2Fterminal.js",
        "/static/dist/terminal.js%00.html",
        "/static/dist/terminal.js%2F",
        "/static/dist/TERMINAL.JS",
        "/static/dist/terminal.js.",
        "/static/dist/%20terminal.js",
        "/static/dist/..",
        "/static/dist/%2e%2e",
        "/static/dist/",
        "/static/dist/.%2F..%2F..%2Fsecret.txt",
    ]


async def test_nothing_outside_the_bundle_is_ever_served(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    for target in attacks(tmp_path):
        status, headers, body = await raw_get(client.port, target)
        assert status in (400, 404), target
        assert MARKER.encode() not in body, target
        assert b"root:" not in body, target
        # Never something a browser would run as a page or a script of this origin.
        kind = headers.get("content-type", "")
        assert not kind.startswith(("text/html", "text/javascript", "application/javascript")), (
            target,
            kind,
        )


def test_a_symlink_or_a_special_file_is_left_out(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (tmp_path / "outside.js").write_text("outside")
    (dist / "terminal.js").write_text("ours")
    (dist / "wall.js").symlink_to(tmp_path / "outside.js")
    (dist / "login.js").mkdir()
    os.mkfifo(dist / "wall.css")  # opening must not block on a FIFO
    loaded = Bundle.load(dist)
    assert loaded.names() == {"terminal.js"}
    asset = loaded.get("terminal.js")
    assert asset is not None
    assert asset.body == b"ours"


def test_the_names_are_what_esbuild_writes() -> None:
    """static/dist, as `make` builds it, holds exactly bundle.FILES (no drift)."""
    dist = REPO_STATIC / "dist"
    if not dist.is_dir():
        pytest.skip("the bundle is not built (make setup builds it)")
    assert set(os.listdir(dist)) == bundle.FILES


@given(st.text(max_size=40))
def test_any_other_name_is_not_found(name: str) -> None:
    assets = Bundle({"terminal.js": bundle.Asset(b"x", "text/javascript", '"e"')})
    assert (assets.get(name) is not None) == (name == "terminal.js")
