"""`tbreplay diff` over generated pairs of summaries (summarize's JSON: tasks run once or several
times, rewards missing, 0, 1 or partial, any failure mode): the verdict of each task follows the
rules (mean reward up: fixed, down: regressed, equal with another failing main mode: new failure
mode, else unchanged; a task on one side only says so), the exit status is 1 exactly when a task
regressed, and swapping the sides swaps fixed and regressed."""
import contextlib
import io
import json
import tempfile
from collections import Counter
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

from hypothesis import given, strategies as st

from pytest_tbreplay.analysis import summarize as sm
from pytest_tbreplay.cli import main

MODES = [*sm.MODES, "pass", "?"]
SWAPPED = {"fixed": "regressed", "regressed": "fixed", "only-before": "only-after", "only-after": "only-before"}

trial = st.tuples(st.sampled_from([None, 0.0, 0.5, 1.0]), st.sampled_from(MODES))
side = st.dictionaries(st.sampled_from("abcdef"), st.lists(trial, min_size=1, max_size=4), max_size=5)


def summary(folder: Path, name: str, tasks: dict) -> Path:
    trials = [asdict(sm.Record(task, f"{task}__{i}", f"{name}/{task}__{i}", reward=reward, mode=mode,
                               modes=[mode], outcome="passed" if reward == 1.0 else "failed"))
              for task, runs in tasks.items() for i, (reward, mode) in enumerate(runs)]
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"trials": trials}))
    return path


def run_diff(before: Path, after: Path) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["diff", str(before), str(after), "--json"])
    return status, {t["task"]: t for t in json.loads(out.getvalue())["tasks"]}


def mean(runs) -> Fraction:
    return sum(Fraction(r or 0) for r, _ in runs) / len(runs)


def most_common(runs) -> set[str]:
    counts = Counter(m for _, m in runs)
    return {m for m, n in counts.items() if n == max(counts.values())}


def expected(b, a, got: dict) -> str | set[str]:
    if b is None or a is None:
        return "only-after" if b is None else "only-before"
    if mean(a) != mean(b):
        return "fixed" if mean(a) > mean(b) else "regressed"
    modes = got["before"]["mode"], got["after"]["mode"]
    assert modes[0] in most_common(b) and modes[1] in most_common(a), "the main mode is the most common one"
    return "new failure mode" if modes[0] != modes[1] and modes[1] != "pass" else "unchanged"


@given(side, side)
def test_verdicts_and_the_exit_status_both_ways(before, after):
    with tempfile.TemporaryDirectory() as d:
        b, a = summary(Path(d), "before", before), summary(Path(d), "after", after)
        status, tasks = run_diff(b, a)
        back_status, back = run_diff(a, b)
    assert set(tasks) == set(back) == set(before) | set(after)
    for name, got in tasks.items():
        assert got["verdict"] == expected(before.get(name), after.get(name), got), name
        assert back[name]["verdict"] == expected(after.get(name), before.get(name), back[name]), name
        if got["verdict"] in SWAPPED:
            assert back[name]["verdict"] == SWAPPED[got["verdict"]], name
        for key, runs in (("before", before.get(name)), ("after", after.get(name))):
            assert (got[key] is None) == (runs is None)
            if runs:
                assert got[key]["trials"] == len(runs) and abs(got[key]["reward"] - float(mean(runs))) < 5e-4
    verdicts = [t["verdict"] for t in tasks.values()]
    assert status == (1 if "regressed" in verdicts else 0)
    assert back_status == (1 if "fixed" in verdicts else 0)
