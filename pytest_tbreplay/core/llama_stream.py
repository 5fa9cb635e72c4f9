"""The SSE body llama-server streams for a chat completion, rebuilt from a finished answer.

An imported trial keeps what the model said, not the bytes the server sent. This writes those
bytes in the shape llama-server 11434 emits (tools/server/server-task.cpp): a role chunk, one chunk
per token delta, a finish chunk, a usage chunk with `timings`, then `data: [DONE]`; every chunk's
keys in the server's order. Where the source kept the deltas (MitigatedPi's pi.jsonl), they are
the chunks; otherwise the text is split into word pieces of about one token. Offsets are spread
evenly over the turn's wall time: the source has no per-chunk times."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

FINISH = {"stop": "stop", "length": "length", "toolUse": "tool_calls"}  # pi stopReason -> finish_reason


@dataclass
class ToolCall:
    id: str
    name: str
    pieces: list[str]  # the arguments' text as streamed


@dataclass
class Completion:
    """What one model call answered, and what it cost."""
    id: str
    model: str
    created: int  # unix seconds
    pieces: list[tuple[str, str]] = field(default_factory=list)  # ("content" | "reasoning_content", text)
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    seconds: float = 0.0  # wall time of the turn


def word_pieces(text: str) -> list[str]:
    """About one token each: a leading space sticks to its word, long words split in two."""
    out = []
    for t in re.findall(r" ?[A-Za-z]+| ?[0-9]{1,3}|\s+|[^\sA-Za-z0-9]", text):
        out += [t[:len(t) // 2], t[len(t) // 2:]] if len(t) > 9 else [t]
    return out


def _strings(texts: list[str]) -> list[str]:
    """Each text as a JSON string, encoded in one call: json.dumps per piece would dominate an
    import (a real trial has ~100k pieces). A raw newline never occurs inside an encoded string,
    so as the list's separator it splits the encoding exactly."""
    if not texts:
        return []
    return json.dumps(texts, ensure_ascii=False, separators=("\n", ":"))[1:-1].split("\n")


def _j(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sse(a: Completion) -> tuple[str, list[float]]:
    """The body and one time offset per event."""
    tail = f',"created":{a.created},"id":{_j(a.id)},"model":{_j(a.model)},"system_fingerprint":"b11434",' \
           f'"object":"chat.completion.chunk"}}'

    def chunk(delta: str, finish: str = "null") -> str:
        # Built as text: an imported trial has tens of thousands of chunks.
        return f'data: {{"choices":[{{"finish_reason":{finish},"index":0,"delta":{delta}}}]{tail}\n\n'

    events = [chunk('{"role":"assistant","content":null}')]
    pieces = [(kind, text) for kind, text in a.pieces if text]
    events += [chunk(f'{{"{kind}":{text}}}') for (kind, _), text in zip(pieces, _strings([t for _, t in pieces]))]
    for i, call in enumerate(a.tool_calls):
        head = {"index": i, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        events.append(chunk(f'{{"tool_calls":[{_j(head)}]}}'))
        events += [chunk(f'{{"tool_calls":[{{"index":{i},"function":{{"arguments":{p}}}}}]}}')
                   for p in _strings([p for p in call.pieces if p])]
    events.append(chunk("{}", _j(FINISH.get(a.finish, a.finish))))
    n = len(events) - 1
    usage = {"completion_tokens": a.completion_tokens, "prompt_tokens": a.prompt_tokens,
             "total_tokens": a.prompt_tokens + a.completion_tokens,
             "prompt_tokens_details": {"cached_tokens": a.cached_tokens}}
    ms = round(a.seconds * 1000, 3)
    timings = {"cache_n": a.cached_tokens, "prompt_n": a.prompt_tokens - a.cached_tokens, "prompt_ms": 0.0,
               "prompt_per_token_ms": 0.0, "prompt_per_second": 0.0,
               "predicted_n": a.completion_tokens, "predicted_ms": ms,
               "predicted_per_token_ms": round(ms / a.completion_tokens, 3) if a.completion_tokens else 0.0,
               "predicted_per_second": round(a.completion_tokens / a.seconds, 3) if a.seconds > 0 else 0.0}
    events.append(f'data: {{"choices":[]{tail[:-1]},"usage":{_j(usage)},"timings":{_j(timings)}}}\n\n')
    events.append("data: [DONE]\n\n")
    step = a.seconds / n if n else 0.0
    offsets = [0.0] + [round(step * k, 6) for k in range(1, n + 1)] + [round(a.seconds, 6)] * 2
    return "".join(events), offsets
