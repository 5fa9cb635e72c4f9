"""One bad trial never stops the others (issue 21): import, summarize and whatif on a job of three
trials whose middle one is damaged in a generated way. The damaged trial is reported as
`FAILED <trial>: <file>: <what is wrong>` (or imported, when the damage is harmless); the other two
always come out; no traceback; exit status 1 exactly when a trial failed."""
import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from pytest_tbreplay.cli import main
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.harnesses.pi.session import SessionError, active_branch, read_session
from trialgen import Session, bash, manifest, trial_result, write_trial

pytestmark = pytest.mark.fuzz

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                    max_leaves=6)


def good_trial(job: Path, name: str, with_manifest: bool = False) -> Path:
    s = Session("Fix the bug in /app/x.py.")
    [a] = s.assistant("Let me look.", calls=[bash("cat /app/x.py")], prompt=900)
    s.result(a, "bash", "print(1)\n")
    s.assistant("Done: the bug is fixed.", prompt=1000)
    task = name.split("__")[0]
    return write_trial(job / name, s, result=trial_result(task, name, reward=0.0),
                       manifest=manifest("mitigated", 131072) if with_manifest else None)


def _session_file(t: Path) -> Path:
    return next((t / "agent/pi/sessions").glob("*.jsonl"))


def _set_result(path_keys, value):
    def damage(t: Path):
        r = json.loads((t / "result.json").read_text())
        d = r
        for k in path_keys[:-1]:
            if not isinstance(d.get(k), dict):
                d[k] = {}
            d = d[k]
        d[path_keys[-1]] = value
        (t / "result.json").write_text(json.dumps(r))
    return damage


def _set_entry(line: int, keys, value):
    def damage(t: Path):
        p = _session_file(t)
        lines = p.read_text().splitlines()
        e = json.loads(lines[min(line, len(lines) - 1)])
        d = e
        for k in keys[:-1]:
            d = d.setdefault(k, {}) if isinstance(d.get(k, {}), dict) else d
        d[keys[-1]] = value
        lines[min(line, len(lines) - 1)] = json.dumps(e)
        p.write_text("\n".join(lines) + "\n")
    return damage


def _tear(line: int, cut: int):
    def damage(t: Path):
        p = _session_file(t)
        lines = p.read_text().splitlines()
        k = min(line, len(lines) - 2)  # mid-file: the last line may be torn legitimately
        lines[k] = lines[k][:cut]
        p.write_text("\n".join(lines) + "\n")
    return damage


def _special(which: str, kind: str):
    def damage(t: Path):
        p = {"session": _session_file(t), "result": t / "result.json", "stderr": t / "agent/pi.stderr",
             "verifier": t / "verifier/test-stdout.txt", "pi.jsonl": t / "agent/pi.jsonl"}[which]
        p.unlink()
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "zero":
            p.symlink_to("/dev/zero")
        else:
            p.symlink_to(Path(tempfile.gettempdir()).resolve())
    return damage


RESULT_KEYS = st.sampled_from([("config",), ("config", "agent"), ("config", "agent", "kwargs", "n_ctx"),
                               ("exception_info",), ("exception_info", "exception_type"), ("verifier_result",),
                               ("verifier_result", "rewards", "reward"), ("task_name",), ("trial_name",),
                               ("agent_execution", "started_at")])
ENTRY_KEYS = st.sampled_from([("id",), ("parentId",), ("type",), ("message",), ("message", "content"),
                              ("message", "role"), ("message", "usage"), ("message", "usage", "input"),
                              ("message", "timestamp"), ("message", "stopReason"), ("timestamp",)])
DAMAGE = st.one_of(
    st.builds(_set_result, RESULT_KEYS, JSON),
    st.builds(_set_entry, st.integers(0, 8), ENTRY_KEYS, JSON),
    st.builds(_tear, st.integers(1, 8), st.integers(0, 60)),
    st.builds(_special, st.sampled_from(["session", "result", "stderr", "verifier", "pi.jsonl"]),
              st.sampled_from(["fifo", "zero", "outside"])),
)
FAILED = re.compile(r"^FAILED (\S+): (\S+?)(:\d+)?: .+$")


def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@given(damage=DAMAGE)
def test_a_damaged_trial_fails_alone_in_import_and_summarize(damage):
    with tempfile.TemporaryDirectory() as d:
        job = Path(d) / "job"
        good_trial(job, "t0__A")
        bad = good_trial(job, "t1__B")
        good_trial(job, "t2__C")
        damage(bad)
        rc, out, err = _run("import", job, "-o", Path(d) / "out")
        written = sorted(p.stem for p in (Path(d) / "out").glob("*.yaml"))
        assert {"t0__A", "t2__C"} <= set(written), err
        assert "Traceback" not in err and "cannot be read (" not in err, err  # only named problems
        failures = err.splitlines()
        assert rc == (1 if failures else 0)
        for line in failures:
            m = FAILED.match(line)
            assert m and m.group(1).endswith("t1__B") and str(bad) in m.group(2), line
        for p in (Path(d) / "out").glob("*.yaml"):
            cs.load(p)  # what import writes, its loader reads
        rc, out, err = _run("summarize", job)
        rows = [line.split()[0] for line in out.split("\n\n")[0].splitlines()[1:]]
        assert "t0" in rows and "t2" in rows and "Traceback" not in err and "cannot be read (" not in err, err


