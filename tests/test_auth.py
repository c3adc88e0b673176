"""Users, passwords, sessions and throttling, without HTTP."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.auth import (
    FORGET_AFTER,
    FREE_FAILURES,
    MAX_PASSWORD_BYTES,
    Authenticator,
    LoginGate,
    LoginThrottle,
    SessionStore,
    client_key,
    hash_password,
)
from gateway.errors import LoginBusy, LoginFailed, LoginThrottled, PasswordTooLong
from gateway.users import Role, User


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def alice() -> User:
    return User("alice", hash_password("correct horse"), Role.OPERATOR, ("claude-*",))


def test_hash_is_argon2id_and_salted() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    assert first.startswith("$argon2id$")
    assert "m=65536,t=3,p=4" in first
    assert first != second


def test_oversized_password_is_refused_before_hashing() -> None:
    with pytest.raises(ValueError, match="limited"):
        hash_password("x" * (MAX_PASSWORD_BYTES + 1))


async def test_login_success_and_failures_look_alike(alice: User) -> None:
    auth = Authenticator([alice])
    session = await auth.login("alice", "correct horse")
    assert await auth.user_of(session.id) == alice
    assert len(session.id) >= 43  # 32 random bytes, base64url
    with pytest.raises(LoginFailed) as wrong:
        await auth.login("alice", "wrong")
    with pytest.raises(LoginFailed) as unknown:
        await auth.login("mallory", "wrong")
    assert str(wrong.value) == str(unknown.value)


async def test_each_login_gets_a_new_session_id(alice: User) -> None:
    auth = Authenticator([alice])
    first = await auth.login("alice", "correct horse")
    second = await auth.login("alice", "correct horse")
    assert first.id != second.id


async def test_throttle_locks_after_repeated_failures(alice: User) -> None:
    auth = Authenticator([alice])
    for _ in range(FREE_FAILURES):
        with pytest.raises(LoginFailed):
            await auth.login("alice", "nope")
    with pytest.raises(LoginThrottled) as info:
        await auth.login("alice", "correct horse")
    assert info.value.retry_after > 0


async def test_throttle_grows_and_clears() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    locks = []
    for _ in range(FREE_FAILURES + 3):
        await throttle.failed("bob")
        locks.append(await throttle.retry_after("bob"))
    assert locks[: FREE_FAILURES - 1] == [0.0] * (FREE_FAILURES - 1)
    assert locks[FREE_FAILURES - 1 :] == [2.0, 4.0, 8.0, 16.0]
    clock.now += 16.5
    assert await throttle.retry_after("bob") == 0.0
    await throttle.succeeded("bob")
    await throttle.failed("bob")
    assert await throttle.retry_after("bob") == 0.0


async def test_sessions_expire_when_idle_and_absolutely() -> None:
    clock = Clock()
    store = SessionStore(idle_timeout=10, absolute_timeout=25, clock=clock)
    session = await store.create("alice")
    for _ in range(2):
        clock.now += 9
        assert await store.get(session.id) is session  # activity keeps it alive...
    clock.now += 9
    assert await store.get(session.id) is None  # ...but never past the absolute limit
    idle = await store.create("alice")
    clock.now += 11
    assert await store.get(idle.id) is None


async def test_expire_ends_sessions_of_removed_users() -> None:
    store = SessionStore()
    kept, dropped = await store.create("alice"), await store.create("bob")
    assert [s.user for s in await store.expire(["alice"])] == ["bob"]
    assert await store.get(kept.id) is kept
    assert await store.get(dropped.id) is None


def test_globs_decide_visibility() -> None:
    user = User("v", "", Role.VIEWER, ("claude-*", "demo"))
    assert user.sees("claude-1")
    assert user.sees("demo")
    assert not user.sees("demo2")
    assert not user.sees("codex-claude-1")
    assert not user.can_write
    assert User("o", "", Role.OPERATOR).can_write


async def test_the_throttle_forgets_and_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, capacity=100)
    await throttle.failed("once")
    clock.now += FORGET_AFTER / 2
    for _ in range(FREE_FAILURES):
        await throttle.failed("locked")
    clock.now += FORGET_AFTER / 2 + 1
    await throttle.failed("fresh")  # each failure first forgets what went stale
    assert throttle.counted() == ["locked", "fresh"]
    clock.now += FORGET_AFTER
    await throttle.failed("fresh")
    assert throttle.counted() == ["fresh"]
    for i in range(1000):
        await throttle.failed(f"spray-{i}")
    assert len(throttle) == 100
    assert throttle.counted()[0] == "spray-900"  # the oldest went first


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, ""),
        ("not an address", "not an address"),
    ],
)
def test_who_a_failure_is_counted_against(address: str | None, key: str) -> None:
    assert client_key(address) == key


async def test_the_gate_takes_clients_in_turn() -> None:
    gate = LoginGate(total=1, per_client=2, waiting=3, patience=30)
    order: list[str] = []
    release = {name: asyncio.Event() for name in ("a1", "a2", "b1", "c1", "a3")}

    async def attempt(client: str, name: str) -> None:
        async with gate.admit(client):
            order.append(name)
            await release[name].wait()

    first = asyncio.create_task(attempt("a", "a1"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(attempt(c, n)) for c, n in (("a", "a2"), ("b", "b1"))]
    await asyncio.sleep(0)
    # "a" has one running and one waiting: a third is refused at once.
    with pytest.raises(LoginBusy) as mine:
        async with gate.admit("a"):
            pass
    assert mine.value.scope == "client"
    waiting.append(asyncio.create_task(attempt("c", "c1")))
    await asyncio.sleep(0)
    assert (gate.in_flight, gate.waiting) == (1, 3)
    with pytest.raises(LoginBusy) as everyone:
        async with gate.admit("d"):
            pass
    assert everyone.value.scope == "gateway"
    for name in ("a1", "a2", "b1", "c1"):
        release[name].set()
        await asyncio.sleep(0.01)
    await asyncio.gather(first, *waiting)
    # In the order the clients came, one place each.
    assert order == ["a1", "a2", "b1", "c1"]
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_the_gate_rotates_between_clients_not_requests() -> None:
    gate = LoginGate(total=1, per_client=3, waiting=10, patience=30)
    order: list[str] = []
    hold = asyncio.Event()

    async def attempt(client: str) -> None:
        async with gate.admit(client):
            order.append(client)
            await hold.wait()
            hold.clear()

    tasks = [asyncio.create_task(attempt(c)) for c in ("a", "a", "a", "b", "b", "c")]
    await asyncio.sleep(0)
    while len(order) < 6:
        hold.set()
        await asyncio.sleep(0.01)
    hold.set()
    await asyncio.gather(*tasks)
    # One place per client in turn: a's third attempt waits behind b's and c's.
    assert order == ["a", "a", "b", "c", "a", "b"]


async def test_a_wait_that_runs_out_or_is_cancelled_gives_its_place_back() -> None:
    gate = LoginGate(total=1, per_client=2, waiting=10, patience=0.05)
    hold = asyncio.Event()

    async def holder() -> None:
        async with gate.admit("a"):
            await hold.wait()

    running = asyncio.create_task(holder())
    await asyncio.sleep(0)
    with pytest.raises(LoginBusy):
        async with gate.admit("b"):
            pass
    cancelled = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    assert gate.waiting == 0
    hold.set()
    await running
    assert (gate.in_flight, gate.waiting) == (0, 0)
    async with gate.admit("b"):
        assert gate.in_flight == 1


async def test_an_oversized_password_is_refused_and_not_counted(alice: User) -> None:
    auth = Authenticator([alice])
    for _ in range(FREE_FAILURES * 3):
        with pytest.raises(PasswordTooLong):
            await auth.login("alice", "x" * (MAX_PASSWORD_BYTES + 1), "203.0.113.7")
    assert len(auth.throttle) == 0
    assert (await auth.login("alice", "correct horse", "203.0.113.7")).user == "alice"
    auth.close()
