"""tbreplay import, summarize and whatif on hand-made trials of both Harbor layouts (the live
tests in test_import_live.py do the same on trials the real pi wrote)."""
import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.harnesses import pi as pi
from pytest_tbreplay.analysis import summarize as sm
from pytest_tbreplay.cli import main
from pytest_tbreplay.analysis.importer import TrialImportError, import_all, import_trial
from pytest_tbreplay.harnesses.pi.session import COMPACTION_PREFIX
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.core.wire import exceed_body
from pytest_tbreplay.run import replay_cassette
from pytest_tbreplay.analysis.whatif import table, whatif
from harbor_run import HARBOR_VENV
from trialgen import OVERFLOW_400, Session, bash, long_trial, make_job, manifest, trial_result, write, write_trial

ROOT = Path(__file__).resolve().parents[2]


def db_trial(tmp_path, layout="mitigated-pi", reward=0.0, exception=None, with_manifest=False, **result_kw) -> Path:
    """db-wal-recovery as the analysis saw it: fabricated rows, then 'Done!'."""
    s = Session("Recover all 11 records of /app/main.db into /app/recovered.json.")
    [a] = s.assistant("Let me look.", calls=[bash("sqlite3 /app/main.db 'select * from items'")], prompt=900)
    s.result(a, "bash", "1|apple|100\n2|banana|200\n")
    [b] = s.assistant("", thinking="The pattern is obvious.", calls=[write("/app/recovered.json", "[...]")], prompt=1100)
    s.result(b, "write", "Successfully wrote 5 bytes to /app/recovered.json")
    s.assistant("Done! I recovered all 11 records.", prompt=1300)
    root = tmp_path / "job" / "db-wal-recovery__AbCdEf1"
    result = trial_result("db-wal-recovery", root.name, reward=reward, exception=exception,
                          agent="mitigated-pi" if layout == "mitigated-pi" else "pi", **result_kw)
    return write_trial(root, s, layout=layout, result=result, verifier="FAILED test_outputs.py::test_records - 6 made up",
                       manifest=manifest("mitigated", 131072) if with_manifest else None)


def test_mitigated_pi_trial_imports_with_its_deltas_tool_results_and_metadata(tmp_path):
    c = import_trial(db_trial(tmp_path))
    m = c.metadata
    assert m["provenance"] == "imported" and m["task"] == "db-wal-recovery" and m["trial"] == "db-wal-recovery__AbCdEf1"
    assert m["instruction"].startswith("Recover all 11 records")
    assert m["server"]["n_ctx"] == 262144 and m["server"]["n_ctx_source"] == "agent kwargs"
    imp = m["imported"]
    assert imp["reward"] == 0.0 and imp["outcome"] == "failed" and imp["layout"] == "mitigated-pi"
    assert imp["source"] == "db-wal-recovery__AbCdEf1" and "6 made up" in imp["verifier_output"]
    assert len(imp["turns"]) == 3 and all(start < end for start, end in imp["turns"])
    assert not any("chunk boundaries" in s for s in imp["synthesized"])  # pi.jsonl kept every delta
    assert any("chunk offsets and timings" in s for s in imp["synthesized"])  # no source keeps them
    assert m["harness_profile"]["name"] == "mitigated" and m["harness_profile"]["harness"] == "pi"
    # requests: the conversation so far, as pi-ai converts it
    last = c.interactions[2].request["messages"]
    assert [x["role"] for x in last] == ["system", "user", "assistant", "tool", "assistant", "tool"]
    assert last[1] == {"role": "user", "content": [{"type": "text", "text": m["instruction"]}]}
    assert last[4] == {"role": "assistant", "content": None, "reasoning_content": "The pattern is obvious.",
                       "tool_calls": [{"id": "call_0002", "type": "function", "function": {
                           "name": "write", "arguments": '{"path":"/app/recovered.json","content":"[...]"}'}}]}
    assert last[5] == {"role": "tool", "content": "Successfully wrote 5 bytes to /app/recovered.json",
                       "tool_call_id": "call_0002"}
    assert c.interactions[1].request["max_completion_tokens"] == 16384  # the mitigated profile's
    # responses: llama-server SSE, one chunk per recorded delta
    first = c.interactions[0]
    assert first.events[-1] == "[DONE]" and len(first.chunk_offsets) == len(first.events)
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in first.events[:-2])
    assert text == "Let me look."
    assert first.usage["prompt_tokens"] == 900
    assert [r.output for r in c.interactions[0].tool_results] == ["1|apple|100\n2|banana|200\n"]


