import json
from pathlib import Path

import httpx
import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayMismatch, ReplayTransport
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.core.wire import exceed_body
from pytest_tbreplay.core.sse import iter_events

ROOT = Path(__file__).resolve().parents[2]
SENTINEL_FILE = Path("/tmp/tbreplay-sentinel/replay-ran-a-recorded-command")


@pytest.fixture(scope="module")
def polyglot():
    return cs.load(ROOT / "cassettes" / "polyglot-rust-c.yaml")


@pytest.fixture(scope="module")
def path_tracing():
    return cs.load(ROOT / "cassettes" / "path-tracing-reverse.yaml")


def post(engine, body):
    with httpx.Client(transport=ReplayTransport(engine), base_url="http://replay") as client:
        r = client.post("/v1/chat/completions", json=body)
        events = list(iter_events([r.content])) if r.headers["content-type"] == "text/event-stream" else []
        return r, [json.loads(e) for e in events if e != "[DONE]"]


def test_serves_interactions_in_order_and_streams_every_chunk(polyglot):
    engine = ReplayEngine(polyglot)
    for i in range(3):
        r, events = post(engine, polyglot.interactions[i].request)
        assert r.status_code == 200 and len(events) == len(polyglot.interactions[i].events) - 1
    assert [s.index for s in engine.served] == [0, 1, 2]


def test_max_tokens_cuts_the_recorded_stream_with_finish_length(polyglot):
    engine = ReplayEngine(polyglot)
    for i in range(4):
        post(engine, polyglot.interactions[i].request)
    body = dict(polyglot.interactions[4].request, max_completion_tokens=100)
    _, events = post(engine, body)
    tokens = [e for e in events if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert len(tokens) == 100
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 100
    assert engine.served[-1].cut_at == 100


def test_llama_servers_exact_400_when_the_request_reaches_n_ctx(path_tracing):
    engine, failed = ReplayEngine(path_tracing), path_tracing.metadata["failure"]["interaction"]
    for i in range(failed):
        post(engine, path_tracing.interactions[i].request)
    r, _ = post(engine, path_tracing.interactions[failed].request)
    assert r.status_code == 400
    recorded = json.loads(path_tracing.interactions[failed].body)
    assert r.json() == recorded == exceed_body(recorded["error"]["n_prompt_tokens"], 262144)
    assert r.json()["error"]["message"].endswith("exceeds the available context size (262144 tokens), try increasing it")


def test_prompt_tokens_are_estimated_for_the_request_actually_sent(path_tracing):
    engine = ReplayEngine(path_tracing)
    assert 3.0 < engine.chars_per_token < 3.4  # calibrated on the recording's own requests
    for i in range(4):
        post(engine, path_tracing.interactions[i].request)
    recorded = path_tracing.interactions[4].request
    _, same = post(ReplayEngine(path_tracing), path_tracing.interactions[0].request)
    assert same[-1]["usage"]["prompt_tokens"] == path_tracing.interactions[0].usage["prompt_tokens"]
    padded = json.loads(json.dumps(recorded))
    padded["messages"][0]["content"] += "x" * 32_000  # a longer system prompt: ~10k more tokens
    _, events = post(engine, padded)
    grown = events[-1]["usage"]["prompt_tokens"] - path_tracing.interactions[4].usage["prompt_tokens"]
    assert grown == pytest.approx(32_000 / engine.chars_per_token, rel=0.01)


def test_an_unanswerable_request_fails_with_index_and_diff(path_tracing):
    engine = ReplayEngine(path_tracing)
    post(engine, path_tracing.interactions[0].request)
    body = json.loads(json.dumps(path_tracing.interactions[1].request))
    body["messages"][-1]["content"] = "total 0 (a different tool result)"
    r, _ = post(engine, body)
    assert r.status_code == 409
    with pytest.raises(ReplayMismatch) as e:
        engine.check()
    assert e.value.index == 1
    assert "-[3] tool call_path001: total 812" in str(e.value)
    assert "--- recorded request 1" in str(e.value) and "+++ request sent" in str(e.value)
    assert "+[3] tool call_path001: total 0 (a different tool result)" in str(e.value)


def test_strict_fails_when_recorded_interactions_are_left_unplayed(polyglot):
    engine = ReplayEngine(polyglot)
    post(engine, polyglot.interactions[0].request)
    engine.check(strict=False)
    with pytest.raises(ReplayMismatch, match=r"4 recorded interactions were never requested: \[1, 2, 3, 4\]"):
        engine.check(strict=True)


def test_loopback_server_streams_chunk_by_chunk(polyglot):
    engine = ReplayEngine(polyglot, realtime=True)
    with ReplayServer(engine) as server, httpx.Client(base_url=server.url) as client:
        assert server.url.startswith("http://127.0.0.1:")
        assert client.get("/props").json()["default_generation_settings"]["n_ctx"] == 262144
        with client.stream("POST", "/v1/chat/completions", json=polyglot.interactions[0].request) as r:
            reads = [chunk for chunk in r.iter_raw()]
    events = list(iter_events(reads))
    assert len(events) == len(polyglot.interactions[0].events)
    assert len(reads) > len(events) / 2  # paced: events arrive separately, not as one buffer


def test_replay_never_runs_a_recorded_command(replay):
    """The sentinel cassette's bash call would create a file; replay answers it from the cassette."""
    SENTINEL_FILE.unlink(missing_ok=True)
    # verify off: the sentinel's `touch` produces a file and its "Finished" would rightly be sent
    # back for a check the cassette has no answer for
    from pytest_tbreplay.core.profiles import load_profile
    mitigated = load_profile("mitigated").replace(verify_before_done=False)
    result = replay(ROOT / "tests" / "cassettes" / "sentinel.yaml", mitigated, strict=True)
    assert result.trial.messages[3] == {"role": "tool", "tool_call_id": "call_sent001", "content": "created"}
    assert result.trial.final_text == "Finished: the marker file exists."
    assert not SENTINEL_FILE.exists()
