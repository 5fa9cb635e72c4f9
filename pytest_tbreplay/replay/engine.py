"""The replay engine: answers a harness's requests from a cassette, in order, and emulates
llama-server where the harness leaves the recording (a smaller max tokens, a request too big for
the context, a prompt whose size changed) instead of guessing.

One engine, two faces: `ReplayTransport` for httpx in-process, `ReplayServer` on a loopback port
for harnesses in other processes (pi in Node)."""
from __future__ import annotations

import copy
import difflib
import json
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

import httpx

from pytest_tbreplay.core.cassette import Cassette, Interaction
from pytest_tbreplay.core.sse import DONE, format_event
from pytest_tbreplay.core.trial import budget_ended_text
from pytest_tbreplay.core.wire import (
    exceed_body,
    is_overflow,
    max_tokens_of,
    message_text,
    overflow_n_prompt,
)


class ReplayError(AssertionError):
    """Replay went wrong: the test fails with it (engine.check) even if the harness carried on."""

    def __init__(self, index: int, message: str, diff: str = ""):
        super().__init__(f"interaction {index}: {message}" + (f"\n{diff}" if diff else ""))
        self.index, self.diff = index, diff


class ReplayMismatch(ReplayError):
    """The harness sent a request the cassette has no answer for (`.request`, when known)."""
    request: dict | None = None


class BadRequest(ReplayError):
    """The harness sent something no server could answer (not JSON, not a chat request, ...)."""


@dataclass
class Reply:
    status: int
    content_type: str
    chunks: Iterable[tuple[float, bytes]]  # (offset in seconds, bytes): one SSE event each, made lazily
    out_of_time: bool = False  # no answer: the recorded trial's time budget ran out on this request


@dataclass
class Served:
    """What the engine did with one request: the trial's view of the server."""
    request: dict
    index: int | None  # the interaction that answered, None for an emulated error
    status: int
    prompt_tokens: int
    cut_at: int | None = None  # completion tokens kept when max tokens cut the recorded stream


def request_key(request: dict) -> tuple:
    """A request answers to the interaction whose request ended in the same message: the tool
    result, user text or nudge the model is reacting to. System prompts, DRY fields and max tokens
    are the harness's business and do not change which answer is due."""
    msgs = [m for m in request.get("messages", []) if m.get("role") not in ("system", "developer")]
    if not msgs:
        return ()
    last = msgs[-1]
    return (last.get("role"), last.get("tool_call_id"), message_text(last).strip())


def prompt_chars(request: dict) -> int:
    return len(json.dumps(request.get("messages", []))) + len(json.dumps(request.get("tools", [])))


def render(request: dict, limit: int = 400) -> list[str]:
    lines = []
    for i, m in enumerate(request.get("messages", [])):
        text = message_text(m)
        if len(text) > limit:
            text = f"{text[:limit]}... ({len(text)} chars)"
        tag = f" {m['tool_call_id']}" if m.get("tool_call_id") else ""
        lines += [f"[{i}] {m.get('role')}{tag}: {line}" for line in (text.splitlines() or [""])]
    return lines


def _recorded_prompt_tokens(it: Interaction) -> int | None:
    if is_overflow(it.status, it.body):
        return overflow_n_prompt(it.body)
    return it.usage.get("prompt_tokens")