def test_mitigated_pis_manifest_makes_the_requests_exact(tmp_path):
    c = import_trial(db_trial(tmp_path, with_manifest=True, n_ctx=None))
    first = c.interactions[0].request
    assert first["messages"][0] == {"role": "system", "content": "You are pi, as logged.\nCurrent date: 2026-11-01"}
    assert first["dry_multiplier"] == 0.8 and first["max_completion_tokens"] == 16384
    assert c.metadata["server"] == {"n_ctx": 131072, "n_ctx_source": "manifest", "model": "qwen3.6-35b-a3b",
                                    "settings": {"temperature": 0.6, "top_k": 20}}
    assert c.metadata["system_prompt"] == first["messages"][0]["content"]
    synthesized = " ".join(c.metadata["imported"]["synthesized"])
    assert "system prompt" not in synthesized and "request fields" not in synthesized
    assert "chunk boundaries" not in synthesized


def test_an_import_is_redacted_like_a_recording(tmp_path):
    s = Session("Use the service")
    s.assistant("ok", calls=[bash("curl localhost")])
    s.result("call_0001", "bash", "fine")
    s.assistant("done")
    s.entries[-1]["message"]["model"] = "/home/me/models/qwen3.6-35b-a3b-Q4_K_M.gguf"
    m = manifest()
    root = write_trial(tmp_path / "t", s, result=trial_result("svc", "t", reward=0.0), manifest=m)
    request = json.loads((root / "agent" / "tbreplay-request.json").read_text())
    request |= {"api_key": "sk-live-123", "extra": {"password": "hunter2"}}
    (root / "agent" / "tbreplay-request.json").write_text(json.dumps(request))
    text = cs.save(import_trial(root), tmp_path / "c.yaml").read_text()
    assert "sk-live-123" not in text and "hunter2" not in text and "/home/me/models" not in text
    assert "qwen3.6-35b-a3b-Q4_K_M.gguf" in text


def test_harbor_pi_trial_names_what_was_synthesized(tmp_path):
    c = import_trial(db_trial(tmp_path, layout="harbor-pi"))
    imp = c.metadata["imported"]
    assert imp["layout"] == "harbor-pi"
    assert any("chunk boundaries" in s for s in imp["synthesized"])
    assert any("chunk offsets and timings" in s for s in imp["synthesized"])
    assert any("system prompt" in s for s in imp["synthesized"])
    assert c.metadata["harness_profile"]["name"] == "harbor-pi"
    assert c.metadata["server"]["n_ctx"] is None and c.metadata["server"]["n_ctx_source"] == "unknown"
    assert c.interactions[0].request["max_completion_tokens"] == 16384  # pi's default maxTokens


def test_imported_trial_saves_loads_and_replays_strictly_under_its_profile(tmp_path):
    c = import_trial(db_trial(tmp_path))
    path = cs.save(c, tmp_path / "db.yaml")
    back = cs.load(path)
    assert [it.request for it in back.interactions] == [it.request for it in c.interactions]
    r = replay_cassette(back, load_profile("baseline"), "reference")
    r.engine.check(strict=True)
    assert r.trial.stop_reasons == ["toolUse", "toolUse", "stop"]
    assert [t.completion_tokens for t in r.trial.turns] == [it.usage["completion_tokens"] for it in back.interactions]


