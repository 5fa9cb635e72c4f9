"""One replay test per mitigation of failure-analysis §5: the recorded failure under `baseline`,
the fix under `mitigated`, with numbers. Each mitigated test also switches its own policy off to
show that this policy is what fixes it."""
import re

import pytest

from pytest_tbreplay.policies.texts import NUDGE
from pytest_tbreplay.harnesses.reference import VERIFY_CONTRACT
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.core.wire import message_text
from pi_changes import LOWERS_MAX_TOKENS, NOT_EXECUTED, assert_lowered_to_one, departure, pi_since

BASELINE, MITIGATED = load_profile("baseline"), load_profile("mitigated")
N_CTX = 262144
pytestmark = pytest.mark.harnesses  # each test runs once per harness (reference, pi)


# -- (a) window aligned to n_ctx minus headroom, proactive compaction -------------------------
def test_a_baseline_feeds_the_context_past_its_window_into_the_400(replay, harness, load_cassette):
    if pi_since(harness, LOWERS_MAX_TOKENS):
        # pi >= 0.75 fails otherwise: it lowers max tokens as the context grows (32000 .. 20708,
        # 12595, then 1 for the request of 131674 tokens past its declared 131072 window), the
        # server stops that answer after 1 token, and pi does not run the cut tool call: its
        # "not executed" result leaves the recording at interaction 18, long before the 400.
        r, left = departure(load_cassette, "path-tracing-reverse", BASELINE, harness)
        at = assert_lowered_to_one(r, 131072)
        assert left.index == at + 1 == 18 and NOT_EXECUTED.search(left.diff)
        assert all(s.status == 200 for s in r.served) and r.trial.compactions == []
        return
    r = replay("path-tracing-reverse", BASELINE, harness)
    assert r.trial.peak_prompt_tokens > 131072 * 1.8  # far past its declared 131072 window
    assert r.served[-1].status == 400
    assert r.trial.stop_reason == "error" and r.trial.compactions == []


@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_a_mitigated_compacts_before_the_server_limit(replay, harness):
    r = replay("path-tracing-reverse", MITIGATED.replace(overflow_retry=False), harness)
    budget = MITIGATED.budget(N_CTX)
    assert (budget.window, budget.max_tokens) == (262144 - 8192, 16384)  # max tokens counted once
    assert [c["reason"] for c in r.trial.compactions] == ["threshold"]
    [i] = [t.index for t in r.trial.turns if t.compaction]
    earlier = r.trial.turns[i - 1].prompt_tokens
    # fired at the last step in time: the request before it still left a full turn in the window
    assert earlier + budget.max_tokens <= budget.window < r.trial.compactions[0]["tokens_before"] + budget.max_tokens
    assert all(s.status == 200 for s in r.served)  # no request ever reached the 400
    assert max(s.prompt_tokens for s in r.served) < budget.window
    assert r.trial.stop_reason == "stop" and r.trial.outcome == "completed"


# -- (b) a context 400 routed into compaction and one retry -----------------------------------
@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_b_mitigated_turns_the_400_into_compaction_and_a_retry(replay, harness, load_cassette):
    if pi_since(harness, LOWERS_MAX_TOKENS):
        # pi >= 0.75 never sends the request that gets the 400: without proactive compaction its
        # max tokens fall to 1 at 261102 prompt tokens (window 253952, n_ctx 262144); the 1-token
        # length stop cut a tool call, which length_nudge.ts answers with where it was cut (the
        # real limit: 1 token), so the trial leaves the recording at its 400 (interaction 31).
        off = MITIGATED.replace(proactive_compaction=False)
        r, left = departure(load_cassette, "path-tracing-reverse", off, harness)
        at = assert_lowered_to_one(r, off.budget(N_CTX).window)
        assert left.index == at + 1 == 31 and all(s.status == 200 for s in r.served)
        assert r.trial.compactions == [] and "max-tokens limit (1 tokens)" in r.trial.nudges[0]
        return
    r = replay("path-tracing-reverse", MITIGATED.replace(proactive_compaction=False), harness)
    statuses = [s.status for s in r.served]
    assert statuses.count(400) == 1
    assert [c["reason"] for c in r.trial.compactions] == ["overflow"]
    failed, retry = r.served[statuses.index(400)], r.served[statuses.index(400) + 2]
    assert failed.prompt_tokens >= N_CTX > retry.prompt_tokens  # the retry fits after compaction
    assert failed.request["messages"][-1] == retry.request["messages"][-1]  # the same step, retried
    checked = re.search(r"cosine similarity: [0-9.]+", r.cassette.interactions[-2].tool_results[0].output)[0]
    assert r.trial.stop_reason == "stop" and checked.replace(":", "") in r.trial.final_text  # what the check printed


