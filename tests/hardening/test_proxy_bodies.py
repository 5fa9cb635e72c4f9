"""Request bodies through the recording proxy (issue 21): a chunked body is forwarded and recorded
whole; a body over the limit is answered 413 (not a dropped connection) and never forwarded."""
import json

import httpx
import pytest

import fake_upstream
from factory import raw_exchange, wait_recorded
from fake_upstream import FakeUpstream
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.record.proxy import RecordingProxy

META = {"task": "t", "instruction": "x", "server": {"n_ctx": 8192, "model": "m"}, "harness_profile": {},
        "failure_mode": "x"}


@pytest.mark.parametrize("pieces", [1, 2, 7])
def test_a_chunked_request_body_is_forwarded_and_recorded_whole(tmp_path, pieces):
    body = json.dumps({"messages": [{"role": "user", "content": "MODE:normal please answer"}], "stream": True}).encode()
    step = -(-len(body) // pieces)
    with FakeUpstream() as up, RecordingProxy(up.url) as proxy:
        r = httpx.post(proxy.url + "/v1/chat/completions", timeout=20,
                       content=(body[i:i + step] for i in range(0, len(body), step)))  # Transfer-Encoding: chunked
        assert r.status_code == 200
        assert fake_upstream.REQUESTS[-1]["body"] == body.decode()
        wait_recorded(proxy)
        saved = cs.load(cs.save(proxy.cassette(META), tmp_path / "c.yaml"))
    assert saved.interactions[0].request == json.loads(body)


@pytest.mark.parametrize("length", [10 ** 12, 2 ** 63, 10 ** 30])
def test_a_huge_content_length_is_answered_413(length):
    with FakeUpstream() as up, RecordingProxy(up.url) as proxy:
        before = len(fake_upstream.REQUESTS)
        answer = raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Length: %d\r\n\r\n{}" % length)
        assert answer.startswith(b"HTTP/1.1 413 ") and b"more than" in answer
        assert len(fake_upstream.REQUESTS) == before and not proxy.interactions


def test_a_bad_chunk_size_is_answered_400():
    with FakeUpstream() as up, RecordingProxy(up.url) as proxy:
        answer = raw_exchange(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ") and b"chunk size" in answer
