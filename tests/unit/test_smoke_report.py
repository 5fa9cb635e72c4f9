"""The smoke set's threshold logic, report and Harbor command, without a server."""
import json

import pytest

from pytest_tbreplay.smoke import report as smoke
from pytest_tbreplay.smoke.tasks import load_tasks


def rec(outcome, tps=30.0, task="regex-log"):
    return {"task": task, "task_class": "text", "harness": "reference", "profile": "mitigated", "model": "m",
            "outcome": outcome, "turns": 3, "stop_reasons": ["toolUse", "stop"], "peak_prompt_tokens": 900,
            "compactions": [], "decode_tps": tps, "wall_s": 1.0, "error": None, "verifier_output": None}


FLOORS = {"pass_rate": 0.5, "decode_tok_s": 25}


def test_meeting_the_floors_passes():
    assert smoke.check([rec("passed"), rec("failed")], FLOORS) == []


def test_a_pass_rate_whose_whole_interval_is_below_the_floor_fails():
    records = [rec("passed")] * 2 + [rec("failed")] * 15 + [rec("timeout")] * 3
    [problem] = smoke.check(records, FLOORS)
    assert "pass rate 10% (2/20; 95% interval 3%-30%) is below the floor 50%" in problem
    assert smoke.undecided(records, FLOORS) == []


def test_too_few_trials_to_tell_is_said_and_does_not_fail():
    records = [rec("passed"), rec("failed"), rec("timeout")]  # 1/3: the interval reaches 50%
    assert smoke.check(records, FLOORS) == []
    [note] = smoke.undecided(records, FLOORS)
    assert "33% (1/3; 95% interval 6%-79%)" in note and "too few to tell" in note
    assert smoke.undecided([rec("passed")] * 3, FLOORS) == []  # above the floor: nothing to tell


@pytest.mark.parametrize("k, n, lo, hi", [  # Wilson (1927)'s interval at 95%, the published textbook values
    (0, 10, 0.0, 0.27753), (5, 10, 0.23659, 0.76341), (10, 10, 0.72247, 1.0), (1, 3, 0.06149, 0.79234),
    (0, 1, 0.0, 0.79346), (1, 1, 0.20654, 1.0)])
def test_wilson_interval_matches_known_values(k, n, lo, hi):
    got = smoke.wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


def test_wilson_interval_contains_the_rate_and_narrows_with_n():
    for n in range(1, 60):
        for k in range(n + 1):
            lo, hi = smoke.wilson(k, n)
            assert 0 <= lo <= k / n <= hi <= 1
    assert smoke.wilson(5, 10)[1] - smoke.wilson(5, 10)[0] > smoke.wilson(50, 100)[1] - smoke.wilson(50, 100)[0]
    assert smoke.wilson(0, 0) == (0.0, 1.0)


def test_the_report_gives_each_tasks_rate_with_its_interval():
    lines = smoke.table([rec("passed"), rec("failed"), rec("passed", task="openssl")])
    assert any("regex-log" in x and "50% (1/2; 95% interval 9%-91%)" in x for x in lines)
    assert any("openssl" in x and "100% (1/1; 95% interval 21%-100%)" in x for x in lines)


def test_a_decode_rate_below_the_floor_fails():
    [problem] = smoke.check([rec("passed", 20.0), rec("passed", 24.0)], FLOORS)
    assert "decode 22.0 tok/s is below the floor 25 tok/s" in problem


def test_infra_errors_do_not_count_against_the_pass_rate():
    records = [rec("passed"), rec("infra", None), rec("infra", None)]
    assert smoke.totals(records)["pass_rate"] == 1.0 and smoke.check(records, FLOORS) == []
    assert smoke.check([rec("infra", None)], FLOORS)[0] == "no trial was scored (all infra errors)"


def test_thresholds_are_keyed_by_model():
    assert smoke.thresholds_for("SmolLM2-135M-Instruct.Q4_1.gguf")["pass_rate"] == 0.0
    assert smoke.thresholds_for("qwen3.6-35b-a3b")["decode_tok_s"] >= 50
    with pytest.raises(smoke.ThresholdError, match="no thresholds for model 'llama-7b'"):
        smoke.thresholds_for("llama-7b")