def test_b_off_the_400_ends_the_trial(replay, harness, load_cassette):
    if pi_since(harness, LOWERS_MAX_TOKENS):  # no 400 on pi >= 0.75: see test_b_mitigated_...
        off = MITIGATED.replace(proactive_compaction=False, overflow_retry=False)
        r, left = departure(load_cassette, "path-tracing-reverse", off, harness)
        assert left.index == assert_lowered_to_one(r, off.budget(N_CTX).window) + 1 == 31
        return
    r = replay("path-tracing-reverse", MITIGATED.replace(proactive_compaction=False, overflow_retry=False), harness)
    assert r.trial.stop_reason == "error" and "exceeds the available context size" in r.trial.error


# -- (c) max tokens per turn capped -----------------------------------------------------------
def test_c_baseline_lets_the_runaway_run_to_32000_tokens(replay, harness):
    r = replay("polyglot-rust-c", BASELINE, harness)
    assert {req.get("max_tokens", req.get("max_completion_tokens")) for req in r.requests} == {32000}
    assert r.trial.turns[-1].completion_tokens == 32000
    assert r.trial.stop_reason == "length" and len(r.trial.turns) == 5  # the trial ends on it


@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_c_mitigated_caps_the_turn_at_16384(replay, harness):
    r = replay("polyglot-rust-c", MITIGATED.replace(loop_detector=False), harness)
    assert {req.get("max_tokens", req.get("max_completion_tokens")) for req in r.requests} == {16384}
    runaway = r.trial.turns[4]
    assert runaway.stop_reason == "length" and runaway.completion_tokens == 16384
    assert r.served[4].cut_at == 16384


# -- (d) the streaming loop detector ----------------------------------------------------------
@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_d_loop_detector_cuts_the_runaway_long_before_the_cap(replay, harness):
    r = replay("polyglot-rust-c", MITIGATED, harness)
    runaway = r.trial.turns[4]
    assert runaway.cut_by == "loop_detector" and runaway.stop_reason == "length"
    assert runaway.cut_at <= 2048  # against 32000 under baseline
    # What arrived: pi's abort lands a few hundred tokens after the trip (more on a loaded machine).
    assert runaway.cut_at <= runaway.completion_tokens < 32000
    print(f"loop detector cut the runaway at {runaway.cut_at} tokens; {runaway.completion_tokens} arrived")


# -- (e) a nudge after a length stop ----------------------------------------------------------
def test_e_baseline_ends_silently_on_the_length_stop(replay, harness):
    r = replay("polyglot-rust-c", BASELINE, harness)
    assert r.trial.nudges == [] and len(r.served) == 5
    assert r.trial.outcome == "completed" and r.trial.stop_reason == "length"


@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_e_mitigated_nudges_and_the_trial_goes_on(replay, harness):
    r = replay("polyglot-rust-c", MITIGATED.replace(loop_detector=False), harness)
    after = r.served[5].request["messages"][-1]
    assert after["role"] == "user" and NUDGE in str(after["content"])
    assert r.trial.nudges == [NUDGE]
    assert r.trial.stop_reasons[5:] == ["toolUse", "toolUse", "stop"]
    assert "433494437" in r.trial.final_text


def test_e_off_no_nudge(replay, harness):
    r = replay("polyglot-rust-c", MITIGATED.replace(loop_detector=False, length_nudge=False), harness)
    assert r.trial.nudges == [] and r.trial.stop_reason == "length"


