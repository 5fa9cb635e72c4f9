"""The reference harness: a small pi-style agent loop over httpx (streaming), with every harness
mitigation of the failure analysis as a policy its profile switches on or off.

The loop is pi's: send the conversation, stream the answer, run its tool calls, repeat until the
model answers without tool calls. It knows no mitigation: it calls hook points, and each policy is
a small object that implements the hooks it needs (`Policy` lists them, in the order the loop calls
them). `policies_for(profile)` is the whole mapping from a profile to behaviour."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pytest_tbreplay.core.loading import (
    LOAD_WAIT_S,
    StillLoading,
    is_loading,
    wait_until_loaded,
)
from pytest_tbreplay.core.profiles import Budget, Profile
from pytest_tbreplay.core.props import server_n_ctx
from pytest_tbreplay.core.sse import DONE, SSEError, iter_events
from pytest_tbreplay.core.trial import Endpoint, FollowUps, InfraError, TaskSpec, Trial, Turn
from pytest_tbreplay.core.wire import is_overflow_error
from pytest_tbreplay.policies.compaction import anchor, serialize
from pytest_tbreplay.policies.gate import VERIFY_CONTRACT, VerifyGate
from pytest_tbreplay.policies.loopdetect import LoopDetector
from pytest_tbreplay.policies.stuck import STUCK_NUDGE, STUCK_STOP, StuckGuard, step_of, stuck_config
from pytest_tbreplay.policies.texts import (
    MAX_NUDGES,
    MAX_VERIFY_DEMANDS,
    NUDGE,
    SUMMARY_ASK,
    SUMMARY_SYSTEM,
    SYSTEM,
)
from pytest_tbreplay.replay.tools import (
    CassetteTools,
    LocalTools,
    cut_call_message,
    parse_partial_json,
    pi_tools,
)


@dataclass
class Answer:
    status: int
    content: str = ""
    tool_calls: list[dict] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    error: dict | None = None
    tokens: int = 0  # streamed token chunks (llama-server sends one per token)
    reasoning_tokens: int = 0
    cut: bool = False  # the loop detector closed the stream
    decode_tps: float | None = None

    @property
    def length_cut_call(self) -> dict | None:
        """The tool call a length stop cut in the middle: the last one of a turn that hit max tokens."""
        return self.tool_calls[-1] if self.finish_reason == "length" and self.tool_calls and not self.cut else None


def _tool_names(calls) -> list[str]:
    return [c["function"]["name"] for c in calls]


# -- the hook points ------------------------------------------------------------------------------
class Policy:
    """A mitigation as hooks of the loop. Each hook does nothing unless a policy overrides it."""

    def system(self, run: "Run", text: str) -> str:
        """The system prompt (once, before the first request)."""
        return text

    def request(self, run: "Run", body: dict) -> None:
        """Change a chat request body before it is sent (every request, summaries included)."""

    def before_send(self, run: "Run") -> None:
        """Before each step's request (may compact the conversation)."""

    def stream_guard(self, run: "Run") -> LoopDetector | None:
        """A detector fed with the streamed text; when it trips, the stream is cut."""
        return None

    def on_error(self, run: "Run", ans: Answer) -> bool:
        """The server refused the request; True: handled, send the step again."""
        return False

    def tool_call(self, run: "Run", call: dict, ans: Answer) -> str | None:
        """Before a tool runs: a text here is its (error) result and the tool does not run."""
        return None

    def tool_result(self, run: "Run", name: str, args: dict, output: str, is_error: bool, turn: Turn) -> None:
        """After a tool ran."""

    def after_tools(self, run: "Run", ans: Answer, turn: Turn) -> str | None:
        """A turn's tool calls all ran (their results are the last messages): a text here ends the
        trial with it as the stop reason."""
        return None

    def on_end(self, run: "Run", ans: Answer, turn: Turn) -> str | None:
        """The model answered without a tool to run: a text here is sent as the next user message and
        the trial goes on."""
        return None


