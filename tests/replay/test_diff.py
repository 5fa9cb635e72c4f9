"""`tbreplay diff`: two Harbor job folders (trialgen's), task by task, and the exit status a CI
gate reads."""
import json

from pytest_tbreplay.analysis import diff as df
from pytest_tbreplay.cli import main
from trialgen import OVERFLOW_400, Session, bash, make_job, trial_result, write_trial


def job(root, trials: dict):
    """trials: name -> (reward, kind) with kind pass | loop | overflow | claim."""
    for name, (reward, kind) in trials.items():
        s = Session(f"{name} task")
        if kind == "loop":
            s.assistant("Wait, let me try again. " * 200, stop="length", output=32000, prompt=5000)
        elif kind == "overflow":
            [a] = s.assistant("looking", calls=[bash("ls")])
            s.result(a, "bash", "x")
            s.assistant(error=OVERFLOW_400)
        else:
            s.assistant("Done! All tests pass." if kind == "claim" else "3 passed.", prompt=900)
        write_trial(root / f"{name}__0000001", s, result=trial_result(name, f"{name}__0000001", reward=reward))
    return root


def test_verdicts_per_task_and_the_exit_status(tmp_path, capsys):
    before = job(tmp_path / "before", {"a": (0.0, "loop"), "b": (1.0, "pass"), "c": (0.0, "overflow"),
                                       "d": (0.0, "claim")})
    after = job(tmp_path / "after", {"a": (1.0, "pass"), "b": (0.0, "claim"), "c": (0.0, "loop"),
                                     "d": (0.0, "claim")})
    diffs = {d.task: d for d in df.diff(df.load(before), df.load(after))}
    assert {t: d.verdict for t, d in diffs.items()} == {"a": "fixed", "b": "regressed", "c": "new failure mode",
                                                        "d": "unchanged"}
    assert (diffs["c"].before.mode, diffs["c"].after.mode) == ("A'", "B")
    assert diffs["a"].before.longest_turn == 32000 and diffs["a"].after.longest_turn < 100
    assert main(["diff", str(before), str(after), "--json"]) == 1  # b regressed
    data = json.loads(capsys.readouterr().out)
    assert data["verdicts"] == {"fixed": 1, "regressed": 1, "new failure mode": 1, "unchanged": 1}
    assert main(["diff", str(before), str(before), "--markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| task | verdict |") and "4 unchanged" in md


def test_summarize_json_is_a_side_too(tmp_path, capsys):
    job_dir = make_job(tmp_path)
    assert main(["summarize", str(job_dir), "--json", str(tmp_path / "s.json")]) == 0
    capsys.readouterr()
    assert main(["diff", str(tmp_path / "s.json"), str(job_dir)]) == 0
    assert "regressed" not in capsys.readouterr().out


def test_a_bad_side_is_named(tmp_path, capsys):
    (tmp_path / "x.json").write_text("[1, 2]")
    assert main(["diff", str(tmp_path / "x.json"), str(tmp_path / "x.json")]) == 2
    assert "not a `tbreplay summarize --json` file" in capsys.readouterr().err
