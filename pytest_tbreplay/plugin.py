"""The pytest face of pytest-tbreplay: options, markers, fixtures and the trial summary. Only
wiring: running a trial is run.py's, the smoke set's report and floors are smoke/report.py's.

    pytest                         replay the cassettes (the default mode)
    pytest --live                  run live tests against a real llama-server (--server-url, else embedded)
    pytest --live -m smoke --pyargs pytest_tbreplay.smoke    the smoke set
    pytest --live --record         ... and write the trials as cassettes
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.trial import TaskSpec
from pytest_tbreplay.core.props import LlamaServerError
from pytest_tbreplay.server.remote import remote_server
from pytest_tbreplay.core.profiles import Profile, ProfileError, load_profile
from pytest_tbreplay.harnesses import MATRIX, harness_name, is_pi
from pytest_tbreplay.run import Lived, Replayed, cassette_name, live_trial, replay_cassette
from pytest_tbreplay.shipped import find_cassette
from pytest_tbreplay.core.trial import Trial


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
    g.addoption("--harness", type=_harness_option, default=None,
                help="reference, pi (the current pin) or pi@VERSION: tests marked `harnesses` run only this "
                     "harness (default: reference and both pis), and the smoke set runs with it")
    g.addoption("--profile", default=None,
                help="profile name (baseline, mitigated) or YAML file (relative: to the ini file's folder)")
    g.addoption("--strict-replay", action="store_true", help="fail a test that leaves recorded interactions unplayed")
    g.addoption("--realtime", action="store_true", help="replay streams at their recorded pace")
    g.addoption("--cassette-dir", default=None,
                help="where cassettes are found and recorded (default: the ini's tbreplay_cassette_dir, "
                     "else a cassettes/ folder next to the test module)")
    g.addoption("--record-dir", default=None, help="where --record writes (default: the cassette dir)")
    g.addoption("--trials", type=int, default=1, metavar="N",
                help="run each smoke task N times (Terminal-Bench asks for 5): pass rates get 95%% Wilson intervals")
    g.addoption("--tbreplay-view", default=None, metavar="DIR",
                help="write a static site of the trials this run replayed (tbreplay view's pages) into DIR")
    g.addoption("--sweep", default=None, metavar="NAME=V1,V2,...",
                help="with --live -m smoke: run each smoke test once per setting (a request field, or a server flag)")
    parser.addini("tbreplay_cassette_dir", "cassette folder, relative to the ini file (default: next to each test module)")


def pytest_configure(config):
    for marker in ("live: needs a real llama-server (run with --live)",
                   "smoke: the live smoke set (pytest --live -m smoke)",
                   "harnesses: run the test once per harness (reference, pi; only --harness when given), "
                   "as its `harness` argument",
                   "benchmark: a performance measurement, not part of the default run"):
        config.addinivalue_line("markers", marker)
    from pytest_tbreplay.smoke.report import SmokeReport
    config.pluginmanager.register(SmokeReport(config), "tbreplay-smoke")
    if config.option.sweep:
        from pytest_tbreplay.serverconfig.sweep import SweepPlugin
        config.pluginmanager.register(SweepPlugin(config), "tbreplay-sweep")
    opt = config.option
    if opt.live and opt.replay:
        raise pytest.UsageError("--live and --replay exclude each other: pick one mode")
    if opt.record and not opt.live:
        raise pytest.UsageError("--record records live trials: add --live")
    if opt.trials < 1:  # here, not at collection: a usage error there would be a collection error
        raise pytest.UsageError(f"--trials {opt.trials}: give 1 or more")
    if opt.profile:
        try:
            profile_of(config, opt.profile)
        except ProfileError as e:
            raise pytest.UsageError(f"--profile: {e}") from None


def config_dir(config) -> Path:
    """Where relative paths in the ini file and the profile option are anchored."""
    return config.inipath.parent if config.inipath else config.rootpath


def _harness_option(value: str) -> str:
    try:
        return harness_name(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def profile_of(config, profile: str | Path | Profile) -> Profile:
    """A Profile from a shipped name, or a YAML file relative to the ini file's folder (or rootdir)."""
    if isinstance(profile, Profile):
        return profile
    path = Path(profile)
    return load_profile(config_dir(config) / path if path.suffix and not path.is_absolute() else profile)