class ProactiveCompaction(Policy):
    """(a) Compact before a request that, plus a full turn, would pass the declared window."""

    def before_send(self, run):
        if run.estimate() + run.budget.max_tokens > run.budget.window:
            run.compact("threshold")


class OverflowRetry(Policy):
    """(b) llama-server's exceed-context 400 -> compaction and one retry of the same step."""

    def __init__(self):
        self.retried_turn = -1

    def on_error(self, run, ans):
        overflow = is_overflow_error(ans.error)
        if not overflow or self.retried_turn == len(run.trial.turns):
            return False
        self.retried_turn = len(run.trial.turns)
        return run.compact("overflow")


class LoopGuard(Policy):
    """(d) The streaming loop detector."""

    def stream_guard(self, run):
        return LoopDetector()


class LengthNudge(Policy):
    """(e) A length stop never ends the trial silently: a text cut gets the nudge; a tool call cut
    mid-arguments is not run, and its result tells the model where it was cut."""

    def __init__(self):
        self.nudges = 0

    def tool_call(self, run, call, ans):
        if call is not ans.length_cut_call:
            return None
        text = cut_call_message(call["function"]["name"], parse_partial_json(call["function"]["arguments"]),
                                run.budget.max_tokens)
        run.trial.nudges.append(text)
        return text

    def on_end(self, run, ans, turn):
        if turn.stop_reason == "length" and self.nudges < MAX_NUDGES:
            self.nudges += 1
            run.trial.nudges.append(NUDGE)
            return NUDGE
        return None


class VerifyBeforeDone(Policy):
    """(f) The contract in the system prompt, and a success claim over unchecked output is sent back."""

    def __init__(self, task: TaskSpec):
        self.task, self.demands = task, 0

    def system(self, run, text):
        return text if VERIFY_CONTRACT in text else text + "\n\n" + VERIFY_CONTRACT

    def on_end(self, run, ans, turn):
        if turn.stop_reason != "stop" or self.demands >= MAX_VERIFY_DEMANDS:
            return None
        demand = run.gate.demand(ans.content, self.task.acceptance)
        if demand:
            self.demands += 1
            run.trial.verify_demands.append(demand)
        return demand


class DrySampler(Policy):
    """(i) DRY sampler fields in every request."""

    def __init__(self, fields: dict):
        self.fields = fields

    def request(self, run, body):
        body.update(self.fields)


class StuckTurns(Policy):
    """(j) The same calls with the same results (or failing) turn after turn, or two steps
    alternating: a nudge as the next user message, then the trial ends `stuck`."""

    def __init__(self, config: dict):
        self.guard, self.ran = StuckGuard.from_config(config), []

    def tool_result(self, run, name, args, output, is_error, turn):
        self.ran.append((name, args, output, is_error))

    def after_tools(self, run, ans, turn):
        step, self.ran = step_of(self.ran), []
        verdict = self.guard.observe(step)
        if verdict == "nudge":
            text = self.guard.text(STUCK_NUDGE)
            run.trial.nudges.append(text)
            run.follow_ups.said(text)
            run.messages.append({"role": "user", "content": text})
        elif verdict == "stop":
            run.trial.error = self.guard.text(STUCK_STOP)
            return "stuck"
        return None


def policies_for(p: Profile, task: TaskSpec) -> list[Policy]:
    wanted = [(p.dry, lambda: DrySampler(p.dry)), (p.proactive_compaction, ProactiveCompaction),
              (p.overflow_retry, OverflowRetry), (p.loop_detector, LoopGuard), (p.length_nudge, LengthNudge),
              (p.verify_before_done, lambda: VerifyBeforeDone(task)),
              (p.stuck_guard, lambda: StuckTurns(stuck_config(p.stuck_guard)))]
    return [make() for on, make in wanted if on]


class ReferenceHarness:
    name = "reference"

    def __init__(self, profile: Profile):
        self.profile = profile

    def run(self, task: TaskSpec, endpoint: Endpoint) -> Trial:
        return Run(self.profile, task, endpoint).run()


