"""The command line: ``gateway serve``.

Only argument parsing and process setup live here; everything else is in
:mod:`gateway.config` and :mod:`gateway.app`.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from . import __version__, config, logsafe
from .app import create_app
from .auth import hash_password, new_api_token
from .errors import ConfigError, GatewayError
from .origins import normalize_origin
from .web.accesslog import AccessLogger


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

    def announce(_: str) -> None:
        base = settings.public_origin
        print(f"gateway {__version__} listening on http://{settings.listen}", flush=True)
        if settings.demo and settings.demo_login_token is not None:
            print(f"demo agents: {base}/agents/shell/  {base}/agents/busy-agent/", flush=True)
            # Printed once, on the console of whoever started the gateway.
            link = f"{base}/login/{settings.demo_login_token.reveal()}"
            print(f"log in (works once): {link}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=announce,
            access_log_class=AccessLogger,
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