def pytest_generate_tests(metafunc):
    """Tests marked `harnesses` run once per harness (or only the one --harness names); a test
    taking `trial_number` runs --trials N times (the smoke tasks)."""
    if "trial_number" in metafunc.fixturenames:
        n = metafunc.config.option.trials
        metafunc.parametrize("trial_number", range(1, n + 1), ids=lambda k: f"trial{k}")
    marker = metafunc.definition.get_closest_marker("harnesses")
    if marker is None:
        return
    if "harness" not in metafunc.fixturenames:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: marked `harnesses` but takes no `harness` argument")
    chosen = metafunc.config.option.harness
    # marker args name harnesses ("pi" means every pi of the matrix); --harness picks one exactly
    names = [h for h in MATRIX if any(h == a or (a == "pi" and is_pi(h)) for a in marker.args or MATRIX)]
    metafunc.parametrize("harness", [chosen] if chosen else names)


def pytest_collection_modifyitems(config, items):
    _mark_pi(config, items)
    if config.option.live:
        return
    skip = pytest.mark.skip(reason="live test: run with --live (uses --server-url or the embedded llama-server)")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)


def _mark_pi(config, items) -> None:
    """harness=pi items need Node and the pi that `tbreplay setup` (or `install-pi`) installed: without
    them they are skipped saying what to do (and fail the run in CI, which must run them). A test
    never installs pi itself."""
    from pytest_tbreplay.harnesses.pi.install import harness_version, pi_problem
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("harness")
        if not (isinstance(name, str) and is_pi(name)):
            continue
        if problem := pi_problem(harness_version(name)):
            if os.environ.get("CI"):
                raise pytest.UsageError(f"{problem} (CI must run the pi tests, not skip them)")
            item.add_marker(pytest.mark.skip(reason=problem))


# -- replay ---------------------------------------------------------------------------------
@pytest.fixture
def cassette_dir(request) -> Path:
    """Where this test's cassettes are: --cassette-dir, else the ini's tbreplay_cassette_dir, else a
    cassettes/ folder next to the test module."""
    config = request.config
    if config.option.cassette_dir:
        return Path(config.option.cassette_dir).resolve()
    if ini := config.getini("tbreplay_cassette_dir"):
        return config_dir(config) / ini
    return Path(request.node.path).parent / "cassettes"


@pytest.fixture(scope="session")
def _replays() -> dict:
    """One session's cassettes and replays, by what determines them (see `replay`)."""
    return {}


@pytest.fixture
def load_cassette(cassette_dir, _replays):
    """Load a cassette by path, or by name: from the cassette dir, else the packaged failure
    cassettes (polyglot-rust-c, path-tracing-reverse, db-wal-recovery, ...). The session loads a
    file once and every test gets that Cassette: treat it as read-only (copy.deepcopy it to edit)."""
    def load(name: str | Path) -> cs.Cassette:
        path = find_cassette(name, cassette_dir)
        key = ("cassette", str(path), path.stat().st_mtime_ns)
        if key not in _replays:
            _replays[key] = cs.load(path)
        return _replays[key]
    return load


@pytest.fixture
def replay(request, load_cassette, pytestconfig, _replays):
    """Run a harness against a cassette: `replay("polyglot-rust-c", "mitigated", harness="reference")`
    -> run.Replayed (trial, served, requests, turns, cassette).

    The trial's tool calls are answered from the cassette; a request the cassette cannot answer
    fails the test with the interaction index and a diff. Replay is deterministic, so a cassette
    file replayed again in the session with the same profile and harness is not run twice: the
    tests share its Replayed (treat it as read-only)."""
    opt = pytestconfig.option

    def run(name: str | Path | cs.Cassette, profile: str | Path | Profile = "baseline", harness: str = "reference",
            strict: bool | None = None) -> Replayed:
        prof = profile_of(pytestconfig, profile)
        if isinstance(name, cs.Cassette):  # built or edited in the test: always run
            replayed = replay_cassette(name, prof, harness, realtime=opt.realtime)
        else:
            c = load_cassette(name)
            key = ("replay", id(c), json.dumps(dataclasses.asdict(prof), sort_keys=True), harness, opt.realtime)
            if key not in _replays:
                _replays[key] = replay_cassette(c, prof, harness, realtime=opt.realtime)
            replayed = _replays[key]
        replayed.engine.check(strict=opt.strict_replay if strict is None else strict)
        record_trial(request.node, replayed.trial)
        if opt.tbreplay_view:
            _viewed(pytestconfig).append((replayed, prof, harness))
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
    from pytest_tbreplay.server.llama import LlamaServer
    with LlamaServer(opt.model_path, ctx_size=8192, extra_args=opt.server_arg) as server:
        yield server


