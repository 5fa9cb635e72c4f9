"""How long the default run takes: plain `pytest`, serially and with `-n 2`. A plain script:

    python tests/benchmarks/time_default_run.py [--baseline /path/to/other/checkout] [--repeat 1]

The machine may be shared, so wall times alone mislead. Next to each wall time it prints the CPU
seconds the run used (pytest and every process it started, from the kernel's accounting): that
figure does not grow with other people's load. And it times a fixed one-CPU-second workload before
and after, to say how much slower than an idle machine the wall times are. With --baseline, the
other checkout (e.g. main) runs the same commands in the same session, interleaved, so the two
trees meet the same load: compare them to each other.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"serial": 60.0, "-n 2": 40.0}  # issue 18: the fast tier, seconds on an idle 2-core machine


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (the command and all it started) and pytest's summary line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {"PYTHONPATH": str(cwd)}
    cpu, start = children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    lines = done.stdout.strip().splitlines() or ["(no output)"]
    summary = lines[-1]
    if done.returncode:  # name what failed: a timing of a broken run is no timing
        summary += f"  [exit {done.returncode}] " + " ".join(l for l in lines if l.startswith(("FAILED", "ERROR")))
    return wall, cpu, summary


def slowdown() -> float:
    """Wall time of a fixed single-threaded workload divided by its CPU time (1.0 on an idle core)."""
    wall, cpu, _ = timed([sys.executable, "-c", "s = 0\nfor i in range(12_000_000): s += i * i"], ROOT)
    return wall / cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, help="another checkout to time in the same session")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    trees = {"this tree": ROOT} | ({f"baseline {args.baseline}": args.baseline.resolve()} if args.baseline else {})
    runs = {"serial": [], "-n 2": ["-n", "2"]}
    before = slowdown()
    print(f"load: a fixed workload runs {before:.1f}x slower than on an idle core "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    results: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for _ in range(args.repeat):
        for run, extra in runs.items():
            for name, tree in trees.items():  # interleaved: both trees meet the same load
                r = timed([sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *extra], tree)
                results.setdefault((name, run), []).append(r)
                print(f"{name:40} {run:7} wall {r[0]:6.1f} s  CPU {r[1]:6.1f} s  {r[2]}", flush=True)
    after = slowdown()
    factor = (before + after) / 2
    print(f"load: {after:.1f}x after; wall times below are divided by the mean, {factor:.1f}x, "
          "to estimate an idle machine")
    for (name, run), rs in results.items():
        wall = min(r[0] for r in rs)
        print(f"{name:40} {run:7} best wall {wall:6.1f} s  ~idle {wall / factor:6.1f} s  "
              f"(target {TARGETS[run]:.0f} s)  CPU {min(r[1] for r in rs):6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
