"""`tbreplay whatif --harness pi@X.Y.Z`: where a newer pi leaves a trial recorded with pi 0.73.1,
and why, read off the replay engine (the real pi runs against the loopback replay server)."""
import json
from pathlib import Path

import pytest

from pytest_tbreplay.analysis.whatif import whatif
from pytest_tbreplay.cli import main
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.harnesses.pi.install import PI_VERSION, RECORDED_PI, pi_problem

ROOT = Path(__file__).resolve().parents[2]
PATH_TRACING = ROOT / "cassettes" / "path-tracing-reverse.yaml"


@pytest.mark.needs("pi")
def test_pi_1x_leaves_path_tracing_where_it_lowers_max_tokens_to_one_and_refuses_the_cut_call():
    c = cs.load(PATH_TRACING)
    w = whatif(c, load_profile("baseline"), f"pi@{PI_VERSION}")
    first, then = w.course.departures[:2]
    assert first.kind == "max_tokens" and "lowered to 1 " in first.text
    cut = c.interactions[first.interaction]
    assert cut.usage["completion_tokens"] > 1  # the recording's answer was longer than what pi allowed
    assert then.kind == "refused_cut_call" and then.interaction == first.interaction + 1
    lowered_at, lowered_to = w.course.first_lowered
    assert lowered_at < first.interaction and 1 < lowered_to < 32000  # pi lowered max tokens before it hit 1
    assert w.course.played == first.interaction + 1 < w.course.recorded  # the recorded 400 was never reached
    assert f"no recorded answer at {then.interaction}" in w.course.ending


@pytest.mark.needs("pi")
def test_the_recorded_pi_follows_the_same_trial_to_its_recorded_400():
    """The control: the version the trial was recorded with plays it to the end, so the departure
    above is pi 1.x's doing, not the replay's."""
    if problem := pi_problem(RECORDED_PI):
        pytest.skip(problem)
    w = whatif(cs.load(PATH_TRACING), load_profile("baseline"), f"pi@{RECORDED_PI}")
    assert w.course.departures == [] and w.course.first_lowered is None
    assert w.course.played == w.course.recorded and w.course.why == "follows the recording to its end"


@pytest.mark.needs("pi")
def test_whatif_command_writes_the_departures_per_harness(tmp_path, capsys):
    out = tmp_path / "w.json"
    md = tmp_path / "w.md"
    assert main(["whatif", "--harness", f"pi@{PI_VERSION}", "--profile", "baseline", str(PATH_TRACING),
                 "--json", str(out), "--markdown", str(md)]) == 0
    [row] = json.loads(out.read_text())
    assert row["harness"] == f"pi@{PI_VERSION}" and row["profile"] == "baseline"
    assert [d["kind"] for d in row["departures"][:2]] == ["max_tokens", "refused_cut_call"]
    assert "leaves the recording" in capsys.readouterr().out
    assert md.read_text().startswith(f"| cassette | baseline pi@{PI_VERSION} |")
    assert "max tokens 1 → refused cut call" in md.read_text()
