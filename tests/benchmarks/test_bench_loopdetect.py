"""Loop detector cost per streamed piece: `pytest -m benchmark tests/benchmarks -s`. Latency by cycle
length and the false-positive count on the full corpus: tests/benchmarks/loop_bench.py."""
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for loop_family
from loop_family import STDLIB_MODULES, as_arguments, deltas, stdlib_text, tokens  # noqa: E402
from pytest_tbreplay.policies.loopdetect import LoopDetector  # noqa: E402

pytestmark = pytest.mark.benchmark


@pytest.fixture(scope="module")
def stream():
    """32,000 tokens of legitimate source in 1-4 token pieces: the detector never trips, so every
    piece costs what a piece of a long legitimate answer costs."""
    toks = tokens("".join(stdlib_text(m) for m in STDLIB_MODULES))[:32_000]
    return [p for _, p in deltas(toks, random.Random(0))]


def test_feed_32000_tokens_of_text(benchmark, stream):
    def run():
        d = LoopDetector()
        return any(d.feed(p) for p in stream)

    assert benchmark(run) is False
    print(f"\nfeed(): {32_000 / benchmark.stats.stats.mean:,.0f} tokens/s")


def test_feed_arguments_of_a_32000_token_write(benchmark, stream):
    pieces = [p for _, p in deltas(tokens(as_arguments("/app/f.py", "".join(stream))), random.Random(1))]

    def run():
        d = LoopDetector()
        return any(d.feed_arguments(p) for p in pieces)

    assert benchmark(run) is False
