"""The smoke set, from any project: `pytest --live -m smoke --pyargs pytest_tbreplay.smoke`.

Each smoke task is run by a harness against the live server (--server-url, else the embedded
llama-server), then its verifier. A task's test fails only when the run itself broke (an infra
error); the pass rate and decode rate are asserted against the model's floors (thresholds.yaml) at
the end of the session, in the smoke report."""
import pytest

from pytest_tbreplay.smoke.tasks import load_tasks

TASKS = load_tasks()


@pytest.mark.live  # on the function, not the module: it keeps them where it is imported to be collected
@pytest.mark.smoke
@pytest.mark.parametrize("name", sorted(TASKS))
def test_smoke_task(name, trial_number, run_smoke_task):  # trial_number: --trials N runs each N times
    rec = run_smoke_task(TASKS[name])
    assert rec["outcome"] != "infra", f"infra error, not a model failure: {rec['error']}"
    assert rec["outcome"] == "timeout" or rec["verifier_output"], "the verifier ran and said something"
