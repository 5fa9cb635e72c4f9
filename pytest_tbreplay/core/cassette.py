"""The cassette: vcrpy's YAML (`version`, `interactions`, `metadata`) plus what vcrpy lacks.

A real trial resends its whole conversation every turn (a 300-turn trial near 250k tokens would
store ~200M characters of requests), so a cassette keeps each distinct chat message once, in the
top-level `messages` list (compact JSON strings, in order of first use), and each interaction
names the messages of its request:
  messages                "0-41 57": the request's messages, as index ranges into `messages`;
                          its `request.body` then holds the rest of the request with
                          `"messages": []`. An interaction without it has a complete body.
Plain vcrpy replays such a cassette as it is (it matches on method and URI, not bodies);
`tbreplay export --vcrpy` writes a copy with every request body complete.

Each interaction may also carry, next to vcrpy's `request` and `response`:
  response.chunk_offsets  one time offset (seconds from the request) per SSE event of the body,
                          space-separated in one string (one YAML node, not 32,000: loads ~3x
                          faster); the event boundaries themselves are the body's blank lines, so
                          the body stays a plain vcrpy body and nothing is stored twice
  tool_results            the results the trial got for the tool calls of this response
  scripted                why a continuation was written by hand (absent on recorded traffic)
  match                   {contains: text}: answer a request whose messages contain the text,
                          for harness-made messages (nudges, summaries) whose exact wording varies
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from pytest_tbreplay.core import redact as redaction
from pytest_tbreplay.core.sse import DONE, SSEError, split_events
from pytest_tbreplay.core.wire import EXCEED_TYPE, is_overflow

VCR_VERSION = 1  # vcrpy's cassette version
FORMAT = 2  # our metadata.format: 2 added the message store
READABLE_FORMATS = (1, 2)  # 1: every request body complete
PROVENANCES = ("recorded", "imported", "reconstructed")
REQUIRED_METADATA = ("format", "task", "provenance", "server", "harness_profile", "failure_mode")
REDACTED = redaction.REDACTED
MAX_OFFSET_S = 7 * 24 * 3600.0  # a week: far beyond any trial; a bigger offset is a broken file

Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
SIZE_KEYS = ("context_window", "headroom", "max_tokens", "reserve_tokens", "keep_recent_tokens")
USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
MAX_TOKEN_KEYS = ("n_predict", "max_completion_tokens", "max_tokens")


def _is_count(n: Any) -> bool:
    """A token count: a whole number, at least 0. JSON's NaN and Infinity (Python's json reads
    them), negative counts and 12.5 load as numbers but make replay's sums and limits nonsense."""
    return type(n) is int and n >= 0 or (type(n) is float and n.is_integer() and n >= 0)


def _count_problem(where: str, n: Any) -> str:
    return f"{where} is {n!r}: token counts are whole numbers, at least 0 (not NaN, Infinity or negative)"


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when present: ~10x faster
    """Duplicate keys are refused: YAML keeps the last one without a word."""

    def construct_mapping(self, node, deep=False):
        mapping = super().construct_mapping(node, deep)
        if len(mapping) < len(node.value):
            keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            dup = next((k for k in keys if keys.count(k) > 1), "?")
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {dup!r}", node.start_mark)
        return mapping


MAX_DEPTH = 64  # a cassette nests a few levels (its messages are JSON strings)


