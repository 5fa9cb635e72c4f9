"""Issue 20 item 5: baseline replays what was recorded. A turn cap is a mitigation with its own
key (`max_turns`, off in baseline): a 300-turn trial replayed under baseline plays every
interaction (the reference harness used to stop it at a default cap of 200)."""
import functools
import json

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from tests.factory import URI, chunk

TURNS = 300


def _stream(delta_chunks: list[str], finish: str, prompt: int) -> tuple[str, list[float]]:
    usage = json.dumps({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": len(delta_chunks),
                                                 "total_tokens": prompt + len(delta_chunks)}})
    events = [chunk({"role": "assistant", "content": None}), *delta_chunks, chunk({}, finish), usage, "[DONE]"]
    return "".join(f"data: {e}\n\n" for e in events), [0.001 * i for i in range(len(events))]


@functools.cache  # deterministic; the replays never change it
def long_trial(turns: int = TURNS) -> cs.Cassette:
    """`turns` tool turns (echo i, each answered by its recorded result), then a final answer."""
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "count"}]
    interactions = []
    for i in range(turns + 1):
        body = json.dumps({"model": "m", "messages": messages, "stream": True})
        if i < turns:
            call = {"index": 0, "id": f"call_{i}", "type": "function",
                    "function": {"name": "bash", "arguments": json.dumps({"command": f"echo {i}"})}}
            sse, offsets = _stream([chunk({"tool_calls": [call]})], "tool_calls", 100 + 10 * i)
            result = cs.ToolResult(f"call_{i}", "bash", {"command": f"echo {i}"}, f"{i}\n")
            interactions.append(cs.Interaction("POST", URI, body, 200, sse, {"Content-Type": ["text/event-stream"]},
                                               chunk_offsets=offsets, tool_results=[result]))
            messages = messages + [{"role": "assistant", "content": "", "tool_calls": [call]},
                                   {"role": "tool", "tool_call_id": f"call_{i}", "content": f"{i}\n"}]
        else:
            sse, offsets = _stream([chunk({"content": "Counted."})], "stop", 100 + 10 * i)
            interactions.append(cs.Interaction("POST", URI, body, 200, sse, {"Content-Type": ["text/event-stream"]},
                                               chunk_offsets=offsets))
    meta = {"format": cs.FORMAT, "task": "count", "provenance": "reconstructed", "instruction": "count",
            "server": {"n_ctx": 262144, "model": "m"}, "harness_profile": {"harness": "reference"},
            "failure_mode": "none", "acceptance": []}
    return cs.Cassette(meta, interactions)


def test_baseline_has_no_turn_cap():
    assert load_profile("baseline").max_turns is None


def test_a_300_turn_trial_plays_every_interaction_under_baseline(replay):
    r = replay(long_trial(), load_profile("baseline"), "reference", strict=True)
    assert len(r.engine.served) == TURNS + 1 and r.engine.unplayed() == []
    assert len(r.trial.turns) == TURNS + 1 and r.trial.stop_reason == "stop" and r.trial.final_text == "Counted."


@pytest.mark.parametrize("cap", [200, 17])
def test_a_turn_cap_is_a_mitigation_that_stops_at_its_number(replay, cap):
    r = replay(long_trial(), load_profile("baseline").replace(max_turns=cap), "reference")
    assert len(r.trial.turns) == cap and r.trial.stop_reason == "aborted" and f"turn limit {cap}" in r.trial.error
