"""The recording proxy: a loopback HTTP server between a harness and a real llama-server. It passes
every answer through event by event as it arrives, and keeps each chat request with its full SSE
body and the arrival time of every event, to be saved as a cassette.

Recorded uris use the fixed host `http://llama-server` (`http://llama-server/v1/chat/completions`):
the proxy's and the server's ports change every run, and replay matches on the messages, not the
host, so a fixed placeholder keeps re-recorded cassettes free of port noise in review diffs.

Only POST .../chat/completions is recorded; /health, /props, /metrics and the rest are forwarded
and forgotten. Each kept interaction is redacted at once (redact.py): credentials in headers,
query string and JSON body, and the local model path. The proxy forwards only to its upstream.
An upstream that fails before answering (down, died, still loading its model past the wait)
gets the harness hung up on, as without the proxy, and the reason in `upstream_failures`.
"""
from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from pytest_tbreplay.core import redact
from pytest_tbreplay.core.cassette import FORMAT, Cassette, Interaction, ToolResult
from pytest_tbreplay.core.wire import message_text
from pytest_tbreplay.core.loading import LOAD_WAIT_S, StillLoading, is_loading, wait_until_loaded
from pytest_tbreplay.core.sse import DONE, Framer, SSEError, format_event, split_events

PLACEHOLDER_HOST = "http://llama-server"
# Not forwarded: per-connection headers, and ones the sending side sets itself.
SKIP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                "upgrade", "host", "content-length", "accept-encoding", "server", "date"}
# A long prompt on a CPU can take minutes before the first token; a dead server is noticed at once
# (the socket closes), so the read timeout only guards against a live server that hangs.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=600.0)
MAX_BODY = 256 << 20  # a request body (the whole conversation as JSON): far above any real prompt


HUNG_UP = "tbreplay: the harness closed the connection mid-stream"


def hung_up(it: Interaction) -> bool:
    """The harness hung up on this answer (a loop guard's cut, or its time budget ran out)."""
    return HUNG_UP in it.body[-300:]


