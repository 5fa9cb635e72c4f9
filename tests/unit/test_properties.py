"""Property-based tests (hypothesis) over the loader, the replay server and the recording round
trip (the SSE framer's are in test_sse.py). The bar: no exception but the project's own error
types, no connection closed without an HTTP status, every recording loads back and replays
strictly. 300 examples each in the default run, 5,000 with `-m fuzz` (conftest.py)."""
import copy
import json
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

import factory
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayError, ReplayTransport
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.run import replay_cassette
from pytest_tbreplay.core.sse import SSEError, format_event, iter_events, split_events
from pytest_tbreplay.replay.tools import ToolReplayError

pytestmark = pytest.mark.fuzz
OWN_ERRORS = (cs.CassetteError, ReplayError, ToolReplayError, SSEError)
BASELINE = load_profile("baseline")
TMP = Path(tempfile.mkdtemp(prefix="tbreplay-properties-"))

# -- the loader ---------------------------------------------------------------------------------
_json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30)
                 | st.sampled_from(["[DONE]", "data: [DONE]\n\n", "0-1", "-1", "1e9", "nan", "text/event-stream",
                                    "exceed_context_size_error"]))
_scalars = _json_scalars | st.binary(max_size=10)
_keys = st.text(max_size=12) | st.sampled_from(["role", "content", "tool_calls", "choices", "delta", "usage",
                                                 "error", "messages", "function", "name", "prompt_tokens"])


def _trees(scalars):
    return st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_keys, kids, max_size=4),
                        max_leaves=12)


_values = _trees(_scalars)
_json_values = _trees(_json_scalars)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@st.composite
def _mutated_cassettes(draw):
    """A valid cassette with a few of its parts replaced by arbitrary data, or its texts edited
    (a JSON body, an SSE body, offsets): what a hand edit, a bad merge or a hostile file makes."""
    data = factory.minimal(draw(st.integers(1, 2)))
    inner = draw(st.integers(0, 2))
    for _ in range(inner):  # first, while the structure is intact
        _mutate_json_inside(draw, data)
    for _ in range(draw(st.integers(0 if inner else 1, 2))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        old = parent[path[-1]]
        if isinstance(old, str) and draw(st.booleans()):  # edit the text: insert, delete or replace
            i = draw(st.integers(0, len(old)))
            j = draw(st.integers(i, min(len(old), i + 8)))
            new = old[:i] + draw(st.text(max_size=8) | st.sampled_from(["\n", "\r", "\n\n", ":", "data:", "\u2028",
                                                                          "{", "]", '"', "\\"])) + old[j:]
        else:
            new = draw(_values)
        parent[path[-1]] = new
    return data


def _mutate(draw, obj):
    """obj (parsed JSON) with one part replaced by arbitrary JSON data."""
    path = draw(st.sampled_from(list(_paths(obj))))
    if not path:
        return draw(_json_values)
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = draw(_json_values | st.text(max_size=8))
    return obj


def _mutate_json_inside(draw, data):
    """Change the JSON a cassette carries as text, keeping the YAML valid: a request body or one
    streamed event (the shapes replay reads inside them)."""
    it = draw(st.sampled_from(data["interactions"]))
    if draw(st.booleans()):
        it["request"]["body"] = json.dumps(_mutate(draw, json.loads(it["request"]["body"])))
        return
    events = split_events(it["response"]["body"]["string"])
    k = draw(st.integers(0, len(events) - 2))  # not the [DONE]
    events[k] = json.dumps(_mutate(draw, json.loads(events[k])), ensure_ascii=draw(st.booleans()))
    it["response"]["body"]["string"] = "".join(format_event(e) for e in events)


def _replays(c: cs.Cassette) -> None:
    """What replay does with an accepted cassette: the reference harness against the engine, and
    every recorded request sent as it was."""
    replay_cassette(c, BASELINE, "reference")
    engine = ReplayEngine(c)
    with httpx.Client(transport=ReplayTransport(engine), base_url="http://replay") as client:
        for it in c.interactions:
            r = client.post("/v1/chat/completions", content=json.dumps(it.request))
            if r.headers["content-type"] == "text/event-stream":
                list(iter_events([r.content]))


@given(_mutated_cassettes())
def test_property_a_cassette_loads_and_replays_or_is_one_cassette_error(data):
    try:
        c = cs.parse(copy.deepcopy(data), "mutated.yaml")
    except cs.CassetteError as e:
        assert "mutated.yaml" in str(e)
        event("refused at load")
        return
    try:
        _replays(c)
        event("accepted and replayed")
    except OWN_ERRORS as e:
        event(f"accepted, replay raised {type(e).__name__}")


@given(st.binary(max_size=300) | _mutated_cassettes().map(
    lambda d: yaml.dump(d, Dumper=cs.Dumper, allow_unicode=True).encode()))
def test_property_any_file_loads_or_is_one_cassette_error(raw):
    path = TMP / "any.yaml"
    path.write_bytes(raw)
    try:
        cs.load(path)
    except cs.CassetteError as e:
        assert str(e).startswith(str(path))


# -- token counts: NaN, Infinity and negatives are refused at load, naming the field --------------
_bad_counts = (st.sampled_from([float("nan"), float("inf"), float("-inf")]) | st.integers(-2**40, -1)
               | st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False)
               | st.floats(0.01, 1e6).filter(lambda x: not x.is_integer()))


