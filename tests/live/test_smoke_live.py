"""`pytest --live -m smoke`: each smoke task run by a harness against the live server, then its
verifier. Per-task tests fail only when the run itself broke; the pass rate and decode rate are
asserted against the model's floors (smoke/thresholds.yaml) at the end of the session."""
import json

import pytest

from pytest_tbreplay.smoke import report as smoke
from pytest_tbreplay.core.trial import TaskSpec
from pytest_tbreplay.smoke.tasks import load_tasks

from harbor_run import harbor_problem, run_trial

pytestmark = [pytest.mark.live, pytest.mark.smoke]
TASKS = load_tasks()


def default_profile(n_ctx: int) -> str:
    """`mitigated` is sized for the desktop's 262k window; a small server gets it scaled down."""
    return "mitigated" if n_ctx >= 65536 else "mitigated-cpu"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_smoke_task(name, trial_number, live, llama_server, pytestconfig, request, tmp_path):
    opt = pytestconfig.option
    task = TASKS[name]
    if opt.harbor:
        return run_with_harbor(task, opt, llama_server, request, tmp_path)
    app = task.prepare(tmp_path)
    spec = TaskSpec(task.name, task.instruction_for(app), task.acceptance_for(app))
    r = live(spec, opt.profile or default_profile(llama_server.n_ctx), opt.harness or "reference",
             workdir=app, budget_s=task.time_budget_s * opt.time_scale)
    verdict = None if r.trial.outcome in ("infra", "timeout") else task.verify(app, timeout=600)
    rec = smoke.record(task, r.trial, verdict, opt.model or llama_server.model)
    request.node.user_properties.append(("tbreplay_smoke", json.dumps(rec)))
    assert rec["outcome"] != "infra", f"infra error, not a model failure: {r.trial.error}"
    assert verdict is None or verdict.output  # the verifier ran and said something


def run_with_harbor(task, opt, llama_server, request, tmp_path):
    """The real benchmark path: `harbor run -p smoke/<task>` (Terminal-Bench's task layout) with
    MitigatedPi, in the Docker-free environment of tests/harbor_env.py, or in Docker with
    TBREPLAY_HARBOR_ENV=docker (then --server-url must be an address the container can reach)."""
    if problem := harbor_problem():
        pytest.fail(f"--harbor: {problem}")
    model = opt.model or llama_server.model
    profile = opt.profile or default_profile(llama_server.n_ctx)
    trial = run_trial(task.root, "mitigated", llama_server.url, tmp_path / "jobs", model=model, profile=profile,
                      time_scale=opt.time_scale, timeout=task.time_budget_s * opt.time_scale * 3 + 900)
    rec = smoke.harbor_record(task, trial.parent, model, profile)
    request.node.user_properties.append(("tbreplay_smoke", json.dumps(rec)))
    assert rec["outcome"] != "infra", f"infra error, not a model failure: {rec['error']}"
