"""`--trials N` in an inner pytest session (pytester): a test taking `trial_number` runs N times per
task, and the smoke report gives each task's pass rate and the overall one with its 95% Wilson
interval, checking the floor against the interval. The smoke test here is a fake that leaves a
smoke record the way `run_smoke_task` does (no server: this is the plugin's wiring)."""
import json
import re

import pytest

from pytest_tbreplay.smoke.report import wilson

MODEL = "Qwen3.6-35B-A3B"  # its floor in smoke/thresholds.yaml: pass rate 0.5, decode 60 tok/s

# Task `a` passes its first A trials, task `b` its first B: the counts are known in advance.
FAKE_SMOKE = """
import json
import pytest

FIRST_PASSING = {{"a": {a}, "b": {b}}}


@pytest.mark.parametrize("task", ["a", "b"])
def test_fake_smoke(task, trial_number, request):
    rec = {{"task": task, "model": "{model}", "outcome": "passed" if trial_number <= FIRST_PASSING[task] else "failed",
           "turns": 3, "stop_reasons": ["toolUse", "stop"], "peak_prompt_tokens": 1000, "compactions": [],
           "decode_tps": 80.0, "trial_number": trial_number}}
    request.node.user_properties.append(("tbreplay_smoke", json.dumps(rec)))
"""


def interval(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:.0%} ({k}/{n}; 95% interval {lo:.0%}-{hi:.0%})"


def run(pytester, n: int, a: int, b: int):
    pytester.makepyfile(test_fake=FAKE_SMOKE.format(a=a, b=b, model=MODEL))
    return pytester.runpytest("--trials", str(n), "-v")


@pytest.mark.parametrize("n, a, b", [(1, 1, 0), (3, 3, 1), (5, 4, 2)])
def test_each_task_runs_n_times_and_each_rate_has_its_interval(pytester, n, a, b):
    result = run(pytester, n, a, b)
    result.assert_outcomes(passed=2 * n)
    for task in "ab":
        ran = re.findall(rf"test_fake_smoke\[trial(\d+)-{task}\] PASSED", result.stdout.str())
        assert sorted(map(int, ran)) == list(range(1, n + 1))
    result.stdout.fnmatch_lines([f"  a * pass rate {interval(a, n)}", f"  b * pass rate {interval(b, n)}",
                                 f"pass rate {interval(a + b, 2 * n)} (0 infra, 0 timeouts)*"])
    report = json.loads((pytester.path / ".tbreplay" / "smoke-report.json").read_text())
    assert sorted((r["task"], r["trial_number"]) for r in report["trials"]) == \
        sorted((t, k) for t in "ab" for k in range(1, n + 1))
    assert report["totals"]["tasks"]["b"]["ci95"] == [round(x, 4) for x in wilson(b, n)]


def test_under_the_floor_with_an_interval_reaching_it_is_too_few_to_tell(pytester):
    result = run(pytester, 2, 1, 0)  # 1 of 4: 25%, but the interval reaches 50%
    assert wilson(1, 4)[0] < 0.5 < wilson(1, 4)[1]
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"too few trials: pass rate {interval(1, 4)} is under the floor 50% but its "
                                 "interval reaches it*--trials N*"])
    assert "THRESHOLD FAILED" not in result.stdout.str()


def test_a_whole_interval_under_the_floor_fails_the_session(pytester):
    result = run(pytester, 6, 1, 0)  # 1 of 12: the interval's top is under 50%
    assert wilson(1, 12)[1] < 0.5
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"THRESHOLD FAILED: pass rate {interval(1, 12)} is below the floor 50%"])


def test_trials_below_one_is_a_usage_error(pytester):
    result = run(pytester, 0, 0, 0)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trials 0: give 1 or more*"])
