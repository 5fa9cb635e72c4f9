"""The pytest face of pytest-tbreplay: options, markers, fixtures and the trial summary.

    pytest                         replay the cassettes (the default mode)
    pytest --live [-m smoke]       run against a real llama-server (--server-url, else embedded)
    pytest --live --record         ... and write the trials as cassettes
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from . import cassette as cs
from .harness import Endpoint, TaskSpec
from .llama import LlamaServerError, remote_server
from .profiles import Profile, ProfileError, load_profile
from .proxy import RecordingProxy
from .run import Replayed, replay_cassette, run_harness
from .trial import Trial

HARNESSES = ("reference", "pi")


def pytest_addoption(parser):
    g = parser.getgroup("tbreplay", "pytest-tbreplay: replay and live runs of a coding agent")
    g.addoption("--replay", action="store_true", help="replay recorded cassettes (the default)")
    g.addoption("--live", action="store_true", help="run live tests against a real llama-server")
    g.addoption("--record", action="store_true", help="with --live: write each trial as a cassette")
    g.addoption("--record-mode", choices=("new", "rewrite"), default="new",
                help="new: never overwrite a cassette (default); rewrite: replace existing ones")
    g.addoption("--server-url", help="an existing llama-server or llama-swap (default: embedded CPU server)")
    g.addoption("--model", default=None, help="model name to request (llama-swap routes on it)")
    g.addoption("--model-path", default=None, help="GGUF for the embedded server (default: SmolLM2-135M)")
    g.addoption("--server-arg", action="append", default=[], help="extra llama-server flag (repeatable)")
    g.addoption("--harness", choices=HARNESSES, default=None, help="run only this harness")
    g.addoption("--profile", default=None, help="profile name (baseline, mitigated) or YAML file")
    g.addoption("--strict-replay", action="store_true", help="fail a test that leaves recorded interactions unplayed")
    g.addoption("--realtime", action="store_true", help="replay streams at their recorded pace")
    g.addoption("--cassette-dir", default=None, help="where cassettes live (default: <rootdir>/cassettes)")
    g.addoption("--record-dir", default=None, help="where --record writes (default: <rootdir>/cassettes/recorded)")
    g.addoption("--smoke-report", default=None, help="smoke JSON report (default: <rootdir>/.tbreplay/smoke-report.json)")
    g.addoption("--time-scale", type=float, default=1.0, help="multiply the smoke tasks' time budgets")
    g.addoption("--harbor", action="store_true", help="run the smoke tasks through `harbor run -p smoke/TASK` with MitigatedPi (needs the Harbor venv: README-harbor.md)")


def pytest_configure(config):
    for marker in ("live: needs a real llama-server (run with --live)",
                   "smoke: the live smoke set (pytest --live -m smoke)",
                   "cassette(name): the cassette a replay test uses",
                   "benchmark: a performance measurement, not part of the default run"):
        config.addinivalue_line("markers", marker)
    config.pluginmanager.register(SmokeReport(config), "tbreplay-smoke")
    opt = config.option
    if opt.live and opt.replay:
        raise pytest.UsageError("--live and --replay exclude each other: pick one mode")
    if opt.record and not opt.live:
        raise pytest.UsageError("--record records live trials: add --live")
    if opt.profile:
        try:
            load_profile(opt.profile)
        except ProfileError as e:
            raise pytest.UsageError(str(e)) from None


def pytest_collection_modifyitems(config, items):
    _mark_pi(items)
    if config.option.live:
        return
    skip = pytest.mark.skip(reason="live test: run with --live (uses --server-url or the embedded llama-server)")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


def _mark_pi(items) -> None:
    """harness=pi items: skipped without Node (saying what to install), strict xfail where pi
    cannot take a mitigation (pi.PI_CANNOT names the pi source)."""
    from .pi import PI_CANNOT, node_problem
    pi_items = [i for i in items if getattr(i, "callspec", None) and i.callspec.params.get("harness") == "pi"]
    problem = node_problem() if pi_items else None
    if problem and os.environ.get("CI"):
        raise pytest.UsageError(f"{problem} (CI must run the pi tests, not skip them)")
    for item in pi_items:
        if problem:
            item.add_marker(pytest.mark.skip(reason=problem))
        elif reason := PI_CANNOT.get(item.originalname):
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


def pytest_generate_tests(metafunc):
    """Tests that take `harness` run once per harness (or only the one --harness names)."""
    if "harness" in metafunc.fixturenames:
        chosen = metafunc.config.option.harness
        metafunc.parametrize("harness", [chosen] if chosen else list(HARNESSES))


@pytest.fixture(scope="session")
def cassette_dir(pytestconfig) -> Path:
    return Path(pytestconfig.option.cassette_dir or pytestconfig.rootpath / "cassettes")


@pytest.fixture
def load_cassette(cassette_dir):
    """Load a cassette by name (from the cassette dir) or path."""
    def load(name: str | Path) -> cs.Cassette:
        path = Path(name)
        if not path.suffix:
            path = cassette_dir / f"{name}.yaml"
        return cs.load(path)
    return load


@pytest.fixture
def replay(request, load_cassette, pytestconfig):
    """Run a harness against a cassette: `replay("polyglot-rust-c", "mitigated")` -> Replayed.

    The trial's tool calls are answered from the cassette; a request the cassette cannot answer
    fails the test with the interaction index and a diff."""
    opt = pytestconfig.option

    def run(name: str | Path | cs.Cassette, profile="baseline", harness: str = "reference",
            strict: bool | None = None) -> Replayed:
        c = name if isinstance(name, cs.Cassette) else load_cassette(name)
        prof = load_profile(profile) if isinstance(profile, (str, Path)) else profile
        replayed = replay_cassette(c, prof, harness, realtime=opt.realtime)
        replayed.engine.check(strict=opt.strict_replay if strict is None else strict)
        record_trial(request.node, replayed.trial)
        return replayed
    return run


# -- live mode ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def llama_server(pytestconfig):
    """The live server: --server-url, else the embedded llama-server with SmolLM2 on the CPU."""
    opt = pytestconfig.option
    if not opt.live:
        pytest.skip("live server: run with --live")
    if opt.server_url:
        try:
            yield remote_server(opt.server_url, opt.model)
        except LlamaServerError as e:
            raise pytest.UsageError(f"--server-url: {e}") from None
        return
    from .llama import LlamaServer
    with LlamaServer(opt.model_path, ctx_size=8192, extra_args=opt.server_arg) as server:
        yield server


@dataclass
class Lived:
    trial: Trial
    proxy: RecordingProxy
    cassette: cs.Cassette
    saved_to: Path | None


@pytest.fixture
def live(request, llama_server, pytestconfig, tmp_path):
    """Run a harness against the live server through the recording proxy:
    `live(task, profile, harness="reference", workdir=None, server=None)` -> Lived.
    With --record the trial is saved as a cassette named after the test."""
    opt = pytestconfig.option

    def run(task: TaskSpec, profile="baseline", harness: str = "reference", workdir: Path | None = None,
            server=None, budget_s: float | None = None) -> Lived:
        server = server or llama_server
        prof = load_profile(profile) if isinstance(profile, (str, Path)) else profile
        with RecordingProxy(server.url) as proxy:
            endpoint = Endpoint(proxy.url, workdir=workdir or tmp_path, model=opt.model or server.model,
                                budget_s=budget_s)
            trial = run_harness(harness, prof, task, endpoint)
        if proxy.upstream_failures and trial.outcome != "infra":  # the server failed, not the model
            trial.outcome, trial.error = "infra", proxy.upstream_failures[0]
        record_trial(request.node, trial)
        c = proxy.cassette(recording_metadata(task, trial, prof, harness, server, endpoint.model))
        saved = None
        if opt.record:
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            saved = cs.save(c, Path(opt.record_dir or pytestconfig.rootpath / "cassettes" / "recorded") / f"{name}.yaml",
                            overwrite=opt.record_mode == "rewrite")
        return Lived(trial, proxy, c, saved)
    return run


def recording_metadata(task: TaskSpec, trial: Trial, profile: Profile, harness: str, server, model: str) -> dict:
    # server.model is the name the harness asked for: what llama-swap routes on, and what replay sends.
    return {"format": cs.FORMAT, "task": task.name, "provenance": "recorded", "server": server.metadata | {"model": model},
            "harness_profile": {"harness": harness} | asdict(profile),
            "failure_mode": f"{trial.outcome}: stop reason {trial.stop_reason}",
            "instruction": task.instruction, "acceptance": task.acceptance, "history": task.history}


def record_trial(node, trial: Trial) -> None:
    """Keep the trial's figures on the test report (they travel back from xdist workers)."""
    node.user_properties.append(("tbreplay_trial", json.dumps(
        {"task": trial.task, "harness": trial.harness, "profile": trial.profile} | trial.metrics())))