def _error_event(code: int, message: str, type_: str) -> bytes:
    # The shape llama-server itself sends when a stream fails after the 200 was committed.
    return format_event(json.dumps({"error": {"code": code, "message": message, "type": type_}})).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: "RecordingProxy"

    def setup(self) -> None:
        super().setup()
        # One small write per SSE event: send each at once instead of waiting for the previous
        # segment's ACK (Nagle), which costs up to 40 ms per event on loopback.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:
        pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))  # wbufsize 0: one send per write

    def _refuse(self, status: int, message: str) -> None:
        data = json.dumps({"error": {"code": status, "message": f"tbreplay proxy: {message}",
                                     "type": "invalid_request_error"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _infra(self, reason: str) -> None:
        """The upstream failed before answering: hang up without a status, as the server itself
        did, so the harness sees the same infrastructure failure it sees without the proxy (not a
        502 it would take for the model's error). The reason stays with the proxy."""
        self.proxy._fail(reason)
        self.close_connection = True

    def _forward(self) -> None:
        # Origin-form only: `@host/x` or an absolute URL appended to the upstream would send the
        # request (and its credentials) somewhere else.
        if not self.path.startswith("/"):
            return self._refuse(400, f"request target {self.path[:80]!r} is not a path; the proxy only "
                                     f"forwards to {self.proxy.upstream}")
        body = self._request_body()
        if body is None:
            return
        record = self.command == "POST" and self.path.split("?")[0].endswith("/chat/completions")
        seq = self.proxy._next_seq()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in SKIP_HEADERS}
        client, start = self.proxy.client, time.monotonic()
        # identity: the cassette keeps the body as text, never a compressed blob.
        request = client.build_request(self.command, self.proxy.upstream + self.path, content=body,
                                       headers={**headers, "accept-encoding": "identity"})
        if (request.url.host, request.url.port) != self.proxy._upstream_at:
            return self._refuse(400, f"request target {self.path[:80]!r} leaves {self.proxy.upstream}")
        it = Interaction(self.command, PLACEHOLDER_HOST + self.path, body.decode("utf-8", "replace"), 0, "",
                         request_headers={k: [v] for k, v in headers.items()})
        with self.proxy._in_flight:
            self._answer(request, it, seq, record, start)

    def _answer(self, request: httpx.Request, it: Interaction, seq: int, record: bool, start: float) -> None:
        response = self._send(request, start)
        if response is None:
            return
        try:
            self.send_response(response.status_code)
            for k, v in response.headers.multi_items():
                if k.lower() not in SKIP_HEADERS:
                    self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            content_type = response.headers.get("content-type", "")
            it.status, it.headers = response.status_code, {"Content-Type": [content_type]}
            if "event-stream" in content_type:
                ok = self._relay_events(response, it, start)
            else:
                ok = self._relay_raw(response, it)
        finally:
            response.close()  # also stops the generation when the harness hung up
        if ok and record:
            self.proxy._keep(seq, it)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward

    def _request_body(self) -> bytes | None:
        """The whole request body, Content-Length or chunked (httpx and Node stream bodies chunked),
        at most MAX_BODY bytes; None after answering 400 or 413 (a body that is never forwarded)."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._chunked_body()
        raw = self.headers.get("content-length") or "0"
        if not raw.strip().isdigit():
            return self._refuse(400, f"bad Content-Length {raw[:40]!r}")
        if len(raw.strip()) > 12 or int(raw) > MAX_BODY:
            return self._refuse(413, f"request body of {raw.strip()[:20]} bytes: more than the {MAX_BODY:,} the proxy takes")
        return self.rfile.read(int(raw))

    def _chunked_body(self) -> bytes | None:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                return self._refuse(400, f"bad chunk size {line[:20]!r} in a chunked request body")
            if size == 0:
                while self.rfile.readline(8192).strip():  # trailers, up to the blank line
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                return self._refuse(413, f"chunked request body over the {MAX_BODY:,} bytes the proxy takes")
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)  # the CRLF after the chunk

    def _send(self, request: httpx.Request, start: float) -> httpx.Response | None:
        """The upstream's response, after a bounded wait while it loads its model; None when the
        upstream failed before answering (the harness was hung up on)."""
        while True:
            try:
                response = self.proxy.client.send(request, stream=True)
            except httpx.HTTPError as e:
                return self._infra(f"llama-server at {self.proxy.upstream} failed before answering: "
                                   f"{type(e).__name__}: {e}")
            if response.status_code != 503:
                return response
            response.read()
            if not is_loading(503, response.content):
                return response
            response.close()
            try:
                wait_until_loaded(self.proxy.client, self.proxy.upstream, start + self.proxy.load_wait_s)
            except StillLoading as e:
                return self._infra(str(e))

    def _relay_events(self, response: httpx.Response, it: Interaction, start: float) -> bool:
        """Pass whole SSE events on as they complete: a harness never sees half an event, even when
        the upstream dies in the middle of one, so it can always read the error event after it.
        Comment blocks (`: ping`) are passed on and kept in the body; only events get an offset."""
        framer, parts, offsets, last = Framer(), [], [], None
        raw, sent = b"", 0  # bytes not yet passed on, and the stream offset of raw[0]
        it.chunk_offsets = offsets

        def emit(block: bytes, data: str | None, at: float, to_harness: bool = True) -> None:
            nonlocal last
            if to_harness:
                self._chunk(block)
            parts.append(block.decode("utf-8"))  # the framer checked every line of it
            if data is not None:
                offsets.append(at)
                last = data

        def error(code: int, message: str, type_: str, to_harness: bool = True) -> None:
            event = _error_event(code, message, type_)
            emit(event, split_events(event)[0], time.monotonic() - start, to_harness)

        try:
            try:
                for data in response.iter_raw():
                    raw += data
                    at = time.monotonic() - start
                    for b in framer.feed(data):
                        emit(raw[:b.end - sent], b.data, at)
                        raw, sent = raw[b.end - sent:], b.end
                for b in framer.close():
                    emit(raw[:b.end - sent], b.data, time.monotonic() - start)
                    raw, sent = raw[b.end - sent:], b.end
                if last != DONE:
                    error(502, "upstream ended the stream without [DONE]", "server_error")
            except (httpx.HTTPError, SSEError) as e:
                what = "sent a broken SSE stream" if isinstance(e, SSEError) else "closed mid-stream"
                error(502, f"upstream {what}: {e}", "server_error")
                self.close_connection = True
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # The harness hung up (a loop guard cut the turn). Closing the upstream response stops
            # the generation; the record gets an end marker the harness never read, so the cassette
            # stays loadable and replays the same events up to the cut.
            self.close_connection = True
            if last != DONE:
                error(499, HUNG_UP, "client_closed",
                      to_harness=False)
        it.body = "".join(parts)
        return bool(offsets)

    def _relay_raw(self, response: httpx.Response, it: Interaction) -> bool:
        body = b""
        try:
            for data in response.iter_raw() if not response.is_stream_consumed else [response.content]:
                self._chunk(data)
                body += data
            self.wfile.write(b"0\r\n\r\n")
        except httpx.HTTPError:
            # No terminating chunk: the harness sees a broken response, not a short one.
            self.close_connection = True
            return False
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False
        it.body = body.decode("utf-8", "replace")
        return True


class _Count:
    """Requests being relayed: `with count:` around each one."""

    def __init__(self):
        self._n, self._cond = 0, threading.Condition()

    def __enter__(self):
        with self._cond:
            self._n += 1

    def __exit__(self, *exc):
        with self._cond:
            self._n -= 1
            self._cond.notify_all()

    def wait_zero(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._n == 0, timeout)


class RecordingProxy:
    """A loopback proxy to `upstream_url` that records chat traffic. Use as a context manager:

        with RecordingProxy(server.url) as proxy:
            run_harness(base_url=proxy.url)
        cassette.save(proxy.cassette({"task": ..., ...}), path)
    """

    def __init__(self, upstream_url: str, client: httpx.Client | None = None,
                 host: str = "127.0.0.1", port: int = 0, load_wait_s: float = LOAD_WAIT_S):
        self.upstream = upstream_url.rstrip("/")
        url = httpx.URL(self.upstream)
        self._upstream_at = (url.host, url.port)
        self.load_wait_s = load_wait_s
        self.upstream_failures: list[str] = []  # why the harness was hung up on: the trial is `infra`
        self._own_client = client is None
        # A new upstream connection per request: a kept-alive one that the server closes just as a
        # request goes out fails that request before any answer ("Server disconnected"), which the
        # harness would take for the server being down. A loopback or LAN connect costs under a millisecond.
        self.client = client or httpx.Client(timeout=DEFAULT_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0))
        self.httpd = ThreadingHTTPServer((host, port), type("Handler", (_Handler,), {"proxy": self}))
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        # poll_interval: how soon close() returns (serve_forever checks for shutdown that often)
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._kept: list[tuple[int, Interaction]] = []
        self._in_flight = _Count()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until no request is being relayed: a harness that gave up on one (its time budget
        ran out) has hung up, and the relay ends at its next write. False if one is still running."""
        return self._in_flight.wait_zero(timeout)

    def _next_seq(self) -> int:
        with self._lock:
            return next(self._seq)

    def _keep(self, seq: int, it: Interaction) -> None:
        _redact(it)
        with self._lock:
            self._kept.append((seq, it))

    def _fail(self, reason: str) -> None:
        with self._lock:
            self.upstream_failures.append(reason)

    @property
    def interactions(self) -> list[Interaction]:
        """Recorded chat interactions in the order their requests arrived."""
        with self._lock:
            return [it for _, it in sorted(self._kept, key=lambda p: p[0])]

    def cassette(self, metadata: dict) -> Cassette:
        """The recording so far as a cassette; `metadata` needs at least task, server (with n_ctx),
        harness_profile and failure_mode. Tool results come from the requests that answered."""
        its = self.interactions
        for k, it in enumerate(its):
            it.tool_results = _tool_results(it, its[k + 1:])
        server = metadata.get("server")
        if isinstance(server, dict) and isinstance(server.get("model"), str) and redact.is_local_path(server["model"]):
            metadata = {**metadata, "server": {**server, "model": redact.file_name(server["model"])}}
        return Cassette({"format": FORMAT, "provenance": "recorded", **metadata}, its)

    def __enter__(self) -> "RecordingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._own_client:
            self.client.close()


def _redact(it: Interaction) -> None:
    """Credentials out, the local model path down to its file name (see redact.py)."""
    try:
        path = redact.local_model_path(json.loads(it.request_body))
    except ValueError:
        path = None
    it.request_body = redact.json_text(it.request_body)
    it.uri = redact.uri(it.uri)
    it.request_headers, it.headers = redact.headers(it.request_headers), redact.headers(it.headers)
    if path:  # llama-server names the model in every event as it was asked for it
        escaped = json.dumps(path, ensure_ascii=False)[1:-1]
        it.body = it.body.replace(escaped, redact.file_name(path))
    it.__dict__.pop("request", None)  # the cached parse of the old body


def tool_calls(it: Interaction) -> dict[str, tuple[str, str]]:
    """The tool calls of a response: id -> (name, arguments text), streamed deltas joined."""
    if not it.streamed:
        try:
            message = json.loads(it.body)["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            return {}
        return {c["id"]: (c["function"]["name"], c["function"].get("arguments") or "")
                for c in message.get("tool_calls") or []}
    by_index: dict[int, dict] = {}
    for data in it.events:
        try:
            choices = json.loads(data).get("choices") or []
        except (ValueError, AttributeError):
            continue  # [DONE]
        for choice in choices:
            for delta in (choice.get("delta") or {}).get("tool_calls") or []:
                call = by_index.setdefault(delta.get("index", 0), {"id": "", "name": "", "arguments": ""})
                fn = delta.get("function") or {}
                call["id"] = delta.get("id") or call["id"]
                call["name"] = fn.get("name") or call["name"]
                call["arguments"] += fn.get("arguments") or ""
    return {c["id"]: (c["name"], c["arguments"]) for c in by_index.values() if c["id"]}


def _arguments(text: str | dict) -> dict:
    if isinstance(text, dict):  # some harnesses echo arguments as an object, not a JSON string
        return text
    try:
        args = json.loads(text) if text.strip() else {}
    except ValueError:
        return {"_raw": text}  # the model wrote broken JSON: keep it as it was
    return args if isinstance(args, dict) else {"_raw": text}


def _messages(it: Interaction) -> list[dict]:
    try:
        return it.request.get("messages") or []
    except ValueError:
        return []


def _echoed_calls(it: Interaction, nxt: Interaction) -> dict[str, tuple[str, str]]:
    """The calls the harness says response `it` made: the assistant messages request `nxt` added
    to `it`'s history. Needed when a harness parses tool calls out of the text itself, so the
    stream carries none; the older history is skipped so earlier calls are not claimed twice."""
    calls = {}
    for m in _messages(nxt)[len(_messages(it)):]:
        if m.get("role") == "assistant":
            for c in m.get("tool_calls") or []:
                calls[c["id"]] = (c["function"]["name"], c["function"].get("arguments") or "")
    return calls


def _tool_results(it: Interaction, later: list[Interaction]) -> list[ToolResult]:
    calls = tool_calls(it) or (_echoed_calls(it, later[0]) if later else {})
    found: dict[str, ToolResult] = {}
    for nxt in later:  # normally the very next request carries the results
        messages = _messages(nxt)
        for m in messages:
            call_id = m.get("tool_call_id")
            if m.get("role") == "tool" and call_id in calls and call_id not in found:
                name, args = calls[call_id]
                output = message_text(m)
                found[call_id] = ToolResult(call_id, name, _arguments(args), output,
                                            is_error=output.lstrip().lower().startswith("error"))
        if found:
            break
    return [found[c] for c in calls if c in found]
