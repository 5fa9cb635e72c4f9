"""This repository's own pytest setup (a user's project needs none of it): pytest's `pytester`, which
the tests use to run inner pytest sessions of the plugin, and the options only this repository's
tests use. The plugin itself loads through its pytest11 entry point (pip install -e .)."""
import json

import pytest

pytest_plugins = ["pytester"]
# The smoke tasks' verifiers are run by pytest_tbreplay.smoke.tasks against an app folder, in their
# own pytest process: a pytest of this repository must not collect them (they would test /app, and
# share the module name test_outputs). Here, not in smoke/, so the wheel ships no conftest.
collect_ignore_glob = ["smoke/*/tests/*", "smoke/*/solution/*", "smoke/*/wrong/*", "smoke/*/environment/*"]


def pytest_addoption(parser):
    g = parser.getgroup("tbreplay-repo", "pytest-tbreplay's own tests")
    g.addoption("--harbor", action="store_true",
                help="run the smoke tasks through `harbor run -p smoke/TASK` with MitigatedPi (needs the Harbor "
                     "venv that .ci/run makes: .venv-harbor, or TBREPLAY_HARBOR_VENV)")
    g.addoption("--time-scale", type=float, default=1.0, help="multiply the smoke tasks' time budgets")
    g.addoption("--smoke-report", default=None, help="smoke JSON report (default: <rootdir>/.tbreplay/smoke-report.json)")


@pytest.fixture
def run_smoke_task(run_smoke_task, pytestconfig, llama_server, request, tmp_path):
    """The plugin's smoke runner with this repository's options: --time-scale, and --harbor (the
    real benchmark path: `harbor run -p smoke/<task>` with MitigatedPi, in the Docker-free
    environment of tests/harbor_env.py, or in Docker with TBREPLAY_HARBOR_ENV=docker)."""
    opt = pytestconfig.option
    if not opt.harbor:
        return lambda task: run_smoke_task(task, budget_scale=opt.time_scale)

    def through_harbor(task) -> dict:
        from harbor_run import harbor_problem, run_trial  # tests/ (on sys.path through tests/conftest.py)

        from pytest_tbreplay.smoke import report
        if problem := harbor_problem():
            pytest.fail(f"--harbor: {problem}")
        model = opt.model or llama_server.model
        profile = opt.profile or ("mitigated" if llama_server.n_ctx >= 65536 else "mitigated-cpu")
        trial = run_trial(task.root, "mitigated", llama_server.url, tmp_path / "jobs", model=model, profile=profile,
                          time_scale=opt.time_scale, timeout=task.time_budget_s * opt.time_scale * 3 + 900)
        rec = report.harbor_record(task, trial.parent, model, profile)
        request.node.user_properties.append(("tbreplay_smoke", json.dumps(rec)))
        return rec
    return through_harbor