def _check_events(text: str) -> None:
    """Before anything is built: no aliases (nested ones expand a 1 KB file into gigabytes once
    replay serializes it; a cassette never needs them, its message store shares messages) and no
    deep nesting (libyaml's composer recurses in C: 100,000 `[` crash the process). The parser's
    events are few (bodies are single scalars): ~0.07 s for a 32,000-event cassette."""
    depth = 0
    for event in yaml.parse(text, Loader=Loader):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError(f"YAML aliases (*{event.anchor}) are refused in a cassette: write the "
                                 f"value out{event.start_mark}")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.YAMLError(f"nested deeper than {MAX_DEPTH} levels{event.start_mark}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class CassetteError(ValueError):
    """A cassette that cannot be used, naming the file and, where it applies, the interaction."""

    def __init__(self, path: Path | str, problem: str, index: int | None = None):
        where = f"{path}" if index is None else f"{path}: interaction {index}"
        super().__init__(f"{where}: {problem}")
        self.path, self.index = str(path), index


@dataclass
class ToolResult:
    id: str
    name: str
    arguments: dict
    output: str
    is_error: bool = False


@dataclass
class Interaction:
    method: str
    uri: str
    request_body: str
    status: int
    body: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    request_headers: dict[str, list[str]] = field(default_factory=dict)
    chunk_offsets: list[float] | None = None
    tool_results: list[ToolResult] = field(default_factory=list)
    scripted: str | None = None
    match: str | None = None

    @property
    def streamed(self) -> bool:
        return self.chunk_offsets is not None

    @cached_property
    def request(self) -> dict:
        """The request as sent. (A cassette with a message store sets it at load.)"""
        return json.loads(self.request_body) if self.request_body else {}

    def body_text(self) -> str:
        """The complete request body: what a flat, vcrpy-only copy stores."""
        return self.request_body if "request" not in self.__dict__ else json.dumps(self.request, ensure_ascii=False)

    @cached_property
    def events(self) -> list[str]:
        return split_events(self.body) if self.streamed else []

    @cached_property
    def event_kinds(self) -> list[str]:
        """What replay needs to know of each event, worked out once per loaded cassette (a session
        replays the same one many times): "token" (a chunk carrying text or tool-call arguments),
        "usage" (carrying usage), "done" ([DONE]) or "" (anything else)."""
        def kind(data: str) -> str:
            if data == DONE:
                return "done"
            event = json.loads(data)
            if event.get("usage"):
                return "usage"
            delta = (event.get("choices") or [{}])[0].get("delta") or {}
            return "token" if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls") else ""
        return [kind(data) for data in self.events]

    @cached_property
    def usage(self) -> dict:
        """The usage block the server reported for this interaction ({} if none)."""
        for data in reversed(self.events) if self.streamed else [self.body]:
            if data == DONE:
                continue
            try:
                usage = json.loads(data).get("usage")
            except (ValueError, AttributeError):
                return {}
            if usage:
                return usage
        return {}


@dataclass
class Cassette:
    metadata: dict
    interactions: list[Interaction]
    path: Path | None = None

    @property
    def n_ctx(self) -> int | None:
        """The server's context; None for an imported trial that never said (no emulated 400s)."""
        n = self.metadata["server"]["n_ctx"]
        return None if n is None else int(n)

    def tool_result(self, call_id: str) -> ToolResult | None:
        for it in self.interactions:
            for r in it.tool_results:
                if r.id == call_id:
                    return r
        return None


def _headers(raw: Any, where: str, bad) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad(f"{where} must be a mapping of name to a list of values")
    out = {}
    for k, v in raw.items():
        values = v if isinstance(v, list) else [v]
        if not isinstance(k, str) or not all(isinstance(x, str) for x in values):
            raise bad(f"{where}: header names and values must be strings ({k!r}: {v!r})")
        out[k] = values
    return out


def _offsets(raw: Any, bad) -> list[float] | None:
    """Seconds from the request: finite, non-negative, non-decreasing (realtime replay sleeps on them)."""
    if raw is None:
        return None
    try:
        offsets = [float(t) for t in str(raw).split()]
    except ValueError as e:
        raise bad(f"chunk_offsets must be numbers separated by spaces: {e}") from None
    prev = 0.0
    for k, t in enumerate(offsets):
        if not (math.isfinite(t) and prev <= t <= MAX_OFFSET_S):
            raise bad(f"chunk_offsets[{k}] = {t!r}: offsets must be finite seconds, at least 0, at most "
                      f"{MAX_OFFSET_S:.0f}, and never decrease (previous {prev!r})")
        prev = t
    return offsets


def _is_event_stream(headers: dict[str, list[str]]) -> bool:
    return any(k.lower() == "content-type" and "event-stream" in " ".join(v) for k, v in headers.items())


def _json(text: str, where: str, bad) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise bad(f"{where} is not JSON: {e}") from None
    except RecursionError:
        raise bad(f"{where} is nested too deeply") from None


def _check_messages(messages: Any, where: str, bad, seen: set[int]) -> None:
    """What replay reads of a chat message: a role, content as text, parts or null, tool calls
    with a function name."""
    if not isinstance(messages, list):
        raise bad(f"{where} must be a list of chat messages")
    for k, m in enumerate(messages):
        if id(m) in seen:
            continue  # a stored message shared by many requests: checked once
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f"{where}[{k}] must be a chat message (a mapping with a `role`)")
        content, calls = m.get("content"), m.get("tool_calls")
        if not (content is None or isinstance(content, str)
                or (isinstance(content, list) and all(isinstance(p, dict) for p in content))):
            raise bad(f"{where}[{k}].content must be text, a list of parts, or null")
        if calls is not None and not (isinstance(calls, list) and all(
                isinstance(c, dict) and isinstance(c.get("function"), dict)
                and isinstance(c["function"].get("name"), str) for c in calls)):
            raise bad(f"{where}[{k}].tool_calls must be a list of calls, each with function.name")
        seen.add(id(m))


