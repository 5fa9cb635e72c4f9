"""Redaction by rule, not by list (issue 21): generated credential names, in generated case, in
every place a client or a trial file puts them (headers, query, JSON body at depth, URL userinfo,
metadata, free text), never reach a saved cassette; ordinary names (max_tokens, author) stay."""
import json
import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from factory import minimal, wait_recorded
from fake_upstream import FakeUpstream
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core import redact
from pytest_tbreplay.record.proxy import RecordingProxy, _redact

pytestmark = pytest.mark.fuzz

WORDS = ["key", "apikey", "api_key", "token", "secret", "pass", "password", "passwd", "sig", "signature", "session",
         "cookie", "auth", "authorization", "credential", "credentials", "private_key", "access_token", "x-apikey"]
GLUED = ["key", "token", "secret", "password", "cookie", "signature", "credentials"]  # stems inside one word
LETTERS = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6)


@st.composite
def odd_case(draw, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if f else c for c, f in zip(word, flips))


@st.composite
def secret_names(draw) -> str:
    if draw(st.booleans()):  # a credential word as a whole part of the name
        word = draw(odd_case(draw(st.sampled_from(WORDS))))
        sep = draw(st.sampled_from(["-", "_", "."]))
        before = draw(st.lists(LETTERS, max_size=2))
        after = draw(st.lists(LETTERS, max_size=1))
        return sep.join([*before, word, *after])
    return draw(LETTERS) + draw(odd_case(draw(st.sampled_from(GLUED))))  # accessTOKEN, xapikey


SECRET = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=10, max_size=16).map(lambda s: "Zq" + s)


def _nest(name: str, value: str, depth: int) -> dict:
    obj = {name: value, "n": 1}
    for k in range(depth):
        obj = {f"level{k}": [obj] if k % 2 else obj}
    return obj


@given(name=secret_names(), value=SECRET, place=st.sampled_from(["header", "query", "body", "userinfo", "metadata", "text"]),
       depth=st.integers(0, 5))
def test_no_generated_secret_reaches_a_saved_cassette(name, value, place, depth):
    c = cs.parse(minimal(1))
    it = c.interactions[0]
    if place == "header":
        it.request_headers = {**it.request_headers, name: [value]}
    elif place == "query":
        it.uri = f"{it.uri}?model=m&{name}={value}"
    elif place == "body":
        it.request_body = json.dumps(json.loads(it.request_body) | _nest(name, value, depth))
        it.__dict__.pop("request", None)
    elif place == "userinfo":
        it.uri = it.uri.replace("http://", f"http://{name}:{value}@")
    elif place == "metadata":
        c.metadata["server"]["settings"] = _nest(name, value, depth)
    else:
        c.metadata["imported"] = {"pi_stderr": redact.text(f"run failed: {name}={value} and {{'{name}': '{value}'}}")}
    _redact(it)  # what the recording proxy does to each interaction it keeps
    with tempfile.TemporaryDirectory() as d:
        text = cs.save(c, Path(d) / "c.yaml").read_text()
    assert value not in text, (name, place)


@pytest.mark.parametrize("name", ["max_tokens", "prompt_tokens", "completion_tokens", "keep_recent_tokens", "author",
                                  "passed", "signal", "tokens", "top_k", "n_keep", "keyword", "tool_call_id",
                                  "Content-Type", "reasoning_content"])
def test_ordinary_names_are_not_credentials(name):
    assert not redact.is_secret_name(name)


def test_a_request_through_the_recording_proxy_keeps_none_of_eleven_secrets(tmp_path):
    body = json.dumps({"messages": [{"role": "user", "content": "MODE:normal"}], "stream": True, "apikey": "SECRET-F",
                       "key": "SECRET-G", "aPiKeY": "SECRET-H", "auth": {"user": "me", "pass": "SECRET-I"}}).encode()
    with FakeUpstream() as up, RecordingProxy(up.url) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=20) as k:
            k.sendall(b"POST /v1/chat/completions?key=SECRET-D&sig=SECRET-E&sessionid=SECRET-J HTTP/1.1\r\nHost: x\r\n"
                      b"aUtHoRiZaTiOn: Bearer SECRET-A\r\napikey: SECRET-B\r\nX-Apikey: SECRET-C\r\n"
                      b"X-Authentication: SECRET-K\r\nContent-Type: application/json\r\nConnection: close\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            while k.recv(65536):
                pass
        wait_recorded(proxy)
        meta = {"task": "t", "instruction": "x", "server": {"n_ctx": 8192, "model": "m"}, "harness_profile": {},
                "failure_mode": "x"}
        text = cs.save(proxy.cassette(meta), tmp_path / "c.yaml").read_text()
    assert "SECRET-" not in text


def test_import_redacts_what_it_copies_from_trial_files(tmp_path):
    from trialgen import Session, manifest, trial_result, write_trial
    from pytest_tbreplay.analysis.importer import import_all
    s = Session("Fix it.")
    s.assistant("Done.", prompt=10)
    m = manifest("mitigated", 131072)
    m["profile"]["api_key"] = "SECRET-Q"
    m["props"]["default_generation_settings"]["params"]["api_key"] = "SECRET-P"
    r = trial_result("t", "t__A", reward=0.0, exception="NonZeroAgentExitCodeError")
    r["exception_info"]["exception_message"] = "env OPENAI_API_KEY=SECRET-E pi -p ..."
    write_trial(tmp_path / "job/t__A", s, result=r, manifest=m, verifier="curl https://me:SECRET-V@host/x?token=SECRET-T",
                stderr="POST failed; headers: {'Authorization': 'Bearer SECRET-S'}\n")
    report = import_all([tmp_path / "job"], tmp_path / "out")
    assert not report.failed
    assert "SECRET-" not in report.written[0].read_text()
