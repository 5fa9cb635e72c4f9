"""The loop detector's figures: per family, the cut rate within the bound and the median latency;
cuts on the legitimate corpus; tokens/s on 64k-token streams (prose, code and every degenerate kind).
A script, not a test (minutes; docs/loop-detector.md has the last run's tables):

    PYTHONHASHSEED=0 PYTHONPATH=. python tests/benchmarks/loop_bench.py [--seeds 40] [--no-corpus]"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
import loop_corpus as corpus  # noqa: E402
import loop_family as families  # noqa: E402
from pytest_tbreplay.policies.loopdetect import LoopDetector  # noqa: E402


def family_rows(args: tuple[str, int]) -> dict:
    name, seeds = args
    lat, within, early, missed = [], 0, 0, 0
    for s in range(seeds):
        case = families.draw(name, random.Random(hash(name) % 10_007 * 1000 + s))
        d = LoopDetector()
        feed = d.feed if case.kind == "t" else d.feed_arguments
        n = next((n for n, piece in case.pieces(s) if feed(piece)), None)
        if n is None:
            missed += 1
            continue
        if n <= case.onset:
            early += 1
            continue
        lat.append(n - case.third)
        within += n - case.third <= families.BOUND
    return {"family": name, "n": seeds, "within": within, "early": early, "missed": missed,
            "median": statistics.median(lat) if lat else None, "max": max(lat) if lat else None}


def corpus_cuts(doc: tuple[str, str, str]) -> list[str]:
    kind, name, text = doc
    out = []
    for how, stream in [("text", text), ("write", json.dumps({"path": "/app/f", "content": text}))]:
        d = LoopDetector()
        feed = d.feed if how == "text" else d.feed_arguments
        for n, piece in families.deltas(families.tokens(stream), random.Random(0)):
            if feed(piece):
                out.append(f"{kind}: {name} as {how} at token {n} ({d.rule})")
                break
    return out


def streams() -> list[tuple[str, list[str], dict]]:
    """64k tokens of prose, of code, and of each degenerate kind (every rule that would trip turned
    off, so all 64k tokens are read: the worst case)."""
    src = "".join(p.read_text() for p in sorted(corpus.STDLIB.glob("[a-d]*.py"))[:40])
    prose = "".join(dict.fromkeys(families.prose_sentences()))  # the docs' sentences, each once
    # degenerate streams: every rule that would trip turned off, so all 64k tokens are read (worst case)
    worst = dict(run_min=10**9, few_chars=0, newlines_max=10**9, space_max=10**12, recur=2.0, run2=10**9,
                 min_run=10**9, sent_recur=2.0)
    out = [("prose (Python docs)", families.tokens(prose)[:64_000], {}),
               ("code (stdlib source)", families.tokens(src)[:64_000], {})]
    for key, (what, unit) in families.DEGENERATE.items():
        rng = random.Random(0)
        out.append((f"degenerate: {what}", [rng.choice(unit) for _ in range(64_000)], worst))
    return out


def throughput(rounds: int = 3) -> list[tuple[str, float]]:
    """Tokens per second of this process' CPU time, the best of `rounds`: on a shared machine the
    wall clock measures the neighbours, CPU time (mostly) the detector."""
    rows = []
    for what, toks, over in streams():
        pieces = [p for _, p in families.deltas(toks, random.Random(1))]
        best = float("inf")
        for _ in range(rounds):
            d = LoopDetector(**over)
            start = time.process_time()
            tripped = any(d.feed(p) for p in pieces)
            best = min(best, time.process_time() - start)
        rows.append((what + (" (tripped!)" if tripped else ""), len(toks) / best))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--no-corpus", action="store_true")
    a = ap.parse_args()
    print("## Throughput (Python, tokens per CPU second, best of 3; 64k tokens in 1-4 token pieces; degenerate "
          "streams with their tripping rules off, the worst case)\n\n| stream | tokens/s |\n|---|---|")
    for what, rate in throughput():
        print(f"| {what} | {rate:,.0f} |")
    with Pool(2) as pool:
        rows = pool.map(family_rows, [(f, a.seeds) for f in families.FAMILIES])
        print(f"\n## Families: cut within {families.BOUND} tokens of the third cycle's start "
              f"({a.seeds} draws each, cycle log-uniform up to 2,000 tokens, onset 0-3,000)\n")
        print("| family | within bound | early | never | median (tokens after 3rd start) | max |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['family']} | {r['within']}/{r['n']} ({r['within'] / r['n']:.0%}) | {r['early']} | {r['missed']} "
                  f"| {r['median']:+.0f} | {r['max']:+d} |" if r["median"] is not None else f"| {r['family']} | 0 | | | - | - |")
        if not a.no_corpus:
            docs = corpus.build()
            cuts = [c for r in pool.map(corpus_cuts, docs, chunksize=4) for c in r]
            kinds: dict[str, int] = {}
            for k, _, _ in docs:
                kinds[k] = kinds.get(k, 0) + 1
            print(f"\n## Legitimate corpus: {len(docs)} texts ({kinds}), each as text and as a write: {len(cuts)} cuts "
                  f"(missing tools: {corpus.MISSING or 'none'})\n")
            for c in cuts:
                print("-", c)


if __name__ == "__main__":
    main()
