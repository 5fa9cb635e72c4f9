"""Issue 20 item 3: the stuck-turn guard (j) on a reconstructed build-pov-ray shape
(cassettes/shapes/stuck-build.yaml: the same `make` with the same compiler error, turn after
turn) and its negative control (poll-converges.yaml: the same `cat` of a job's status whose
result changes until the job is done). Red under baseline, green under mitigated, for both
harnesses; and the guard alone is what stops it."""
from pathlib import Path

import pytest

from pytest_tbreplay.core.profiles import load_profile

SHAPES = Path(__file__).resolve().parents[2] / "cassettes" / "shapes"
BASELINE, MITIGATED = load_profile("baseline"), load_profile("mitigated")
BUILD = "cd /app && make"


def builds(trial) -> int:
    return sum(1 for m in trial.messages for c in m.get("tool_calls") or [] if BUILD in c["function"]["arguments"])


@pytest.mark.harnesses
def test_stuck_build_baseline_runs_every_recorded_turn(replay, harness):
    r = replay(SHAPES / "stuck-build.yaml", BASELINE, harness)
    recorded = [i for i, it in enumerate(r.engine.cassette.interactions) if not it.scripted]
    assert r.engine.unplayed() == [] and len(r.trial.turns) == len(recorded) == 16
    assert builds(r.trial) == r.engine.cassette.metadata["failure"]["builds"] == 14
    assert r.trial.stop_reason == "stop" and r.trial.nudges == []
    assert r.trial.final_text.startswith("I could not get the renderer to build")


@pytest.mark.harnesses
@pytest.mark.pi_sample
def test_stuck_build_mitigated_is_nudged_then_stopped_as_stuck(replay, harness):
    r = replay(SHAPES / "stuck-build.yaml", MITIGATED, harness)
    [nudge] = r.trial.nudges
    assert f"You have run `bash {BUILD}` 4 times with the same result" in nudge
    # the nudge came after the 4th identical build (turn 4), as the next user message
    at = r.engine.cassette.metadata["failure"]["nudge_after_interaction"]
    scripted = [i for i, it in enumerate(r.engine.cassette.interactions) if it.scripted]
    assert [s.index for s in r.engine.served] == list(range(at + 1)) + scripted
    assert nudge in str(r.engine.served[at + 1].request["messages"][-1])
    assert r.trial.stop_reason == "stuck" and "came back 4 times with the same result" in r.trial.error
    assert builds(r.trial) == 4 + 2 and len(r.trial.turns) == 1 + 4 + 2  # against 14 builds, 16 turns
    assert len(r.engine.served) == 7  # no request after the stop


@pytest.mark.harnesses
def test_stuck_build_guard_off_runs_on_after_the_same_errors(replay, harness):
    r = replay(SHAPES / "stuck-build.yaml", MITIGATED.replace(stuck_guard=None), harness)
    assert r.trial.nudges == [] and r.trial.stop_reason != "stuck" and builds(r.trial) == 14


@pytest.mark.harnesses
@pytest.mark.parametrize("profile", [BASELINE, MITIGATED], ids=["baseline", "mitigated"])
def test_a_poll_whose_result_changes_is_never_nudged_nor_stopped(replay, harness, profile):
    r = replay(SHAPES / "poll-converges.yaml", profile, harness)
    polls = sum(1 for m in r.trial.messages for c in m.get("tool_calls") or [] if "job/status" in c["function"]["arguments"])
    assert polls == 8 and r.engine.unplayed() == []
    assert r.trial.nudges == [] and r.trial.stop_reason == "stop"
    assert "1200 rows" in r.trial.final_text