def _tool_results(raw: Any, bad) -> list[ToolResult]:
    if raw is None:
        return []
    types = {"id": str, "name": str, "arguments": dict, "output": str, "is_error": bool}
    out = []
    for k, r in enumerate(raw if isinstance(raw, list) else [None]):
        if not (isinstance(r, dict) and {"id", "name", "arguments", "output"} <= r.keys() <= types.keys()
                and all(isinstance(v, types[key]) for key, v in r.items())):
            raise bad(f"tool_results[{k}] must have id, name, output (strings), arguments (a mapping) "
                      "and optionally is_error (true/false), nothing else")
        out.append(ToolResult(**r))
    return out


MAX_REFS = 1_000_000  # messages one request may name: far above any real trial, far below a memory bomb
_RANGE = re.compile(r"(\d{1,9})(?:-(\d{1,9}))?")


def _ranges(raw: Any, n_store: int, path, i: int) -> list[int]:
    """ "0-41 57" -> [0, ..., 41, 57], every index inside the store. Each range is checked before
    it is expanded, so a reference such as "0-999999999" costs nothing."""
    out: list[int] = []
    for part in str(raw).split():
        m = _RANGE.fullmatch(part)
        if m is None:
            raise CassetteError(path, f"messages must be index ranges such as '0-41 57', not {str(raw)[:40]!r}", i)
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if not lo <= hi < n_store:
            raise CassetteError(path, f"messages {part!r} point outside the {n_store} stored messages "
                                      "(or run backwards)", i)
        if len(out) + hi - lo + 1 > MAX_REFS:
            raise CassetteError(path, f"messages name more than {MAX_REFS:,} messages for one request", i)
        out.extend(range(lo, hi + 1))
    return out


def _interaction(raw: Any, path, i: int, store: list[dict], seen: set[int], checked: set[str]) -> Interaction:
    def bad(problem: str) -> CassetteError:
        return CassetteError(path, problem, i)

    req, resp = (raw.get("request"), raw.get("response")) if isinstance(raw, dict) else (None, None)
    if not isinstance(req, dict) or not isinstance(resp, dict):
        raise bad("an interaction needs `request` and `response` mappings")
    if not isinstance(req.get("method"), str) or not isinstance(req.get("uri"), str):
        raise bad("request.method and request.uri must be strings")
    body = req.get("body") or ""
    if not isinstance(body, str):
        raise bad(f"request.body must be the request's JSON as a string, not a {type(body).__name__}")
    status = resp["status"].get("code") if isinstance(resp.get("status"), dict) else None
    if type(status) is not int or not 100 <= status <= 599:
        raise bad(f"response.status.code must be an HTTP status (an integer from 100 to 599), not {status!r}")
    text = resp["body"].get("string") if isinstance(resp.get("body"), dict) else None
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise bad(f"response.body.string is binary and not UTF-8 text (byte {e.start})") from None
    if not isinstance(text, str):
        raise bad("response.body.string must be the response body as text")
    match = raw.get("match")
    if not (match is None or (isinstance(match, dict) and isinstance(match.get("contains"), str))):
        raise bad("match must be a mapping {contains: text}")
    if not isinstance(raw.get("scripted"), (str, type(None))):
        raise bad("scripted must be text: why the continuation was written by hand")
    it = Interaction(
        method=req["method"], uri=req["uri"], request_body=body,
        request_headers=_headers(req.get("headers"), "request.headers", bad),
        status=status, body=text, headers=_headers(resp.get("headers"), "response.headers", bad),
        chunk_offsets=_offsets(resp.get("chunk_offsets"), bad), tool_results=_tool_results(raw.get("tool_results"), bad),
        scripted=raw.get("scripted"), match=match and match["contains"],
    )
    request = it.__dict__["request"] = _json(body, "request.body", bad) if body else {}
    if not isinstance(request, dict):
        raise bad("request.body must be a JSON object")
    _check_max_tokens(request, bad)
    if raw.get("messages") is not None:
        request["messages"] = [store[k] for k in _ranges(raw["messages"], len(store), path, i)]
    if "messages" in request:
        _check_messages(request["messages"], "request messages", bad, seen)
    if is_overflow(it.status, it.body):  # replay reads the recorded prompt size from it
        error = _json(it.body, "response.body", bad) if not it.streamed else None
        if not (isinstance(error, dict) and isinstance(error.get("error"), dict)
                and type(error["error"].get("n_prompt_tokens")) is int):
            raise bad(f"a {EXCEED_TYPE} answer is JSON with error.n_prompt_tokens (an integer), as "
                      "llama-server sends it")
        for name in ("n_prompt_tokens", "n_ctx"):
            if name in error["error"] and not _is_count(error["error"][name]):
                raise bad(_count_problem(f"response.body error.{name}", error["error"][name]))
    elif it.streamed or _is_event_stream(it.headers):
        _check_stream(it, bad, checked)
    elif it.body.lstrip().startswith("{"):  # a plain JSON answer: its usage is read as a stream's is
        try:
            answer = json.loads(it.body)
        except (ValueError, RecursionError):
            answer = None
        if isinstance(answer, dict):
            _check_usage(answer.get("usage"), "response.body usage", bad)
    return it