@pytest.fixture
def live(request, llama_server, pytestconfig, cassette_dir, tmp_path):
    """Run a harness against the live server through the recording proxy:
    `live(task, profile, harness="reference", workdir=None, server=None)` -> run.Lived.
    With --record each trial is saved as a cassette: <test name>.yaml, then <test name>-2.yaml, ..."""
    opt = pytestconfig.option
    trials = 0

    def run(task: TaskSpec, profile: str | Path | Profile = "baseline", harness: str = "reference",
            workdir: Path | None = None, server=None, budget_s: float | None = None) -> Lived:
        nonlocal trials
        trials += 1
        prof, server = profile_of(pytestconfig, profile), server or llama_server
        if sweep := request.config.pluginmanager.get_plugin("tbreplay-sweep"):  # --sweep: this item's setting
            prof, server = sweep.apply(request.node, prof, server)
        trial, proxy, c = live_trial(server, task, prof, harness,
                                     workdir or _fresh(tmp_path / f"trial-{trials}"), opt.model, budget_s)
        record_trial(request.node, trial)
        saved = None
        if opt.record:
            folder = Path(opt.record_dir) if opt.record_dir else cassette_dir
            saved = cs.save(c, folder / cassette_name(request.node.name, trials), overwrite=opt.record_mode == "rewrite")
        return Lived(trial, proxy, c, saved)
    return run


@pytest.fixture
def run_smoke_task(live, llama_server, pytestconfig, request, tmp_path):
    """Run one smoke task (smoke.tasks.Task) live and verify it: `run_smoke_task(task)` -> the
    smoke report's record of it. The profile is --profile, else `mitigated` on a server of 64k
    tokens or more and `mitigated-cpu` below; the harness is --harness, else `reference`."""
    from pytest_tbreplay.smoke import report

    def run(task, budget_scale: float = 1.0) -> dict:
        opt = pytestconfig.option
        app = task.prepare(tmp_path)
        spec = TaskSpec(task.name, task.instruction_for(app), task.acceptance_for(app))
        profile = opt.profile or ("mitigated" if llama_server.n_ctx >= 65536 else "mitigated-cpu")
        r = live(spec, profile, opt.harness or "reference", workdir=app, budget_s=task.time_budget_s * budget_scale)
        verdict = None if r.trial.outcome in ("infra", "timeout") else task.verify(app, timeout=600)
        rec = report.record(task, r.trial, verdict, opt.model or llama_server.model)
        request.node.user_properties.append(("tbreplay_smoke", json.dumps(rec)))
        return rec
    return run


def _fresh(folder: Path) -> Path:
    folder.mkdir()
    return folder


def record_trial(node, trial: Trial) -> None:
    """Keep the trial's figures on the test report (they travel back from xdist workers)."""
    node.user_properties.append(("tbreplay_trial", json.dumps(
        {"task": trial.task, "harness": trial.harness, "profile": trial.profile} | trial.metrics())))


def _viewed(config) -> list:
    if not hasattr(config, "_tbreplay_viewed"):
        config._tbreplay_viewed = []
    return config._tbreplay_viewed


def _worker(config) -> str | None:
    """The pytest-xdist worker's id (gw0, ...), None in the controller or a run without -n."""
    return getattr(config, "workerinput", {}).get("workerid")


def pytest_sessionstart(session):
    if (folder := session.config.getoption("tbreplay_view", None)) and not _worker(session.config):
        from pytest_tbreplay.analysis import view
        view.clear_parts(Path(folder))


def pytest_sessionfinish(session):
    """--tbreplay-view DIR: the pages of every trial this run replayed (a CI artifact). Each process
    writes the pages of the trials it ran; the last to finish (xdist's controller, or the only
    process) writes the index from what all of them wrote."""
    config = session.config
    folder, viewed = config.getoption("tbreplay_view", None), getattr(config, "_tbreplay_viewed", [])
    if not folder:
        return
    from pytest_tbreplay.analysis import view
    if viewed:
        site = view.write_pages(view.groups_from_replays(viewed), Path(folder))
        view.save_part(site, _worker(config) or "main")
    if not _worker(config) and (site := view.index_from_parts(Path(folder), "pytest --replay trials")):
        config._tbreplay_view_index = site.index


def pytest_terminal_summary(terminalreporter):
    if index := getattr(terminalreporter.config, "_tbreplay_view_index", None):
        terminalreporter.write_line(f"tbreplay view: open {index}")
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