@pytest.mark.parametrize("case", ["cycle", "self", "duplicate"])
def test_session_walks_refuse_cycles_self_parents_and_duplicated_ids(tmp_path, case):
    s = Session("Fix it.")
    s.assistant("Done.", prompt=10)
    entries = [json.loads(line) for line in s.lines().splitlines()]
    if case == "cycle":
        entries[1]["parentId"] = entries[-1]["id"]
    elif case == "self":
        entries[-1]["parentId"] = entries[-1]["id"]
    else:
        entries.append(dict(entries[1], parentId=entries[-1]["id"]))
    p = tmp_path / "s.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in entries))
    with pytest.raises(SessionError, match=r"s\.jsonl.*(loops back|also on line)"):
        read_session(p)


def test_active_branch_stops_on_a_two_entry_cycle():
    with pytest.raises(SessionError, match="loops back"):
        active_branch([{"id": "a", "parentId": "b"}, {"id": "b", "parentId": "a"}])


def test_whatif_goes_on_past_a_cyclic_trial(tmp_path):
    job = tmp_path / "job"
    good_trial(job, "t0__A", with_manifest=True)
    bad = good_trial(job, "t1__B", with_manifest=True)
    good_trial(job, "t2__C", with_manifest=True)
    p = _session_file(bad)
    last = json.loads(p.read_text().splitlines()[-1])
    _set_entry(99, ("parentId",), last["id"])(bad)  # the leaf is its own parent
    rc, out, err = _run("whatif", job, "--profile", "mitigated")
    assert rc == 1 and "loops back" in err and "t1__B" in err and "Traceback" not in err
    assert "t0__A" in out and "t2__C" in out


def test_non_utf8_folder_names_and_lone_surrogates_import(tmp_path):
    job = tmp_path / "job"
    good_trial(job, "t0__A")
    t = good_trial(job, "t1__B")
    p = _session_file(t)
    p.write_text(p.read_text().replace("Let me look.", "Let me \\ud83d look."))
    good_trial(job, "t2__C")
    os.rename(os.fsencode(job / "t2__C"), os.fsencode(job) + b"/t2\xff__C")
    r = json.loads((job / os.fsdecode(b"t2\xff__C") / "result.json").read_text())
    del r["trial_name"]
    (job / os.fsdecode(b"t2\xff__C") / "result.json").write_text(json.dumps(r))
    rc, out, err = _run("import", job, "-o", tmp_path / "out")
    assert rc == 0, err
    texts = {p.stem: p.read_text(encoding="utf-8") for p in (tmp_path / "out").glob("*.yaml")}
    assert len(texts) == 3 and "Let me \ufffd look." in str(cs.load(tmp_path / "out/t1__B.yaml").interactions[1].request)
    rc, out, err = _run("summarize", job, "--csv", tmp_path / "s.csv")
    assert rc == 0, err


def test_import_force_never_writes_two_trials_into_one_file(tmp_path):
    job = tmp_path / "job"
    for name in ("t0__A", "t0__B"):
        t = good_trial(job, name)
        r = json.loads((t / "result.json").read_text()) | {"trial_name": "same/name"}
        (t / "result.json").write_text(json.dumps(r))
    for _ in range(2):  # the second run replaces the first's files, still one file per trial
        rc, out, err = _run("import", job, "-o", tmp_path / "out", "--force")
        assert rc == 0 and out.count("wrote") == 2, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.yaml")) == ["same_name-2.yaml", "same_name.yaml"]


def test_summarize_plot_reads_a_manifest_whose_max_tokens_is_auto(tmp_path):
    t = good_trial(tmp_path / "job", "t0__A", with_manifest=True)
    m = json.loads((t / "agent/tbreplay.json").read_text())
    m["profile"]["max_tokens"] = "auto"
    del m["n_ctx"]
    (t / "agent/tbreplay.json").write_text(json.dumps(m))
    r = json.loads((t / "result.json").read_text())
    del r["config"]["agent"]["kwargs"]["n_ctx"]
    (t / "result.json").write_text(json.dumps(r))
    rc, out, err = _run("summarize", tmp_path / "job", "--plot", tmp_path / "p.png",
                        "--json", tmp_path / "s.json")
    assert rc == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["trials"][0]["max_tokens"] is None


@pytest.mark.parametrize("ref", ["0-999999999", "0-99999999999999999999", "5-2", "1-1 0-2"])
def test_message_references_are_bounds_checked_before_expansion(ref):
    from pytest_tbreplay.core.cassette import CassetteError, _ranges
    with pytest.raises(CassetteError, match="messages"):
        _ranges(ref, 2, "c.yaml", 0)