def test_report_has_one_record_per_trial_plus_totals(tmp_path):
    report = smoke.write_report([rec("passed"), rec("infra", None, "path-tracing")], tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == report
    assert report["totals"] == {"trials": 2, "scored": 1, "passed": 1, "infra": 1, "timeouts": 0,
                                "pass_rate": 1.0, "pass_rate_ci95": [0.2065, 1.0], "decode_tps_median": 30.0,
                                "tasks": {"regex-log": {"passed": 1, "scored": 1, "pass_rate": 1.0, "ci95": [0.2065, 1.0]},
                                          "path-tracing": {"passed": 0, "scored": 0, "pass_rate": None,
                                                           "ci95": [0.0, 1.0]}}}
    lines = smoke.table(report["trials"])
    assert lines[1].split()[:3] == ["regex-log", "passed", "3"] and "pass rate 100%" in lines[-1]


def harbor_result(task="regex-log", reward=None, exc=None, policy=None, finished="2026-01-01T00:00:10", **extra):
    r = {"task_name": task, "trial_name": f"{task}__x", "started_at": "2026-01-01T00:00:00", "finished_at": finished,
         "verifier_result": {"rewards": {"reward": reward}} if reward is not None else None,
         "exception_info": {"exception_type": exc, "exception_message": "boom", "policy": policy} if exc else None}
    return r | extra


def test_harbor_outcome_follows_harbors_error_policy():
    graded = {"should_retry": False, "should_grade": True, "has_valid_reward": True}
    assert smoke.harbor_outcome(harbor_result(reward=1.0, reward_valid=True)) == "passed"
    assert smoke.harbor_outcome(harbor_result(reward=0.0)) == "failed"
    assert smoke.harbor_outcome(harbor_result(reward=0.0, exc="NonZeroAgentExitCodeError", policy=graded)) == "failed"
    assert smoke.harbor_outcome(harbor_result(reward=0.0, exc="AgentTimeoutError", policy=graded)) == "timeout"
    assert smoke.harbor_outcome(harbor_result(exc="AgentSetupTimeoutError", policy={"should_grade": False})) == "infra"
    # A result written without the policy (before Harbor 0.26): Harbor's table of ungraded types.
    assert smoke.harbor_outcome(harbor_result(exc="EnvironmentStartTimeoutError")) == "infra"
    assert smoke.harbor_outcome(harbor_result(reward=0.0, exc="NonZeroAgentExitCodeError")) == "failed"
    # A reward Harbor marks invalid never counts as a pass.
    assert smoke.harbor_outcome(harbor_result(reward=1.0, reward_valid=False)) == "failed"


def test_the_trial_is_found_by_its_own_result(tmp_path):
    task = load_tasks()["regex-log"]
    assert smoke.harbor_record(task, tmp_path, "m")["outcome"] == "infra"  # no trial at all
    # Folder names end in a random suffix: the later trial sorts first by name.
    for folder, r in [("regex-log__zzz", harbor_result(reward=0.0, finished="2026-01-01T00:00:05")),
                      ("regex-log__aaa", harbor_result(reward=1.0, finished="2026-01-01T00:09:00")),
                      ("other__bbb", harbor_result("path-tracing", reward=0.0, finished="2026-01-02T00:00:00"))]:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "result.json").write_text(json.dumps(r))
    (tmp_path / "regex-log__broken").mkdir()
    (tmp_path / "regex-log__broken" / "result.json").write_text("{not json")
    rec = smoke.harbor_record(task, tmp_path, "m")
    assert rec["outcome"] == "passed" and rec["wall_s"] == 540 and rec["error"] is None


def test_import_and_the_smoke_report_classify_a_harbor_trial_alike():
    """One reading of result.json (core.harbor_result): summarize and the smoke report agree."""
    from pytest_tbreplay.analysis.importer import _outcome
    graded = {"should_grade": True}
    cases = [harbor_result(reward=1.0), harbor_result(reward=0.0), harbor_result(exc="DockerError"),
             harbor_result(exc="EnvironmentBuildTimeoutError"), harbor_result(exc="AddTestsDirError"),
             harbor_result(reward=0.0, exc="AgentTimeoutError", policy=graded),
             harbor_result(reward=0.0, exc="NonZeroAgentExitCodeError", policy=graded)]
    for r in cases:
        imported = _outcome(r, "harbor", None)
        assert smoke.harbor_outcome(r) == ("failed" if imported in ("error", "incomplete") else imported), r
