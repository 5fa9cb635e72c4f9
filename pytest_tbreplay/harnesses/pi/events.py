"""pi's JSON events (print and RPC mode) turned into the turns of a `Trial`, and pi's messages
into the OpenAI-style messages the reference harness keeps."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pytest_tbreplay.core.trial import Trial, Turn
from pytest_tbreplay.policies.gate import VerifyGate

# One message_update per streamed token: classified by its fixed parts, never parsed. pi 0.73.1
# (and launch.SLIM_UPDATES_JS) print assistantMessageEvent first; pi >= 0.84 prints a delta-only
# line with "usage" before it: {"type":"message_update","usage":{...},"assistantMessageEvent":{...}}
_UPDATE = b'{"type":"message_update"'
_EVENT_TYPE = b'"assistantMessageEvent":{"type":"'
_TOKEN_EVENTS = {b"text_delta": "text", b"thinking_delta": "reasoning", b"toolcall_delta": "tool"}


def update_kind(line: bytes) -> str | None:
    """For a message_update line: the kind of token it streams (text, reasoning, tool), or "" for
    another update (start, end of a block); None for every other line. message_end, not these, is
    what a turn is built from (pi >= 0.84's updates carry deltas only)."""
    if not line.startswith(_UPDATE):
        return None
    at = line.find(_EVENT_TYPE)
    if at < 0:
        return ""
    at += len(_EVENT_TYPE)
    return _TOKEN_EVENTS.get(line[at:line.find(b'"', at)], "")


@dataclass
class _Streaming:
    """Token events of the assistant message being streamed."""
    tokens: int = 0
    reasoning: int = 0
    first: float | None = None
    last: float | None = None


@dataclass
class _TrialBuilder:
    """Turns pi's events into the Trial, event by event."""
    trial: Trial
    streaming: _Streaming = field(default_factory=_Streaming)
    compaction: str | None = None  # a finished compaction the next turn starts from
    compacted_turns: dict[int, str] = field(default_factory=dict)  # turn index -> reason (proactive_compaction.ts)
    gate: VerifyGate = field(default_factory=VerifyGate)  # for telemetry: which turns checked output
    tool_args: dict[str, tuple[str, dict]] = field(default_factory=dict)  # running tool calls by id
    cut_messages: dict[int, int] = field(default_factory=dict)  # assistant message ordinal the loop guard cut -> tokens then
    conversation: list[dict] = field(default_factory=list)  # pi messages, for print mode
    last_assistant: dict | None = None

    def token(self, kind: str, at: float) -> None:
        s = self.streaming
        s.tokens += 1
        s.reasoning += kind == "reasoning"
        s.first, s.last = s.first or at, at

    def event(self, e: dict) -> None:
        t = e.get("type")
        if t == "message_start" and e["message"]["role"] == "assistant":
            self.streaming = _Streaming()
        elif t == "message_end":
            self.conversation.append(e["message"])
            if e["message"]["role"] == "assistant":
                self._turn(e["message"])
        elif t == "tool_execution_start":
            self.tool_args[e["toolCallId"]] = (e["toolName"], e.get("args") or {})
        elif t == "tool_execution_end" and e["toolCallId"] in self.tool_args and self.trial.turns:
            name, args = self.tool_args.pop(e["toolCallId"])
            output = _text(e.get("result") or {})
            self.trial.turns[-1].verifier_ran |= self.gate.observe(name, args, output, bool(e.get("isError")))
        elif t == "compaction_end" and e.get("result"):
            r = e["result"]
            self.trial.compactions.append({"reason": e["reason"], "tokens_before": r["tokensBefore"],
                                           "summary": r["summary"]})
            self.compaction = e["reason"]

    def _turn(self, m: dict) -> None:
        s, usage, index = self.streaming, m.get("usage") or {}, len(self.trial.turns)
        cut = index in self.cut_messages
        calls = [c for c in m["content"] if c["type"] == "toolCall"]
        # An aborted stream has no usage block: count what arrived, as the reference does.
        completion = usage.get("output") or (s.tokens if m["stopReason"] == "aborted" else 0)
        turn = Turn(index, "length" if cut else m["stopReason"],  # the reference reports a cut as a length stop
                    prompt_tokens=usage.get("input", 0) + usage.get("cacheRead", 0),
                    completion_tokens=completion, reasoning_tokens=s.reasoning,
                    text_tokens=completion - s.reasoning,
                    compaction=self.compaction or self.compacted_turns.pop(index, None),
                    cut_by="loop_detector" if cut else None, cut_at=self.cut_messages.get(index),
                    tool_calls=[c["name"] for c in calls],
                    decode_tps=(s.tokens - 1) / (s.last - s.first) if s.tokens > 1 and s.last > s.first else None)
        self.compaction = None
        self.trial.turns.append(turn)
        self.last_assistant = m

    def finish(self, messages: list[dict] | None) -> None:
        tr, last = self.trial, self.last_assistant
        tr.messages = [openai_message(m) for m in (messages if messages is not None else self.conversation)]
        tr.messages = [m for m in tr.messages if m]
        if last is None:
            if tr.outcome == "completed":
                tr.outcome, tr.error = "infra", "pi answered nothing"
            tr.stop_reason = "error"
            return
        tr.stop_reason = tr.turns[-1].stop_reason
        tr.final_text = _text(last)
        if last["stopReason"] == "error":
            tr.outcome, tr.error = "error", last.get("errorMessage")


def _text(m: dict) -> str:
    content = m.get("content")
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or [] if c.get("type") == "text")