def test_the_active_branch_and_compaction_shape_the_requests(tmp_path):
    s = Session("Task X")
    [a] = s.assistant("first try", calls=[bash("ls")])
    s.result(a, "bash", "abandoned output")
    fork = s.entries[1]["id"]  # the user message: the first try is abandoned
    [b] = s.assistant("second try", calls=[bash("ls -la")], parent=fork)
    s.result(b, "bash", "kept output")
    keep = s.entries[-2]["id"]
    s.compaction("SUMMARY OF THE WORK", keep, 120_000)
    s.assistant("after compaction", prompt=30_000)
    c = import_trial(write_trial(tmp_path / "t", s, result=trial_result("x", "t", reward=0.0)))
    texts = [json.dumps(it.request) for it in c.interactions if not it.scripted]
    assert len(texts) == 2 and all("abandoned output" not in t for t in texts)
    after = c.interactions[-1].request["messages"]
    assert after[1] == {"role": "user", "content": [{"type": "text", "text": COMPACTION_PREFIX + "SUMMARY OF THE WORK\n</summary>"}]}
    assert after[2]["content"] == "second try" and after[3]["content"] == "kept output"
    summary = [it for it in c.interactions if it.scripted]
    assert len(summary) == 1 and summary[0].match == "<conversation>"


def test_a_context_overflow_becomes_llama_servers_exact_400(tmp_path):
    s = Session("Reverse the renderer")
    [a] = s.assistant("reading", calls=[bash("xxd mystery | head")], prompt=259_000)
    s.result(a, "bash", "00000000: 7f45 4c46")
    s.assistant(error=OVERFLOW_400, prompt=0)
    c = import_trial(write_trial(tmp_path / "t", s, result=trial_result("p", "t", reward=0.0, n_ctx=None)))
    last = c.interactions[-1]
    assert last.status == 400 and json.loads(last.body) == exceed_body(262300, 262144)
    assert c.metadata["server"]["n_ctx"] == 262144 and c.metadata["server"]["n_ctx_source"] == "overflow message"
    r = sm.classify(sm.from_cassette(c))
    assert r.mode == "A'" and r.peak_prompt_tokens == 262300


@pytest.mark.parametrize("exception, result, outcome", [
    ("AgentTimeoutError", True, "timeout"), ("EnvironmentStartTimeoutError", True, "infra"),
    ("NonZeroAgentExitCodeError", True, "error"), (None, False, "incomplete")])
def test_outcomes_from_harbors_result(tmp_path, exception, result, outcome):
    root = db_trial(tmp_path, exception=exception, reward=None if exception else 0.0)
    if not result:
        (root / "result.json").unlink()
    assert import_trial(root).metadata["imported"]["outcome"] == outcome


def test_a_bad_trial_is_named_and_never_stops_the_job(tmp_path, capsys):
    good = db_trial(tmp_path)
    (tmp_path / "job" / "broken__1234567" / "agent").mkdir(parents=True)
    torn = tmp_path / "job" / "torn__7654321" / "agent" / "sessions"
    torn.mkdir(parents=True)
    (torn / "s.jsonl").write_text('{"type": "message"}\n{"not json\n{"x": 1}\n')
    report = import_all([tmp_path / "job"], tmp_path / "out")
    assert [p.name for p in report.written] == [f"{good.name}.yaml"]
    problems = dict((p.name, e) for p, e in report.failed)
    assert "no pi session" in problems["broken__1234567"] and "agent/pi/sessions/*.jsonl" in problems["broken__1234567"]
    assert "s.jsonl:2: not JSON" in problems["torn__7654321"]
    assert main(["import", str(tmp_path / "job"), "-o", str(tmp_path / "out2")]) == 1
    out = capsys.readouterr()
    assert "1 imported, 2 failed" in out.out and "FAILED" in out.err
    with pytest.raises(TrialImportError, match="no such file or folder"):
        import_trial(tmp_path / "nowhere")


def test_import_never_overwrites_a_cassette(tmp_path):
    trial = db_trial(tmp_path)
    assert not import_all([trial], tmp_path / "out").failed
    again = import_all([trial], tmp_path / "out")
    assert "not overwriting" in again.failed[0][1]


