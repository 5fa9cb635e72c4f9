"""The replay server as a harness in another process meets it: every request gets an HTTP status,
every failure reaches engine.check(), and close() ends every connection and thread within 1 s."""
import json
import socket
import threading
import time

import httpx
import pytest

from factory import minimal, raw_exchange
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.replay import server as replay_server
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayError
from pytest_tbreplay.replay.server import ReplayServer

CHAT = "/v1/chat/completions"


def engine(n=1):
    return ReplayEngine(cs.parse(minimal(n), "x.yaml"))


def handler_threads():
    return [t for t in threading.enumerate() if t.name.startswith("tbreplay-replay-") and t.name[-1].isdigit()]


GOOD = json.loads(minimal(1)["interactions"][0]["request"]["body"])


@pytest.mark.parametrize("body", [b"[1]", b"null", b'"x"', b'{"messages":[1]}', b'{"messages":"x"}',
                                  b"[" * 100000 + b"]" * 100000, b"\xff\xfe", b"{",
                                  json.dumps(dict(GOOD, max_tokens="abc")).encode(),
                                  json.dumps(dict(GOOD, max_tokens=1e999)).encode(),
                                  b'{"messages":[{"role":"assistant","tool_calls":[{}]}]}'],
                         ids=lambda b: repr(b[:24]))
def test_a_malformed_request_is_an_http_error_and_fails_check(body):
    # d13: these crashed the handler (no status, connection dropped) and check() passed.
    e = engine()
    with ReplayServer(e) as s:
        r = httpx.post(s.url + CHAT, content=body, timeout=10)
    assert 400 <= r.status_code < 500 and "tbreplay" in r.json()["error"]["message"]
    with pytest.raises(ReplayError):
        e.check()


@pytest.mark.parametrize("head", [b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                                  b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                  b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                  b"BREW /pot HTTP/1.1\r\n\r\n", b"GARBAGE\r\n\r\n"])
def test_malformed_http_gets_a_status_and_fails_check(head):
    e = engine()
    with ReplayServer(e) as s:
        answer = raw_exchange(s.url, head)
    assert answer.startswith(b"HTTP/1.") and int(answer.split()[1]) >= 400
    with pytest.raises(ReplayError):
        e.check()


def test_a_good_request_still_streams_and_check_passes():
    e = engine()
    with ReplayServer(e) as s:
        r = httpx.post(s.url + CHAT, content=json.dumps(GOOD), timeout=10)
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    e.check(strict=True)


def test_close_ends_slow_clients_and_joins_every_handler_within_a_second():
    # d14: clients that never finish a request held a thread and a socket forever.
    e = engine()
    s = ReplayServer(e).__enter__()
    host, port = s.url.removeprefix("http://").split(":")
    socks = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
    for k in socks[:10]:
        k.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    for k in socks[10:]:
        k.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
    deadline = time.monotonic() + 10
    while len(handler_threads()) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(handler_threads()) == 20
    start = time.monotonic()
    s.close()
    assert time.monotonic() - start < 1.5 and handler_threads() == []  # 1 s, plus scheduling slack
    for k in socks:
        assert k.recv(100) == b""  # closed by the server, without an answer after close
        k.close()


def test_a_closed_server_stops_answering_a_kept_alive_connection():
    # d14b: the handler thread outlived the server and kept serving the engine.
    e = engine(2)
    with httpx.Client(timeout=5) as client:
        with ReplayServer(e) as s:
            assert client.get(s.url + "/health").status_code == 200
        with pytest.raises(httpx.TransportError):
            client.post(s.url + CHAT, content=e.cassette.interactions[0].request_body)
    assert e.served == []


def test_a_client_silent_mid_request_is_dropped_after_the_read_timeout(monkeypatch):
    monkeypatch.setattr(replay_server._Handler, "timeout", 0.5)
    with ReplayServer(engine()) as s:
        host, port = s.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as c:
            c.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")
            start = time.monotonic()
            answer = c.recv(1000)
            assert time.monotonic() - start < 8
    assert b" 408 " in answer.split(b"\r\n")[0]


def test_a_realtime_stream_does_not_hold_close_for_its_recorded_pauses():
    data = minimal(1)
    n = len(data["interactions"][0]["response"]["chunk_offsets"].split())
    data["interactions"][0]["response"]["chunk_offsets"] = " ".join(["0"] + ["3600"] * (n - 1))
    e = ReplayEngine(cs.parse(data, "x.yaml"), realtime=True)
    s = ReplayServer(e).__enter__()
    got = []
    t = threading.Thread(target=lambda: got.append(raw_exchange(s.url, b"POST /v1/chat/completions HTTP/1.1\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(json.dumps(GOOD)), json.dumps(GOOD).encode()))))
    t.start()
    time.sleep(0.5)
    start = time.monotonic()
    s.close()
    assert time.monotonic() - start < 1.5 and handler_threads() == []
    t.join(5)
    assert got and got[0].startswith(b"HTTP/1.1 200")
