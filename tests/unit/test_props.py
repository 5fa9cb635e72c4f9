"""The one /props reader (llama.read_props): through a transport in replay, None where a proxy has no
/props, and a server that is down named as such."""
import socket
from pathlib import Path

import httpx
import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.props import ServerDown, n_ctx_of, read_props
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayTransport

SENTINEL = Path(__file__).parents[1] / "cassettes" / "sentinel.yaml"


def test_props_through_the_replay_transport_give_the_recorded_n_ctx():
    engine = ReplayEngine(cs.load(SENTINEL))
    with httpx.Client(base_url="http://replay", transport=ReplayTransport(engine)) as client:
        assert n_ctx_of(read_props("http://replay", client)) == 262144


def test_a_server_without_props_gives_none():
    no_props = httpx.MockTransport(lambda request: httpx.Response(404, text="llama-swap: no such route"))
    with httpx.Client(base_url="http://swap", transport=no_props) as client:
        assert read_props("http://swap", client) is None and n_ctx_of(None) is None


def test_a_server_that_is_down_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ServerDown, match=rf"127.0.0.1:{port} is down .*--server-url"):
        read_props(f"http://127.0.0.1:{port}")


def _loading_then_ready(loading_answers: int):
    """A server answering /props and /health with 503 Loading model `loading_answers` times in all."""
    seen = []

    def answer(request):
        seen.append(request.url.path)
        if len(seen) <= loading_answers:
            return httpx.Response(503, json={"error": {"code": 503, "message": "Loading model",
                                                       "type": "unavailable_error"}})
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        return httpx.Response(200, json={"default_generation_settings": {"n_ctx": 4096}})
    return httpx.MockTransport(answer), seen


def test_a_server_still_loading_is_waited_for_through_its_health():
    transport, seen = _loading_then_ready(3)
    with httpx.Client(base_url="http://loading", transport=transport) as client:
        assert n_ctx_of(read_props("http://loading", client)) == 4096
    assert seen == ["/props", "/health", "/health", "/health", "/props"]


def test_a_server_loading_past_the_deadline_is_still_loading_and_in_a_harness_infra():
    import time

    from pytest_tbreplay.core.trial import InfraError
    from pytest_tbreplay.core.props import server_n_ctx
    from pytest_tbreplay.core.loading import StillLoading
    transport, _ = _loading_then_ready(10**6)
    with httpx.Client(base_url="http://loading", transport=transport) as client:
        with pytest.raises(StillLoading, match="still loading"):
            read_props("http://loading", client, deadline=time.monotonic() + 0.3)
        with pytest.raises(InfraError, match="still loading"):
            server_n_ctx("http://loading", client, deadline=time.monotonic() + 0.3)
