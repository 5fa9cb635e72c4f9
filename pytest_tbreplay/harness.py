"""The reference harness: a small pi-style agent loop over httpx (streaming), with every harness
mitigation of the failure analysis as a policy its profile switches on or off.

The loop is pi's: send the conversation, stream the answer, run its tool calls, repeat until the
model answers without tool calls. The policies hook into that loop at three places: before a
request (proactive compaction), on a server error (overflow -> compact and retry) and at the end
of a turn (length nudge, verify-before-done)."""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .cassette import Cassette
from .loopdetect import LoopDetector
from .profiles import Profile
from .loading import LOAD_WAIT_S, StillLoading, is_loading, wait_until_loaded
from .sse import DONE, SSEError, iter_events
from .tools import CassetteTools, LocalTools, pi_tools
from .trial import Trial, Turn

SYSTEM = ("You are an expert coding assistant working in a terminal. Use the tools read, bash, edit "
          "and write to complete the user's task. Be concise.")
VERIFY_CONTRACT = ("Before you declare the task done: (a) run any provided check or test, (b) re-read the "
                   "file you wrote, (c) claim success only on observed passing output, never because a "
                   "pattern suggests it.")
NUDGE = "Your last message was cut off for looping; stop and take a different concrete action."
SUMMARY_SYSTEM = ("You are a context summarization assistant. Read the conversation and ONLY output the "
                  "structured summary.")
SUMMARY_ASK = ("Summarize the conversation above with the sections: Goal, Constraints & Preferences, "
               "Progress (Done / In Progress / Blocked), Key Decisions, Next Steps, Critical Context.")
# A finish that claims success (the "Done!" of failure mode D).
SUCCESS_CLAIM = re.compile(r"\b(done|completed?|success\w*|recovered|passe[sd]|fixed|works|finished)\b|✅", re.I)
# A bash command that checks work: a test, a checker, a comparison, or running what was built.
CHECK = re.compile(r"\b(pytest|unittest|test\w*|check\w*|verif\w*|compare\w*|diff|cmp|assert|sha256sum)\b"
                   r"|(^|[;&|(]\s*|\$\()\.?/[\w./-]+")
WRITE_TOOLS = ("write", "edit")
MAX_NUDGES = 3
MAX_VERIFY_DEMANDS = 2
TOOL_RESULT_CUT = 2000  # pi cuts tool results to 2000 chars in what it summarizes


@dataclass
class TaskSpec:
    name: str
    instruction: str
    acceptance: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # earlier turns, as when a session is resumed
    system: str | None = None  # the recorded harness's system prompt (an imported trial keeps pi's)

    @classmethod
    def from_cassette(cls, c: Cassette) -> "TaskSpec":
        m = c.metadata
        return cls(m["task"], m["instruction"], list(m.get("acceptance") or []), list(m.get("history") or []),
                   m.get("system_prompt"))


@dataclass
class Endpoint:
    """Where the harness talks to a server, and where its tool results come from."""
    url: str
    transport: httpx.BaseTransport | None = None  # in-process replay
    cassette: Cassette | None = None  # replay: tool results from the cassette
    workdir: Path | None = None  # live: tools run here
    model: str = "local"
    timeout_s: float = 600.0  # one request
    budget_s: float | None = None  # the whole trial (the task's time budget)


class InfraError(RuntimeError):
    """The server, not the model, failed: down, died mid-stream, or hung."""


@dataclass
class _Answer:
    status: int
    content: str = ""
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    error: dict | None = None
    tokens: int = 0  # streamed token chunks (llama-server sends one per token)
    reasoning_tokens: int = 0
    cut: bool = False
    decode_tps: float | None = None


def _tool_names(calls) -> list[str]:
    return [c["function"]["name"] for c in calls]


class ReferenceHarness:
    name = "reference"

    def __init__(self, profile: Profile):
        self.profile = profile

    def run(self, task: TaskSpec, endpoint: Endpoint) -> Trial:
        return _Run(self.profile, task, endpoint).run()


