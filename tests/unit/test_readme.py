"""The README's quick start is exactly what CI runs."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_quick_start():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("```\n", 2)[1].split("```")[0].strip().splitlines()
    assert len(quick_start) == 2  # one command sets everything up, one runs the tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-2:] == quick_start
