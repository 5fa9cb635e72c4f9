"""What a running llama-server says of itself (/props): its per-slot n_ctx, read with the wait a
server still loading its model needs; a server that is down is `ServerDown`."""
from __future__ import annotations

import functools
import ssl
import time

import httpx

from pytest_tbreplay.core.loading import (
    LOAD_WAIT_S,
    StillLoading,
    is_loading,
    wait_until_loaded,
)
from pytest_tbreplay.core.trial import InfraError


def server_n_ctx(url: str, client: httpx.Client | None = None, deadline: float | None = None) -> int | None:
    """The server's per-slot n_ctx from /props (None where there is none: llama-swap's root, then
    auto sizes fail with a clear error); down, or still loading past the wait, is `infra`."""
    try:
        return n_ctx_of(read_props(url, client, deadline))
    except (ServerDown, StillLoading) as e:
        raise InfraError(str(e)) from None


# -- running it ---------------------------------------------------------------------------------

class LlamaServerError(RuntimeError):
    pass


# -- /props: the one place that reads it --------------------------------------------------------
class ServerDown(LlamaServerError):
    pass


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every short-lived client: httpx builds a new one (reading the CA bundle,
    tens of ms) per Client, and a replayed pi trial reads /props once."""
    return httpx.create_ssl_context()


def read_props(url: str, client: httpx.Client | None = None, deadline: float | None = None) -> dict | None:
    """llama-server's /props as JSON (through `client` when given: in replay, the replay transport),
    or None where there is none (llama-swap's root). The one /props reader: both harnesses, the
    server wrappers and the CLI ask through it. A server that is down raises ServerDown; one still
    loading its model (503) is waited for until `deadline` (time.monotonic(); default LOAD_WAIT_S
    from now), then StillLoading."""
    deadline = deadline or time.monotonic() + LOAD_WAIT_S
    own = client is None
    client = client or httpx.Client(base_url=url, timeout=30, verify=_tls())
    try:
        while is_loading((resp := _get_props(client, url)).status_code, resp.content):
            wait_until_loaded(client, url, deadline)
    finally:
        if own:
            client.close()
    try:
        return resp.json() if resp.status_code == 200 else None
    except ValueError:
        return None


def _get_props(client: httpx.Client, url: str) -> httpx.Response:
    try:
        return client.get("/props")
    except httpx.TransportError as e:
        raise ServerDown(f"llama-server at {url} is down ({e}): start it (tbreplay server) or "
                         "pass --server-url") from None


class BadAnswer(LlamaServerError):
    """A server answered /props (or llama-swap's /running) with something that is not what
    llama-server sends: named by URL and field, never a traceback later."""


def _bad(url: str, field: str, value) -> BadAnswer:
    return BadAnswer(f"{url}: {field} is {str(value)[:80]!r} ({type(value).__name__}), not what llama-server "
                     "answers: is this a llama-server (or llama-swap with --model)?")


def check_props(props, url: str) -> dict:
    """`props` (parsed /props JSON) if it has the shape everything here reads: an object whose
    default_generation_settings is an object with n_ctx a positive integer, params an object;
    total_slots a positive integer and model_alias text when present."""
    if not isinstance(props, dict):
        raise _bad(url, "the answer", props)
    gen = props.get("default_generation_settings")
    if not isinstance(gen, dict):
        raise _bad(url, "default_generation_settings", gen)
    n = gen.get("n_ctx")
    if type(n) is not int or n <= 0:
        raise _bad(url, "default_generation_settings.n_ctx", n)
    params = gen.get("params", {})
    if not isinstance(params, dict):
        raise _bad(url, "default_generation_settings.params", params)
    for key in ("dry_multiplier", "temperature", "top_k", "top_p"):  # what lint and recordings read as numbers
        if params.get(key) is not None and type(params[key]) not in (int, float):
            raise _bad(url, f"default_generation_settings.params.{key}", params[key])
    slots = props.get("total_slots", 1)
    if type(slots) is not int or slots <= 0:
        raise _bad(url, "total_slots", slots)
    for key in ("model_alias", "model_path"):
        if props.get(key) is not None and not isinstance(props[key], str):
            raise _bad(url, key, props[key])
    return props


def n_ctx_of(props: dict | None) -> int | None:
    """The context size in a /props answer (None when there is no answer or it lacks one)."""
    try:
        return int(props["default_generation_settings"]["n_ctx"])
    except (TypeError, KeyError, ValueError):
        return None
