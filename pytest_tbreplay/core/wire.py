"""TODO-DOC"""
from __future__ import annotations

from pytest_tbreplay.core.cassette import EXCEED_TYPE


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