class Run:
    """One trial: the conversation, the loop, and what the policies read (budget, gate, trial)."""

    def __init__(self, profile: Profile, task: TaskSpec, endpoint: Endpoint):
        self.p, self.task, self.ep = profile, task, endpoint
        self.policies = policies_for(profile, task)
        self.client = httpx.Client(base_url=endpoint.url, transport=endpoint.transport,
                                   timeout=httpx.Timeout(endpoint.timeout_s, connect=10.0))
        self.tools = CassetteTools(endpoint.cassette) if endpoint.cassette else LocalTools(endpoint.workdir or Path.cwd())
        self.trial = Trial(task.name, "reference", profile.name)
        self.gate = VerifyGate()  # what was produced and what checked it (telemetry and policy f)
        self.messages: list[dict] = []
        self.chars_per_token = 4.0  # refined from each answer's prompt_tokens
        self.budget: Budget | None = None
        self.compacted: str | None = None  # the compaction the next turn starts from
        self._loading_since: float | None = None  # the first 503 Loading model of a row
        self.follow_ups = FollowUps(task.prompts)

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> Trial:
        start = time.monotonic()
        self.deadline = start + self.ep.budget_s if self.ep.budget_s else None
        try:
            # Before any chat request: a profile that cannot fit this server is refused here.
            self.budget = self.p.budget(self._n_ctx())
            system = self.task.system or SYSTEM  # an imported trial keeps the recorded harness's prompt
            for policy in self.policies:
                system = policy.system(self, system)
            self.messages = [{"role": "system", "content": system}, *self.task.history,
                             {"role": "user", "content": self.task.instruction}]
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
        while self.p.max_turns is None or len(self.trial.turns) < self.p.max_turns:
            for policy in self.policies:
                policy.before_send(self)
            ans = self._send()
            if ans.error and any(policy.on_error(self, ans) for policy in self.policies):
                continue  # the same step again, from the changed conversation
            turn = self._record_turn(ans)
            if ans.error:
                self._end("error", error=self._error_text(ans))
                return
            self.messages.append(self._assistant_message(ans))
            if ans.tool_calls and not ans.cut:
                self._run_tools(ans, turn)
                stop = next((s for policy in self.policies if (s := policy.after_tools(self, ans, turn))), None)
                if stop:
                    self._end(stop, error=self.trial.error)
                    return
                continue
            say = next((s for policy in self.policies if (s := policy.on_end(self, ans, turn))), None)
            if say:
                self.follow_ups.said(say)
            else:
                say = self.follow_ups.next()  # the user's next prompt, as the recorded session had it
            if say:
                self.messages.append({"role": "user", "content": say})
                continue
            self._end(turn.stop_reason)
            return
        self._end("aborted", error=f"turn limit {self.p.max_turns} reached")

    def _end(self, stop_reason: str, error: str | None = None) -> None:
        self.trial.stop_reason, self.trial.error = stop_reason, error
        if stop_reason == "error":
            self.trial.outcome = "error"
        last = self.messages[-1]
        self.trial.final_text = (last.get("content") or "") if last["role"] == "assistant" else ""

    # -- one request ------------------------------------------------------------------
    def request_body(self, messages: list[dict], max_tokens: int, tools: bool = True) -> dict:
        body = {"model": self.ep.model, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": max_tokens}
        if tools:
            body["tools"] = pi_tools()
        for policy in self.policies:
            policy.request(self, body)
        return body

    def _send(self) -> Answer:
        body = self.request_body(self.messages, self.budget.max_tokens)
        guards = [g for policy in self.policies if (g := policy.stream_guard(self))]
        ans = self._stream(body, guards[0] if guards else None)
        if ans.usage.get("prompt_tokens"):
            self.chars_per_token = _chars(body) / ans.usage["prompt_tokens"]
        return ans

    def _stream(self, body: dict, detector: LoopDetector | None) -> Answer:
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
                        return Answer(resp.status_code, error=_error_of(resp))
                    return self._read_stream(resp, detector)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, SSEError) as e:
            raise InfraError(f"llama-server at {self.ep.url}: {type(e).__name__}: {e}. Is it running? "
                             "Start it (tbreplay server) or pass --server-url") from None

    def _read_stream(self, resp: httpx.Response, detector: LoopDetector | None) -> Answer:
        ans, calls = Answer(200), {}
        try:
            self._consume(iter_events(resp.iter_raw()), detector, ans, calls)
        except httpx.TimeoutException as e:
            if self.deadline and time.monotonic() >= self.deadline:  # the trial's budget, not a hung server
                raise TimeoutError(f"the trial's time budget of {self.ep.budget_s:.0f} s ran out "
                                   f"after {ans.tokens} tokens of an answer") from None
            ans.error = {"message": f"{type(e).__name__}: {e}"}
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

    @staticmethod
    def _consume(events, detector: LoopDetector | None, ans: Answer, calls: dict) -> None:
        # Text and arguments arrive a token at a time: gathered in lists and joined once, since
        # adding to a string held in an object copies it (O(n²) over a 32,000-token runaway).
        content, arguments = [], {}
        try:
            Run._consume_events(events, detector, ans, calls, content, arguments)
        finally:
            ans.content = "".join(content)
            for i, parts in arguments.items():
                calls[i]["function"]["arguments"] = "".join(parts)

    @staticmethod
    def _consume_events(events, detector: LoopDetector | None, ans: Answer, calls: dict,
                        content: list[str], arguments: dict[int, list[str]]) -> None:
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
                content.append(delta.get("content") or "")
                args = _merge_tool_calls(calls, arguments, delta.get("tool_calls") or [])
                if detector and ((text and detector.feed(text)) or (args and detector.feed_arguments(args))):
                    ans.cut, ans.finish_reason = True, "length"  # closing the stream cuts the turn
                    return
            if ans.tokens > 1 and last > first:
                ans.decode_tps = (ans.tokens - 1) / (last - first)

    # -- turn bookkeeping -------------------------------------------------------------
    def _record_turn(self, ans: Answer) -> Turn:
        stop = ("error" if ans.error else "length" if ans.finish_reason == "length"
                else "toolUse" if ans.tool_calls else "stop")
        completion = ans.tokens if ans.cut else ans.usage.get("completion_tokens", ans.tokens)
        # A cut stream never got its usage: the harness's own estimate of what it sent stands in.
        prompt = ans.usage.get("prompt_tokens") or round(_chars(self.trial.requests[-1]) / self.chars_per_token)
        turn = Turn(len(self.trial.turns), stop, prompt_tokens=prompt,
                    completion_tokens=completion, reasoning_tokens=ans.reasoning_tokens,
                    text_tokens=completion - ans.reasoning_tokens, compaction=self.compacted,
                    cut_by="loop_detector" if ans.cut else None, cut_at=ans.tokens if ans.cut else None,
                    tool_calls=_tool_names(ans.tool_calls),
                    decode_tps=ans.decode_tps, server_tps=ans.timings.get("predicted_per_second"))
        self.compacted = None
        self.trial.turns.append(turn)
        return turn

    @staticmethod
    def _assistant_message(ans: Answer) -> dict:
        msg = {"role": "assistant", "content": ans.content}
        if ans.tool_calls and not ans.cut:
            msg["tool_calls"] = ans.tool_calls
            if cut := ans.length_cut_call:
                # As pi sends it back: the cut arguments as parsed so far, so the server can read them.
                args = json.dumps(parse_partial_json(cut["function"]["arguments"]), ensure_ascii=False)
                msg["tool_calls"] = ans.tool_calls[:-1] + [dict(cut, function=dict(cut["function"], arguments=args))]
        return msg

    def _run_tools(self, ans: Answer, turn: Turn) -> None:
        for call in ans.tool_calls:
            name, raw = call["function"]["name"], call["function"]["arguments"]
            output = next((t for policy in self.policies if (t := policy.tool_call(self, call, ans))), None)
            if output is None:
                # pi runs what its streaming JSON parser made of the arguments, cut or not.
                args = parse_partial_json(raw) if call is ans.length_cut_call else _json_args(raw)
                if args is None:
                    output, is_error = f"invalid JSON arguments: {raw[:200]}", True
                else:
                    output, is_error = self.tools(call["id"], name, args)
                    turn.verifier_ran |= self.gate.observe(name, args, output, is_error)
                    for policy in self.policies:
                        policy.tool_result(self, name, args, output, is_error, turn)
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})

    # -- compaction -------------------------------------------------------------------
    def estimate(self) -> int:
        """Tokens of the next request: its size at the ratio the server last reported."""
        return round(_chars(self.request_body(self.messages, self.budget.max_tokens)) / self.chars_per_token)

    def compact(self, reason: str) -> bool:
        """pi's compaction: summarize the older messages with the model, keep the recent ones. The
        task instruction is never lost: the summary starts with it verbatim. Without a complete
        step to summarize (before the first answers) nothing is compacted; False then."""
        cut = self._cut_point()
        old, recent = self.messages[1:cut], self.messages[cut:]
        if not any(m["role"] == "assistant" for m in old):
            return False
        conversation = "\n\n".join(serialize(m) for m in old)
        body = self.request_body([{"role": "system", "content": SUMMARY_SYSTEM},
                                  {"role": "user", "content": f"<conversation>\n{conversation}\n</conversation>\n\n{SUMMARY_ASK}"}],
                                 self.budget.summary_tokens, tools=False)
        ans = self._stream(body, None)
        if ans.error:
            raise InfraError(f"compaction failed: {self._error_text(ans)}")
        summary = anchor(self.task.instruction, self.task.acceptance, self.gate.artifacts, self.p.anchored_summary) + "\n\n" + ans.content
        self.trial.compactions.append({"reason": reason, "tokens_before": self.estimate(), "summary": summary})
        self.messages = [self.messages[0], {"role": "user", "content": "The conversation so far was compacted "
                                            f"into this summary:\n<summary>\n{summary}\n</summary>"}, *recent]
        self.compacted = reason
        return True

    def _cut_point(self) -> int:
        """Keep the newest messages worth keep_recent_tokens, starting at an assistant turn so no
        tool result loses its call; always keep at least the last turn."""
        kept, cut = 0, len(self.messages)
        for i in range(len(self.messages) - 1, 1, -1):
            kept += len(json.dumps(self.messages[i])) / self.chars_per_token
            if self.messages[i]["role"] == "assistant":
                cut = i
                if kept >= self.budget.keep_recent_tokens:
                    break
        return cut

    def _n_ctx(self) -> int | None:
        deadline = min(time.monotonic() + LOAD_WAIT_S, self.deadline or float("inf"))
        return server_n_ctx(self.ep.url, self.client, deadline)

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
    def _error_text(ans: Answer) -> str:
        return f"{ans.error.get('code', ans.status)} {ans.error.get('message', ans.error)}"


def _json_args(raw: str) -> dict | None:
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        return None
    return args if isinstance(args, dict) else None


def _chars(body: dict) -> int:
    return len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))


def _error_of(resp: httpx.Response) -> dict:
    try:
        return resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {"code": resp.status_code, "message": resp.text[:500]}


def _merge_tool_calls(calls: dict, arguments: dict[int, list[str]], deltas: list[dict]) -> str:
    """Assemble streamed tool calls: id and name arrive once, arguments in pieces (kept in
    `arguments` by call index, for the caller to join). Returns this delta's arguments."""
    added = []
    for d in deltas:
        i = d.get("index", 0)
        call = calls.setdefault(i, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call["id"] = d.get("id") or call["id"]
        fn = d.get("function") or {}
        call["function"]["name"] += fn.get("name") or ""
        added.append(fn.get("arguments") or "")
        arguments.setdefault(i, []).append(added[-1])
    return "".join(added)


