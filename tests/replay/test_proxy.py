"""The recording proxy in front of a real llama-server (and, for streamed tool calls, in front of
a ReplayServer, since SmolLM2 does not call tools)."""
import json
import time

import httpx
import pytest

from factory import wait_recorded
from pytest_tbreplay.core import cassette
from pytest_tbreplay.core.cassette import Cassette, Interaction, ToolResult
from pytest_tbreplay.server.llama import LlamaServer
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.replay.engine import ReplayEngine
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.core.sse import DONE, format_event, iter_events

live = pytest.mark.live
CHAT = "/v1/chat/completions"
SLOW = 300  # seconds: a CPU server on a loaded 2-core machine can take far longer than httpx's default 5 s
META = {"task": "t", "instruction": "Say hi.", "harness_profile": "baseline", "failure_mode": "none"}


def chat(content="Say hi.", **kw):
    return {"messages": [{"role": "user", "content": content}], "stream": True, "max_tokens": 4,
            "temperature": 0, "stream_options": {"include_usage": True}, **kw}


@pytest.fixture(scope="module")
def server():
    with LlamaServer(ctx_size=2048) as s:
        yield s


@pytest.fixture
def proxy(server):
    with RecordingProxy(server.url) as p:
        yield p


@live
def test_forwards_a_streamed_chat_and_records_it(proxy, server, tmp_path):
    assert httpx.get(f"{proxy.url}/health", timeout=SLOW).json() == {"status": "ok"}
    assert httpx.get(f"{proxy.url}/props", timeout=SLOW).json()["default_generation_settings"]["n_ctx"] == 2048
    with httpx.stream("POST", proxy.url + CHAT, timeout=SLOW, json=chat(), headers={"Authorization": "Bearer sk-x"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        seen = list(iter_events(r.iter_bytes()))
    assert seen[-1] == DONE
    (it,) = wait_recorded(proxy)  # /health and /props are not recorded
    assert it.uri == "http://llama-server/v1/chat/completions"
    assert json.loads(it.request_body) == chat()
    assert it.status == 200 and it.headers == {"Content-Type": ["text/event-stream"]}
    assert it.events == seen
    assert len(it.chunk_offsets) == len(seen) and it.chunk_offsets == sorted(it.chunk_offsets)
    assert 0 < it.chunk_offsets[0] < 10
    assert it.usage["completion_tokens"] == 4

    path = cassette.save(proxy.cassette({**META, "server": server.metadata}), tmp_path / "c.yaml")
    assert "sk-x" not in path.read_text()
    loaded = cassette.load(path)
    assert loaded.metadata["provenance"] == "recorded" and loaded.n_ctx == 2048
    assert loaded.interactions[0].events == seen


@live
def test_non_streamed_chat_is_recorded_without_offsets(proxy):
    r = httpx.post(proxy.url + CHAT, timeout=SLOW, json=chat(stream=False))
    assert r.status_code == 200
    (it,) = wait_recorded(proxy)
    assert it.chunk_offsets is None and json.loads(it.body) == r.json()


@live
def test_tool_results_come_from_the_next_request(proxy):
    first = chat("List the files here.")
    httpx.post(proxy.url + CHAT, timeout=SLOW, json=first).raise_for_status()
    calls = [{"id": "c1", "type": "function", "function": {"name": "ls", "arguments": '{"path": "."}'}},
             {"id": "c2", "type": "function", "function": {"name": "cat", "arguments": '{"path": "x"}'}}]
    second = dict(first, messages=first["messages"] + [
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt\nb.txt"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: x: no such file"},
    ])
    httpx.post(proxy.url + CHAT, timeout=SLOW, json=second).raise_for_status()
    wait_recorded(proxy, 2)
    c = proxy.cassette({**META, "server": {"n_ctx": 2048}})
    assert c.interactions[0].tool_results == [
        ToolResult("c1", "ls", {"path": "."}, "a.txt\nb.txt", False),
        ToolResult("c2", "cat", {"path": "x"}, "Error: x: no such file", True),
    ]
    assert c.interactions[1].tool_results == []
    assert c.tool_result("c2").is_error


def test_tool_calls_are_joined_from_streamed_deltas():
    """Upstream: a ReplayServer whose answer streams one tool call in pieces."""
    def event(delta):
        return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    deltas = [{"role": "assistant", "content": None},
              {"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"name": "ls", "arguments": ""}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": '{"pa'}}]},
              {"tool_calls": [{"index": 0, "function": {"arguments": 'th": "/app"}'}}]}]
    events = [event(d) for d in deltas] + [DONE]
    first = chat("go")
    recorded = Interaction("POST", "http://llama-server" + CHAT, json.dumps(first), 200,
                           "".join(format_event(e) for e in events), {"Content-Type": ["text/event-stream"]},
                           chunk_offsets=[0.0] * len(events))
    engine = ReplayEngine(Cassette({**META, "server": {"n_ctx": 2048}}, [recorded]))
    second = dict(first, messages=first["messages"] + [
        {"role": "assistant", "content": None, "tool_calls": []},  # what the harness echoes is not needed
        {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "main.c"}]}])
    with ReplayServer(engine) as upstream, RecordingProxy(upstream.url) as proxy:
        with httpx.stream("POST", proxy.url + CHAT, timeout=SLOW, json=first) as r:
            assert list(iter_events(r.iter_bytes())) == events
        httpx.post(proxy.url + CHAT, timeout=SLOW, json=second)  # 409 from replay: no answer recorded; fine
        wait_recorded(proxy, 2)
        c = proxy.cassette({**META, "server": {"n_ctx": 2048}})
    assert c.interactions[0].tool_results == [ToolResult("t1", "ls", {"path": "/app"}, "main.c", False)]


