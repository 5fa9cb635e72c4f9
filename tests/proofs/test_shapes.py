"""Issue 10, item 6: the mitigations on reconstructed failures of other shapes than the three
recorded trials (tools/shapes.py), in the style of test_mitigations.py: the recorded failure
under `baseline`, the fix under `mitigated` with numbers, and the one policy switched off to show
that this policy is what fixes it. Every test runs for both harnesses."""
import copy
from pathlib import Path

import pytest

from pytest_tbreplay.core.profiles import load_profile
from pi_changes import (LOWERS_MAX_TOKENS, NOT_EXECUTED, REFUSES_CUT_CALLS, assert_lowered_to_one, departure,
                        pi_since)

SHAPES = Path(__file__).resolve().parents[2] / "cassettes" / "shapes"
BASELINE, MITIGATED = load_profile("baseline"), load_profile("mitigated")
SERVERS = {"8k": 8192, "32k": 32768, "64k": 65536, "128k": 131072, "256k": 262144}


def shape(name: str) -> Path:
    return SHAPES / f"{name}.yaml"


# -- (2) one `auto` profile on every server size: overflow at 8k .. 256k ------------------------
@pytest.mark.harnesses
@pytest.mark.parametrize("size", SERVERS)
def test_overflow_baseline_dies_on_the_400(replay, harness, size, load_cassette):
    n_ctx = SERVERS[size]
    window = BASELINE.budget(n_ctx).window
    if pi_since(harness, LOWERS_MAX_TOKENS) and window < n_ctx + 4096:
        # pi >= 0.75 lowers max tokens to fit the window it was given (131072 under baseline): where
        # that window is not far above the server's n_ctx, a request between window - 4096 and
        # n_ctx gets 1 token, and the cut tool call's "not executed" result leaves the recording
        # before the 400. On the smaller servers the declared window is far larger, pi's
        # estimate never comes near it, and the 400 comes as recorded.
        r, left = departure(load_cassette, shape(f"overflow-{size}"), BASELINE, harness)
        at = assert_lowered_to_one(r, window)
        assert left.index == at + 1 and NOT_EXECUTED.search(left.diff) and r.trial.compactions == []
        return
    r = replay(shape(f"overflow-{size}"), BASELINE, harness)
    fitted = max(s.prompt_tokens for s in r.engine.served if s.status == 200)
    # The last request that fit came close to n_ctx (the recording's within 1%; pi's own system
    # prompt is longer than the recorded one, so for pi the 400 may come one read earlier).
    assert n_ctx * 0.8 <= fitted < n_ctx
    assert r.engine.served[-1].status == 400 and r.engine.served[-1].prompt_tokens >= n_ctx
    assert r.trial.stop_reason == "error" and r.trial.compactions == []


@pytest.mark.harnesses
@pytest.mark.parametrize("size", SERVERS)
def test_overflow_mitigated_compacts_in_time_on_every_server(replay, harness, size):
    n_ctx = SERVERS[size]
    budget = MITIGATED.budget(n_ctx)
    r = replay(shape(f"overflow-{size}"), MITIGATED.replace(overflow_retry=False), harness)
    assert [c["reason"] for c in r.trial.compactions] == ["threshold"]
    assert all(s.status == 200 for s in r.engine.served)
    assert r.trial.peak_prompt_tokens + budget.max_tokens <= budget.window  # a full turn always fit
    requests = [s.request for s in r.engine.served]
    assert {q.get("max_tokens", q.get("max_completion_tokens")) for q in requests if q.get("tools")} == {budget.max_tokens}
    summary = next(str(q["messages"]) for q in requests if "compacted" in str(q["messages"]) or
                   "compaction" in str(q["messages"]).lower() and q.get("tools"))
    assert r.engine.cassette.metadata["instruction"] in summary  # the task survives compaction
    assert r.trial.stop_reason == "stop" and r.trial.outcome == "completed"
    assert "checked" in r.trial.final_text
    print(f"n_ctx {n_ctx}: window {budget.window}, max tokens {budget.max_tokens}, compacted at "
          f"{r.trial.compactions[0]['tokens_before']} tokens, peak {r.trial.peak_prompt_tokens}")


# Without proactive compaction pi >= 0.75 never sends the overflowing request on these servers: its
# max tokens fall to 1 first (on 8k pi's fixed 4096-token margin is half the window), the
# 1-token answer cuts a tool call, and the trial leaves the recording at the 400.
PI_STOPS_FIRST = {"8k", "256k"}


