"""`make bench`: every benchmark, one after another, each printing its own ratios.

python -m benchmarks.run_all [NAME ...]   # e.g. observe_fanout convergence
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = ("observe_fanout", "convergence", "watch_reaction", "git_reaction", "scale")


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 1
    failed: list[str] = []
    for name in names:
        print(f"===== bench_{name} =====", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.bench_{name}"])
        print(f"===== bench_{name}: exit {code}, {time.perf_counter() - started:.0f} s =====")
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
