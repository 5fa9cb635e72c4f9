"""The reconstructed cassettes are honest: their scripted tool results are what running the calls
gives (tools/reconstruct.py --check), and path-tracing-reverse climbs as the analysis saw it."""
import importlib.util
import json
import re
from pathlib import Path

import pytest

from pytest_tbreplay.core import cassette as cs

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = ROOT / "cassettes"


@pytest.fixture(scope="module")
def reconstruct():
    spec = importlib.util.spec_from_file_location("tbreplay_reconstruct", CASSETTES.parent / "tools" / "reconstruct.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["polyglot-rust-c", "path-tracing-reverse", "db-wal-recovery"])
def test_scripted_tool_results_are_what_running_the_calls_gives_now(reconstruct, name):
    c = cs.load(CASSETTES / f"{name}.yaml")
    assert any(it.scripted and it.tool_results for it in c.interactions)  # there is something to run
    assert reconstruct.check(CASSETTES / f"{name}.yaml") == []


def test_check_mode_catches_a_typed_result(reconstruct, tmp_path):
    c = cs.load(CASSETTES / "db-wal-recovery.yaml")
    [scripted] = [r for it in c.interactions if it.scripted for r in it.tool_results]
    scripted.output = scripted.output.replace("'value': 600", "'value': 650")  # a result nobody ran
    [problem] = reconstruct.check(cs.save(c, tmp_path / "db-wal-recovery.yaml"))
    assert "interaction 5 bash" in problem and "'value': 650" in problem


def test_the_scripted_finishes_quote_what_their_checks_printed():
    polyglot = cs.load(CASSETTES / "polyglot-rust-c.yaml").interactions
    printed = dict(line.split(" ", 1) for line in polyglot[-2].tool_results[0].output.splitlines() if line[:1].isdigit())
    assert printed["42"] == "433494437 433494437"  # Rust and C++ agree with the task
    path = cs.load(CASSETTES / "path-tracing-reverse.yaml").interactions
    cosine = re.search(r"cosine similarity: ([0-9.]+)", path[-2].tool_results[0].output)[1]
    assert float(cosine) >= 0.995
    assert f"cosine similarity {cosine}" in "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                                                   for e in path[-1].events[:-1] if json.loads(e)["choices"])


def test_path_tracing_reverse_climbs_as_the_analysis_saw_it():
    c = cs.load(CASSETTES / "path-tracing-reverse.yaml")
    failed = c.metadata["failure"]["interaction"]
    sent = [it.usage["prompt_tokens"] for it in c.interactions[:failed]]
    over = int(re.search(r"request \((\d+) tokens\)", c.interactions[failed].body)[1])
    assert all(s < 262144 for s in sent) and over >= 262144  # the 400 is the first request at the limit
    assert 259_000 <= sent[-1] < 262144  # the last one that fit was in the range the analysis saw
    dumps = [r.output for it in c.interactions[:failed] for r in it.tool_results if r.name == "bash"][2:]
    growth = [b - a for a, b in zip(sent[3:], sent[4:])] + [over - sent[-1]]
    assert len(dumps) == len(growth) >= 10
    for grew in growth:  # each step is one tool output (plus the ~100-token call that asked for it)
        assert 2_000 <= grew <= 20_500