def _is_text(d: dict, *keys: str) -> bool:
    return all(d.get(k) is None or type(d[k]) is str for k in keys)


def _is_delta(d: Any) -> bool:
    if not d:
        return True
    if type(d) is not dict or not _is_text(d, "role", "content", "reasoning_content"):
        return False
    calls = d.get("tool_calls")
    if calls is None:
        return True
    return type(calls) is list and all(
        type(c) is dict and _is_text(c, "id") and type(c.get("index", 0)) is int
        and (c.get("function") is None or (type(c["function"]) is dict and _is_text(c["function"], "name", "arguments")))
        for c in calls)


def _is_chunk(event: Any) -> bool:
    """The shapes replay and the harnesses read of a streamed event (plain code: it runs once per
    event of a 32,000-event stream)."""
    if type(event) is not dict:
        return False
    choices, usage = event.get("choices"), event.get("usage")
    if choices is not None:
        if type(choices) is not list:
            return False
        for c in choices:
            if type(c) is not dict or not _is_delta(c.get("delta")) or not _is_text(c, "finish_reason"):
                return False
    if usage:
        if type(usage) is not dict:
            return False
        details = usage.get("prompt_tokens_details")
        for n in ("prompt_tokens", "completion_tokens"):
            if type(usage.get(n, 0)) not in (int, float):
                return False
        if details and (type(details) is not dict or type(details.get("cached_tokens", 0)) not in (int, float)):
            return False
    if "error" in event and type(event["error"]) is not dict:
        return False
    return not event.get("timings") or type(event["timings"]) is dict


# One token chunk exactly as llama-server writes it, matched whole: a JSON object of the shape
# replay reads. Most events of a real stream are these; matching them in C instead of parsing and
# walking each keeps a 300-turn trial's load under a second. Anything else is parsed and checked.
_STR = r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
_TOKEN_EVENT = re.compile(
    r'\{"choices":\[\{"finish_reason":(?:null|S),"index":\d{1,9},"delta":\{(?:"(?:content|reasoning_content)":S'
    r'|"tool_calls":\[\{"index":\d{1,9},"function":\{"arguments":S\}\}\])\}\}\],"created":\d{1,12},"id":S,'
    r'"model":S,"system_fingerprint":S,"object":S\}'.replace("S", _STR))


def _check_usage(usage: Any, where: str, bad) -> None:
    """The counts replay adds up and serves back (engine._with_usage, the recorded prompt size)."""
    if not usage or type(usage) is not dict:
        return
    for name in USAGE_COUNTS:
        if name in usage and not _is_count(usage[name]):
            raise bad(_count_problem(f"{where}.{name}", usage[name]))
    details = usage.get("prompt_tokens_details")
    if type(details) is dict and "cached_tokens" in details and not _is_count(details["cached_tokens"]):
        raise bad(_count_problem(f"{where}.prompt_tokens_details.cached_tokens", details["cached_tokens"]))