# -- (f) verify before done -------------------------------------------------------------------
def test_f_baseline_ends_on_the_fabricated_done(replay, harness):
    r = replay("db-wal-recovery", BASELINE, harness)
    assert r.trial.final_text.startswith("Done! I recovered all 11 records")
    assert r.trial.stop_reason == "stop" and r.trial.verify_demands == []
    assert not any(t.verifier_ran for t in r.trial.turns)


@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_f_mitigated_sends_the_model_back_to_verify(replay, harness):
    r = replay("db-wal-recovery", MITIGATED, harness)
    assert VERIFY_CONTRACT in str(r.served[0].request["messages"][0]["content"])
    [demand] = r.trial.verify_demands
    assert "/app/recovered.json" in demand
    for criterion in r.cassette.metadata["acceptance"]:
        assert f"- {criterion}" in demand
    assert demand in message_text(r.served[5].request["messages"][-1])
    assert r.trial.turns[5].verifier_ran  # the re-read it was sent back for
    assert not r.trial.final_text.startswith("Done!") and "not solved" in r.trial.final_text


def test_f_off_the_fabricated_done_stands(replay, harness):
    r = replay("db-wal-recovery", MITIGATED.replace(verify_before_done=False), harness)
    assert r.trial.final_text.startswith("Done!") and r.trial.verify_demands == []


# -- (g) a task-anchored compaction summary ---------------------------------------------------
def compacted_request(r):
    [i] = [n for n, s in enumerate(r.served) if "<conversation>" in str(s.request["messages"])]
    return r.served[i + 1].request


@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_g_mitigated_summary_keeps_task_criteria_and_files_verbatim(replay, harness):
    r = replay("path-tracing-reverse", MITIGATED, harness)
    meta = r.cassette.metadata
    summary = str(compacted_request(r)["messages"][1]["content"])
    assert meta["instruction"] in summary
    assert all(c in summary for c in meta["acceptance"])
    assert "/app/mystery.c" in summary.split("Files written")[1]
    assert "Reverse-engineer the renderer" in summary  # the model's own summary follows


def test_g_off_the_summary_keeps_only_the_task_text(replay, harness):
    r = replay("path-tracing-reverse", MITIGATED.replace(anchored_summary=False), harness)
    meta = r.cassette.metadata
    summary = str(compacted_request(r)["messages"][1]["content"])
    assert meta["instruction"] in summary  # compaction never drops the task (item 2 of issue 10)
    assert not any(c in summary for c in meta["acceptance"]) and "Files written" not in summary


# -- (h) per-turn telemetry, in every profile -------------------------------------------------
@pytest.mark.parametrize("profile", [BASELINE, MITIGATED], ids=["baseline", "mitigated"])
def test_h_telemetry_per_turn(replay, harness, profile):
    r = replay("polyglot-rust-c", profile, harness)
    runaway = r.trial.turns[4]
    assert runaway.stop_reason == "length" and runaway.reasoning_tokens == 0
    assert runaway.text_tokens == runaway.completion_tokens > 0
    assert r.trial.turns[0].reasoning_tokens > 0 and r.trial.turns[0].prompt_tokens > 1000
    assert [t.stop_reason for t in r.trial.turns[:4]] == ["toolUse"] * 4


def test_h_telemetry_marks_compactions_and_checks(replay, harness):
    path = replay("path-tracing-reverse", MITIGATED, harness).trial
    assert [t.compaction for t in path.turns if t.compaction] == ["threshold"]
    db = replay("db-wal-recovery", MITIGATED, harness).trial
    assert [t.index for t in db.turns if t.verifier_ran] == [5]


# -- (i) DRY sampler settings with each request -----------------------------------------------
@pytest.mark.pi_sample  # the fast tier's pi trial of this policy
def test_i_dry_fields_in_every_mitigated_request(replay, harness):
    dry = {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 2}
    mitigated = replay("polyglot-rust-c", MITIGATED, harness).requests
    assert all({k: req.get(k) for k in dry} == dry for req in mitigated)
    baseline = replay("polyglot-rust-c", BASELINE, harness).requests
    assert not any("dry_multiplier" in req for req in baseline)
