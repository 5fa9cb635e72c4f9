"""metadata.ended: a recorded trial that ran out of its time budget ends the same way in replay
(the live round trip is tests/live/test_budget_ending_live.py); a malformed ending is refused at load."""
import pytest

import factory
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.run import replay_cassette

MITIGATED = load_profile("mitigated").replace(max_tokens=64, headroom=0, context_window="auto")


def ended_after(n: int, at: int) -> dict:
    data = factory.minimal(n)
    for it in data["interactions"]:  # each answer cut at max tokens: mitigated nudges and goes on
        r = it["response"]["body"]
        r["string"] = r["string"].replace('"finish_reason":"stop"', '"finish_reason":"length"')
    data["metadata"]["ended"] = {"outcome": "timeout", "after_s": 30.0, "at_interaction": at}
    return data


@pytest.mark.parametrize("at", [0, 1])
def test_replay_ends_out_of_time_where_the_recording_did(at):
    c = cs.parse(ended_after(2, at), "ended.yaml")
    replayed = replay_cassette(c, MITIGATED, "reference")
    replayed.engine.check(strict=True)
    assert (replayed.trial.outcome, replayed.trial.stop_reason) == ("timeout", "aborted")
    assert "time budget of 30 s ran out" in replayed.trial.error
    assert [s.index for s in replayed.served] == list(range(at))


def test_without_the_ending_the_same_replay_is_a_mismatch():  # what replay did before metadata.ended
    data = ended_after(2, 1)
    del data["metadata"]["ended"]
    data["interactions"].pop()
    replayed = replay_cassette(cs.parse(data, "no-ending.yaml"), MITIGATED, "reference")
    with pytest.raises(AssertionError, match="no answer for this request"):
        replayed.engine.check()


@pytest.mark.parametrize("ended", [{"outcome": "done", "after_s": 1, "at_interaction": 0},
                                   {"outcome": "timeout", "after_s": float("nan"), "at_interaction": 0},
                                   {"outcome": "timeout", "after_s": 1, "at_interaction": 3},
                                   {"outcome": "timeout", "after_s": 1, "at_interaction": -1}, "timeout"])
def test_a_malformed_ending_is_refused_at_load(ended):
    data = factory.minimal(2)
    data["metadata"]["ended"] = ended
    with pytest.raises(cs.CassetteError, match="ended.yaml: metadata.ended must be"):
        cs.parse(data, "ended.yaml")