def openai_message(m: dict) -> dict | None:
    """A pi session message in the chat format the reference harness keeps."""
    role = m.get("role")
    if role == "user":
        return {"role": "user", "content": _text(m)}
    if role == "assistant":
        out = {"role": "assistant", "content": _text(m)}
        calls = [c for c in m["content"] if c["type"] == "toolCall"]
        if calls:
            out["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                "name": c["name"], "arguments": json.dumps(c.get("arguments") or {})}} for c in calls]
        return out
    if role == "toolResult":
        return {"role": "tool", "tool_call_id": m["toolCallId"], "content": _text(m)}
    if role == "compactionSummary":
        return {"role": "user", "content": m.get("summary", "")}
    return None


class RunState:
    """Whether pi in RPC mode is really idle, from its events. A run may be followed by more work
    pi starts itself: a compaction (compaction_start after agent_end), the retry after an overflow
    compaction (compaction_end willRetry, then agent.continue() 100 ms later), an auto-retry. So
    after anything that may have left pi idle the driver asks (get_state, answered after whatever
    pi emits synchronously with agent_end), and pi is idle only if nothing started meanwhile and
    pi itself says it is neither streaming nor compacting."""

    def __init__(self):
        self.prompting, self.busy, self.compacting, self.retry = True, False, False, False
        self.asked: str | None = None  # the id of the get_state in flight

    def prompted(self) -> None:
        self.prompting = True

    def event(self, e: dict) -> str | None:
        """"ask" (send get_state), "idle" (pi is idle: say the next thing or stop), or None."""
        t = e.get("type")
        if t == "agent_start":
            self.prompting, self.busy, self.retry = False, True, False
        elif t == "agent_end":
            self.busy = False
        elif t == "compaction_start":
            self.compacting = True
        elif t == "compaction_end":
            self.compacting, self.retry = False, self.retry or bool(e.get("willRetry"))
        elif t == "auto_retry_start":
            self.retry = True
        elif t == "response" and self.asked and e.get("id") == self.asked:
            self.asked, data = None, e.get("data") or {}
            if self.prompting or self.busy or self.compacting or self.retry or data.get("isStreaming") \
                    or data.get("isCompacting"):
                return None
            return "idle"
        if t in ("agent_end", "compaction_end") and not self.asked:
            return "ask"
        return None
