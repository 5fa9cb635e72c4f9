"""The plugin as a user meets it: options, profiles, errors, and --record on a real server."""
import dataclasses

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.cache import CACHE
from pytest_tbreplay.core.profiles import Profile, ProfileError, load_profile
from pytest_tbreplay.run import cassette_name, check_replay_metadata

INNER = """
from pytest_tbreplay.core.trial import TaskSpec

def test_hello(live):
    for words in ("five", "three"):  # two trials in one test: two cassettes
        r = live(TaskSpec("hello", f"Say hello in {words} words."), "baseline")
        assert r.trial.turns
"""


def test_a_user_profile_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ncontext_window: 65536\nmax_tokens: 8192\nloop_detector: true\n")
    p = load_profile(path)
    assert (p.window(262144), p.max_tokens, p.loop_detector, p.length_nudge, p.telemetry) == (65536, 8192, True, False, True)


@pytest.mark.parametrize("text, message", [
    ("name: x\ncontext_window: 1000\nmax_tokens: 10\nloop_detectr: true\n", r"unknown keys \['loop_detectr'\]"),
    ("name: x\ncontext_window: auto\nmax_tokens: 16384\nmax_turns: 0\n", "max_turns must be a positive integer, found 0"),
])
def test_a_bad_profile_names_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_a_bad_profile_lists_every_problem_in_one_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("loop_detector: yes-please\nmax_tokens: lots\nloop_detectr: true\n")
    with pytest.raises(ProfileError) as e:
        load_profile(path)
    message = str(e.value)
    assert message.startswith(str(path))
    for problem in ("context_window is missing", "loop_detector must be bool", "max_tokens must be",
                    "unknown keys ['loop_detectr']"):
        assert problem in message, problem


def test_unknown_profile_and_bad_option_combinations_are_usage_errors(pytester):
    pytester.makepyfile("def test_x(): pass")
    r = pytester.runpytest("--profile", "nonesuch")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines(["*profile 'nonesuch' not found*baseline, mitigated*"])
    r = pytester.runpytest("--record")
    r.stderr.fnmatch_lines(["*--record records live trials: add --live*"])
    r = pytester.runpytest("--harness", "claude")
    r.stderr.fnmatch_lines(["*--harness: unknown harness 'claude': use reference, pi (pi 1.6.0) or pi@VERSION*"])


def test_live_tests_are_skipped_with_a_reason_without_live(pytester):
    pytester.makepyfile(INNER)
    r = pytester.runpytest("-rs")
    r.stdout.fnmatch_lines(["*SKIPPED*run with --live*"])


@pytest.mark.live
def test_record_writes_one_cassette_per_trial_and_never_overwrites(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("TBREPLAY_CACHE", str(CACHE))  # pytester moves HOME: keep the built server
    pytester.makepyfile(INNER)
    out = tmp_path / "rec"
    assert pytester.runpytest_subprocess("--live", "--record", "--record-dir", str(out)).ret == 0
    paths = sorted(out.glob("*.yaml"))
    assert [p.name for p in paths] == ["test_hello-2.yaml", "test_hello.yaml"]
    assert ["five" in p.read_text() for p in paths] == [False, True]
    text = paths[1].read_text()
    assert "provenance: recorded" in text and "n_ctx: 8192" in text and "chunk_offsets" in text
    before = [p.read_bytes() for p in paths]
    again = pytester.runpytest_subprocess("--live", "--record", "--record-dir", str(out))
    assert again.ret == pytest.ExitCode.TESTS_FAILED
    again.stdout.fnmatch_lines(["*cassette exists; not overwriting it (use --record-mode=rewrite*"])
    assert [p.read_bytes() for p in paths] == before
    rewrite = pytester.runpytest_subprocess("--live", "--record", "--record-dir", str(out), "--record-mode=rewrite")
    assert rewrite.ret == 0 and [p.read_bytes() for p in paths] != before


def test_record_names_each_trial_of_a_test_apart():
    names = [cassette_name("test_x[reference-mitigated]", n) for n in (1, 2, 3)]
    assert names == ["test_x-reference-mitigated.yaml", "test_x-reference-mitigated-2.yaml",
                     "test_x-reference-mitigated-3.yaml"]
    assert cassette_name("test_regex_log_live[reference-]", 1) == "test_regex_log_live-reference.yaml"


# -- profile fields are type-checked, each one ---------------------------------------------------------
GOOD = {"name": "p", "context_window": 65536, "max_tokens": 8192}
WRONG = {"int": st.sampled_from(["8k", True, 1.5, None, [1]]), "bool": st.sampled_from(["off", "yes", 1, 0, None]),
         "str": st.sampled_from([1, True, None, ["x"]]), "dict | None": st.sampled_from([True, "on", 1, ["x"]]),
         "int | str": st.sampled_from([True, 1.5, None, "lots"]), "int | None": st.sampled_from(["8k", True, 1.5, [1]])}
FIELDS = [f for f in dataclasses.fields(Profile)]


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(FIELDS), data=st.data())
def test_every_profile_field_with_a_wrong_type_is_named_in_the_error(tmp_path_factory, field, data):
    value = data.draw(WRONG[field.type])
    path = tmp_path_factory.mktemp("p") / "p.yaml"
    path.write_text(yaml.safe_dump(GOOD | {field.name: value}))
    with pytest.raises(ProfileError, match=rf"p.yaml: {field.name} must be "):
        load_profile(path)


