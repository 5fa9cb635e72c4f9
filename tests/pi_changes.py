"""What pi itself does differently from the pi the recorded trials were made with (0.73.1), for the
mitigation tests that must say so and assert what the newer pi does instead (issue 19 item 4).
Each behaviour is named with the version whose CHANGELOG/docs describe it; the tests run it on
pi 1.6.0."""
from __future__ import annotations

import re

from pytest_tbreplay.harnesses import is_pi
from pytest_tbreplay.harnesses.pi.install import _parse, harness_version
from pytest_tbreplay.replay.engine import ReplayMismatch
from pytest_tbreplay.run import Replayed, replay_cassette

# pi-ai clampMaxTokensToContext: each request's max tokens lowered to the window minus pi's
# estimate minus max(4096, 15% of it), down to 1 (0.75.0 .. 0.80.x)
LOWERS_MAX_TOKENS = "0.75.0"
# pi-agent-core failToolCallsFromTruncatedMessage: the calls of a length-stopped message are not
# run; each gets an error result (present in 1.x; 1.4.0 fixed its session handling)
REFUSES_CUT_CALLS = "1.0.0"
NOT_EXECUTED = re.compile(r'Tool call "\w+" was not executed: the response hit the output token limit')


def pi_since(harness: str, version: str) -> bool:
    """Whether `harness` is a pi at `version` or later."""
    return is_pi(harness) and _parse(harness_version(harness)) >= _parse(version)


def departure(load_cassette, name, profile, harness) -> tuple[Replayed, ReplayMismatch]:
    """Replay a trial that is expected to leave the recording: the Replayed and the mismatch (the
    replay fixture would raise it). Fails when the replay did not leave the recording."""
    r = replay_cassette(load_cassette(name), profile, harness)
    errors = [e for e in r.engine.errors if isinstance(e, ReplayMismatch)]
    assert errors, f"{harness} replayed {name} as recorded; expected it to leave the recording"
    return r, errors[0]


def max_tokens(request: dict) -> int | None:
    return request.get("max_tokens", request.get("max_completion_tokens"))


def assert_lowered_to_one(r: Replayed, window: int) -> int:
    """pi lowered max tokens as the context grew, down to 1 for the request that passed its
    declared window, which the server cut after 1 token: returns that request's index."""
    sent = [max_tokens(s.request) for s in r.served]
    assert sent == sorted(sent, reverse=True) and sent[-1] == 1, sent
    last = r.served[-1]
    assert last.status == 200 and last.cut_at == 1 and last.prompt_tokens > window - 4096
    assert r.trial.turns[len(r.served) - 1].stop_reason == "length"
    assert r.trial.turns[len(r.served) - 1].completion_tokens == 1
    return len(r.served) - 1