class ReplayEngine:
    def __init__(self, cassette: Cassette, *, realtime: bool = False):
        self.cassette = cassette
        self.realtime = realtime
        self.cursor = 0
        self.played: set[int] = set()
        self.served: list[Served] = []
        self.errors: list[ReplayError] = []
        self._recorded_chars = self._measure()
        self.chars_per_token = self._calibrate()
        self._lock = threading.Lock()
        # metadata.ended: the recorded trial ran out of its time budget after `at_interaction`
        # interactions. Replay has no clock to run out: the request that comes there gets no
        # answer, and this is set, so the harness ends the trial the way the recording did.
        self.ended = cassette.metadata.get("ended")
        self.out_of_time = threading.Event()

    def _measure(self) -> list[int]:
        """prompt_chars of every recorded request, measuring each stored message once: a real
        trial's requests share their history, and serializing each whole would take seconds."""
        sizes: dict[int, int] = {}  # id -> chars; the cassette keeps the messages alive

        def size(m) -> int:
            if (n := sizes.get(id(m))) is None:
                n = sizes[id(m)] = len(json.dumps(m))
            return n
        out = []
        for it in self.cassette.interactions:
            msgs, rest = it.request.get("messages", []), len(json.dumps(it.request.get("tools", [])))
            out.append(rest + (sum(map(size, msgs)) + 2 * len(msgs) if msgs else 2))  # "[", ", ", "]"
        return out

    def _calibrate(self) -> float:
        """chars per token of this recording: its requests' sizes against the prompt tokens the
        server counted for them."""
        chars = tokens = 0
        for it, n_chars in zip(self.cassette.interactions, self._recorded_chars):
            n = _recorded_prompt_tokens(it)
            if n and not it.scripted:
                chars, tokens = chars + n_chars, tokens + n
        return chars / tokens if tokens else 4.0

    # -- what a request gets -------------------------------------------------------------
    def estimate_tokens(self, request: dict, i: int | None) -> int:
        it = self.cassette.interactions[i] if i is not None else None
        recorded = _recorded_prompt_tokens(it) if it else None
        if recorded is None:
            return round(prompt_chars(request) / self.chars_per_token)
        if request == it.request:
            return recorded
        # Same step, different history (a nudge, a compaction): move from the recorded count.
        return max(1, recorded + round((prompt_chars(request) - self._recorded_chars[i]) / self.chars_per_token))

    def _find(self, request: dict) -> tuple[int, Interaction]:
        key, its = request_key(request), self.cassette.interactions
        if self.cursor < len(its) and not its[self.cursor].match and request_key(its[self.cursor].request) == key:
            return self.cursor, its[self.cursor]
        text = "\n".join(message_text(m) for m in request.get("messages", []))
        for i, it in enumerate(its):
            if i in self.played or not it.scripted:
                continue
            if (it.match and it.match in text) or (not it.match and request_key(it.request) == key):
                return i, it
        raise self._mismatch(request)

    def _mismatch(self, request: dict) -> ReplayMismatch:
        mine, its = render(request), self.cassette.interactions
        pool = [i for i in range(len(its)) if i not in self.played] or list(range(len(its)))
        best = max(pool, key=lambda i: difflib.SequenceMatcher(None, mine, render(its[i].request), autojunk=False).ratio(),
                   default=None)
        theirs = render(self.cassette.interactions[best].request) if best is not None else []
        diff = "\n".join(difflib.unified_diff(theirs, mine, f"recorded request {best}", "request sent", lineterm=""))
        where = f"{self.cassette.path}: " if self.cassette.path else ""
        e = ReplayMismatch(self.cursor, f"{where}the cassette has no answer for this request "
                                        f"(closest recorded request: {best}); diff of messages:", diff)
        e.request = request  # what the harness sent: whatif names why it left the recording
        return e

    def answer(self, request: dict) -> Reply:
        with self._lock:
            if self.ended and self.cursor >= self.ended["at_interaction"]:
                self.out_of_time.set()  # the recorded trial's time budget ran out on this request
                return Reply(0, "", [], out_of_time=True)
            try:
                return self._answer(request)
            except ReplayMismatch as e:
                self.errors.append(e)
                raise

    def _answer(self, request: dict) -> Reply:
        i, it = self._find(request)
        n_ctx = self.cassette.n_ctx
        tokens = self.estimate_tokens(request, i)
        if n_ctx is not None and tokens >= n_ctx:
            if is_overflow(it.status, it.body):
                self._mark(i)
            self.served.append(Served(request, None, 400, tokens))
            return Reply(400, "application/json", [(0.0, json.dumps(exceed_body(tokens, n_ctx)).encode())])
        if is_overflow(it.status, it.body):  # the request fits now (compacted): the recorded 400 does not apply
            self._mark(i)
            i, it = self._find(request)
            tokens = self.estimate_tokens(request, i)
        self._mark(i)
        served = Served(request, i, it.status, tokens)
        self.served.append(served)
        if not it.streamed:
            return Reply(it.status, "application/json", [(0.0, it.body.encode())])
        return Reply(it.status, "text/event-stream", self._stream(it, max_tokens_of(request), served))

    def _mark(self, i: int) -> None:
        self.played.add(i)
        if not self.cassette.interactions[i].scripted:
            self.cursor = max(self.cursor, i + 1)

    def _stream(self, it: Interaction, limit: int | None, served: Served) -> Iterator[tuple[float, bytes]]:
        n, template = 0, None
        for offset, data, kind in zip(it.chunk_offsets, it.events, it.event_kinds):
            if kind == "done":
                yield offset, format_event(DONE).encode()
                return
            if kind == "usage":
                data = json.dumps(self._with_usage(json.loads(data), served.prompt_tokens, None), separators=(",", ":"))
            elif kind == "token":
                n += 1
                if limit is not None and n > limit:
                    yield from self._cut(json.loads(template or data), served, limit, offset)
                    return
            template = template or data
            yield offset, format_event(data).encode()

    def _cut(self, template: dict, served: Served, limit: int, offset: float):
        """End the stream the way llama-server does when n_predict is reached."""
        served.cut_at = limit
        end = {k: v for k, v in template.items() if k not in ("choices", "usage", "timings")}
        end["choices"] = [{"finish_reason": "length", "index": 0, "delta": {}}]
        usage = dict(end, choices=[])
        usage = self._with_usage(usage, served.prompt_tokens, limit)
        for e in (end, usage):
            yield offset, format_event(json.dumps(e, separators=(",", ":"))).encode()
        yield offset, format_event(DONE).encode()

    @staticmethod
    def _with_usage(event: dict, prompt_tokens: int, completion: int | None) -> dict:
        event = copy.deepcopy(event)
        usage = event.setdefault("usage", {})
        if completion is not None:
            usage["completion_tokens"] = completion
        usage["prompt_tokens"] = prompt_tokens
        usage["total_tokens"] = prompt_tokens + usage.get("completion_tokens", 0)
        details = usage.get("prompt_tokens_details") or {}
        if details.get("cached_tokens", 0) >= prompt_tokens:
            # A compacted prompt cannot reuse more cache than it has, and llama-server always
            # evaluates at least one prompt token.
            details["cached_tokens"] = max(prompt_tokens - 1, 0)
        return event

    # -- the other endpoints a harness may ask -------------------------------------------
    def props(self) -> dict:
        server = self.cassette.metadata["server"]
        return {"default_generation_settings": {"n_ctx": server["n_ctx"], "params": server.get("settings", {})},
                "model_alias": server.get("model", "replay"), "total_slots": 1, "build_info": "tbreplay"}

    def route(self, method: str, path: str, body: bytes) -> Reply:
        """Every request gets an HTTP answer, and every failure is kept for check(): a harness may
        swallow a 4xx and carry on, the test must not pass because of that."""
        try:
            return self._route(method, path, body)
        except ReplayMismatch as e:
            # 409 is outside every client's retry list: the harness stops; the test reports e.
            return _json(409, {"error": {"code": 409, "type": "tbreplay_mismatch",
                                         "message": f"tbreplay: no recorded answer at interaction {e.index}"}})
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as e:
            return self.reject(400, f"not a chat request llama-server would answer: {type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - a bug of ours: still an answer, and a failed test
            return self.reject(500, f"tbreplay failed answering {method} {path[:80]}: {type(e).__name__}: {e}")

    def reject(self, status: int, message: str) -> Reply:
        """Answer with an error the way llama-server shapes one, and fail the test with it."""
        with self._lock:
            self.errors.append(BadRequest(self.cursor, message))
        return _json(status, {"error": {"code": status, "message": f"tbreplay: {message}",
                                        "type": "invalid_request_error" if status < 500 else "server_error"}})

    def _route(self, method: str, path: str, body: bytes) -> Reply:
        path = path.split("?")[0]
        if method == "POST" and path.endswith("/chat/completions"):
            request = json.loads(body or b"{}")
            if not isinstance(request, dict) or not isinstance(request.get("messages", []), list):
                raise TypeError("the body must be a JSON object with a `messages` list")
            reply = self.answer(request)
            if reply.content_type == "text/event-stream":
                reply.chunks = self._guarded(reply.chunks)
            return reply
        if path == "/health":
            return _json(200, {"status": "ok"})
        if path == "/props":
            return _json(200, self.props())
        if path.endswith("/models"):
            return _json(200, {"object": "list", "data": [{"id": self.props()["model_alias"], "object": "model"}]})
        return _json(404, {"error": {"code": 404, "message": f"{path}: not served in replay", "type": "not_found_error"}})

    def _guarded(self, chunks: Iterable[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
        """A failure after the 200 went out ends the stream with an error event, as llama-server's
        own mid-stream failures do, instead of a cut connection."""
        offset = 0.0
        try:
            for offset, data in chunks:
                yield offset, data
        except Exception as e:  # noqa: BLE001
            message = f"tbreplay failed mid-stream: {type(e).__name__}: {e}"
            with self._lock:
                self.errors.append(ReplayError(self.cursor, message))
            yield offset, format_event(json.dumps({"error": {"code": 500, "message": message,
                                                             "type": "server_error"}})).encode()

    # -- after the trial ------------------------------------------------------------------
    def unplayed(self) -> list[int]:
        end = self.ended["at_interaction"] if self.ended else len(self.cassette.interactions)
        return [i for i, it in enumerate(self.cassette.interactions[:end]) if not it.scripted and i not in self.played]

    def check(self, strict: bool = False) -> None:
        """Raise what went wrong: a mismatch the harness may have swallowed, or (strict) unplayed
        recorded interactions."""
        if self.errors:
            if len(self.errors) > 1:
                raise ReplayError(self.errors[0].index, f"{len(self.errors)} replay errors; the first: "
                                                        f"{self.errors[0]}")
            raise self.errors[0]
        if strict and (left := self.unplayed()):
            raise ReplayMismatch(left[0], f"{self.cassette.path}: {len(left)} recorded interactions were "
                                          f"never requested: {left}")


def _json(status: int, obj: dict) -> Reply:
    return Reply(status, "application/json", [(0.0, json.dumps(obj).encode())])


def _paced(chunks: Iterable[tuple[float, bytes]], realtime: bool,
           stop: threading.Event | None = None) -> Iterator[bytes]:
    start, stop = time.monotonic(), stop or threading.Event()
    for offset, data in chunks:
        if realtime and (wait := offset - (time.monotonic() - start)) > 0 and stop.wait(wait):
            return  # the server is closing: no reason to wait out the recording
        yield data


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks, realtime):
        self._it = _paced(chunks, realtime)

    def __iter__(self):
        yield from self._it


class ReplayTransport(httpx.BaseTransport):
    """httpx transport answering from the engine, no sockets."""

    def __init__(self, engine: ReplayEngine):
        self.engine = engine

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply = self.engine.route(request.method, request.url.raw_path.decode(), request.read())
        if reply.out_of_time:  # what the recorded harness saw: its request timed out
            raise httpx.ReadTimeout(budget_ended_text(self.engine.ended), request=request)
        return httpx.Response(reply.status, headers={"content-type": reply.content_type},
                              stream=_Stream(reply.chunks, self.engine.realtime), request=request)