class _Run:
    """One trial: the conversation and the bookkeeping the policies need."""

    def __init__(self, profile: Profile, task: TaskSpec, endpoint: Endpoint):
        self.p, self.task, self.ep = profile, task, endpoint
        self.client = httpx.Client(base_url=endpoint.url, transport=endpoint.transport,
                                   timeout=httpx.Timeout(endpoint.timeout_s, connect=10.0))
        self.tools = CassetteTools(endpoint.cassette) if endpoint.cassette else LocalTools(endpoint.workdir or Path.cwd())
        self.trial = Trial(task.name, "reference", profile.name)
        system = task.system or SYSTEM
        if profile.verify_before_done and VERIFY_CONTRACT not in system:
            system += "\n\n" + VERIFY_CONTRACT
        self.messages: list[dict] = [{"role": "system", "content": system}, *task.history,
                                     {"role": "user", "content": task.instruction}]
        self.files_written: list[str] = []
        self.unverified_writes = False
        self.chars_per_token = 4.0  # refined from each answer's prompt_tokens
        self.window: int | None = None
        self._loading_since: float | None = None  # the first 503 Loading model of a row

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> Trial:
        start = time.monotonic()
        self.deadline = start + self.ep.budget_s if self.ep.budget_s else None
        try:
            self.window = self.p.window(self._n_ctx())
            self._loop()
        except InfraError as e:
            self.trial.outcome, self.trial.error, self.trial.stop_reason = "infra", str(e), "error"
        except (httpx.TimeoutException, TimeoutError) as e:
            self.trial.outcome, self.trial.error, self.trial.stop_reason = "timeout", f"out of time: {e}", "aborted"
        finally:
            self.client.close()
            self.trial.messages = self.messages
            self.trial.wall_s = time.monotonic() - start
        return self.trial

    def _loop(self) -> None:
        compaction = None
        while len(self.trial.turns) < self.p.max_turns:
            if self.p.proactive_compaction and self._estimate() + self.p.max_tokens > self.window:
                compaction = self._compact("threshold")
            ans = self._send()
            if ans.error and self._is_overflow(ans) and self.p.overflow_retry and compaction != "overflow":
                compaction = self._compact("overflow")
                continue  # the retry: the same step with the compacted history
            turn = self._record_turn(ans, compaction)
            compaction = None
            if ans.error:
                self._end("error", error=self._error_text(ans))
                return
            self.messages.append(self._assistant_message(ans))
            if ans.tool_calls and not ans.cut:
                self._run_tools(ans.tool_calls, turn)
                continue
            if turn.stop_reason == "length":
                if self.p.length_nudge and len(self.trial.nudges) < MAX_NUDGES:
                    self._say(NUDGE, self.trial.nudges)
                    continue
                self._end("length")
                return
            if self._needs_verification(ans.content):
                self._say(self._verify_demand(), self.trial.verify_demands)
                continue
            self._end("stop")
            return
        self._end("aborted", error=f"turn limit {self.p.max_turns} reached")

    def _end(self, stop_reason: str, error: str | None = None) -> None:
        self.trial.stop_reason, self.trial.error = stop_reason, error
        if stop_reason == "error":
            self.trial.outcome = "error"
        last = self.messages[-1]
        self.trial.final_text = (last.get("content") or "") if last["role"] == "assistant" else ""

    def _say(self, text: str, log: list[str]) -> None:
        log.append(text)
        self.messages.append({"role": "user", "content": text})

    # -- one request ------------------------------------------------------------------
    def _request(self, messages: list[dict], max_tokens: int, tools: bool = True) -> dict:
        body = {"model": self.ep.model, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": max_tokens}
        if tools:
            body["tools"] = pi_tools()
        if self.p.dry:
            body.update(self.p.dry)
        return body

    def _send(self) -> _Answer:
        body = self._request(self.messages, self.p.max_tokens)
        ans = self._stream(body, LoopDetector() if self.p.loop_detector else None)
        if ans.usage.get("prompt_tokens"):
            self.chars_per_token = _chars(body) / ans.usage["prompt_tokens"]
        return ans

    def _stream(self, body: dict, detector: LoopDetector | None) -> _Answer:
        self.trial.requests.append(body)
        timeout = self.ep.timeout_s
        if self.deadline:
            if (left := self.deadline - time.monotonic()) <= 0:
                raise TimeoutError(f"the trial's time budget of {self.ep.budget_s:.0f} s ran out")
            timeout = min(timeout, left)
        try:
            while True:
                with self.client.stream("POST", "/v1/chat/completions", json=body,
                                        timeout=httpx.Timeout(timeout, connect=10.0)) as resp:
                    if resp.status_code != 200:
                        resp.read()
                        if self._loading(resp):
                            continue
                        return _Answer(resp.status_code, error=_error_of(resp))
                    return self._read_stream(resp, detector)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, SSEError) as e:
            raise InfraError(f"llama-server at {self.ep.url}: {type(e).__name__}: {e}. Is it running? "
                             "Start it (tbreplay server) or pass --server-url") from None

    def _read_stream(self, resp: httpx.Response, detector: LoopDetector | None) -> _Answer:
        ans, calls = _Answer(200), {}
        try:
            self._consume(iter_events(resp.iter_raw()), detector, ans, calls)
        except (httpx.TransportError, SSEError) as e:
            ans.error = {"message": f"{type(e).__name__}: {e}"}
        if ans.error:  # the server failed after streaming began: not the model's doing
            raise InfraError(f"llama-server at {self.ep.url} failed mid-response after {ans.tokens} tokens "
                             f"({ans.error.get('message')}); received so far: {ans.content[-300:]!r}")
        if not ans.finish_reason:
            raise InfraError(f"llama-server at {self.ep.url} ended the stream without a finish reason after "
                             f"{ans.tokens} tokens; received so far: {ans.content[-300:]!r}")
        ans.tool_calls = [calls[i] for i in sorted(calls)]
        return ans

    def _consume(self, events, detector: LoopDetector | None, ans: _Answer, calls: dict) -> None:
        first = last = None
        for data in events:
            if data == DONE:
                break
            event = json.loads(data)
            if "error" in event:
                ans.error = event["error"]
                return
            ans.usage, ans.timings = event.get("usage") or ans.usage, event.get("timings") or ans.timings
            for choice in event.get("choices") or []:
                ans.finish_reason = choice.get("finish_reason") or ans.finish_reason
                delta = choice.get("delta") or {}
                text = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                if text or delta.get("tool_calls"):
                    ans.tokens += 1
                    ans.reasoning_tokens += bool(delta.get("reasoning_content"))
                    first, last = first or time.monotonic(), time.monotonic()
                ans.content += delta.get("content") or ""
                _merge_tool_calls(calls, delta.get("tool_calls") or [])
                args = "".join((d.get("function") or {}).get("arguments") or "" for d in delta.get("tool_calls") or [])
                if detector and ((text and detector.feed(text)) or (args and detector.feed_arguments(args))):
                    ans.cut, ans.finish_reason = True, "length"  # closing the stream cuts the turn
                    return
            if ans.tokens > 1 and last > first:
                ans.decode_tps = (ans.tokens - 1) / (last - first)

    # -- turn bookkeeping -------------------------------------------------------------
    def _record_turn(self, ans: _Answer, compaction: str | None) -> Turn:
        stop = ("error" if ans.error else "length" if ans.finish_reason == "length"
                else "toolUse" if ans.tool_calls else "stop")
        completion = ans.tokens if ans.cut else ans.usage.get("completion_tokens", ans.tokens)
        # A cut stream never got its usage: the harness's own estimate of what it sent stands in.
        prompt = ans.usage.get("prompt_tokens") or round(_chars(self.trial.requests[-1]) / self.chars_per_token)
        turn = Turn(len(self.trial.turns), stop, prompt_tokens=prompt,
                    completion_tokens=completion, reasoning_tokens=ans.reasoning_tokens,
                    text_tokens=completion - ans.reasoning_tokens, compaction=compaction,
                    cut_by="loop_detector" if ans.cut else None, tool_calls=_tool_names(ans.tool_calls),
                    decode_tps=ans.decode_tps, server_tps=ans.timings.get("predicted_per_second"))
        self.trial.turns.append(turn)
        return turn

    @staticmethod
    def _assistant_message(ans: _Answer) -> dict:
        msg = {"role": "assistant", "content": ans.content}
        if ans.tool_calls and not ans.cut:
            msg["tool_calls"] = ans.tool_calls
        return msg

    def _run_tools(self, calls: list[dict], turn: Turn) -> None:
        for call in calls:
            name, raw = call["function"]["name"], call["function"]["arguments"]
            try:
                args = json.loads(raw or "{}")
            except ValueError:
                output, is_error = f"invalid JSON arguments: {raw[:200]}", True
            else:
                output, is_error = self.tools(call["id"], name, args)
                turn.verifier_ran |= self._track(name, args)
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})

    def _track(self, name: str, args: dict) -> bool:
        """Note writes and checks for verify-before-done; True if this call checked the work."""
        if name in WRITE_TOOLS:
            self.files_written += [args["path"]] if args.get("path") not in self.files_written else []
            self.unverified_writes = True
            return False
        text = args.get("command", "") if name == "bash" else args.get("path", "")
        checked = (name == "bash" and bool(CHECK.search(text))) or any(f in text for f in self.files_written)
        if checked:
            self.unverified_writes = False
        return checked

    # -- policies ---------------------------------------------------------------------
    def _needs_verification(self, content: str) -> bool:
        return (self.p.verify_before_done and self.unverified_writes and bool(SUCCESS_CLAIM.search(content))
                and len(self.trial.verify_demands) < MAX_VERIFY_DEMANDS)

    def _verify_demand(self) -> str:
        criteria = "\n".join(f"- {c}" for c in self.task.acceptance) or "- (see the task)"
        return (f"You claimed success, but nothing has checked your work since you last wrote "
                f"{', '.join(self.files_written)}: no test or check ran and the output was not re-read. "
                f"Verify it now against the task's acceptance criteria and report only what the output "
                f"shows:\n{criteria}")

    @staticmethod
    def _is_overflow(ans: _Answer) -> bool:
        return ans.error.get("type") == "exceed_context_size_error" or \
            "exceeds the available context size" in str(ans.error.get("message"))

    def _estimate(self) -> int:
        """Tokens of the next request: its size at the ratio the server last reported."""
        return round(_chars(self._request(self.messages, self.p.max_tokens)) / self.chars_per_token)

    def _compact(self, reason: str) -> str:
        """pi's compaction: summarize the older messages with the model, keep the recent ones."""
        cut = self._cut_point()
        old, recent = self.messages[1:cut], self.messages[cut:]
        conversation = "\n\n".join(_serialize(m) for m in old)
        body = self._request([{"role": "system", "content": SUMMARY_SYSTEM},
                              {"role": "user", "content": f"<conversation>\n{conversation}\n</conversation>\n\n{SUMMARY_ASK}"}],
                             int(0.8 * self.p.reserve_tokens), tools=False)
        ans = self._stream(body, None)
        if ans.error:
            raise InfraError(f"compaction failed: {self._error_text(ans)}")
        summary = (self._anchor() + "\n\n" if self.p.anchored_summary else "") + ans.content
        self.trial.compactions.append({"reason": reason, "tokens_before": self._estimate(), "summary": summary})
        self.messages = [self.messages[0], {"role": "user", "content": "The conversation so far was compacted "
                                            f"into this summary:\n<summary>\n{summary}\n</summary>"}, *recent]
        return reason

    def _cut_point(self) -> int:
        """Keep the newest messages worth keep_recent_tokens, starting at an assistant turn so no
        tool result loses its call; always keep at least the last turn."""
        kept, cut = 0, len(self.messages)
        for i in range(len(self.messages) - 1, 1, -1):
            kept += len(json.dumps(self.messages[i])) / self.chars_per_token
            if self.messages[i]["role"] == "assistant":
                cut = i
                if kept >= self.p.keep_recent_tokens:
                    break
        return cut

    def _anchor(self) -> str:
        """The task-anchored part of a summary: kept verbatim, never paraphrased by the model."""
        criteria = "\n".join(f"- {c}" for c in self.task.acceptance)
        files = "\n".join(f"- {f}" for f in self.files_written) or "- (none yet)"
        return (f"## Original task (verbatim)\n{self.task.instruction}\n\n## Acceptance criteria\n{criteria}\n\n"
                f"## Files written so far\n{files}")

    def _n_ctx(self) -> int | None:
        try:
            while self._loading(resp := self.client.get("/props")):
                pass
            return resp.json()["default_generation_settings"]["n_ctx"] if resp.status_code == 200 else None
        except (httpx.ConnectError, httpx.RemoteProtocolError) as e:
            raise InfraError(f"llama-server at {self.ep.url} is down ({e}): start it (tbreplay server) or "
                             "pass --server-url") from None
        except (ValueError, KeyError):
            return None  # a proxy without /props (llama-swap): auto windows then fail with a clear error

    def _loading(self, resp: httpx.Response) -> bool:
        """True after waiting (bounded) for a server that answered 503 Loading model: not the
        model's answer, so the request is sent again; still loading at the bound is `infra`."""
        if not is_loading(resp.status_code, resp.read()):
            self._loading_since = None
            return False
        self._loading_since = self._loading_since or time.monotonic()
        deadline = self._loading_since + LOAD_WAIT_S
        if self.deadline:
            deadline = min(deadline, self.deadline)
        try:
            wait_until_loaded(self.client, str(self.client.base_url), deadline)
        except StillLoading as e:
            raise InfraError(str(e)) from None
        return True

    @staticmethod
    def _error_text(ans: _Answer) -> str:
        return f"{ans.error.get('code', ans.status)} {ans.error.get('message', ans.error)}"


def _chars(body: dict) -> int:
    return len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))


def _error_of(resp: httpx.Response) -> dict:
    try:
        return resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {"code": resp.status_code, "message": resp.text[:500]}


def _merge_tool_calls(calls: dict, deltas: list[dict]) -> None:
    """Assemble streamed tool calls: id and name arrive once, arguments in pieces."""
    for d in deltas:
        call = calls.setdefault(d.get("index", 0), {"id": "", "type": "function",
                                                   "function": {"name": "", "arguments": ""}})
        call["id"] = d.get("id") or call["id"]
        fn = d.get("function") or {}
        call["function"]["name"] += fn.get("name") or ""
        call["function"]["arguments"] += fn.get("arguments") or ""


def _serialize(m: dict) -> str:
    text = m.get("content") or ""
    if m["role"] == "tool" and len(text) > TOOL_RESULT_CUT:
        text = text[:TOOL_RESULT_CUT] + f"\n... ({len(text) - TOOL_RESULT_CUT} more chars)"
    calls = "".join(f"\n[tool call {c['function']['name']}: {c['function']['arguments'][:500]}]"
                    for c in m.get("tool_calls") or [])
    return f"[{m['role']}]: {text}{calls}"
