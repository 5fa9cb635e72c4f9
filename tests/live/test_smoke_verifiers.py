"""Proofs that each smoke task's verifier tells right from wrong.

For every task: the oracle passes, the prepared but untouched app folder fails, and
every wrong answer under wrong/ fails.
"""
import pytest

from pytest_tbreplay.smoke.tasks import load_tasks

TASKS = load_tasks()
CASES = [(name, "oracle") for name in TASKS] + [(name, None) for name in TASKS] + [
    (name, wrong) for name, task in TASKS.items() for wrong in task.wrong_answers
]


def test_all_four_tasks_are_there():
    assert set(TASKS) == {"regex-log", "openssl-selfsigned-cert", "polyglot-rust-c", "path-tracing"}
    for task in TASKS.values():
        assert task.task_class in ("build", "text")
        assert task.acceptance and task.wrong_answers
        assert "/app/" in task.instruction


def test_instruction_maps_app_paths(tmp_path):
    text = TASKS["regex-log"].instruction_for(tmp_path / "sandbox")
    assert "/app" not in text
    assert f"{tmp_path}/sandbox/regex.txt" in text
    accept = TASKS["path-tracing"].acceptance_for(tmp_path / "sandbox")
    assert any(f"{tmp_path}/sandbox/image.c" in line for line in accept)


@pytest.mark.parametrize(
    "name,answer", CASES, ids=[f"{n}-{a or 'empty'}" for n, a in CASES]
)
def test_verifier(tmp_path, name, answer):
    task = TASKS[name]
    app = task.prepare(tmp_path)
    if answer:
        task.apply(app, answer)
    result = task.verify(app, timeout=600)
    should_pass = answer == "oracle"
    assert result.passed == should_pass, result.output
    # The verifier and (for path-tracing) the reference renderer never enter the app folder.
    leaked = {"test_outputs.py", "reference_render.c", "solve.sh"} & {
        p.name for p in app.rglob("*")
    }
    assert not leaked, leaked
