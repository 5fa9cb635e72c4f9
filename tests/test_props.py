"""The one /props reader (llama.read_props): through a transport in replay, None where a proxy has no
/props, and a server that is down named as such."""
import socket
from pathlib import Path

import httpx
import pytest

from pytest_tbreplay import cassette as cs
from pytest_tbreplay.llama import ServerDown, n_ctx_of, read_props
from pytest_tbreplay.replay import ReplayEngine, ReplayTransport

SENTINEL = Path(__file__).parent / "cassettes" / "sentinel.yaml"


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
