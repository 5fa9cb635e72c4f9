"""llama-server's wire vocabulary, in one place: its context-overflow error, how a request asks
for max tokens, and a message's text as the server sees it.

The overflow error (upstream-2026-12): admission answers HTTP 400 `type: exceed_context_size_error`
with `n_prompt_tokens` and `n_ctx`; an overflow in the middle of decoding answers 500 "Context size
has been exceeded." Its message text changed between versions, so code matches the `type` and the
numbers, and reads the text only where a client kept nothing else (pi keeps only the message)."""
from __future__ import annotations

import json
import re

EXCEED_TYPE = "exceed_context_size_error"  # llama-server's 400 for a prompt over the context
# The text forms: llama-server's current and older admission messages, its mid-decode 500, and
# what OpenAI-compatible front ends (llama-swap passes llama-server's through) say.
OVERFLOW_TEXT = re.compile(r"exceeds the available context size|context size has been exceeded|"
                           r"context length|maximum context", re.I)
# The current admission message carries both numbers: what the trial asked for and the server's n_ctx.
OVERFLOW_SIZES = re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)")


def max_tokens_of(request: dict) -> int | None:
    # llama-server's precedence: the first one found wins.
    for key in ("n_predict", "max_completion_tokens", "max_tokens"):
        if request.get(key) is not None:
            n = int(request[key])
            return n if n >= 0 else None  # -1: no limit
    return None


def message_text(m: dict) -> str:
    content = m.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    calls = "".join(f" {c['function']['name']}({c['function']['arguments']})" for c in m.get("tool_calls") or [])
    return (content or "") + calls


def exceed_body(n_prompt: int, n_ctx: int) -> dict:
    # Byte for byte what llama-server answers (tools/server/server-context.cpp).
    return {"error": {"code": 400, "message": f"request ({n_prompt} tokens) exceeds the available context "
                      f"size ({n_ctx} tokens), try increasing it", "type": EXCEED_TYPE,
                      "n_prompt_tokens": n_prompt, "n_ctx": n_ctx}}


def is_overflow(status: int, body: str) -> bool:
    """Whether an answer is llama-server's context-overflow 400 (by its type, not its text)."""
    return status == 400 and EXCEED_TYPE in body


def is_overflow_error(error: dict) -> bool:
    """Whether a parsed `error` object is the overflow (its type, or the text where a proxy lost it)."""
    return error.get("type") == EXCEED_TYPE or bool(OVERFLOW_TEXT.search(str(error.get("message") or "")))


def overflow_sizes(text: str) -> tuple[int, int] | None:
    """(n_prompt_tokens, n_ctx) from an overflow message that carries them (pi keeps only the text)."""
    m = OVERFLOW_SIZES.search(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def overflow_n_prompt(body: str) -> int:
    """n_prompt_tokens of a recorded overflow 400."""
    return json.loads(body)["error"]["n_prompt_tokens"]