@pytest.mark.harnesses
@pytest.mark.parametrize("size", ["8k", "32k", "256k"])
def test_overflow_off_the_400_ends_the_trial(replay, harness, size, load_cassette):
    off = MITIGATED.replace(proactive_compaction=False, overflow_retry=False)
    if pi_since(harness, LOWERS_MAX_TOKENS) and size in PI_STOPS_FIRST:
        r, left = departure(load_cassette, shape(f"overflow-{size}"), off, harness)
        assert left.index == assert_lowered_to_one(r, off.budget(SERVERS[size]).window) + 1
        return
    r = replay(shape(f"overflow-{size}"), off, harness)
    assert r.trial.stop_reason == "error" and "exceeds the available context size" in r.trial.error


@pytest.mark.harnesses
@pytest.mark.parametrize("size", ["8k", "32k"])
def test_overflow_retry_alone_recovers_after_the_400(replay, harness, size, load_cassette):
    if pi_since(harness, LOWERS_MAX_TOKENS) and size in PI_STOPS_FIRST:
        off = MITIGATED.replace(proactive_compaction=False)
        r, left = departure(load_cassette, shape(f"overflow-{size}"), off, harness)
        assert left.index == assert_lowered_to_one(r, off.budget(SERVERS[size]).window) + 1
        assert r.trial.compactions == [] and all(s.status == 200 for s in r.served)
        return
    r = replay(shape(f"overflow-{size}"), MITIGATED.replace(proactive_compaction=False), harness)
    assert [s.status for s in r.engine.served].count(400) == 1
    assert [c["reason"] for c in r.trial.compactions] == ["overflow"]
    assert r.trial.stop_reason == "stop" and "checked" in r.trial.final_text


# -- (1) a runaway whose long cycle changes every time -------------------------------------------
@pytest.mark.harnesses
def test_runaway_long_cycle_baseline_runs_to_the_length_stop(replay, harness):
    r = replay(shape("runaway-long-cycle"), BASELINE, harness)
    runaway = r.trial.turns[-1]
    assert runaway.stop_reason == "length" and runaway.completion_tokens == 8192
    assert r.trial.stop_reason == "length" and r.trial.nudges == []


@pytest.mark.harnesses
def test_runaway_long_cycle_mitigated_cuts_it_early(replay, harness):
    r = replay(shape("runaway-long-cycle"), MITIGATED, harness)
    meta = r.engine.cassette.metadata["failure"]
    runaway = r.trial.turns[meta["interaction"]]
    assert runaway.cut_by == "loop_detector"
    assert runaway.cut_at <= meta["third_cycle_token"] + 512  # against 8192 under baseline
    assert runaway.cut_at <= runaway.completion_tokens < 8192
    assert "3 of 3 passed" in r.trial.final_text


@pytest.mark.harnesses
def test_runaway_long_cycle_detector_off_runs_to_the_cap_and_is_nudged(replay, harness):
    r = replay(shape("runaway-long-cycle"), MITIGATED.replace(loop_detector=False), harness)
    meta = r.engine.cassette.metadata["failure"]
    runaway = r.trial.turns[meta["interaction"]]
    assert runaway.cut_by is None and runaway.completion_tokens == MITIGATED.budget(65536).max_tokens == 8192
    assert len(r.trial.nudges) == 1 and "3 of 3 passed" in r.trial.final_text


# -- (3) verify-before-done: "Done!" about a file a bash command produced --------------------------
@pytest.mark.harnesses
def test_bash_artifact_baseline_ends_on_done(replay, harness):
    r = replay(shape("bash-artifact-claim"), BASELINE, harness)
    assert r.trial.final_text.startswith("Done! /app/report.csv") and r.trial.verify_demands == []
    assert not any(t.verifier_ran for t in r.trial.turns)


@pytest.mark.harnesses
def test_bash_artifact_mitigated_demands_a_check_of_the_artifact(replay, harness):
    r = replay(shape("bash-artifact-claim"), MITIGATED, harness)
    [demand] = r.trial.verify_demands
    assert "since it produced /app/report.csv:" in demand  # the artifact of the claim, not the script
    assert "/app/report.csv (by `cd /app && python3 make_report.py" in demand  # what produced it, named
    for criterion in r.engine.cassette.metadata["acceptance"]:
        assert f"- {criterion}" in demand
    # re-running the producer (turn 3) and listing the file (ls) checked nothing
    assert [t.verifier_ran for t in r.trial.turns[:5]] == [False] * 5
    assert r.trial.turns[5].verifier_ran  # the provided checker, after the demand
    assert "OK:" in r.trial.final_text and not r.trial.final_text.startswith("Done!")


