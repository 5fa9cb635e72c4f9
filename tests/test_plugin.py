"""The plugin as a user meets it: options, profiles, errors, and --record on a real server."""
import pytest

from pytest_tbreplay.llama import CACHE
from pytest_tbreplay.profiles import ProfileError, load_profile

INNER = """
from pytest_tbreplay.harness import TaskSpec

def test_hello(live):
    r = live(TaskSpec("hello", "Say hello in five words."), "baseline")
    assert r.trial.turns
"""


def test_a_user_profile_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ncontext_window: 65536\nmax_tokens: 8192\nloop_detector: true\n")
    p = load_profile(path)
    assert (p.window(262144), p.max_tokens, p.loop_detector, p.length_nudge, p.telemetry) == (65536, 8192, True, False, True)


@pytest.mark.parametrize("text, message", [
    ("name: x\ncontext_window: 1000\nmax_tokens: 10\nloop_detectr: true\n", r"unknown profile keys \['loop_detectr'\]"),
    ("name: x\ncontext_window: auto\nmax_tokens: 16384\nmax_turns: 0\n", "max_turns is 0; it must be a positive integer"),
])
def test_a_bad_profile_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_unknown_profile_and_bad_option_combinations_are_usage_errors(pytester):
    pytester.makepyfile("def test_x(): pass")
    r = pytester.runpytest("--profile", "nonesuch")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*profile 'nonesuch' not found*baseline, mitigated*"])
    r = pytester.runpytest("--record")
    r.stderr.fnmatch_lines(["*--record records live trials: add --live*"])
    r = pytester.runpytest("--harness", "claude")
    r.stderr.fnmatch_lines(["*invalid choice: 'claude'*"])


def test_live_tests_are_skipped_with_a_reason_without_live(pytester):
    pytester.makepyfile(INNER)
    r = pytester.runpytest("-rs")
    r.stdout.fnmatch_lines(["*SKIPPED*run with --live*"])


@pytest.mark.live
def test_record_writes_a_cassette_and_never_overwrites(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("TBREPLAY_CACHE", str(CACHE))  # pytester moves HOME: keep the built server
    pytester.makepyfile(INNER)
    out = tmp_path / "rec"
    assert pytester.runpytest_subprocess("--live", "--record", "--record-dir", str(out)).ret == 0
    [path] = out.glob("*.yaml")
    text = path.read_text()
    assert "provenance: recorded" in text and "n_ctx: 8192" in text and "chunk_offsets" in text
    before = path.read_bytes()
    again = pytester.runpytest_subprocess("--live", "--record", "--record-dir", str(out))
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    again.stdout.fnmatch_lines(["*cassette exists; not overwriting it (use --record-mode=rewrite*"])
    assert path.read_bytes() == before
    rewrite = pytester.runpytest_subprocess("--live", "--record", "--record-dir", str(out), "--record-mode=rewrite")
    assert rewrite.ret == 0 and path.read_bytes() != before


SMOKE_RECORD = """
import json

def test_task(request):
    record = {"task": "regex-log", "task_class": "text", "harness": "reference", "profile": "mitigated-cpu",
              "model": "SmolLM2-135M-Instruct.Q4_1.gguf", "outcome": "failed", "turns": 1,
              "stop_reasons": ["stop"], "peak_prompt_tokens": 400, "compactions": [],
              "decode_tps": DECODE, "wall_s": 1.0, "error": None, "verifier_output": "1 failed"}
    request.node.user_properties.append(("tbreplay_smoke", json.dumps(record)))
"""


@pytest.mark.parametrize("decode, verdict", [(50.0, 0), (5.0, 1)])
def test_smoke_session_writes_the_report_and_fails_below_the_floors(pytester, tmp_path, decode, verdict):
    pytester.makepyfile(SMOKE_RECORD.replace("DECODE", str(decode)))
    report = tmp_path / "report.json"
    r = pytester.runpytest("--smoke-report", str(report))
    assert r.ret == verdict  # the test itself passed: only the floors decide
    assert report.exists()
    r.stdout.fnmatch_lines(["*tbreplay smoke*", "regex-log*failed*"])
    if verdict:
        r.stdout.fnmatch_lines(["*THRESHOLD FAILED: decode 5.0 tok/s is below the floor 20 tok/s*"])