@live
def test_server_killed_mid_stream_ends_with_an_error_event(tmp_path):
    with LlamaServer(ctx_size=2048) as server, RecordingProxy(server.url) as proxy:
        with httpx.stream("POST", proxy.url + CHAT, timeout=SLOW,
                          json=chat("Write a long story.", max_tokens=1500, ignore_eos=True)) as r:
            events = []
            for data in iter_events(r.iter_bytes()):
                events.append(data)
                if len(events) == 3:
                    server.kill()
                    killed = time.monotonic()
        assert time.monotonic() - killed < 30  # nothing hangs after the kill (generous: a loaded machine)
        error = json.loads(events[-1])["error"]
        assert error["code"] == 502 and error["type"] == "server_error"
        assert error["message"].startswith("upstream closed mid-stream: ")
        assert DONE not in events
        (it,) = wait_recorded(proxy)
        assert it.events == events and len(it.chunk_offsets) == len(events)
        c = proxy.cassette({**META, "server": server.metadata})
        assert cassette.load(cassette.save(c, tmp_path / "c.yaml")).interactions[0].events == events


@live
def test_harness_hanging_up_is_recorded_loadable(proxy, tmp_path):
    with httpx.stream("POST", proxy.url + CHAT, timeout=SLOW, json=chat("Write a long story.", max_tokens=300)) as r:
        stream = iter_events(r.iter_bytes())
        got = [next(stream), next(stream)]
    (it,) = wait_recorded(proxy)
    assert it.events[:2] == got
    assert json.loads(it.events[-1])["error"]["type"] == "client_closed"
    c = proxy.cassette({**META, "server": {"n_ctx": 2048}})
    cassette.load(cassette.save(c, tmp_path / "c.yaml"))


def test_unreachable_upstream_hangs_up_like_the_server_and_keeps_the_reason():
    # Not a 502: a harness would take that for the model's error (issue 11, d12).
    with RecordingProxy("http://127.0.0.1:9") as proxy:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(proxy.url + CHAT, timeout=SLOW, json=chat())
    assert "127.0.0.1:9" in proxy.upstream_failures[0] and proxy.interactions == []
