"""``python -m capture [NAME ...]``: record scenarios into tests/fixtures/agents/."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from .record import NODE_BIN, REPO, ROOT, CaptureError, label_json, record
from .script import ScriptError, load

SCENARIOS = ROOT / "scenarios"
OUT = REPO / "tests" / "fixtures" / "agents"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capture", description=__doc__)
    parser.add_argument("names", nargs="*", help="scenarios to record (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--dump", action="store_true",
                        help="keep the work folder and every request the mock saw")  # fmt: skip
    parser.add_argument("--relabel", action="store_true",
                        help="only copy each scenario's label into its recording")  # fmt: skip
    args = parser.parse_args(argv)
    if args.relabel:
        return relabel(args.names, args.out)
    if not NODE_BIN.is_dir():
        print("capture: the CLIs are not installed: make clis", file=sys.stderr)
        return 2
    paths = [SCENARIOS / f"{n}.toml" for n in args.names] or sorted(SCENARIOS.glob("*.toml"))
    failed = 0
    for path in paths:
        try:
            scenario = load(path)
            written = asyncio.run(record(scenario, path, args.out, dump=args.dump))
        except (ScriptError, CaptureError) as exc:
            print(f"capture: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"capture: {written}")
    return 1 if failed else 0


def relabel(names: list[str], out: Path) -> int:
    """Labels are the scenario's, fixed by hand: no need to record again for them."""
    paths = [SCENARIOS / f"{n}.toml" for n in names] or sorted(SCENARIOS.glob("*.toml"))
    for path in paths:
        recording = out / f"{path.stem}.json"
        if not recording.exists():
            print(f"capture: {recording}: not recorded yet", file=sys.stderr)
            continue
        meta = json.loads(recording.read_text())
        meta["label"] = label_json(load(path))
        meta["description"] = load(path).description
        recording.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
