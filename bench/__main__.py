"""``python -m bench`` (``make bench``): the gateway against direct ttyd, in one run.

Prints one table (gateway, direct, ratio gateway ÷ direct) and writes it as
JSON (``bench/results/latest.json`` unless ``--out``). ``--quick`` shrinks
every workload for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

from gateway.screen.base import BACKENDS

from .awareness import b11_awareness
from .harness import Stack
from .replicas import run_replicas
from .workloads import (
    Row,
    b1_throughput,
    b2_echo,
    b3_fanout,
    b4_slow_viewer,
    b5_reconnect,
    b5_screen,
    b6_many_agents,
    b7_emulator,
)

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def run(quick: bool, only: set[str], screen: str) -> list[Row]:
    stack = Stack(screen=screen)
    rows: list[Row] = []
    try:
        for name in ("b1", "b2", "flood", "b3"):
            await stack.add_agent(name)
        await stack.add_agent("b5", columns=200, rows=60)
        many_agents = [f"m{n}" for n in range(10 if quick else 50)]
        for name in many_agents:
            await stack.add_agent(name, columns=80, rows=24)
        (stack.folder / "b5-screen.txt").write_bytes(b5_screen(200, 60))
        await stack.start_gateway()
        if not stack.start_nginx():
            print("  nginx not found: no reverse-proxy baseline (apt-get install nginx)")
        steps = [
            ("B1", b1_throughput(stack, 3_000_000 if quick else 30_000_000)),
            ("B2", b2_echo(stack, 40 if quick else 200)),
            (
                "B3",
                b3_fanout(
                    stack,
                    counts=[1, 10] if quick else [1, 10, 100, 500],
                    direct_max=10 if quick else 100,
                    rate=100_000 if quick else 1_000_000,
                    seconds=2 if quick else 5,
                ),
            ),
            ("B4", b4_slow_viewer(stack, 10 if quick else 100, 1_000_000, 2 if quick else 5)),
            ("B5", b5_reconnect(stack, 5 if quick else 30)),
            ("B6", b6_many_agents(stack, many_agents, 200_000, 3 if quick else 5)),
        ]
        try:
            for name, step in steps:
                if only and name not in only:
                    continue
                started = time.monotonic()
                rows += await step
                print(f"  {name} done in {time.monotonic() - started:.0f}s", flush=True)
        finally:
            for _, step in steps:
                step.close()  # those not run: closed, not left to warn
        if not only or "B7" in only:
            rows += b7_emulator(300_000 if quick else 2_000_000)
        if not only or "B11" in only:
            rows += b11_awareness()
        if not only or only & {"B8", "B9", "B10"}:
            started = time.monotonic()
            rows += await run_replicas(stack, quick)
            print(f"  B8-B10 done in {time.monotonic() - started:.0f}s", flush=True)
    finally:
        await stack.aclose()
    return rows


def ratio(item: Row) -> float | None:
    direct = item["direct"]
    if direct is None or not direct or math.isnan(direct) or math.isnan(item["gateway"]):
        return None
    return float(item["gateway"]) / float(direct)


def table(rows: list[Row]) -> str:
    def number(value: float | None) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"

    lines = [
        "| workload | metric | gateway | direct ttyd | gateway ÷ direct | via nginx "
        "| unit | note |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for item in rows:
        share = ratio(item)
        lines.append(
            f"| {item['workload']} | {item['metric']} | {number(item['gateway'])} | "
            f"{number(item['direct'])} | {number(share)} | {number(item.get('nginx'))} | "
            f"{item['unit']} | {item['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument(
        "--only", action="append", default=[], metavar="B2", help="run only these workloads"
    )
    parser.add_argument(
        "--screen",
        choices=BACKENDS,
        default="auto",
        help="the gateway's screen backend (server.screen)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    rows = asyncio.run(run(args.quick, {name.upper() for name in args.only}, args.screen))
    report = {
        "machine": machine(),
        "quick": args.quick,
        "screen": args.screen,
        "seconds": round(time.monotonic() - started, 1),
        "rows": [{**item, "ratio": ratio(item)} for item in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(rows))
    print(
        f"\n{report['machine']}; screen backend {args.screen}; "
        f"{report['seconds']}s; written to {args.out}"
    )


if __name__ == "__main__":
    main()