def _check_max_tokens(request: dict, bad) -> None:
    """llama-server's output limit: a count, or -1 for none (wire.max_tokens_of reads it)."""
    for key in MAX_TOKEN_KEYS:
        n = request.get(key)
        if n is not None and not (_is_count(n) or (type(n) is int and n == -1)):
            raise bad(f"request.body {key} is {n!r}: a limit of output tokens is a whole number, at least "
                      "0, or -1 for none (not NaN, Infinity or another negative)")


def _check_stream(it: Interaction, bad, checked: set[str]) -> None:
    """What replay serves of an SSE body: it frames (sse.py, the framer everything shares), has one
    offset per event (comment blocks such as `: ping` are no events), every event but the final
    [DONE] is a JSON object of the shapes replay reads, and it ends in [DONE] or an error event."""
    try:
        events = it.events if it.streamed else split_events(it.body)
    except SSEError as e:
        raise bad(str(e)) from None
    if it.chunk_offsets is None or len(it.chunk_offsets) != len(events):
        raise bad(f"{len(events)} SSE events but {len(it.chunk_offsets or [])} chunk_offsets: give one offset per "
                  "event, in order (comment lines such as `: ping` are no event and carry none)")
    last = None
    for k, data in enumerate(events):
        if data == DONE:
            if k != len(events) - 1:
                raise bad(f"SSE event {k} is [DONE] but {len(events) - 1 - k} events follow it")
            break
        if data in checked and k != len(events) - 1:
            continue  # a runaway repeats the same event thousands of times: check it once
        if _TOKEN_EVENT.fullmatch(data) and k != len(events) - 1:
            continue  # a token chunk in llama-server's exact form: valid, and nothing to check
        checked.add(data)
        last = _json(data, f"SSE event {k}", bad)
        if not _is_chunk(last):
            raise bad(f"SSE event {k} is not a chat completion chunk (a JSON object; choices a list of "
                      f"objects whose delta holds text and tool calls; usage an object of token counts; "
                      f"error an object): {data[:80]!r}")
        _check_usage(last.get("usage"), f"SSE event {k}: usage", bad)
    if not events or (events[-1] != DONE and not (isinstance(last, dict) and "error" in last)):
        raise bad("truncated SSE stream: no [DONE] and no error event at the end")


def parse(data: Any, path: Path | str = "<cassette>") -> Cassette:
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(path, "not a cassette: expected a mapping with an `interactions` list")
    if data.get("version") != VCR_VERSION:
        raise CassetteError(path, f"unknown cassette version {data.get('version')!r} (expected {VCR_VERSION})")
    meta = data.get("metadata")
    if not isinstance(meta, dict) or (missing := [k for k in REQUIRED_METADATA if k not in meta]):
        raise CassetteError(path, f"metadata lacks {missing if isinstance(meta, dict) else 'everything'}; "
                                  f"required: {', '.join(REQUIRED_METADATA)}")
    if meta["format"] not in READABLE_FORMATS:
        raise CassetteError(path, f"unknown tbreplay format {meta['format']!r} (this version reads "
                                  f"{READABLE_FORMATS}); upgrade pytest-tbreplay")
    for key in ("task", "trial", "failure_mode"):
        if key in meta and not (isinstance(meta[key], str) and meta[key]) and (key != "trial" or meta[key] is not None):
            raise CassetteError(path, f"metadata.{key} must be text, not {str(meta[key])[:40]!r}")
    if isinstance(meta["harness_profile"], str) and meta["harness_profile"]:
        meta["harness_profile"] = {"name": meta["harness_profile"]}  # a profile's name alone, as older cassettes say it
    if not isinstance(meta["harness_profile"], dict) or not isinstance(meta.get("imported") or {}, dict):
        raise CassetteError(path, "metadata.harness_profile (and metadata.imported) must be mappings")
    if meta["provenance"] not in PROVENANCES:
        raise CassetteError(path, f"provenance {meta['provenance']!r} is not one of {PROVENANCES}")
    n_ctx = meta["server"].get("n_ctx") if isinstance(meta["server"], dict) else "?"
    if not ((type(n_ctx) is int and n_ctx > 0) or (n_ctx is None and meta["provenance"] == "imported")):
        raise CassetteError(path, f"metadata.server.n_ctx must be a positive integer (null only for an imported "
                                  f"trial whose server context is unknown), not {n_ctx!r}")
    for key in SIZE_KEYS:
        size = meta["harness_profile"].get(key)
        if not (size is None or size == "auto" or _is_count(size)):
            raise CassetteError(path, _count_problem(f"metadata.harness_profile.{key}", size) + " (or auto)")
    _check_task(meta, path)
    if not data["interactions"]:
        raise CassetteError(path, "no interactions: a cassette replays at least one request")
    store = _store(data.get("messages"), path)
    seen: set[int] = set()  # messages checked (by id: the store shares them between requests)
    checked: set[str] = set()  # stream events checked
    _check_ended(meta.get("ended"), len(data["interactions"]), path)
    return Cassette(meta, [_interaction(raw, path, i, store, seen, checked) for i, raw in enumerate(data["interactions"])],
                    Path(path))


