"""`tbreplay sweep` and `pytest --sweep`: settings, the summary with its noise notes, the outputs;
and (live, on the embedded SmolLM2 server) the DRY sweep, a max-tokens sweep and a server-flag sweep."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_tbreplay.serverconfig import sweep as sw
from pytest_tbreplay.cli import main
from pytest_tbreplay.core.cache import CACHE
from pytest_tbreplay.core.profiles import load_profile


def test_a_setting_is_a_request_field_a_server_flag_or_a_model():
    s = sw.parse("dry_multiplier=0,0.8")
    assert (s.kind, s.values) == ("request", [0, 0.8])
    s = sw.parse("--cache-type-k=q8_0,q4_0")
    assert (s.kind, s.name, s.values) == ("server", "--cache-type-k", ["q8_0", "q4_0"])
    assert sw.parse("model=qwen-q8,qwen-q4").kind == "model"
    with pytest.raises(sw.SweepError, match="NAME=V1,V2"):
        sw.parse("dry_multiplier")
    with pytest.raises(sw.SweepError, match="closest: --cache-type-k"):
        sw.parse("--cache-type-kk=q8_0")
    with pytest.raises(sw.SweepError, match="not a llama-server flag"):
        sw.parse("--draft-max=2,3")  # removed in 11434.0.0


def test_request_settings_reach_the_profile_the_harness_sends():
    p = load_profile("mitigated-cpu")
    assert sw.profile_with(p, sw.parse("max_tokens=64,128"), 64).max_tokens == 64
    big = sw.profile_with(load_profile("mitigated"), sw.parse("max_tokens=32000"), 32000)
    b = big.budget(262144)  # max tokens counted once: a full turn still fits inside the window
    assert (b.max_tokens, b.window) == (32000, 262144 - 8192) and b.prompt_limit == 262144 - 8192 - 32000
    dry = sw.profile_with(p, sw.parse("dry_multiplier=0,0.8"), 0).dry
    assert dry == {"dry_multiplier": 0, "dry_base": 1.75, "dry_allowed_length": 2}
    assert sw.profile_with(load_profile("baseline"), sw.parse("reasoning_budget_tokens=2000"), 2000).dry == \
        {"reasoning_budget_tokens": 2000}


def test_server_flags_and_models_need_the_right_server():
    with pytest.raises(sw.SweepError, match="--sweep model=ID1,ID2"):
        sw.run(sw.parse("--cache-type-k=q8_0,q4_0"), server_url="http://127.0.0.1:9")
    with pytest.raises(sw.SweepError, match="add --server-url"):
        sw.run(sw.parse("model=a,b"))


def rows(rates, tps, passed=None):
    return [{"passed": passed, "length_stop": r > 0.5, "decode_tps": t, "repeat_4gram": r, "completion_tokens": 100,
             "wall_s": 1.0} for r, t in zip(rates, tps)]


def test_summary_counts_trials_and_notes_what_is_within_noise(tmp_path):
    s = sw.parse("dry_multiplier=0,0.8")
    result = sw.result_of(s, "synthetic", "none", {
        "dry_multiplier=0": rows([0.9, 0.8, 0.85, 0.95], [50, 52, 48, 51]),
        "dry_multiplier=0.8": rows([0.1, 0.2, 0.15, 0.05], [49, 53, 50, 50]),
    })
    p0, p8 = result["points"].values()
    assert p0["trials"] == 4 and p0["repeat_4gram"]["n"] == 4
    assert p0["repeat_4gram"]["mean"] == pytest.approx(0.875)
    notes = " ".join(result["notes"])
    assert "decode tok/s" in notes and "within noise" in notes  # 50.25 vs 50.5: noise
    assert "repeated-4-gram" not in notes  # 0.875 vs 0.125: a real difference
    paths = sw.write(result, tmp_path)
    assert set(paths) >= {"json", "markdown", "repeat_4gram", "decode_tps", "length_stop_rate"}
    assert "pass_rate" not in paths  # no trial had a verdict: no plot of nothing
    for key, path in paths.items():
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(paths["json"].read_text())["points"]["dry_multiplier=0.8"]["repeat_4gram"]["n"] == 4
    md = paths["markdown"].read_text()
    assert "| dry_multiplier=0.8 | 4 |" in md and "(n=4)" in md and "within noise" in md


def test_one_trial_per_setting_says_there_is_no_noise_estimate():
    result = sw.result_of(sw.parse("max_tokens=16,64"), "w", "s",
                          {"max_tokens=16": rows([0.1], [40]), "max_tokens=64": rows([0.2], [41])})
    assert any("no noise estimate" in n for n in result["notes"])


INNER = """
import pytest

@pytest.mark.smoke
def test_task(live):
    pass

def test_other(live):
    pass
