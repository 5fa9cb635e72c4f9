"""Write tests/vectors/loopdetect.json: streams and where the Python LoopDetector trips on them.

Both implementations are checked against it: tests/unit/test_loopdetect.py feeds every stream to
pytest_tbreplay.policies.loopdetect, and (through run_loopdetect.ts under Node) to
harnesses/pi/extensions/lib/loopdetect.ts. The streams are stored, so the file does not depend on
the machine that checks it. Regenerate after changing the algorithm or its parameters:
    PYTHONPATH=. python tests/vectors/make_loopdetect.py"""
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

import loop_corpus  # noqa: E402
import loop_family  # noqa: E402
from loop_family import as_arguments, deltas, stdlib_text, tokens  # noqa: E402
from pytest_tbreplay.core import cassette as cs  # noqa: E402
from pytest_tbreplay.policies.loopdetect import LoopDetector  # noqa: E402


def pieces(text: str, seed: int, kind: str = "t") -> list[list[str]]:
    return [[kind, p] for _, p in deltas(tokens(text), random.Random(seed))]


def run(stream: list[list[str]], params: dict | None = None) -> dict:
    """Where the detector trips (the 1-based piece), by which rule, the lag of each stream's
    diagonals, and how many words of text and of arguments it had read by then."""
    d, at = LoopDetector(**(params or {})), None
    for i, (kind, piece) in enumerate(stream, 1):
        if d.feed(piece) if kind == "t" else d.feed_arguments(piece):
            at = i
            break
    return {"tripped_at": at, "rule": d.rule, "words": [d.text.pos, d.args.pos],
            "lag": [d.text.lag, d.args.lag, d.text.wlag, d.args.wlag]}


def cases() -> list[tuple[str, list[list[str]]]]:
    out = []
    for i, name in enumerate(loop_family.FAMILIES):  # one case of every family, cut a little after the bound
        c = loop_family.draw(name, random.Random(1000 + i))
        toks = c.toks[:c.third + 700]
        out.append((f"{name} ({c.family}, cycle {c.cycle})", [[c.kind, p] for _, p in deltas(toks, random.Random(i))]))
    c = cs.load(HERE.parent.parent / "cassettes" / "polyglot-rust-c.yaml")
    events = c.interactions[c.metadata["failure"]["interaction"]].events[1:-3]
    toks = [t for t in (json.loads(e)["choices"][0]["delta"].get("content") for e in events) if t]
    out.append(("polyglot-rust-c runaway (shuffled sentences)", [["t", t] for t in toks[:2500]]))
    for module, chars in [("argparse", 30_000), ("typing", 20_000)]:
        out.append((f"stdlib {module} as text", pieces(stdlib_text(module)[:chars], 7)))
    out.append(("stdlib textwrap as a write", pieces(as_arguments("/app/textwrap.py", stdlib_text("textwrap")), 8, "a")))
    docs = loop_corpus.build(limit=6_000)
    rng = random.Random(7)
    for kind in ["binary dump", "release notes", "API docs", "function-family docs", "data table", "log", "code"]:
        for _, name, text in rng.sample([d for d in docs if d[0] == kind], 1):
            out.append((f"legit as text: {name}", pieces(text, 1)))
            out.append((f"legit as write: {name}", pieces(as_arguments("/app/f", text), 2, "a")))
    out.append(("a word split across pieces", [["t", "com"], ["t", "pletely "], ["t", "diff"], ["t", "erent"]]))
    out.append(("escapes split across pieces", [["a", '{"content": "x = 1\\'], ["a", 'ny = 2\\'], ["a", "n"]]))
    out.append(("astral characters and a long word", [["t", "😂好" * 40 + " x"], ["t", " é" * 10 + "a" * 300]]))
    out.append(("code points as values", pieces("<U0041> <U0042> U+00E9 " * 200, 11)))
    c = loop_family.sentence_ops(60, 200, 5)  # short cycles, a sentence dropped/added/swapped each: the sentence rule
    out.append((f"sentence ops, cycle 60 ({c.third - c.onset} tokens to the third)", pieces("".join(c.toks[:c.third + 600]), 12)))
    src = stdlib_text("encodings/aliases")  # numbered blocks, the same lines: a known cut (docs/README-loop2.md)
    out.append(("numbered alias blocks as text", pieces(src[src.index("# iso8859_10"):][:4_000], 14)))
    src = stdlib_text("statistics")  # Python float literals (1.42151_17583_16445_88870e-7) are values, not names
    at = src.index("def _normal_dist_inv_cdf")
    out.append(("float literals as a write", pieces(as_arguments("/app/statistics.py", src[at:at + 6_000]), 13, "a")))
    return out


def main() -> None:
    vectors = {"params": LoopDetector().params(),
               "cases": [{"name": name, "stream": stream, "expect": run(stream)} for name, stream in cases()]}
    (HERE / "loopdetect.json").write_text(json.dumps(vectors, separators=(",", ":"), ensure_ascii=False) + "\n")
    for case in vectors["cases"]:
        print(case["name"], case["expect"])


if __name__ == "__main__":
    main()