def _check_ended(ended: Any, n: int, path) -> None:
    """metadata.ended: how a recorded trial ended that replay must end the same way (its time
    budget ran out after `at_interaction` interactions; replay/engine.py)."""
    if ended is None:
        return
    after, at = (ended.get("after_s"), ended.get("at_interaction")) if isinstance(ended, dict) else (None, None)
    if not (isinstance(ended, dict) and ended.get("outcome") == "timeout" and type(at) is int and 0 <= at <= n
            and type(after) in (int, float) and math.isfinite(after) and after >= 0):
        raise CassetteError(path, f"metadata.ended must be {{outcome: timeout, after_s: seconds (finite, at least "
                                  f"0), at_interaction: 0..{n}}}, not {str(ended)[:80]}")


def _check_task(meta: dict, path) -> None:
    """The task replay hands the harness: an instruction, criteria as text, a history of messages;
    and metadata that is plain JSON data (replay serves parts of it, and YAML can hold dates)."""
    bad = "metadata.{} must be {}"
    if not isinstance(meta.get("instruction"), str):
        raise CassetteError(path, bad.format("instruction", "the task's instruction as text"))
    acceptance = meta.get("acceptance") or []
    if not (isinstance(acceptance, list) and all(isinstance(a, str) for a in acceptance)):
        raise CassetteError(path, bad.format("acceptance", "a list of criteria as text"))
    prompts = meta.get("prompts") or []
    if not (isinstance(prompts, list) and all(isinstance(p, str) for p in prompts)):
        raise CassetteError(path, bad.format("prompts", "a list of the later user prompts as text"))
    history = meta.get("history") or []
    _check_messages(history, "metadata.history", lambda p: CassetteError(path, p), set())
    try:
        json.dumps(meta)
    except (TypeError, ValueError, RecursionError) as e:
        raise CassetteError(path, f"metadata must be plain JSON-like data (text, numbers, lists, mappings): {e}") from None


def _store(raw: Any, path) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CassetteError(path, "`messages` must be a list of JSON strings, one chat message each")
    store = []
    for k, text in enumerate(raw):
        try:
            m = json.loads(text)
        except (TypeError, ValueError, RecursionError) as e:
            raise CassetteError(path, f"stored message {k} is not a JSON string: {e!r}") from None
        if not isinstance(m, dict):
            raise CassetteError(path, f"stored message {k} is not a JSON object")
        store.append(m)
    return store


def load(path: Path | str) -> Cassette:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CassetteError(path, f"cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        hint = (" (gzip-compressed? gunzip it)" if raw[:2] == b"\x1f\x8b" else
                " (UTF-16? save it as UTF-8)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "")
        raise CassetteError(path, f"not UTF-8 text: byte {e.start} is {raw[e.start:e.start + 1]!r}{hint}") from None
    try:
        _check_events(text)
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        raise CassetteError(path, f"bad YAML: {e}".replace("\n", " ")) from None
    return parse(data, path)


def with_n_ctx(c: Cassette, n_ctx: int | None) -> Cassette:
    """The cassette as if its server had `n_ctx` tokens (`--n-ctx`, as for a job folder): replay
    emulates that server's 400s and /props answers it. None: unchanged."""
    if n_ctx is not None:
        c.metadata["server"] = {**c.metadata["server"], "n_ctx": n_ctx, "n_ctx_source": "--n-ctx"}
    return c


# Writing: core/store.py (YAML with the message store, redacted, saved atomically); named here too,
# so `cassette.save(...)` and `cassette.to_dict(...)` keep working.
from pytest_tbreplay.core.store import save, to_dict, to_flat_dict  # noqa: E402,F401
