"""(j) The stuck-turn guard (issue 20 item 3): policies/stuck.py and its TypeScript port
harnesses/pi/extensions/lib/stuck.ts decide the shared vectors (tests/data/stuck_cases.json,
written by tests/vectors/make_stuck.py) alike, and generated families hold for the Python one:
the same call with the same result, with the same failure, two calls alternating, and polls whose
result changes."""
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from pytest_tbreplay.core.profiles import ProfileError, load_profile
from pytest_tbreplay.harnesses import pi as pi
from pytest_tbreplay.core.profiles import STUCK_DEFAULTS as DEFAULTS
from pytest_tbreplay.policies.stuck import (
    STUCK_NUDGE,
    STUCK_STOP,
    StuckConfigError,
    StuckGuard,
    step_of,
    stuck_config,
)

DATA = Path(__file__).parents[1] / "data"
VECTORS = json.loads((DATA / "stuck_cases.json").read_text())
CASES = VECTORS["cases"]


def verdicts(steps, **config) -> list:
    guard = StuckGuard(**(DEFAULTS | config))
    return [guard.observe(step_of([tuple(c) for c in s])) for s in steps]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_decides_each_vector(case):
    guard = StuckGuard(**case["config"])
    for step, want, text in zip(case["steps"], case["verdicts"], case["texts"]):
        got = guard.observe(step_of([tuple(c) for c in step]))
        assert got == want
        assert (guard.text(STUCK_NUDGE if got == "nudge" else STUCK_STOP) if got else None) == text


def test_the_vectors_pin_what_the_issue_asks():
    by = {c["name"]: c["verdicts"] for c in CASES}
    assert by["the same failing build, six turns"] == [None] * 3 + ["nudge", None, "stop"]
    assert by["two calls alternating A B A B"][5] == "nudge" and by["two calls alternating A B A B"][7] == "stop"
    assert set(by["a poll that fails twice then succeeds"]) == {None}
    assert set(by["ls whose result changes every time"]) == {None}
    assert VECTORS["nudge"] == STUCK_NUDGE and VECTORS["stop"] == STUCK_STOP  # regenerate if they change


@pytest.mark.needs("pi")
def test_the_pi_guard_decides_every_vector_as_the_python_guard():
    done = subprocess.run(["node", str(DATA / "run_stuck.mjs"), str(pi.LIBRARIES / "stuck.ts"),
                           str(DATA / "stuck_cases.json"), str(pi.pi_dir())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for case, theirs in zip(CASES, json.loads(done.stdout)):
        assert theirs == {"verdicts": case["verdicts"], "texts": case["texts"]}, case["name"]


# -- the profile key ------------------------------------------------------------------------------
def test_baseline_has_no_guard_and_mitigated_has_one():
    assert load_profile("baseline").stuck_guard is None
    assert stuck_config(load_profile("mitigated").stuck_guard) == DEFAULTS


@pytest.mark.parametrize("value, message", [({"repeat": 3}, "unknown keys ['repeat']"),
                                            ({"repeats": 0}, "stuck_guard.repeats must be a positive integer"),
                                            ({"repeats": 1}, "at least 2"),
                                            ({"alternation": "3"}, "stuck_guard.alternation must be a positive")])
def test_a_bad_guard_config_is_refused_naming_the_key(tmp_path, value, message):
    with pytest.raises(StuckConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        stuck_config(value)
    f = tmp_path / "p.yaml"
    f.write_text(f"name: p\ncontext_window: 8192\nmax_tokens: 512\nstuck_guard: {json.dumps(value)}\n")
    with pytest.raises(ProfileError, match="stuck_guard"):
        load_profile(f)


# -- generated families ----------------------------------------------------------------------------
COMMANDS = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=60)
OUTPUTS = st.text(max_size=200)
CONFIGS = st.fixed_dictionaries({"repeats": st.integers(2, 6), "alternation": st.integers(2, 4),
                                 "after_nudge": st.integers(1, 3)})


def call(cmd, out, err=False):
    return [("bash", {"command": cmd}, out, err)]


@given(COMMANDS, OUTPUTS, st.booleans(), CONFIGS)
def test_a_repeat_with_the_same_result_is_nudged_then_stopped(cmd, out, err, config):
    n = config["repeats"] + config["after_nudge"]
    got = verdicts([call(cmd, out, err)] * n, **config)
    assert got.index("nudge") == config["repeats"] - 1
    assert got[-1] == "stop" and got.count("stop") == 1


@given(COMMANDS, st.lists(OUTPUTS, min_size=10, max_size=10, unique=True), CONFIGS)
def test_a_repeat_failing_with_other_texts_is_stuck_on_the_error(cmd, outs, config):
    n = config["repeats"] + config["after_nudge"]
    guard = StuckGuard(**config)
    got = [guard.observe(step_of(call(cmd, outs[i], True))) for i in range(n)]
    assert got[config["repeats"] - 1] == "nudge" and got[-1] == "stop" and guard.rule == "error"


@given(COMMANDS, st.lists(OUTPUTS, min_size=10, max_size=10, unique=True), CONFIGS)
def test_a_repeat_that_succeeds_with_other_results_is_never_stuck(cmd, outs, config):
    assert set(verdicts([call(cmd, o) for o in outs], **config)) == {None}


@given(st.lists(COMMANDS, min_size=2, max_size=2, unique=True), OUTPUTS, CONFIGS)
def test_two_calls_alternating_are_nudged_then_stopped(cmds, out, config):
    a, b = call(cmds[0], out), call(cmds[1], out)
    n = 2 * config["alternation"] + config["after_nudge"]
    got = verdicts([(a, b)[i % 2] for i in range(n)], **config)
    assert got.index("nudge") == 2 * config["alternation"] - 1 and got[-1] == "stop"


@given(COMMANDS, st.integers(0, 3), st.integers(1, 8))
def test_a_poll_that_fails_a_few_times_then_converges_is_not_stopped(cmd, fails, successes):
    """A server coming up: the same curl fails fewer times than `repeats`, then answers with a
    result that changes (a counter, a timestamp)."""
    steps = [call(cmd, "curl: (7) Failed to connect", True)] * fails + \
            [call(cmd, f'{{"status":"ok","n":{i}}}') for i in range(successes)]
    assert "stop" not in verdicts(steps) and "nudge" not in verdicts(steps)


@given(st.lists(st.tuples(COMMANDS, OUTPUTS), min_size=1, max_size=30, unique_by=lambda t: t[0]))
def test_distinct_calls_are_never_stuck(calls):
    assert set(verdicts([call(c, o) for c, o in calls])) == {None}


def test_memory_is_bounded():
    guard = StuckGuard(**DEFAULTS)
    for i in range(10_000):
        guard.observe(step_of(call(f"echo {i}", str(i))))
    assert len(guard.steps) == max(DEFAULTS["repeats"], 2 * DEFAULTS["alternation"])