def _set_usage(it, key, n, details=False):
    r = it["response"]
    events = split_events(r["body"]["string"])
    usage = json.loads(events[-2])
    if details:
        usage["usage"]["prompt_tokens_details"] = {"cached_tokens": n}
    else:
        usage["usage"][key] = n
    events[-2] = json.dumps(usage)  # json writes NaN and Infinity, as a broken writer would
    r["body"]["string"] = "".join(format_event(e) for e in events)


def _set_request(it, key, n):
    it["request"]["body"] = json.dumps(json.loads(it["request"]["body"]) | {key: n})


def _set_overflow(it, key, n):
    error = {"error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}}
    error["error"][key] = n
    r = it["response"]
    r.pop("chunk_offsets")
    r.update(status={"code": 400}, headers={"Content-Type": ["application/json"]}, body={"string": json.dumps(error)})


def _set_plain_usage(it, n):
    r = it["response"]
    r.pop("chunk_offsets")
    r.update(headers={"Content-Type": ["application/json"]}, body={"string": json.dumps(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
         "usage": {"prompt_tokens": 20, "completion_tokens": n}})})


# place -> (write the count into interaction `it` / the cassette `d`, what the error names)
COUNT_PLACES = {
    "usage.prompt_tokens": (lambda d, it, n: _set_usage(it, "prompt_tokens", n), "usage.prompt_tokens"),
    "usage.completion_tokens": (lambda d, it, n: _set_usage(it, "completion_tokens", n), "usage.completion_tokens"),
    "usage.total_tokens": (lambda d, it, n: _set_usage(it, "total_tokens", n), "usage.total_tokens"),
    "cached_tokens": (lambda d, it, n: _set_usage(it, "", n, details=True), "prompt_tokens_details.cached_tokens"),
    "plain answer usage": (lambda d, it, n: _set_plain_usage(it, n), "response.body usage.completion_tokens"),
    "overflow n_prompt_tokens": (lambda d, it, n: _set_overflow(it, "n_prompt_tokens", n), "n_prompt_tokens"),
    "overflow n_ctx": (lambda d, it, n: _set_overflow(it, "n_ctx", n), "error.n_ctx"),
    "max_tokens": (lambda d, it, n: _set_request(it, "max_tokens", n), "max_tokens"),
    "n_predict": (lambda d, it, n: _set_request(it, "n_predict", n), "n_predict"),
    "max_completion_tokens": (lambda d, it, n: _set_request(it, "max_completion_tokens", n), "max_completion_tokens"),
    "chunk offset": (lambda d, it, n: it["response"].update(chunk_offsets=f"0 0 0 0 0 {n!r}"), "chunk_offsets[5]"),
    "server n_ctx": (lambda d, it, n: d["metadata"]["server"].update(n_ctx=n), "metadata.server.n_ctx"),
    "profile max_tokens": (lambda d, it, n: d["metadata"]["harness_profile"].update(max_tokens=n),
                           "metadata.harness_profile.max_tokens"),
    "profile context_window": (lambda d, it, n: d["metadata"]["harness_profile"].update(context_window=n),
                               "metadata.harness_profile.context_window"),
}


@given(st.sampled_from(sorted(COUNT_PLACES)), _bad_counts, st.integers(0, 1), st.booleans())
def test_property_a_bad_token_count_is_refused_at_load_naming_file_interaction_and_field(place, n, i, as_file):
    put, field = COUNT_PLACES[place]
    data = factory.minimal(2)
    put(data, data["interactions"][i], n)
    if place == "chunk offset" and n >= 0:
        n = -1.5  # a fraction is a fine offset: only negative, NaN and Infinity are wrong there
        put(data, data["interactions"][i], n)
    if place in ("max_tokens", "n_predict", "max_completion_tokens") and n == -1:
        n = -2  # -1 is llama-server's "no limit": every other negative is wrong
        put(data, data["interactions"][i], n)
    path = TMP / "counts.yaml"
    with pytest.raises(cs.CassetteError) as e:
        if as_file:  # through YAML too: .nan, .inf and -1 survive the file
            path.write_text(yaml.dump(data, Dumper=cs.Dumper, allow_unicode=True))
            cs.load(path)
        else:
            cs.parse(data, path)
    message = str(e.value)
    assert message.startswith(str(path)) and field in message, message
    if not place.startswith(("server", "profile")):
        assert f"interaction {i}:" in message, message