# -- the metadata replay reads is checked when a cassette is loaded -------------------------------------
SENTINEL_META = cs.load(__import__("pathlib").Path(__file__).parents[1] / "cassettes" / "sentinel.yaml").metadata


@pytest.mark.parametrize("key, value, message", [
    ("instruction", None, "metadata.instruction must be str"),
    ("task", 3, "metadata.task must be str"),
    ("acceptance", "build it", "metadata.acceptance must be list"),
    ("acceptance", [1], r"metadata.acceptance\[0\] must be str"),
    ("history", {}, "metadata.history must be list"),
    ("server", None, "metadata.server must be dict"),
    ("server", {"model": "m"}, "metadata.server.n_ctx must be int"),
    ("server", {"n_ctx": 8192, "model": 1}, "metadata.server.model must be str"),
])
def test_each_metadata_key_replay_reads_is_checked(key, value, message):
    check_replay_metadata(SENTINEL_META, "c.yaml")  # the real one passes
    with pytest.raises(cs.CassetteError, match=f"c.yaml: {message}"):
        check_replay_metadata(SENTINEL_META | {key: value}, "c.yaml")


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
    report = pytester.path / ".tbreplay" / "smoke-report.json"  # a user's project: the default place
    r = pytester.runpytest()
    assert r.ret == verdict  # the test itself passed: only the floors decide
    assert report.exists()
    r.stdout.fnmatch_lines(["*tbreplay smoke*", "regex-log*failed*"])
    if verdict:
        r.stdout.fnmatch_lines(["*THRESHOLD FAILED: decode 5.0 tok/s is below the floor 15 tok/s*"])


def test_show_and_replay_find_a_cassette_by_name_as_the_fixture_does(tmp_path, monkeypatch, capsys):
    from pytest_tbreplay.cli import main
    from pytest_tbreplay.shipped import shipped_cassettes
    mine = tmp_path / "recorded"
    mine.mkdir()
    (mine / "mine.yaml").write_bytes(shipped_cassettes()["db-wal-recovery"].read_bytes())
    (tmp_path / "pytest.ini").write_text("[pytest]\ntbreplay_cassette_dir = recorded\n")
    monkeypatch.chdir(tmp_path)
    assert main(["show", "mine"]) == 0  # from the ini's cassette dir
    assert str(mine / "mine.yaml") in capsys.readouterr().out
    assert main(["show", "polyglot-rust-c"]) == 0  # a packaged one
    assert "polyglot-rust-c" in capsys.readouterr().out
    assert main(["replay", "nonesuch"]) == 2
    err = capsys.readouterr().err
    assert "cassette 'nonesuch'" in err and "recorded" in err and "db-wal-recovery" in err
