"""The README's `live` examples against the live server (the embedded llama-server unless
--server-url), as a user's project runs them: an inner pytest session (pytester), once per harness."""
import pytest

from readme_doc import write_example_project

pytestmark = pytest.mark.live


@pytest.mark.harnesses
def test_the_readme_live_examples_pass(pytester, harness, llama_server, pytestconfig):
    n = write_example_project(pytester.path, "live")
    assert n >= 1
    args = ["--live", "--server-url", llama_server.url, "--harness", harness, "-p", "no:randomly"]
    if pytestconfig.option.model:
        args += ["--model", pytestconfig.option.model]
    r = pytester.runpytest(*args)
    r.assert_outcomes(passed=n)
    # without --live the same examples are skipped, saying why
    pytester.runpytest("--harness", harness).assert_outcomes(skipped=n)
