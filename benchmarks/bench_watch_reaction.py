"""Watch reaction time: a spec file write -> the first log line of its new plan.

A fresh 3-node cmslab; `reconcile watch SPEC --mode report --interval 60` runs as a
subprocess with JSON logs. Each round rewrites the spec (the clustering interface
toggles between `a` and `b`, which changes the plan) and measures, from the write
to the watch's log timestamps:

* `spec loaded`: the new revision was read (file watcher + debounce + validation);
* `plan`: the first `planned step` line of the new plan (observation + planning).

The interval is 60 s, so anything well under a second can only come from the file
watcher. Prints per-round values, the median and the worst, and the ratio of the
median to the interval (target: reaction < 1 s).

    python -m benchmarks.bench_watch_reaction [--rounds 10] [--interval 60]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .lab_util import bench_lab, write_spec

REPO = Path(__file__).resolve().parents[1]
BASE = "127.0.42.1"


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _wait(log: Path, after: int, predicate: Any, timeout: float = 30) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(log)
        for i, event in enumerate(events[after:], start=after):
            if predicate(event):
                return i, event
        time.sleep(0.02)
    raise SystemExit(f"timed out; log tail:\n{log.read_text()[-3000:]}")


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--interval", type=float, default=60.0)
    args = parser.parse_args()

    with bench_lab(BASE, 3) as lab:
        spec = write_spec(lab, 3, "bench-watch.yaml")
        text = spec.read_text()
        assert "interface: a" in text, "the lab spec is expected to name interface a"
        log = lab.paths.root / "watch.log"
        with log.open("w") as fh:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler.cli",
                    "watch",
                    str(spec),
                    "--mode",
                    "report",
                    "--interval",
                    str(args.interval),
                    "--log-format",
                    "json",
                ],
                cwd=REPO,
                env=dict(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait(log, 0, lambda e: e["event"] == "cycle", timeout=60)
            time.sleep(1.0)  # let the file watcher settle on its directories
            loaded_s: list[float] = []
            plan_s: list[float] = []
            for i in range(args.rounds):
                interface = "b" if i % 2 == 0 else "a"
                after = len(_events(log))
                new = text.replace("interface: a", f"interface: {interface}")
                written = time.time()
                spec.write_text(new)
                _, loaded = _wait(log, after, lambda e: e["event"] == "spec loaded")
                _, planned = _wait(
                    log,
                    after,
                    lambda e, want=interface: (
                        e["event"] == "planned step"
                        and e.get("command") == f"database cluster localnode {want}"
                    ),
                )
                loaded_s.append(_ts(loaded) - written)
                plan_s.append(_ts(planned) - written)
                print(
                    f"round {i + 1:2d}: spec loaded after {loaded_s[-1] * 1000:6.0f} ms, "
                    f"first plan line after {plan_s[-1] * 1000:6.0f} ms"
                )
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        med = statistics.median(plan_s)
        print(
            f"\nspec loaded: median {statistics.median(loaded_s) * 1000:.0f} ms, "
            f"max {max(loaded_s) * 1000:.0f} ms"
        )
        print(f"first plan line: median {med * 1000:.0f} ms, max {max(plan_s) * 1000:.0f} ms")
        print(
            f"interval {args.interval:.0f} s; median reaction / interval = "
            f"{med / args.interval:.4f} (target: reaction < 1 s) ; watch exit code {code}"
        )


if __name__ == "__main__":
    main()
