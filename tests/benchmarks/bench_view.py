"""The viewer at real scale: a 300-turn trial whose context grows to 250k tokens (trialgen's
long_trial, imported as Harbor left it), its page's size (target < 5 MB) and Chromium's time to
load and render it (target < 3 s, Chromium's own start included).

    PYTHONPATH=. python tests/benchmarks/bench_view.py
"""
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from browser import chromium_problem, render_seconds  # noqa: E402
from pytest_tbreplay.analysis import view  # noqa: E402
from trialgen import long_trial, trial_result, write_trial  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        trial = write_trial(Path(tmp) / "job" / "build__0000001", long_trial(300, 250_000),
                            result=trial_result("build", "build__0000001", reward=0.0))
        t = time.perf_counter()
        groups, failed = view.groups_from_sources([trial], [])
        site = view.write_site(groups, Path(tmp) / "site", failed)
        built = time.perf_counter() - t
        [page] = [p for p in site.pages if p.name.startswith("trial-")]
        g = groups[0]
        size = page.stat().st_size
        print(f"trial: {len(g.recorded.rows)} turns, peak context {g.record.peak_prompt_tokens:,} tokens")
        print(f"page: {size / 1e6:.2f} MB (target < 5 MB); built in {built:.2f} s")
        if problem := chromium_problem():
            print(f"render: skipped, {problem}")
            return 1
        times = sorted(render_seconds(page) for _ in range(3))
        print(f"chromium load+render+dump: median {times[1]:.2f} s of 3 (target < 3 s); "
              f"{[round(x, 2) for x in times]}")
        return 0 if size < 5e6 and times[1] < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