# -- the smoke set's report and thresholds -----------------------------------------------------
class SmokeReport:
    """The smoke records of one session (from this process or from xdist workers): written as a
    JSON report, checked against the model's floors, printed as a table. One per config, so an
    inner pytest session (pytester) keeps its own."""

    def __init__(self, config):
        self.config, self.records, self.path, self.problems = config, [], None, []

    def pytest_runtest_logreport(self, report):
        for key, value in getattr(report, "user_properties", []):
            if key == "tbreplay_smoke" and report.when == "call":
                self.records.append(json.loads(value))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if not self.records or hasattr(self.config, "workerinput"):
            return
        from . import smoke
        opt = self.config.option
        self.path = Path(opt.smoke_report or self.config.rootpath / ".tbreplay" / "smoke-report.json")
        smoke.write_report(self.records, self.path)
        try:
            self.problems = smoke.check(self.records, smoke.thresholds_for(self.records[0]["model"]))
        except smoke.ThresholdError as e:
            self.problems = [str(e)]
        if self.problems:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.records:
            return
        from . import smoke
        tr = terminalreporter
        tr.section("tbreplay smoke")
        for line in smoke.table(self.records):
            tr.write_line(line)
        tr.write_line(f"report: {self.path}")
        for p in self.problems:
            tr.write_line(f"THRESHOLD FAILED: {p}", red=True)
        if not self.problems:
            tr.write_line(f"thresholds for {self.records[0]['model']}: met", green=True)


def pytest_terminal_summary(terminalreporter):
    _trial_summary(terminalreporter)


def _trial_summary(terminalreporter):
    rows = [json.loads(v) | {"test": r.nodeid.split("::")[-1]} for key in ("passed", "failed")
            for r in terminalreporter.stats.get(key, []) if r.when == "call"
            for k, v in getattr(r, "user_properties", []) if k == "tbreplay_trial"]
    if not rows:
        return
    tr = terminalreporter
    tr.section("tbreplay trials")
    tr.write_line(f"{'test':52} {'harness':9} {'profile':30} {'stop':7} {'turns':>5} {'peak ctx':>8} "
                  f"{'max turn':>8} {'compactions':18} {'tok/s':>7}")
    for r in rows:
        tps = f"{r['decode_tps']:.1f}" if r.get("decode_tps") else "-"
        tr.write_line(f"{r['test'][:52]:52} {r['harness']:9} {r['profile'][:30]:30} {r['stop_reason']:7} "
                      f"{r['turns']:>5} {r['peak_prompt_tokens']:>8} {r['max_turn_tokens']:>8} "
                      f"{','.join(r['compactions']) or '-':18} {tps:>7}")
