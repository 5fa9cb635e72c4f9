"""metadata.prompts: a session's later user prompts, sent in order when each run ends (the pi
session round trip is tests/pi/test_pi_multi_prompt.py)."""
import json

import pytest

import factory
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.core.trial import FollowUps
from pytest_tbreplay.core.wire import exceed_body
from pytest_tbreplay.run import replay_cassette

BASELINE = load_profile("baseline")


def prompted(n: int) -> dict:
    data = factory.minimal(n)
    data["metadata"]["prompts"] = [f"say hi {i}" for i in range(1, n)]
    return data


@pytest.mark.parametrize("n", [2, 3])
def test_the_reference_harness_sends_every_prompt_in_order(n):
    replayed = replay_cassette(cs.parse(prompted(n), "p.yaml"), BASELINE, "reference")
    replayed.engine.check(strict=True)
    assert [r["messages"][-1]["content"] for r in replayed.requests] == [f"say hi {i}" for i in range(n)]
    assert replayed.trial.outcome == "completed" and len(replayed.turns) == n


def test_an_overflow_on_a_later_prompt_is_reached():
    # the requests the harness sends for the two prompts, recorded as they are sent; the second
    # answered by llama-server's context 400
    data = prompted(2)
    sent = replay_cassette(cs.parse(data, "p.yaml"), BASELINE, "reference").requests
    for it, request in zip(data["interactions"], sent):
        it["request"]["body"] = json.dumps(request)
    r = data["interactions"][1]["response"]
    r.pop("chunk_offsets")
    r.update(status={"code": 400}, headers={"Content-Type": ["application/json"]},
             body={"string": json.dumps(exceed_body(5000, 4096))})
    replayed = replay_cassette(cs.parse(data, "p.yaml"), BASELINE, "reference")
    replayed.engine.check(strict=True)
    assert [s.status for s in replayed.served] == [200, 400] and replayed.trial.stop_reason == "error"


def test_a_prompt_the_harness_said_itself_is_not_sent_again():
    f = FollowUps(["nudge", "next task"])
    f.said("something else")
    f.said("nudge")  # the harness's own nudge, kept in the session as a user prompt
    assert (f.next(), f.next()) == ("next task", None)


@pytest.mark.parametrize("prompts", ["say hi", [1], {"a": "b"}])
def test_malformed_prompts_are_refused_at_load(prompts):
    data = factory.minimal(1)
    data["metadata"]["prompts"] = prompts
    with pytest.raises(cs.CassetteError, match="p.yaml: metadata.prompts must be"):
        cs.parse(data, "p.yaml")


def harness_messages() -> list[str]:
    """What each mitigation says as the user, made by the mitigations' own code."""
    from pytest_tbreplay.policies.gate import VerifyGate
    from pytest_tbreplay.policies.stuck import STUCK_NUDGE
    from pytest_tbreplay.policies.texts import NUDGE
    from pytest_tbreplay.replay.tools import cut_call_message
    gate = VerifyGate()
    gate.observe("write", {"path": "out.txt", "content": "x"})
    return [NUDGE, cut_call_message("write", {"path": "a.py", "content": "print(1"}, 64),
            STUCK_NUDGE.format(what="`make`", n=4), gate.demand("Done!", ["out.txt exists"])]


def test_import_leaves_the_harness_messages_to_the_replaying_harness():
    from pytest_tbreplay.policies.texts import is_harness_message
    said = harness_messages()
    assert all(said) and all(is_harness_message(t) for t in said)
    assert not any(is_harness_message(t) for t in ["Now add tests.", "You have run the tests 3 times, good.", "say hi 1"])