"""


def test_pytest_sweep_runs_each_smoke_test_once_per_setting(pytester):
    pytester.makepyfile(INNER)
    r = pytester.runpytest("--live", "--sweep", "dry_multiplier=0,0.8", "--collect-only", "-q")
    collected = [line.split("::")[-1] for line in r.outlines if "::" in line]
    assert sorted(collected) == ["test_other", "test_task[dry_multiplier=0.8]", "test_task[dry_multiplier=0]"]
    r = pytester.runpytest("--sweep", "dry_multiplier=0,0.8")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*--sweep runs live trials: add --live*"])
    r = pytester.runpytest("--live", "--sweep", "dry_multiplier")
    r.stderr.fnmatch_lines(["*write NAME=V1,V2*"])


# -- live: the CI sweeps on the embedded server ---------------------------------------------------------
@pytest.mark.live
def test_dry_sweep_lowers_the_repeated_4gram_rate(tmp_path, capsys):
    """DRY 0 vs 0.8 at temperature 0, continuing six loops in progress, caching off. DRY penalizes
    extending a repeated sequence, but newlines are DRY sequence breakers and one loop of short
    lines survives it (the README's DRY table has the per-loop figures), so the test asserts on the mean
    over the six loops, with a margin of a third of the drop measured here (0.72 -> 0.25)."""
    assert main(["sweep", "--sweep", "dry_multiplier=0,0.8", "--trials", "6", "--max-tokens", "48",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "sweep-dry_multiplier.json").read_text())
    off, on = (result["points"][k]["repeat_4gram"] for k in ("dry_multiplier=0", "dry_multiplier=0.8"))
    assert off["n"] == on["n"] == 6
    print(f"repeated-4-gram rate: DRY off {off['mean']:.3f}, DRY 0.8 {on['mean']:.3f}")
    assert on["mean"] <= off["mean"] - 0.15, result["trials"]  # measured: 0.72 -> 0.25
    assert (tmp_path / "sweep-dry_multiplier-repeat_4gram.png").exists()
    assert "dry_multiplier=0.8" in capsys.readouterr().out


@pytest.mark.live
def test_max_tokens_sweep_caps_every_turn(tmp_path):
    """Greedy continuations with caching off: the 8-token answer is a prefix of the 32-token one, so
    it is never longer and stops on the cap at least as often."""
    result = sw.run(sw.parse("max_tokens=8,32"), trials=3)
    for label, cap in (("max_tokens=8", 8), ("max_tokens=32", 32)):
        assert all(t["completion_tokens"] <= cap for t in result["trials"][label]), result["trials"][label]
    short, long_ = (result["points"][k] for k in ("max_tokens=8", "max_tokens=32"))
    assert short["completion_tokens"]["mean"] <= long_["completion_tokens"]["mean"]
    assert short["length_stop_rate"]["mean"] >= long_["length_stop_rate"]["mean"]
    sw.write(result, tmp_path)
    assert (tmp_path / "sweep-max_tokens-completion_tokens.png").exists()


@pytest.mark.live
def test_a_server_flag_sweep_restarts_the_embedded_server():
    result = sw.run(sw.parse("--cache-type-k=f16,q8_0"), trials=1, max_tokens=8)
    assert list(result["points"]) == ["--cache-type-k=f16", "--cache-type-k=q8_0"]
    assert all(p["trials"] == 1 and p["decode_tps"] for p in result["points"].values())


class FakeChat(BaseHTTPRequestHandler):
    """An OpenAI-style server that answers every chat with a streamed, repetitive "done" (a unit-test
    fake: the task workload's plumbing, not the model, is under test here)."""
    bodies: list = []

    def do_GET(self):
        data = json.dumps({"default_generation_settings": {"n_ctx": 8192}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        events = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": "It is done now. " * 6},
                                "finish_reason": None}]},
                  {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 300, "completion_tokens": 30}}]
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events).encode() + b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_the_task_workload_sends_the_setting_and_scores_the_trial():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    FakeChat.bodies = []
    try:
        result = sw.run(sw.parse("dry_multiplier=0,0.8"), trials=1, server_url=f"http://127.0.0.1:{httpd.server_port}",
                        tasks=["regex-log"], profile=load_profile("mitigated-cpu"))
    finally:
        httpd.shutdown()
    assert {b["dry_multiplier"] for b in FakeChat.bodies} == {0, 0.8}
    for label in ("dry_multiplier=0", "dry_multiplier=0.8"):
        (row,) = result["trials"][label]
        assert row["task"] == "regex-log" and row["passed"] is False  # "done" without doing it fails the verifier
        assert row["repeat_4gram"] > 0.5 and row["turns"] >= 1
    assert result["points"]["dry_multiplier=0"]["pass_rate"] == {"mean": 0.0, "ci95": None, "n": 1}


INNER_LIVE = """
import pytest
from pytest_tbreplay.core.trial import TaskSpec

@pytest.mark.smoke
def test_hi(live):
    r = live(TaskSpec("hi", "Say hi."), "tiny.yaml")
    assert r.trial.turns
"""


@pytest.mark.live
def test_pytest_sweep_end_to_end_on_the_embedded_server(pytester, monkeypatch):
    pytester.makefile(".yaml", tiny="name: tiny\ncontext_window: 4096\nmax_tokens: 64\nmax_turns: 1\n")
    pytester.makepyfile(INNER_LIVE)
    # A subprocess: an in-process inner session drops the modules it imported (httpx's transport
    # among them) when it ends, and later tests in this process then see two copies of httpcore.
    monkeypatch.setenv("TBREPLAY_CACHE", str(CACHE))  # pytester gives the subprocess its own HOME
    r = pytester.runpytest_subprocess("--live", "-m", "smoke", "--sweep", "max_tokens=4,8")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*tbreplay sweep max_tokens*", "*| max_tokens=4 | 1 |*", "*| max_tokens=8 | 1 |*"])
    result = json.loads((pytester.path / ".tbreplay" / "sweep" / "sweep-max_tokens.json").read_text())
    for label, cap in (("max_tokens=4", 4), ("max_tokens=8", 8)):
        (row,) = result["trials"][label]
        assert 0 < row["completion_tokens"] <= cap
        assert 0.0 <= row["repeat_4gram"] <= 1.0  # the answer's repeated-4-gram rate reaches the report