def test_a_shared_history_is_stored_once(tmp_path):
    s = long_trial(turns=20, grow_to=20_000)
    c = import_trial(write_trial(tmp_path / "t", s, result=trial_result("build", "t", reward=0.0)))
    cs.save(c, tmp_path / "c.yaml")
    cs.save(c, tmp_path / "f.yaml", flat=True)
    raw, flat = (yaml.load((tmp_path / f).read_text(), Loader=cs.Loader) for f in ("c.yaml", "f.yaml"))
    # system, user, then 20 x (assistant, tool result); the final answer is in no request
    assert len(raw["messages"]) == 2 + 2 * 20
    compact = sum(map(len, raw["messages"])) + sum(len(i["request"]["body"]) for i in raw["interactions"])
    bodies = sum(len(i["request"]["body"]) for i in flat["interactions"])
    assert compact < bodies / 5, (compact, bodies)
    assert [it.request for it in cs.load(tmp_path / "f.yaml").interactions] == \
           [it.request for it in cs.load(tmp_path / "c.yaml").interactions]


def test_export_writes_a_flat_copy_that_plain_vcrpy_replays(tmp_path):
    import httpx
    import vcr
    c = import_trial(db_trial(tmp_path))
    cs.save(c, tmp_path / "c.yaml")
    assert main(["export", "--vcrpy", str(tmp_path / "c.yaml"), str(tmp_path / "flat.yaml")]) == 0
    flat = yaml.safe_load((tmp_path / "flat.yaml").read_text())
    assert "messages" not in flat and json.loads(flat["interactions"][2]["request"]["body"])["messages"]
    for path in (tmp_path / "c.yaml", tmp_path / "flat.yaml"):
        with vcr.use_cassette(str(path), record_mode="none"), httpx.Client() as client:
            bodies = [client.post(it.uri, content=it.body_text()).text for it in c.interactions]
        assert bodies == [it.body for it in c.interactions]


# -- summarize ---------------------------------------------------------------------------------------
def test_summarize_assigns_the_analysis_failure_modes_with_their_rules(tmp_path):
    recs, failed = sm.records([make_job(tmp_path)])
    by_task = {r.task: r for r in recs}
    assert by_task["passing"].mode == "pass"
    assert by_task["polyglot-rust-c"].mode == "B" and "32000 tokens of 16384" in by_task["polyglot-rust-c"].rule
    assert by_task["path-tracing-reverse"].mode == "A'"
    assert by_task["video-processing"].mode == "A" and by_task["video-processing"].compactions == {"threshold": 1}
    assert by_task["qemu-alpine-ssh"].mode == "C"
    assert by_task["train-fasttext"].mode == "D" and "'Done" in by_task["train-fasttext"].rule
    assert by_task["caffe-cifar-10"].mode == "E" and "never got a model answer" in by_task["caffe-cifar-10"].rule
    assert by_task["chess-best-move"].mode == "F"
    never = next(r for r in recs if r.trial == "caffe-cifar-10__1111111")  # pi wrote no session at all
    assert never.mode == "E" and "Error: Unknown provider" in never.rule and not failed
    t = sm.totals(recs)
    assert t["primary_mode"] == {"A": 1, "A'": 1, "B": 1, "C": 1, "D": 1, "E": 2, "F": 1}