@pytest.mark.parametrize("n", [0, 1, 4096, -1])
def test_whole_counts_and_no_limit_still_load(n):
    data = factory.minimal(1)
    _set_request(data["interactions"][0], "max_tokens", n)
    if n >= 0:
        _set_usage(data["interactions"][0], "completion_tokens", n)
        data["metadata"]["harness_profile"].update(max_tokens=n, context_window="auto")
    c = cs.parse(data, "ok.yaml")
    assert c.interactions[0].request["max_tokens"] == n


# -- the replay server --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def replay_server():
    with ReplayServer(ReplayEngine(cs.parse(factory.minimal(2), "server.yaml"))) as server:
        yield server


_token = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=":"), min_size=1, max_size=12)
_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"]) | _token
_paths_ = st.sampled_from(["/v1/chat/completions", "/chat/completions", "/health", "/props", "/v1/models",
                           "/x", "/v1/chat/completions?x=1"]) | st.text(max_size=20).map(lambda t: "/" + t)
_bodies = (st.binary(max_size=200) | _json_values.map(lambda v: json.dumps(v).encode())
           | st.sampled_from([json.loads(factory.request_body("say hi 0"))]).flatmap(
               lambda good: st.dictionaries(st.sampled_from(["max_tokens", "n_predict", "messages", "stream", "tools"]),
                                            _json_values, max_size=2).map(lambda extra: json.dumps({**good, **extra}).encode())))
_headers = st.lists(st.tuples(_token, st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)),
                    max_size=4)


@st.composite
def _raw_requests(draw):
    method, path, body, headers = draw(_methods), draw(_paths_), draw(_bodies), draw(_headers)
    length = draw(st.sampled_from(["right", "none", "short", "long", "junk"]))
    lines = [f"{method} {path.replace(' ', '%20')} HTTP/1.1".encode("utf-8", "surrogateescape"), b"Host: x"]
    lines += [f"{k}: {v}".encode() for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
    lines += {"right": [b"Content-Length: %d" % len(body)], "none": [], "short": [b"Content-Length: %d" % (len(body) + 5)],
              "long": [b"Content-Length: %d" % max(0, len(body) - 1)], "junk": [b"Content-Length: x1"]}[length]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@given(_raw_requests())
def test_property_every_request_gets_an_http_status(replay_server, data):
    answer = factory.raw_exchange(replay_server.url, data)
    assert answer[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") and answer[9:12].isdigit(), (data[:200], answer[:200])


# -- the recording round trip -------------------------------------------------------------------
class _Upstream(BaseHTTPRequestHandler):
    """Answers each POST with the SSE bytes the test put in BODY, in the reads it chose."""
    protocol_version = "HTTP/1.1"
    reads: list[bytes] = []

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for data in self.reads:
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def recording():
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    # One client for the run: each new httpx.Client builds an SSL context (~70 ms on a loaded machine).
    with RecordingProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as proxy, httpx.Client(timeout=30) as client:
        yield proxy, client
    upstream.shutdown()
    upstream.server_close()


_content = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@st.composite
def _streams(draw):
    """A streamed answer as a server might frame it: random text (line separators, quotes,
    non-ASCII), LF/CR/CRLF, pings, `data:` with or without its space, split into random reads."""
    texts = draw(st.lists(_content, max_size=6))
    events = [factory.chunk({"content": t}) if draw(st.booleans()) else
              json.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}, ensure_ascii=False) for t in texts]
    events = factory.sse_events(()) [:1] + events + factory.sse_events(())[1:]
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    out = ""
    for e in events:
        if draw(st.integers(0, 4)) == 0:
            out += f": ping{eol}{eol}"
        out += ("data: " if draw(st.booleans()) else "data:") + e + eol + eol
    body = out.encode()
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
    return [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])], events


@given(_streams(), _content)
def test_property_every_recording_loads_back_and_replays_strictly(recording, stream, user):
    (recording, client), (reads, events) = recording, stream
    _Upstream.reads = reads
    request = {"messages": [{"role": "user", "content": user}], "stream": True, "max_tokens": 64}
    with recording._lock:  # one proxy for the whole run (starting one per example is slow): start empty
        recording._kept.clear()
    with client.stream("POST", recording.url + "/v1/chat/completions", json=request) as r:
        seen = list(iter_events(r.iter_raw()))
    assert seen == events
    deadline = time.monotonic() + 30  # the proxy keeps the interaction after its last write
    while not recording.interactions and time.monotonic() < deadline:
        time.sleep(0.005)
    c = recording.cassette({"task": "t", "instruction": user, "server": {"n_ctx": 8192},
                            "harness_profile": {}, "failure_mode": "x"})
    path = TMP / "round-trip.yaml"
    loaded = cs.load(cs.save(c, path, overwrite=True))
    engine = ReplayEngine(loaded)
    with httpx.Client(transport=ReplayTransport(engine), base_url="http://replay") as client:
        replayed = list(iter_events([client.post("/v1/chat/completions", json=request).content]))
    engine.check(strict=True)
    # Event for event; replay rewrites the usage event (its JSON spacing), so compare the data.
    assert [e if e == "[DONE]" else json.loads(e) for e in replayed] == [
        e if e == "[DONE]" else json.loads(e) for e in seen]
