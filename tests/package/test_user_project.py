"""The plugin in a user's own project: each test runs an inner pytest session in a separate folder
(pytester) laid out as a user would lay it out, and asserts what that session did."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_tbreplay.core.cache import CACHE
from pytest_tbreplay.harnesses import pi as pi

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = ROOT / "tests" / "cassettes" / "sentinel.yaml"

# A user's test of the sentinel cassette, by name, using only the documented result object.
USES_MINE = """
def test_mine(replay):
    r = replay("mine")
    assert r.trial.stop_reason == "stop" and len(r.turns) == 2
    assert len(r.requests) == len(r.served) == 2 and r.served[0].status == 200
    assert r.requests[0]["messages"][-1]["content"].startswith("Create the marker file")
    assert r.cassette.metadata["task"] == "sentinel"
"""


def copy_sentinel(folder: Path, name: str = "mine") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SENTINEL, folder / f"{name}.yaml"))


# -- where cassettes are found ---------------------------------------------------------------
def test_cassettes_are_found_next_to_the_test_module_by_default(pytester):
    copy_sentinel(pytester.path / "tests" / "cassettes")
    pytester.makepyfile(**{"tests/test_user": USES_MINE})
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_ini_cassette_dir_is_relative_to_the_ini_file(pytester, monkeypatch):
    copy_sentinel(pytester.path / "recordings")
    pytester.makeini("[pytest]\ntbreplay_cassette_dir = recordings\n")
    pytester.makepyfile(**{"tests/test_user": USES_MINE})
    monkeypatch.chdir(pytester.path / "tests")  # run from below the ini file
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_cassette_dir_option_wins_over_the_ini(pytester):
    copy_sentinel(pytester.path / "elsewhere")
    copy_sentinel(pytester.path / "recordings", "other")  # the ini's folder has no "mine"
    pytester.makeini("[pytest]\ntbreplay_cassette_dir = recordings\n")
    pytester.makepyfile(**{"tests/test_user": USES_MINE})
    pytester.runpytest("--cassette-dir", str(pytester.path / "elsewhere")).assert_outcomes(passed=1)
    r = pytester.runpytest()
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*cassette 'mine': not in *recordings*packaged ones (*polyglot-rust-c*"])


def test_the_packaged_failure_cassettes_are_reachable_by_name(pytester):
    pytester.makepyfile("""
        def test_packaged(replay):
            r = replay("db-wal-recovery", "baseline")
            assert r.trial.final_text.startswith("Done! I recovered all 11 records")
            assert r.cassette.metadata["provenance"] == "reconstructed"
    """)
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_replay_repeated_in_the_session_runs_once_and_a_different_profile_runs_again(pytester):
    pytester.makepyfile("""
        seen = []

        def test_first(replay):
            seen.append(replay("db-wal-recovery", "mitigated"))

        def test_same(replay):
            assert replay("db-wal-recovery", "mitigated") is seen[0]  # deterministic: shared, not rerun

        def test_other_profile(replay):
            r = replay("db-wal-recovery", "baseline")
            assert r is not seen[0] and r.trial.final_text.startswith("Done!")
    """)
    r = pytester.runpytest("-p", "no:randomly")
    r.assert_outcomes(passed=3)
    r.stdout.fnmatch_lines(["*tbreplay trials*", "test_first *", "test_same *", "test_other_profile *"])


# -- profiles ----------------------------------------------------------------------------------
PROFILE = "name: mine\ncontext_window: 65536\nmax_tokens: 4096\nverify_before_done: true\n"


def test_profile_files_resolve_against_the_ini_file_not_the_cwd(pytester, monkeypatch):
    (pytester.path / "profiles").mkdir()
    (pytester.path / "profiles" / "mine.yaml").write_text(PROFILE)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(**{"tests/test_user": """
        def test_profile(replay):
            r = replay("db-wal-recovery", "profiles/mine.yaml")
            assert r.trial.profile == "mine" and r.trial.verify_demands  # the file's policy took effect
            assert {q["max_tokens"] for q in r.requests} == {4096}
    """})
    monkeypatch.chdir(pytester.path / "tests")
    pytester.runpytest("--profile", "profiles/mine.yaml").assert_outcomes(passed=1)


@pytest.mark.parametrize("text, message", [
    ("name: x\ncontext_window: 1000\nmax_tokens: 10\nloop_detector: 'off'\n",
     "loop_detector must be bool, found 'off' (str)"),
    ("name: x\ncontext_window: 1000\nmax_tokens: 10\ndry: true\n", "dry must be dict or None, found True (bool)"),
    ("name: x\ncontext_window: lots\nmax_tokens: 10\n", "context_window must be a number of tokens or auto"),
])
def test_a_mistyped_profile_is_one_usage_error_naming_the_field(pytester, text, message):
    (pytester.path / "bad.yaml").write_text(text)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile("def test_x(): pass")
    r = pytester.runpytest("--profile", "bad.yaml")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    r.stderr.fnmatch_lines([f"*--profile: *bad.yaml: {message}*"])


# -- harnesses ---------------------------------------------------------------------------------
def test_an_argument_named_harness_is_left_to_the_user(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.fixture
        def harness():
            return "my own harness"

        def test_mine(harness):
            assert harness == "my own harness"
    """)
    r = pytester.runpytest("-v")
    r.assert_outcomes(passed=1)
    r.stdout.fnmatch_lines(["*test_mine PASSED*"])  # one item, not parametrized


