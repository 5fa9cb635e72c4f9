"""The recording proxy against a fake upstream (failure modes a real llama-server cannot be made to
show on demand): redaction, pings, streams closed without [DONE], upstream failures as infra,
503 Loading model, request targets that try to leave the upstream."""
import json
import socket
import time

import httpx
import pytest

import fake_upstream
from factory import wait_recorded
from fake_upstream import FakeUpstream
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.harnesses.reference import ReferenceHarness
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.core.sse import DONE, iter_events

CHAT = "/v1/chat/completions"
META = {"task": "t", "instruction": "x", "server": {"n_ctx": 8192, "model": "/home/someone/models/SmolLM2-Q4.gguf"},
        "harness_profile": {}, "failure_mode": "x"}


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as up:
        yield up


def stream(proxy, mode, **kw):
    body = {"messages": [{"role": "user", "content": f"MODE:{mode}"}], "stream": True, **kw}
    with httpx.stream("POST", proxy.url + CHAT, json=body, timeout=20) as r:
        return r.status_code, list(iter_events(r.iter_raw()))


def save_and_load(proxy, tmp_path):
    return cs.load(cs.save(proxy.cassette(META), tmp_path / "c.yaml"))


def test_a_secret_in_every_place_never_reaches_the_cassette(upstream, tmp_path):
    body = {"model": "/home/someone/models/SmolLM2-Q4.gguf", "stream": True, "api_key": "sk-SECRET-1",
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "extra": {"auth": {"password": "SECRET-2", "token": "SECRET-3"}, "list": [{"client_secret": "SECRET-4"}]},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {
                "type": "object", "properties": {"token": {"type": "string"}}}}}]}
    headers = {"Authorization": "Bearer SECRET-5", "X-Auth-Token": "SECRET-6", "OpenAI-Organization": "SECRET-7",
               "X-Api-Key": "SECRET-8", "Cookie": "session=SECRET-9", "Proxy-Authorization": "SECRET-10"}
    with RecordingProxy(upstream.url) as proxy:
        r = httpx.post(f"{proxy.url}{CHAT}?api_key=SECRET-11&accessToken=SECRET-12&x=1", json=body,
                       headers=headers, timeout=20)
        assert r.status_code == 200
        (it,) = wait_recorded(proxy)
    sent = fake_upstream.REQUESTS[-1]  # the upstream itself got everything: only the record is clean
    assert "SECRET-1" in sent["body"] and sent["headers"]["x-auth-token"] == "SECRET-6"
    path = cs.save(proxy.cassette(META), tmp_path / "c.yaml")
    text = path.read_text()
    assert "SECRET" not in text and "/home/someone" not in text
    assert "SmolLM2-Q4.gguf" in text  # the file name stays: it says which model answered
    c = cs.load(path)
    request = c.interactions[0].request
    assert request["max_tokens"] == 8 and request["api_key"] == "REDACTED"  # tokens counts are no secret
    assert request["tools"][0]["function"]["parameters"]["properties"]["token"] == {"type": "string"}
    assert "x=1" in c.interactions[0].uri and c.metadata["server"]["model"] == "SmolLM2-Q4.gguf"


@pytest.mark.parametrize("mode", ["ping", "crlf", "crlf_split", "u2028"])
def test_valid_sse_forms_record_loadable_cassettes(upstream, tmp_path, mode):
    with RecordingProxy(upstream.url) as proxy:
        status, seen = stream(proxy, mode)
        wait_recorded(proxy)
    assert status == 200 and seen[-1] == DONE
    it = save_and_load(proxy, tmp_path).interactions[0]
    assert it.events == seen and len(it.chunk_offsets) == len(seen)


@pytest.mark.parametrize("mode", ["close_delim", "die_boundary", "die_mid_event", "badutf8"])
def test_a_stream_that_ends_badly_is_an_error_event_for_both_harness_and_cassette(upstream, tmp_path, mode):
    with RecordingProxy(upstream.url) as proxy:
        status, seen = stream(proxy, mode)
        wait_recorded(proxy)
    assert status == 200 and "error" in json.loads(seen[-1])
    it = save_and_load(proxy, tmp_path).interactions[0]
    assert it.events == seen  # what the harness saw is what replay will serve


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("where", ["down", "die_before"])
def test_an_upstream_failing_before_headers_is_infra_not_the_models_error(upstream, tmp_path, where):
    url = f"http://127.0.0.1:{_free_port()}" if where == "down" else upstream.url
    with RecordingProxy(url) as proxy:
        trial = ReferenceHarness(load_profile("baseline")).run(
            TaskSpec("t", "MODE:die_before"), Endpoint(proxy.url, workdir=tmp_path, model="m"))
    assert trial.outcome == "infra"
    assert proxy.interactions == [] and proxy.upstream_failures  # nothing recorded; the reason kept


def test_503_loading_model_waits_for_health_then_answers(upstream, tmp_path):
    fake_upstream.LOADING_UNTIL[0] = time.monotonic() + 1.5
    with RecordingProxy(upstream.url, load_wait_s=60) as proxy:
        status, seen = stream(proxy, "normal")
        (it,) = wait_recorded(proxy)
    assert status == 200 and seen[-1] == DONE and it.status == 200


def test_503_loading_model_past_the_wait_is_infra_with_the_reason(upstream, tmp_path):
    fake_upstream.LOADING_UNTIL[0] = time.monotonic() + 30
    try:
        with RecordingProxy(upstream.url, load_wait_s=1) as proxy:
            trial = ReferenceHarness(load_profile("baseline")).run(
                TaskSpec("t", "hi"), Endpoint(proxy.url, workdir=tmp_path, model="m"))
        assert trial.outcome == "infra" and "Loading model" in proxy.upstream_failures[0]
    finally:
        fake_upstream.LOADING_UNTIL[0] = 0.0


def test_the_reference_harness_waits_out_503_loading_model_without_a_proxy(upstream, tmp_path, monkeypatch):
    from pytest_tbreplay.harnesses import reference as harness
    fake_upstream.LOADING_UNTIL[0] = time.monotonic() + 30
    monkeypatch.setattr(harness, "LOAD_WAIT_S", 1.0)
    try:
        trial = ReferenceHarness(load_profile("baseline")).run(
            TaskSpec("t", "hi"), Endpoint(upstream.url, workdir=tmp_path, model="m"))
    finally:
        fake_upstream.LOADING_UNTIL[0] = 0.0
    assert trial.outcome == "infra" and "Loading model" in trial.error


@pytest.mark.parametrize("target", [b"@127.0.0.2:%d/x", b"http://127.0.0.2:%d/x", b"//127.0.0.2:%d/x"])
def test_the_proxy_forwards_only_to_its_upstream(target):
    other = socket.socket()
    other.bind(("127.0.0.2", 0))
    other.listen(1)
    other.settimeout(0.5)
    with RecordingProxy("http://127.0.0.1:9") as proxy, other:
        with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), timeout=10) as c:
            c.sendall(b"GET " + target % other.getsockname()[1] + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = c.recv(200)
        with pytest.raises(OSError):
            other.accept()
    # refused (400), or sent on to the configured upstream (here down: hung up on, as infra)
    assert answer.startswith(b"HTTP/1.1 400 ") or "127.0.0.1:9" in proxy.upstream_failures[0]
