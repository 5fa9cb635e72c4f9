"""A server still loading its model: llama-server answers every request (and /health) with
503 {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}} until the
model is in memory, and llama-swap passes that on while it starts one. That is not the model's
answer: wait for the server's own signal (/health turning 200), bounded, then give up as `infra`."""
from __future__ import annotations

import json
import time

import httpx

LOAD_WAIT_S = 300.0  # a big GGUF from a cold disk on a loaded CPU machine; far above SmolLM2's seconds


class StillLoading(Exception):
    """The server kept loading past the wait: an infrastructure failure, with the reason."""


def is_loading(status: int, body: bytes | str) -> bool:
    if status != 503:
        return False
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and "loading" in str(error.get("message", "")).lower()


def wait_until_loaded(client: httpx.Client, base_url: str, deadline: float) -> None:
    """Poll `base_url`/health until it answers 200, or raise StillLoading at `deadline`
    (time.monotonic()). A /health that is not llama-server's (404) counts as ready: the retry
    of the request itself then tells."""
    delay, start = 0.25, time.monotonic()
    while True:
        try:
            r = client.get(base_url.rstrip("/") + "/health", timeout=10.0)
            if r.status_code != 503:
                return
        except httpx.TransportError:
            pass  # restarting: keep waiting within the bound
        left = deadline - time.monotonic()
        if left <= 0:
            raise StillLoading(f"{base_url} was still loading its model (503 Loading model) after the "
                               f"{time.monotonic() - start:.0f} s of waiting; a bigger model or a slower disk needs more time")
        time.sleep(min(delay, left))
        delay = min(delay * 2, 5.0)
