"""pi.RunState: when pi in RPC mode is really idle (unit tests on event sequences, no Node)."""
from pytest_tbreplay.harnesses.pi.events import RunState


def drive(events, answers):
    """Feed events; each get_state the state asks for is answered with the next of `answers`
    (isStreaming, isCompacting). Returns the actions in order."""
    state, actions, answers, n = RunState(), [], list(answers), 0
    for e in events:
        action = state.event(e)
        while action == "ask":
            actions.append("ask")
            n += 1
            state.asked = f"tb{n}"
            streaming, compacting = answers.pop(0)
            action = state.event({"type": "response", "id": state.asked,
                                  "data": {"isStreaming": streaming, "isCompacting": compacting}})
        if action:
            actions.append(action)
    return actions


def test_a_plain_run_ends_idle():
    assert drive([{"type": "agent_start"}, {"type": "agent_end"}], [(False, False)]) == ["ask", "idle"]


def test_not_idle_before_the_prompt_started_a_run():
    state = RunState()
    state.asked = "tb1"
    assert state.event({"type": "response", "id": "tb1", "data": {}}) is None  # still prompting


def test_a_compaction_after_the_run_is_waited_out():
    state = RunState()
    for e in ({"type": "agent_start"}, {"type": "agent_end"}):
        action = state.event(e)
    assert action == "ask"
    state.asked = "tb1"
    assert state.event({"type": "compaction_start"}) is None
    assert state.event({"type": "response", "id": "tb1", "data": {}}) is None  # compacting
    assert state.event({"type": "compaction_end"}) == "ask"
    state.asked = "tb2"
    assert state.event({"type": "response", "id": "tb2", "data": {}}) == "idle"


def test_an_overflow_retry_is_waited_out():
    state = RunState()
    state.event({"type": "agent_start"})
    state.event({"type": "agent_end"})
    state.event({"type": "compaction_start"})
    assert state.event({"type": "compaction_end", "willRetry": True}) == "ask"
    state.asked = "tb1"
    assert state.event({"type": "response", "id": "tb1", "data": {}}) is None  # the retry is coming
    state.event({"type": "agent_start"})
    assert state.event({"type": "agent_end"}) == "ask"
    state.asked = "tb2"
    assert state.event({"type": "response", "id": "tb2", "data": {}}) == "idle"


def test_pi_saying_it_streams_is_not_idle():
    assert drive([{"type": "agent_start"}, {"type": "agent_end"}], [(True, False)]) == ["ask"]


def test_an_answer_to_another_command_is_ignored():
    state = RunState()
    state.event({"type": "agent_start"})
    state.event({"type": "agent_end"})
    state.asked = "tb2"
    assert state.event({"type": "response", "id": "tb1", "data": {}}) is None and state.asked == "tb2"


def test_after_a_prompt_the_next_run_must_start_first():
    state = RunState()
    state.event({"type": "agent_start"})
    state.event({"type": "agent_end"})
    state.asked = "tb1"
    assert state.event({"type": "response", "id": "tb1", "data": {}}) == "idle"
    state.prompted()
    state.asked = "tb2"
    assert state.event({"type": "response", "id": "tb2", "data": {}}) is None
