"""Real-scale trials: `pytest -m benchmark tests/benchmarks/test_bench_import.py -s`.

The bars (issue "Bring real trials in"): a 300-turn trial whose context grows to 250k tokens
imports in under 2 s, its cassette is under 30 MB and loads in under 1 s; summarize of a
100-trial job folder takes under 5 s. Measured here, printed, and written in the README."""
import random
import sys
import time
from pathlib import Path

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.analysis import summarize as sm
from pytest_tbreplay.analysis.importer import import_trial

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trialgen import long_trial, trial_result, write_trial  # noqa: E402

pytestmark = pytest.mark.benchmark
MB = 1e6


@pytest.fixture(scope="module")
def big_trial(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big") / "build-pov-ray__Abc1234"
    s = long_trial(turns=300, grow_to=250_000)
    return write_trial(root, s, result=trial_result("build-pov-ray", root.name, reward=0.0))


def cpu_seconds(fn, *args):
    """CPU time of one call: what wall time would be on an idle machine, whatever else runs."""
    t = time.process_time()
    fn(*args)
    return time.process_time() - t


def test_import_a_300_turn_250k_trial(benchmark, big_trial, tmp_path):
    out = tmp_path / "c.yaml"

    def run():
        out.unlink(missing_ok=True)
        return cs.save(import_trial(big_trial), out)

    benchmark.pedantic(run, rounds=3, iterations=1)
    cpu = cpu_seconds(run)
    size = out.stat().st_size
    c = cs.load(out)
    peak = max(it.usage.get("prompt_tokens", 0) for it in c.interactions)
    chunks = sum(len(it.events) for it in c.interactions)
    flat = sum(len(it.body_text()) for it in c.interactions)
    print(f"\nimport + save: {benchmark.stats.stats.median:.2f} s wall, {cpu:.2f} s CPU (bar < 2 s); cassette {size / MB:.1f} MB "
          f"(bar < 30 MB; {len(c.interactions)} interactions, {chunks:,} SSE chunks, peak prompt {peak:,} tokens; "
          f"the request bodies alone would be {flat / MB:.0f} MB stored flat)")
    benchmark.extra_info.update(seconds=benchmark.stats.stats.median, megabytes=round(size / MB, 1))
    assert len(c.interactions) == 301 and peak >= 240_000
    assert size < 30 * MB


def test_load_a_300_turn_250k_cassette(benchmark, big_trial, tmp_path):
    path = cs.save(import_trial(big_trial), tmp_path / "c.yaml")
    c = benchmark.pedantic(cs.load, args=(path,), rounds=5, iterations=1)
    print(f"\nload: {benchmark.stats.stats.median:.2f} s wall, {cpu_seconds(cs.load, path):.2f} s CPU (bar < 1 s), "
          f"{path.stat().st_size / MB:.1f} MB")
    assert len(c.interactions) == 301


@pytest.fixture(scope="module")
def job_of_100(tmp_path_factory) -> Path:
    """100 trials shaped like the analysed run: most short, some long, a few at real scale."""
    job, rng = tmp_path_factory.mktemp("job100"), random.Random(7)
    for k in range(100):
        turns = rng.choice([12, 20, 30, 30, 60, 120]) if k % 10 else 300
        s = long_trial(turns=turns, grow_to=min(250_000, 2_000 + turns * 900), out_tokens=120, seed=k)
        name = f"task-{k:03d}__{k:07d}"
        write_trial(job / name, s, result=trial_result(f"task-{k:03d}", name, reward=float(k % 3 == 0)))
    return job


def test_summarize_a_100_trial_job_folder(benchmark, job_of_100):
    recs, failed = benchmark.pedantic(sm.records, args=([job_of_100],), rounds=3, iterations=1)
    t0 = time.perf_counter()
    sm.table(recs)
    table_s = time.perf_counter() - t0
    print(f"\nsummarize 100 trials: {benchmark.stats.stats.median:.2f} s wall, "
          f"{cpu_seconds(sm.records, [job_of_100]):.2f} s CPU (bar < 5 s; table {table_s * 1000:.0f} ms)")
    assert len(recs) == 100 and not failed
