"""Replay-core performance: `pytest -m benchmark tests/benchmarks -s` (kept out of the default run).

Figures are ratios within one run or throughputs, never timed assertions in the normal suite."""
import json
from pathlib import Path

import httpx
import pytest
from vcr.persisters.filesystem import FilesystemPersister
from vcr.serializers import yamlserializer

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.policies.loopdetect import LoopDetector
from pytest_tbreplay.replay.engine import ReplayEngine
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.core.sse import iter_events

pytestmark = pytest.mark.benchmark
POLYGLOT = Path(__file__).resolve().parents[2] / "cassettes" / "polyglot-rust-c.yaml"


def test_load_polyglot_cassette(benchmark):
    c = benchmark(cs.load, POLYGLOT)
    assert len(c.interactions[4].events) == 32_004


def test_load_polyglot_with_vcrpy(benchmark):
    requests, responses = benchmark(FilesystemPersister.load_cassette, str(POLYGLOT), yamlserializer)[:2]
    assert len(requests) == 8


def test_replay_server_sse_chunks_per_second(benchmark):
    """The 32,000-token runaway streamed over loopback to an httpx client."""
    c = cs.load(POLYGLOT)
    body = c.interactions[4].request

    def stream():
        engine = ReplayEngine(c)
        engine.cursor = 4  # straight to the runaway turn
        with ReplayServer(engine) as server, httpx.Client(base_url=server.url) as client:
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                return sum(1 for _ in iter_events(r.iter_raw()))

    n = benchmark.pedantic(stream, rounds=5, iterations=1)
    rate = n / benchmark.stats.stats.median
    benchmark.extra_info["chunks_per_second"] = round(rate)
    print(f"\nreplay server -> httpx over loopback: {n} SSE chunks, {rate:,.0f} chunks/s (target >= 50,000)")
    assert n == 32_004


def test_loop_detector_tokens_after_the_loop_begins(benchmark):
    c = cs.load(POLYGLOT)
    runaway = c.interactions[c.metadata["failure"]["interaction"]]
    tokens = [t for t in (json.loads(e)["choices"][0]["delta"].get("content") for e in runaway.events[1:-3]) if t]

    def detect():
        d = LoopDetector()
        return next(i for i, t in enumerate(tokens, 1) if d.feed(t))

    cut = benchmark(detect)
    through = cut - c.metadata["failure"]["loop_start_token"]
    benchmark.extra_info["tokens_after_loop_start"] = through
    print(f"\nloop detector: cut at token {cut}, {through} tokens after the loop began "
          f"(target <= 2,048; baseline runs to 32,000)")
    assert through <= 2048
