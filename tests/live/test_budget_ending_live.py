"""A live trial that ran out of its time budget replays to the same ending (issue 21 item 5): the
recording's metadata.ended says after which interaction the budget ran out, and replay, which has
no clock, ends the trial there as `timeout` in both harnesses. Run with `pytest --live`."""
import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.core.trial import TaskSpec
from pytest_tbreplay.run import replay_cassette

pytestmark = pytest.mark.live
MITIGATED = load_profile("mitigated")
# Every answer a length stop at 8 tokens (ignore_eos) and nudged on: several short turns, whatever
# the model says, so a budget shorter than the whole trial runs out between or inside turns.
PROFILE = MITIGATED.replace(max_tokens=8, headroom=2048, dry=MITIGATED.dry | {"cache_prompt": False, "ignore_eos": True})
COUNT = TaskSpec("count", "Count from 1 to 500, one number per line, and nothing else.")


def record_out_of_time(live, harness, tmp_path):
    """A recording that ran out of time after at least one answer: the budget is a share of the
    unbudgeted trial's wall time on this machine, tried shorter or longer until it does (a loaded
    machine moves the wall time, never what is asserted)."""
    full = live(COUNT, PROFILE, harness)
    assert full.trial.outcome == "completed" and len(full.trial.turns) >= 2, full.trial.error
    budget = full.trial.wall_s * 0.6
    for _ in range(5):
        rec = live(COUNT, PROFILE, harness, budget_s=budget)
        ended = rec.cassette.metadata.get("ended")
        if rec.trial.outcome == "completed":
            budget *= 0.6
        elif ended and ended["at_interaction"] == 0:
            budget *= 1.5
        else:
            return rec, cs.load(cs.save(rec.cassette, tmp_path / f"out-of-time-{harness}.yaml"))
    pytest.fail(f"no budget between the first answer and the end of the trial (last {budget:.1f} s)")


@pytest.mark.parametrize("recorded_with", ["reference", pytest.param("pi@1.6.0", marks=pytest.mark.needs("pi"))])
def test_a_trial_out_of_time_replays_to_the_same_ending_in_both_harnesses(live, recorded_with, tmp_path):
    rec, c = record_out_of_time(live, recorded_with, tmp_path)
    ended = c.metadata["ended"]
    assert rec.trial.outcome == "timeout" and rec.trial.stop_reason == "aborted", rec.trial.error
    assert ended["outcome"] == "timeout" and ended["after_s"] > 0 and 1 <= ended["at_interaction"] <= len(c.interactions)
    for harness in ("reference", "pi@1.6.0"):
        replayed = replay_cassette(c, PROFILE, harness)
        replayed.engine.check(strict=True)  # every interaction before the ending served, nothing else asked
        assert (replayed.trial.outcome, replayed.trial.stop_reason) == ("timeout", "aborted"), replayed.trial.error
        assert "time budget" in replayed.trial.error
        assert [s.index for s in replayed.served] == list(range(ended["at_interaction"]))
        if harness == recorded_with:  # the same harness: the same trial, up to the same ending
            assert len(replayed.trial.turns) == ended["at_interaction"]
            assert [t.stop_reason for t in replayed.trial.turns] == \
                [t.stop_reason for t in rec.trial.turns][:ended["at_interaction"]]
