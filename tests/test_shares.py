"""Spectator links: the store, and the whole flow through the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import hash_password
from gateway.core import ttyd
from gateway.errors import BadRequest
from gateway.local import LocalAgent
from gateway.shares import MAX_LABEL, MAX_TTL, RETENTION, ShareStore, clean_label
from gateway.users import Role, User
from gateway.web.accesslog import redact

from .conftest import AgentFactory, GatewayFactory, Terminal, browser, origin_of, timeout


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# --- the store -----------------------------------------------------------------------


async def test_links_expire_run_out_and_revoke(tmp_path: Path) -> None:
    clock = Clock()
    store = ShareStore(tmp_path / "shares.json", clock)
    timed, timed_token = await store.create("a", "olga", 60, None)
    counted, counted_token = await store.create("a", "olga", 3600, 2)
    revoked, revoked_token = await store.create("a", "olga", 3600, None)
    assert await store.redeem(timed_token) is timed
    clock.now += 61
    assert await store.redeem(timed_token) is None
    assert await store.redeem(counted_token) is counted
    assert await store.redeem(counted_token) is counted
    assert await store.redeem(counted_token) is None
    await store.revoke(revoked.id)
    assert await store.redeem(revoked_token) is None
    assert not await store.active(revoked.id)


# Labels a list must never draw as anything but these characters, or take at all.
HOSTILE_LABELS = (
    "a\x00b",  # NUL
    "line\nbreak",
    "\x1b[31mred",  # an escape sequence for a terminal that prints it
    "evil\u202etxt.exe",  # right-to-left override: reads "evilexe.txt"
    "a\u2066isolate\u2069",  # bidi isolates
    "zero\u200bwidth",
    "para\u2029graph",
    "lone \ud800 surrogate",
    "x" * (MAX_LABEL + 1),
    "x" * 10_000,
)


@pytest.mark.parametrize("label", HOSTILE_LABELS, ids=repr)
def test_a_label_with_controls_bidi_or_too_long_is_refused(label: str) -> None:
    with pytest.raises(BadRequest):
        clean_label(label)


def test_a_label_is_text_trimmed_and_optional() -> None:
    assert clean_label(None) is None
    assert clean_label("   ") is None
    assert clean_label("  for   the   review  ") == "for the review"
    # Markup is only characters here: the page draws it as text.
    assert clean_label("<img src=x onerror=alert(1)>") == "<img src=x onerror=alert(1)>"
    assert clean_label("Überprüfung ✓ 日本") == "Überprüfung ✓ 日本"
    assert clean_label("x" * MAX_LABEL) == "x" * MAX_LABEL
    with pytest.raises(BadRequest):
        clean_label(42)


async def test_a_label_is_kept_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "shares.json"
    store = ShareStore(path)
    labelled, _ = await store.create("a", "olga", 3600, 3, "for bob")
    plain, _ = await store.create("a", "olga", 3600, None)
    again = ShareStore(path)
    await again.load()
    assert [(s.id, s.label, s.max_uses) for s in await again.all()] == [
        (labelled.id, "for bob", 3),
        (plain.id, None, None),
    ]
    assert (await again.all())[0].public()["label"] == "for bob"
    store.close()
    again.close()


async def test_restart_neither_loses_nor_resurrects(tmp_path: Path) -> None:
    path = tmp_path / "state" / "shares.json"
    store = ShareStore(path)
    kept, kept_token = await store.create("a", "olga", 3600, 5)
    gone, gone_token = await store.create("a", "olga", 3600, None)
    await store.redeem(kept_token)
    await store.revoke(gone.id)
    assert kept_token not in path.read_text()  # only digests are stored
    reloaded = ShareStore(path)
    await reloaded.load()
    assert await reloaded.redeem(kept_token) is not None
    assert await reloaded.get(kept.id) is not None
    assert (await reloaded.get(kept.id)).uses == 2  # type: ignore[union-attr]
    assert await reloaded.redeem(gone_token) is None


async def test_ended_links_are_forgotten_after_the_retention(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "shares.json"
    store = ShareStore(path, clock)
    old, _ = await store.create("a", "olga", 60, None)
    revoked, _ = await store.create("a", "olga", 3600, None)
    await store.revoke(revoked.id)
    clock.now += 60 + RETENTION - 1
    live, _ = await store.create("a", "olga", MAX_TTL, None)
    # Both ended links are still listed (and in the file) for the record.
    assert {share.id for share in await store.all()} == {old.id, revoked.id, live.id}
    clock.now += 2
    await store.revoke(live.id)  # any save applies the rule
    assert {share.id for share in await store.all()} == {revoked.id, live.id}
    assert old.id not in path.read_text()
    # A revoked link is kept as long as it would have been had it run out.
    clock.now += 3600 - 60
    await store.create("a", "olga", 60, None)
    assert revoked.id not in {share.id for share in await store.all()}
    # A restart long after applies it at load too.
    clock.now += MAX_TTL + RETENTION + 1
    reloaded = ShareStore(path, clock)
    await reloaded.load()
    assert await reloaded.all() == []


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60
    )
)
async def test_no_other_token_opens_a_link(guess: str) -> None:
    store = ShareStore(Path("/nonexistent/never-written.json"))
    store._save = _no_save  # type: ignore[method-assign]  # keep the property test off disk
    share, token = await store.create("a", "olga", 3600, None)
    assert (await store.redeem(guess) is share) == (guess == token)


async def _no_save() -> None:
    return None


def test_tokens_are_redacted_from_access_logs() -> None:
    assert redact("/s/abcDEF123_-") == "/s/[redacted]"
    assert redact("/s/abc?x=1") == "/s/[redacted]?x=1"
    assert redact("/agents/s/x") == "/agents/s/x"
    token = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"
    spellings = [
        "////s/{}", "/s//{}", "/s%2F{}", "/s%252F{}", "/%73/{}", "/%6cogin/{}", "/S/{}",
        "/x/../s/{}", "/./s/{}", "/s\\{}", "/login?next=%2Fs%2F{}", "/login?next=/login/{}",
        "/s/{}?x=1", "/s/{}/extra",
    ]  # fmt: skip
    for spelling in spellings:
        logged = redact(spelling.format(token))
        assert token not in logged, spelling
        assert "[redacted]" in logged, spelling


# --- through the gateway ---------------------------------------------------------------

PASSWORD = "pw-for-shares"


@pytest.fixture(scope="module")
def users() -> tuple[User, ...]:
    hashed = hash_password(PASSWORD)
    return (
        User("olga", hashed, Role.OPERATOR, ("*",)),
        User("otto", hashed, Role.OPERATOR, ("*",)),
        User("vic", hashed, Role.VIEWER, ("*",)),
        User("ada", hashed, Role.ADMIN, ("*",)),
    )


@pytest.fixture
async def setup(
    make_agent: AgentFactory, gateway: GatewayFactory, users: tuple[User, ...]
) -> tuple[TestClient[Any, Any], LocalAgent, LocalAgent]:
    shared, other = await make_agent("shared"), await make_agent("other")
    return await gateway(shared, other, users=users), shared, other


@pytest.fixture
async def browsers(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
) -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    client = setup[0]
    opened: dict[str, aiohttp.ClientSession] = {}
    for name in ("olga", "otto", "vic", "ada", "guest"):
        opened[name] = await browser(client, None if name == "guest" else name, PASSWORD)
    yield opened
    for http in opened.values():
        await http.close()


async def make_link(http: aiohttp.ClientSession, agent: str, **body: Any) -> dict[str, Any]:
    response = await http.post(f"/api/agents/{agent}/shares", json={"ttl_seconds": 600, **body})
    assert response.status == 201, await response.text()
    link: dict[str, Any] = await response.json()
    return link


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


async def spectate(guest: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    return await guest.get(path_of(url), allow_redirects=False)


async def test_spectator_flow(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
    browsers: dict[str, aiohttp.ClientSession],
) -> None:
    client, shared, _ = setup
    olga, guest = browsers["olga"], browsers["guest"]
    link = await make_link(olga, "shared")
    assert link["url"].startswith(origin_of(client) + "/s/")
    landing = await spectate(guest, link["url"])
    assert landing.status == 303
    assert landing.headers["Location"] == "/agents/shared/"
    assert landing.headers["Referrer-Policy"] == "no-referrer"
    assert "gateway_spectate=" in landing.headers["Set-Cookie"]
    # The spectator sees only its agent, and the page loads.
    agents = await (await guest.get("/api/agents")).json()
    assert [a["id"] for a in agents["agents"]] == ["shared"]
    assert (await guest.get("/agents/other/")).status == 404
    assert (await guest.get("/agents/shared/")).status == 200
    assert (await guest.post("/api/agents/shared/input", json={"data": "x"})).status == 403
    # Its terminal is read-only, whatever frame it sends.
    ws = await guest.ws_connect("/agents/shared/ws", protocols=("tty",))
    await ws.send_bytes(ttyd.Handshake("", 40, 10).serialize())
    spectator = Terminal(ws, 80, 24)
    await spectator.wait_text("$")
    for frame in (b"0echo spectator-typed\r", b'1{"columns":40,"rows":10}', b"2", b"3"):
        await ws.send_bytes(frame)
    await ws.send_str("0echo spectator-text\r")
    operator = await olga.ws_connect("/agents/shared/ws", protocols=("tty",))
    await operator.send_bytes(ttyd.Handshake().serialize())
    await operator.send_bytes(b"0echo operator-$((4*4))\r")
    await spectator.wait_text("operator-16")
    pane = await shared.capture()
    assert "spectator-typed" not in pane
    assert "spectator-text" not in pane
    assert await shared.pane_size() == (80, 24)
    # Revoking cuts the spectator off at once, and the link is dead.
    shares = (await (await olga.get("/api/shares")).json())["shares"]
    assert [s["id"] for s in shares] == [link["id"]]
    assert "token_sha256" not in shares[0]
    assert (await olga.delete(f"/api/shares/{link['id']}")).status == 204
    assert await spectator.wait_closed(within=timeout(5)) == 1008
    assert (await guest.get("/api/agents")).status == 401
    assert (await spectate(guest, link["url"])).status == 404
    await operator.close()


async def test_a_label_and_max_uses_are_listed_and_hostile_labels_refused(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
    browsers: dict[str, aiohttp.ClientSession],
) -> None:
    olga = browsers["olga"]
    link = await make_link(olga, "shared", label="  for <b>bob</b> ", max_uses=3)
    assert (link["label"], link["max_uses"]) == ("for <b>bob</b>", 3)
    (listed,) = (await (await olga.get("/api/shares")).json())["shares"]
    assert (listed["label"], listed["max_uses"], listed["uses"]) == ("for <b>bob</b>", 3, 0)
    for label in (*HOSTILE_LABELS[:8], "x" * 10_000, 7, ["a"]):
        response = await olga.post(
            "/api/agents/shared/shares", json={"ttl_seconds": 600, "label": label}
        )
        assert response.status == 400, label
        assert (await response.json())["error"] == "bad_request"
    # Nothing refused was made.
    assert len((await (await olga.get("/api/shares")).json())["shares"]) == 1


async def test_a_dead_link_says_so_in_a_page_and_in_json(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
    browsers: dict[str, aiohttp.ClientSession],
) -> None:
    olga, guest = browsers["olga"], browsers["guest"]
    link = await make_link(olga, "shared")
    assert (await spectate(guest, link["url"])).status == 303
    assert (await olga.delete(f"/api/shares/{link['id']}")).status == 204
    page = await guest.get(path_of(link["url"]), headers={"Accept": "text/html"})
    assert page.status == 404
    assert page.content_type == "text/html"
    text = await page.text()
    assert "This link was revoked or expired — ask for a new one." in text
    assert link["url"].rsplit("/", 1)[1] not in text  # the token is not repeated
    asked = await guest.get(path_of(link["url"]), headers={"Accept": "application/json"})
    assert (await asked.json())["message"] == "this link was revoked or expired — ask for a new one"
    # Its page, reloaded with the cookie of the dead link: the same words,
    # never the login form (a spectator has no login), and the cookie goes.
    reload = await guest.get("/agents/shared/", allow_redirects=False)
    assert reload.status == 401
    assert "revoked or expired — ask for a new one" in await reload.text()
    assert '<a href="/login">Log in</a>' in await reload.text()
    assert 'gateway_spectate=""' in reload.headers["Set-Cookie"]
    # Said once: the next visit is a plain one, to the login page.
    again = await guest.get("/agents/shared/", allow_redirects=False)
    assert again.status == 303
    assert again.headers["Location"].startswith("/login?next=")
    # Programs still get a status, not a page.
    assert (await guest.get("/api/agents")).status == 401


async def test_bad_links_all_look_the_same(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
    browsers: dict[str, aiohttp.ClientSession],
) -> None:
    olga, guest = browsers["olga"], browsers["guest"]
    good = await make_link(olga, "shared", max_uses=1)
    used = await make_link(olga, "shared", max_uses=1)
    assert (await spectate(guest, used["url"])).status == 303
    token = good["url"].rsplit("/", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    answers = set()
    for path in (f"/s/{flipped}", f"/s/{token[:20]}", "/s/x", path_of(used["url"])):
        response = await guest.get(path, allow_redirects=False)
        answers.add((response.status, await response.text()))
    assert len(answers) == 1
    ((status, _),) = answers
    assert status == 404


async def test_who_may_create_list_and_revoke(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
    browsers: dict[str, aiohttp.ClientSession],
) -> None:
    olga, otto, vic, ada = (browsers[n] for n in ("olga", "otto", "vic", "ada"))
    mine = await make_link(olga, "shared")
    assert (await vic.post("/api/agents/shared/shares", json={"ttl_seconds": 600})).status == 403
    for bad in ({"ttl_seconds": 5}, {"ttl_seconds": "600"}, {"ttl_seconds": 600, "max_uses": 0}):
        response = await olga.post("/api/agents/shared/shares", json=bad)
        assert response.status == 400, bad
    assert (await (await otto.get("/api/shares")).json())["shares"] == []
    assert (await otto.delete(f"/api/shares/{mine['id']}")).status == 404
    assert [s["id"] for s in (await (await ada.get("/api/shares")).json())["shares"]] == [
        mine["id"]
    ]
    assert (await ada.delete(f"/api/shares/{mine['id']}")).status == 204


async def test_max_uses_holds_under_concurrent_opens(
    setup: tuple[TestClient[Any, Any], LocalAgent, LocalAgent],
    browsers: dict[str, aiohttp.ClientSession],
) -> None:
    client = setup[0]
    link = await make_link(browsers["olga"], "shared", max_uses=3)
    guests = [await browser(client) for _ in range(20)]
    try:
        answers = await asyncio.gather(*(spectate(guest, link["url"]) for guest in guests))
        assert sorted(answer.status for answer in answers) == [303] * 3 + [404] * 17
    finally:
        for guest in guests:
            await guest.close()
