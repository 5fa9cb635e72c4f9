"""Replay tables show the recorded decode rate, not how fast replay ran (issue 21: 729,060 tok/s)."""
from pathlib import Path

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.run import _rate, replay_cassette

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"


@pytest.mark.parametrize("name", ["sentinel.yaml"])
def test_replayed_turns_carry_the_rates_their_recording_shows(name):
    c = cs.load(CASSETTES / name)
    r = replay_cassette(c, load_profile("baseline"))
    recorded = [_rate(it) for it in c.interactions if it.streamed and not it.scripted]
    rates = [t.decode_tps for t in r.trial.turns]
    assert rates == recorded[:len(rates)]
    assert all(x is None or x < 10_000 for x in rates)  # a CPU model, not replay speed
    m = r.trial.metrics()["decode_tps"]
    assert m is None or m < 10_000
