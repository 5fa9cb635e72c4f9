"""Loop detector throughput: `pytest -m benchmark tests/benchmarks/test_bench_loopdetect.py -s` prints
tokens/s on 64k-token streams of prose, code and every degenerate kind (the target: >= 100k tokens/s
on prose in Python). Latency per family and the corpus' cuts: tests/benchmarks/loop_bench.py."""
import random
import sys
from pathlib import Path

import pytest

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from loop_bench import streams  # noqa: E402
from loop_family import deltas  # noqa: E402
from pytest_tbreplay.policies.loopdetect import LoopDetector  # noqa: E402

pytestmark = pytest.mark.benchmark
STREAMS = streams()


@pytest.mark.parametrize("stream", STREAMS, ids=[s[0] for s in STREAMS])
def test_feed_64k_tokens(benchmark, stream):
    what, toks, over = stream
    pieces = [p for _, p in deltas(toks, random.Random(1))]

    def run():
        d = LoopDetector(**over)
        return any(d.feed(p) for p in pieces)

    tripped = benchmark.pedantic(run, rounds=1, iterations=1)
    print(f"\n{what}: {len(toks) / benchmark.stats.stats.mean:,.0f} tokens/s" + (" (tripped)" if tripped else ""))