def test_summarize_cli_writes_a_table_json_csv_and_plot(tmp_path, capsys):
    job = make_job(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    code = main(["summarize", str(job), "--json", str(out / "s.json"), "--csv", str(out / "s.csv"),
                 "--plot", str(out / "s.png")])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 120
    data = json.loads((out / "s.json").read_text())
    assert len(data["trials"]) == 9 and data["totals"]["by_mode"]["B"] == 1
    with open(out / "s.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 9
    assert (out / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- whatif ------------------------------------------------------------------------------------------
def test_whatif_names_the_first_mitigation_and_where(tmp_path):
    s = Session("Write main.rs so both compilers print fib(42)")
    [a] = s.assistant("Writing it.", calls=[write("/app/main.rs", "fn main(){}")])
    s.result(a, "write", "Successfully wrote 11 bytes to /app/main.rs")
    s.assistant("OK, let me try a completely different approach. Wait, I've tried this. " * 2600,
                stop="length", output=32000, prompt=3000)
    c = import_trial(write_trial(tmp_path / "t", s, result=trial_result("polyglot-rust-c", "t", reward=0.0)))
    base = whatif(c, load_profile("baseline"))
    assert base.first is None and base.left_recording_at is None
    assert base.summary() == "no mitigation acts: this profile changes nothing for this trial"
    w = whatif(c, load_profile("mitigated").replace(loop_detector=False))
    assert w.first.mitigation == "max_tokens" and w.first.turn == 1
    assert w.first.text == "max tokens cut turn 1 at 16,384 tokens; recorded 32,000"
    w = whatif(c, load_profile("mitigated"))
    assert w.first.mitigation == "loop_detector" and w.first.turn == 1
    cut = int(w.first.text.split(" at ")[1].split()[0].replace(",", ""))
    assert cut < 2048


# The analysis' three failures, each met first by another mitigation (§7's order: compaction,
# then the turn cap and loop guard, then verify-before-done).
FIRST = {"path-tracing-reverse": ("proactive_compaction", r"compaction before turn \d+ at [\d,]+ tokens instead of the 400 at 268,559"),
         "polyglot-rust-c": ("loop_detector", r"loop detector cut turn 4 at 954 tokens; recorded 32,000"),
         "db-wal-recovery": ("verify_before_done", r"verify demand instead of ending on 'Done! I recovered all 11")}


@pytest.mark.parametrize("harness", ["reference", pytest.param("pi", marks=pytest.mark.needs("pi"))])
def test_whatif_answers_the_analysis_experiments_for_its_three_failures(harness):
    results = []
    for name, (mitigation, text) in FIRST.items():
        if harness == "pi" and name == "path-tracing-reverse":
            continue  # 36 turns of 260k-token requests through pi: the reference run covers it
        w = whatif(cs.load(ROOT / "cassettes" / f"{name}.yaml"), load_profile("mitigated"), harness)
        assert w.first.mitigation == mitigation and re.fullmatch(text + ".*", w.first.text), (name, w.effects)
        assert w.left_recording_at is None  # the scripted continuations answer what the harness asks
        results.append(w)
    lines = table(results)
    assert max(map(len, lines)) <= 120
    counts = {row.split()[0]: row.split()[-2:] for row in lines if row.strip()}
    for w in results:
        assert counts[w.first.mitigation] == ["1", "1"]  # acts in one trial, first in that one
    assert lines[-1] == f"0 of {len(results)} trials: no mitigation acts"


# -- the fixtures are Harbor's own shapes ------------------------------------------------------------
@pytest.mark.needs("harbor")
def test_hand_made_trials_validate_against_harbors_models(tmp_path):
    python = HARBOR_VENV / "bin" / "python"
    job = make_job(tmp_path)
    db_trial(tmp_path / "h", layout="harbor-pi")
    results = sorted(str(p) for p in tmp_path.rglob("result.json"))
    trajectories = sorted(str(p) for p in tmp_path.rglob("trajectory.json"))
    assert len(results) == 10 and len(trajectories) == 1
    check = ("import json, sys\n"
             "from harbor.models.trial.result import TrialResult\n"
             "from harbor.models.trajectories.trajectory import Trajectory\n"
             "n = sys.argv.index('--')\n"
             "for p in sys.argv[1:n]: TrialResult.model_validate_json(open(p).read())\n"
             "for p in sys.argv[n + 1:]: Trajectory.model_validate_json(open(p).read())\n"
             "print('ok', n - 1, len(sys.argv) - n - 1)\n")
    done = subprocess.run([str(python), "-c", check, *results, "--", *trajectories], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ok", "10", "1"]
    assert job.exists()
