"""The README's `replay` examples, run as a user's project runs them: the README's ini and profile
files and its example tests in an inner pytest session (pytester), once per harness."""
import pytest

from readme_doc import write_example_project


@pytest.mark.harnesses
def test_the_readme_replay_examples_pass(pytester, harness, monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # the outer test is already skipped (or failed) without pi
    n = write_example_project(pytester.path, "replay")
    assert n >= 2
    r = pytester.runpytest("--harness", harness, "-p", "no:randomly")
    r.assert_outcomes(passed=n)