def test_both_harnesses_only_when_marked(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.harnesses
        def test_marked(harness):
            assert harness in ("reference", "pi@0.73.1", "pi@1.6.0")

        def test_unmarked(harness):
            pass
    """)
    r = pytester.runpytest("-v", "-k", "marked", "-p", "no:randomly")
    r.stdout.fnmatch_lines(["*test_marked?reference? PASSED*", "*test_marked?pi@0.73.1? *", "*test_marked?pi@1.6.0? *"])
    r.stdout.fnmatch_lines(["*test_unmarked ERROR*", "*fixture 'harness' not found*"])
    only = pytester.runpytest("-v", "--harness", "reference", "-k", "test_marked")
    only.assert_outcomes(passed=1)


@pytest.mark.needs("node")  # then the reason is Node's
def test_pi_is_never_installed_by_a_test(pytester, tmp_path, monkeypatch):
    """Without pi in the cache a pi test is skipped saying what to run, and the cache stays empty."""
    monkeypatch.delenv("CI", raising=False)
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    monkeypatch.setenv("TBREPLAY_CACHE", str(cache))
    pytester.makepyfile("""
        import pytest

        @pytest.mark.harnesses("pi")
        def test_pi(replay, harness):
            replay("db-wal-recovery", "baseline", harness)
    """)
    r = pytester.runpytest_subprocess("-rs")
    r.assert_outcomes(skipped=2)  # one per pi version of the matrix, each saying which to install
    r.stdout.fnmatch_lines(["*pi 0.73.1 is not installed*run `python -m pytest_tbreplay.cli install-pi 0.73.1`*"])
    r.stdout.fnmatch_lines(["*pi 1.6.0 is not installed*run `python -m pytest_tbreplay.cli install-pi 1.6.0`*"])
    assert list(cache.iterdir()) == []
    monkeypatch.setenv("CI", "1")
    ci = pytester.runpytest_subprocess()
    assert ci.ret == pytest.ExitCode.USAGE_ERROR
    ci.stderr.fnmatch_lines(["*CI must run the pi tests, not skip them*"])
    assert list(cache.iterdir()) == []


# -- metadata checked at load ----------------------------------------------------------------------
def test_a_cassette_without_the_instruction_fails_at_load_naming_the_key(pytester):
    path = copy_sentinel(pytester.path / "cassettes")
    path.write_text(path.read_text().replace("  instruction: Create the marker file, then say you are finished.\n", ""))
    pytester.makepyfile(USES_MINE)
    r = pytester.runpytest()
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*mine.yaml: metadata.instruction must be *"])  # the loader or replay says so


# -- a non-editable install -------------------------------------------------------------------------
@pytest.mark.live  # builds a wheel (~30 s with pip's build isolation): in the --live suite, as CI runs it
def test_a_non_editable_install_ships_cassettes_smoke_tasks_and_thresholds(pytester, tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(wheels)], check=True)
    [wheel] = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"pytest_tbreplay/cassettes/polyglot-rust-c.yaml", "pytest_tbreplay/smoke_tasks/thresholds.yaml",
            "pytest_tbreplay/smoke_tasks/path-tracing/environment/reference_render.c",
            "pytest_tbreplay/smoke/test_smoke.py", "pytest_tbreplay/harnesses/pi/extensions/loop_detector.ts",
            "pytest_tbreplay/harnesses/pi/extensions/lib/common.ts", "pytest_tbreplay/harnesses/pi/slim_updates.mjs"} <= names
    # development generators and this repository's test setup stay out of the wheel
    assert not [n for n in names if n.startswith("tools/") or n.endswith(("reconstruct.py", "shapes.py", "conftest.py"))]
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    pytester.makepyfile("""
        import pytest_tbreplay
        from pytest_tbreplay.smoke.report import THRESHOLDS, thresholds_for
        from pytest_tbreplay.smoke.tasks import load_tasks

        def test_installed(replay):
            assert "site" in pytest_tbreplay.__file__  # the wheel's copy, not a checkout
            assert set(load_tasks()) >= {"regex-log", "polyglot-rust-c", "path-tracing"}
            assert thresholds_for("SmolLM2-135M-Instruct.Q4_1.gguf")
            assert replay("polyglot-rust-c", "mitigated").trial.nudges
    """)
    # pytester moves HOME: the user's package cache (the built llama-server, the pis) is named outright
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TBREPLAY_CACHE": str(CACHE)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=pytester.path,
                          env=env | {"PYTHONPATH": str(target)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the smoke set from the user's project: collected from the installed package, and one task run
    # live against the embedded server (SmolLM2 is not expected to pass it: the run and report are)
    smoke = [sys.executable, "-m", "pytest", "--live", "-m", "smoke", "--pyargs", "pytest_tbreplay.smoke",
             "-p", "no:cacheprovider", "-q"]
    done = subprocess.run(smoke + ["--collect-only"], cwd=pytester.path, env=env | {"PYTHONPATH": str(target)},
                          capture_output=True, text=True, timeout=600)
    assert "4 tests collected" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    done = subprocess.run(smoke + ["-k", "regex-log"], cwd=pytester.path, env=env | {"PYTHONPATH": str(target)},
                          capture_output=True, text=True, timeout=1200)
    # the task's test passed and the report was written; the session's exit status also carries the
    # model's tok/s floor, which a loaded CI machine may miss (SmolLM2's floor is 15 tok/s), so it
    # is not asserted here: the floors have their own tests
    assert "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0 or "THRESHOLD FAILED: decode" in done.stdout, done.stdout[-3000:]
    assert (pytester.path / ".tbreplay" / "smoke-report.json").is_file()
