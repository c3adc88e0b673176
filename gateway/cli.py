"""The command line: ``gateway serve``.

Only argument parsing and process setup live here; everything else is in
:mod:`gateway.config` and :mod:`gateway.app`.

The demo's console (``make run``) is for its login link: the access log
goes to ``state/access.log`` instead of burying it, the link is the last
line printed, and pressing Enter prints a fresh one (the last one printed
stops working) without restarting the gateway or its agents. A key press
on the console, rather than a ``gateway login-link`` command talking to the
running gateway, because whoever holds that console started the demo: it
needs no channel, socket or credential of its own, so it opens no new way
in. Without a console to read (stdin at its end: /dev/null, a service) the
link printed at start is the only one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from aiohttp import web

from . import __version__, config, logsafe
from .app import create_app
from .appkeys import AUTH
from .auth import hash_password, new_api_token
from .errors import ConfigError, GatewayError
from .origins import normalize_origin
from .web.accesslog import AccessLogger

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("GATEWAY_CONFIG") or None,
        help="TOML config file (default: $GATEWAY_CONFIG)",
    )
    serve.add_argument(
        "--demo", action="store_true", help="also spawn two local demo agents (ttyd + tmux)"
    )
    serve.add_argument("--listen", help="HOST:PORT to listen on, overriding the config")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    commands.add_parser(
        "new-api-token",
        help="print a new bearer token and the api_token_sha256 line for [[users]]",
    )
    commands.add_parser(
        "hash-password",
        help="read a password on stdin, print its argon2id hash for [[users]] password_hash",
    )
    return parser


def _hash_password() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("gateway: error: the passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        print("gateway: error: empty password", file=sys.stderr)
        return 2
    try:
        print(hash_password(password))
    except ValueError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _settings(args: argparse.Namespace) -> config.Settings:
    if args.config is not None:
        settings = config.load(args.config, demo=args.demo)
    elif args.demo:
        settings = config.Settings(demo=True)
    else:
        raise ConfigError("nothing to serve: give --config FILE (or $GATEWAY_CONFIG) or --demo")
    if args.listen:
        host, port = config.parse_listen(args.listen)
        settings = dataclasses.replace(settings, host=host, port=port)
        config.check_exposure(settings)
    if args.config is None:
        # Without a config, the origins are the two names of the loopback
        # address the demo is opened with.
        host = settings.listen.rpartition(":")[0]
        settings = dataclasses.replace(
            settings,
            public_origin=normalize_origin(f"http://{host}:{settings.port}"),
            extra_origins=(f"http://localhost:{settings.port}",),
        )
    if settings.demo:
        settings = dataclasses.replace(
            settings, demo_login_token=config.Secret(secrets.token_urlsafe(32))
        )
    return settings


# The demo's access log, off the console (see the module docstring).
ACCESS_LOG = "access.log"

# What each login link line starts with (tests read the console for it).
LINK_LINE = "log in (works once): "


class DemoConsole:
    """The demo's one-time login links, as its console prints them."""

    def __init__(self, settings: config.Settings) -> None:
        assert settings.demo_login_token is not None
        self._base = settings.public_origin
        self._token = settings.demo_login_token.reveal()

    def link(self) -> str:
        return f"{self._base}/login/{self._token}"

    async def fresh(self, app: web.Application) -> str:
        """A new link for the demo's admin; the one printed before stops working."""
        auth = app[AUTH]
        await auth.drop_one_time_login(self._token)
        self._token = secrets.token_urlsafe(32)
        await auth.add_one_time_login(self._token, "demo")
        return self.link()

    async def serve(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: print a fresh link for every line typed on the console."""
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno() if sys.stdin is not None else -1
        pending: set[asyncio.Task[None]] = set()

        async def reprint() -> None:
            print(LINK_LINE + await self.fresh(app), flush=True)

        def readable() -> None:
            try:
                typed = os.read(fd, 4096)
            except OSError:
                typed = b""
            if not typed:
                loop.remove_reader(fd)  # the console's end: nobody left to ask
                return
            for _ in range(max(1, typed.count(b"\n"))):
                task = loop.create_task(reprint())
                pending.add(task)
                task.add_done_callback(pending.discard)

        # A reader, not a pipe transport: that would leave the terminal's
        # stdin non-blocking for the shell after we exit. A regular file (or
        # no stdin) cannot be watched: then there is nothing to read.
        watching = False
        if fd >= 0:
            with contextlib.suppress(OSError, ValueError):
                loop.add_reader(fd, readable)
                watching = True
        try:
            yield
        finally:
            if watching:
                loop.remove_reader(fd)


def _access_log(settings: config.Settings) -> logging.Logger:
    """Where request lines go: the console, or for the demo a file beside its audit log."""
    logger = logging.getLogger("aiohttp.access")
    if settings.demo:
        logger = logging.getLogger("gateway.access")
        logger.addHandler(logsafe.file_handler(settings.state_dir / ACCESS_LOG))
        logger.propagate = False
    return logger


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "hash-password":
        return _hash_password()
    if args.command == "new-api-token":
        token, digest = new_api_token()
        print(f"token (give it to the script, it is not stored): {token}")
        print(f'config line for the user: api_token_sha256 = "{digest}"')
        return 0
    logsafe.configure(args.log_level)
    try:
        settings = _settings(args)
        app = create_app(settings)
    except GatewayError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 2

    console = DemoConsole(settings) if settings.demo_login_token is not None else None
    if console is not None:
        app.cleanup_ctx.append(console.serve)
    access_log = _access_log(settings)

    def announce(_: str) -> None:
        base = settings.public_origin
        print(f"gateway {__version__} listening on http://{settings.listen}", flush=True)
        if access_log.name != "aiohttp.access":
            print(f"requests are logged to {settings.state_dir / ACCESS_LOG}", flush=True)
        if settings.demo:
            print(f"demo agents: {base}/agents/shell/  {base}/agents/busy-agent/", flush=True)
        if console is None:
            print("press Ctrl-C to stop", flush=True)
            return
        print("press Enter for a fresh login link, Ctrl-C to stop", flush=True)
        # Last, so it is what the console shows; printed on the console of
        # whoever started the gateway only.
        print(LINK_LINE + console.link(), flush=True)

    app.cleanup_ctx.insert(0, _stop_once)  # first up, last down
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=announce,
            access_log_class=AccessLogger,
            access_log=access_log,
            handle_signals=False,
        )
    except GatewayError as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"gateway: error: cannot listen on {settings.listen}: {exc.strerror}", file=sys.stderr
        )
        return 1
    return 0


async def _stop_once(app: web.Application) -> AsyncIterator[None]:
    """SIGTERM or SIGINT stops the gateway; another one while it stops is only logged.

    In place of aiohttp's handlers, which raise its exit again from inside
    the shutdown, cutting it short halfway ("generator didn't stop after
    athrow()" tracebacks, agents left running). The shutdown is bounded (a
    few seconds: see the README's deadlines), so waiting costs little. The
    first signal raises the exit from a loop callback, as aiohttp does.
    """
    loop = asyncio.get_running_loop()
    stopping = False

    def stop(name: str) -> None:
        nonlocal stopping
        if stopping:
            log.warning("%s again: already stopping", name)
            return
        stopping = True
        raise web.GracefulExit

    numbers = (signal.SIGINT, signal.SIGTERM)
    for number in numbers:
        loop.add_signal_handler(number, stop, number.name)
    yield
    # Last of the cleanup. Closing the loop closes its wakeup pipe before it
    # removes its handlers, and a signal in between prints a traceback
    # ("Bad file descriptor"): ours go now, and signals are ignored until exit.
    for number in numbers:
        loop.remove_signal_handler(number)
        signal.signal(number, signal.SIG_IGN)