@pytest.mark.harnesses
def test_bash_artifact_verify_off_the_done_stands(replay, harness):
    r = replay(shape("bash-artifact-claim"), MITIGATED.replace(verify_before_done=False), harness)
    assert r.trial.final_text.startswith("Done!") and r.trial.verify_demands == []


# -- (4) a length stop that cut a write, and (5) tool replay that compares arguments --------------
@pytest.mark.harnesses
def test_cut_write_baseline_runs_the_cut_write_and_claims_done(replay, harness, load_cassette):
    if pi_since(harness, REFUSES_CUT_CALLS):
        # pi 1.x itself runs none of a length-stopped message's calls: the cut write gets pi's
        # "not executed" error result (no hint where or how to split), so the trial leaves the
        # recording at interaction 2 instead of writing 2,515 of 3,000 primes.
        r, left = departure(load_cassette, shape("cut-write"), BASELINE, harness)
        cut = r.trial.turns[1]  # the recorded length stop
        assert (cut.stop_reason, cut.completion_tokens, cut.tool_calls) == ("length", 8192, ["write"])
        assert left.index == 2 and NOT_EXECUTED.search(left.diff) and r.trial.nudges == []
        return
    r = replay(shape("cut-write"), BASELINE, harness)
    cut_at = r.engine.cassette.metadata["failure"]["cut_at_char"]
    written = [m for m in r.trial.messages if m["role"] == "tool"][1]["content"]
    assert written == f"Successfully wrote {cut_at} bytes to /app/primes.h"  # 2,515 of 3,000 primes
    assert r.trial.final_text.startswith("Done!") and r.trial.nudges == []


@pytest.mark.harnesses
def test_cut_write_mitigated_is_not_run_and_the_model_is_told_where(replay, harness):
    r = replay(shape("cut-write"), MITIGATED, harness)
    max_tokens = MITIGATED.budget(32768).max_tokens
    assert r.engine.served[1].cut_at == max_tokens == 4096
    [told] = r.trial.nudges
    assert f"max-tokens limit ({max_tokens} tokens)" in told and "not run" in told
    assert "/app/primes.h would have got only the first" in told and "Write large files in parts" in told
    sent = r.engine.served[2].request["messages"][-1]
    assert sent["role"] == "tool" and told in str(sent["content"])  # the cut call's result: never run
    assert "3000 2 27449" in r.trial.final_text


@pytest.mark.harnesses
def test_cut_write_nudge_off_runs_the_cut_write_and_replay_diverges(replay, harness, load_cassette):
    from pytest_tbreplay.replay.tools import ToolDivergence
    if pi_since(harness, REFUSES_CUT_CALLS):  # pi 1.x refuses the cut write itself: see the baseline test
        r, left = departure(load_cassette, shape("cut-write"), MITIGATED.replace(length_nudge=False), harness)
        assert left.index == 2 and NOT_EXECUTED.search(left.diff) and r.trial.nudges == []
        return
    with pytest.raises(ToolDivergence) as e:
        replay(shape("cut-write"), MITIGATED.replace(length_nudge=False), harness)
    assert "--- recorded content" in e.value.diff and "+++ sent content" in e.value.diff
    assert "call_prim" in str(e.value)


@pytest.mark.harnesses
def test_tool_replay_with_another_path_diverges_with_a_diff(replay, harness, load_cassette):
    from pytest_tbreplay.replay.tools import ToolDivergence
    c = copy.deepcopy(load_cassette("db-wal-recovery"))  # the session's copy is shared: edit our own
    write = next(r for it in c.interactions for r in it.tool_results if r.name == "write")
    write.arguments = dict(write.arguments, path="/app/other.json")  # the recording wrote elsewhere
    with pytest.raises(ToolDivergence) as e:
        replay(c, BASELINE, harness)
    assert "-/app/other.json" in e.value.diff and "+/app/recovered.json" in e.value.diff


@pytest.mark.parametrize("name, make", [("bash-artifact-claim", "bash_artifact"), ("overflow-8k", None)])
def test_shape_tool_results_are_what_running_the_calls_gives_now(tmp_path, name, make):
    """The generator runs every tool call at reconstruct time: rerun, it gives the same results."""
    import importlib.util
    from pytest_tbreplay.core import cassette as cs
    spec = importlib.util.spec_from_file_location("shapes_gen", SHAPES.parent.parent / "tools" / "shapes.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = tmp_path / f"{name}.yaml"
    if make:
        getattr(gen, make)(fresh)
    else:
        gen.overflow(8192, fresh)
    results = lambda c: [(r.id, r.name, r.arguments, r.output, r.is_error) for it in c.interactions for r in it.tool_results]
    assert results(cs.load(fresh)) == results(cs.load(shape(name)))
