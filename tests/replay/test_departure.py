"""Where a replay leaves its recording (analysis/departure.py), read off the replay engine: on
every shipped cassette with the reference harness, and the classification of the request the
cassette lacks. (tests/pi/test_whatif_versions.py does it with pi 0.73.1 against pi 1.x.)"""
from pathlib import Path

import pytest

from pytest_tbreplay.analysis.departure import REFUSED_CUT_CALL, _unrecorded, course
from pytest_tbreplay.analysis.whatif import departures, whatif
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.replay.engine import ReplayMismatch

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "cassettes").glob("*.yaml")) + sorted((ROOT / "cassettes" / "shapes").glob("*.yaml"))


@pytest.mark.parametrize("profile", ["baseline", "mitigated"])
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_a_replay_follows_its_recording_exactly_when_no_departure_is_reported(replay, path, profile):
    r = replay(path, profile, "reference")  # the session's replay of it, shared with the proofs
    c = course(r.engine, r.trial.outcome, r.trial.stop_reason)
    its = r.cassette.interactions
    overflows = sum(it.status == 400 for it in its if not it.scripted)
    followed = (not r.engine.errors and not r.engine.unplayed() and all(s.cut_at is None for s in r.served)
                and not any(s.index is not None and its[s.index].scripted for s in r.served)  # nothing beyond it
                and sum(s.index is None for s in r.served) == overflows)  # only the recorded 400s
    assert (c.first is None) == followed
    assert c.played + len(r.engine.unplayed()) == c.recorded
    assert [d.interaction for d in c.departures] == sorted(d.interaction for d in c.departures)
    if c.first is not None:  # nothing before the first departure was changed
        assert all(s.cut_at is None for s in r.served if s.index is not None and s.index < c.first.interaction)


def test_a_profile_cap_below_the_recorded_answer_is_a_max_tokens_departure():
    w = whatif(cs.load(ROOT / "cassettes" / "shapes" / "cut-write.yaml"), load_profile("mitigated"))  # primes-table
    first = w.course.first
    assert first.kind == "max_tokens" and "cut at 4,096" in first.text
    [row] = departures([w])
    assert "reference" in row and str(first.interaction) in row


def _mismatch(messages: list[dict], tools: bool = True) -> ReplayMismatch:
    e = ReplayMismatch(7, "no answer")
    e.request = {"messages": [{"role": "system", "content": "s"}, *messages]} | ({"tools": [{}]} if tools else {})
    return e


# pi 1.6.0's tool result for a cut call, as it sent it in tests/pi/test_whatif_versions.py's replay
REFUSAL = ('Tool call "bash" was not executed: the response hit the output token limit, so its arguments may '
           'be truncated. Re-issue the tool call with complete arguments.')


@pytest.mark.parametrize("messages, tools, kind", [
    ([{"role": "tool", "tool_call_id": "c1", "content": REFUSAL}], True, "refused_cut_call"),
    ([{"role": "tool", "tool_call_id": "c1", "content": "ok"}], True, "unrecorded_request"),
    ([{"role": "user", "content": "Continue."}], True, "nudge"),
    ([{"role": "user", "content": "Summarize the conversation."}], False, "compaction"),
])
def test_the_request_the_cassette_lacks_is_named_by_what_it_ends_in(messages, tools, kind):
    d = _unrecorded(_mismatch(messages, tools))
    assert d.kind == kind and d.interaction == 7
    assert all(w in REFUSAL for w in REFUSED_CUT_CALL)


def test_the_same_recorded_request_sent_twice_is_a_retry():
    """A retry (pi 1.x's compact-and-retry, an auto retry) asks a recorded interaction again: the
    engine's record has that index twice."""
    from pytest_tbreplay.analysis.departure import _served_departures
    from pytest_tbreplay.replay.engine import Served
    c = cs.load(ROOT / "cassettes" / "db-wal-recovery.yaml")
    served = [Served(c.interactions[i].request, i, 200, 100) for i in (0, 1, 1, 2)]
    [d] = _served_departures(c, served)
    assert d.kind == "retry" and d.interaction == 1 and d.label == "retry"
