"""Write tests/vectors/loopdetect.json: streams and where the Python LoopDetector trips on them.

Both implementations are checked against it: tests/test_loopdetect.py feeds every stream to
pytest_tbreplay.policies.loopdetect, and (through run_loopdetect.ts under Node) to harnesses/pi/extensions/lib/loopdetect.ts.
Regenerate after changing the algorithm or its parameters:
    PYTHONPATH=. python tests/vectors/make_loopdetect.py"""
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from loop_family import as_arguments, deltas, runaway, stdlib_text, tokens  # noqa: E402
from pytest_tbreplay.core import cassette as cs  # noqa: E402
from pytest_tbreplay.policies.loopdetect import LoopDetector  # noqa: E402


def pieces(text: str, seed: int, kind: str = "t") -> list[list[str]]:
    return [[kind, p] for _, p in deltas(tokens(text), random.Random(seed))]


def run(stream: list[list[str]]) -> dict:
    """Where the detector trips (the 1-based piece), by which rule and lag, and how many words of
    text and of arguments it had read by then."""
    d, at = LoopDetector(), None
    for i, (kind, piece) in enumerate(stream, 1):
        if (d.feed(piece) if kind == "t" else d.feed_arguments(piece)):
            at = i
            break
    lag = d.args_period.tripped_lag if d.rule == "arguments" else d.period.tripped_lag
    return {"tripped_at": at, "rule": d.rule, "lag": lag,
            "words": [d.period.base + len(d.period.raw), d.args_period.base + len(d.args_period.raw)]}


def cases() -> list[tuple[str, list[list[str]]]]:
    out = []
    for cycle, variation, onset, code, seed in [(10, 0.3, 200, 0.0, 1), (40, 0.2, 0, 0.3, 2), (120, 0.3, 600, 0.2, 3),
                                                (400, 0.1, 100, 0.5, 4), (700, 0.3, 50, 0.3, 5), (2000, 0.2, 300, 0.2, 6)]:
        r = runaway(cycle, variation, onset, code, seed)
        text = "".join(tokens(r.text)[:r.third + 700])
        out.append((f"runaway cycle {cycle} variation {variation}", pieces(text, seed)))
    c = cs.load(HERE.parent.parent / "cassettes" / "polyglot-rust-c.yaml")
    events = c.interactions[c.metadata["failure"]["interaction"]].events[1:-3]
    toks = [t for t in (json.loads(e)["choices"][0]["delta"].get("content") for e in events) if t]
    out.append(("polyglot-rust-c runaway (shuffled sentences)", [["t", t] for t in toks[:2500]]))
    for module, chars in [("argparse", 60_000), ("_pydecimal", 40_000), ("typing", 30_000), ("csv", 20_000)]:
        out.append((f"stdlib {module} as text", pieces(stdlib_text(module)[:chars], 7)))
    out.append(("stdlib textwrap as a write", pieces(as_arguments("/app/textwrap.py", stdlib_text("textwrap")), 8, "a")))
    block = stdlib_text("textwrap")[2000:3400]
    out.append(("a write repeating a block", pieces(as_arguments("/app/out.py", block * 4), 9, "a")))
    out.append(("a run of zeros in text (a degenerate loop)", pieces("0, " * 3000, 10)))
    out.append(("a table of zeros in a write", pieces(as_arguments("/app/t.c", "0, " * 3000), 10, "a")))
    out.append(("a word split across pieces", [["t", "com"], ["t", "pletely "], ["t", "diff"], ["t", "erent"]]))
    out.append(("escapes split across pieces", [["a", '{"content": "x = 1\\'], ["a", 'ny = 2\\'], ["a", "n"]]))
    return out


def main() -> None:
    vectors = {"params": LoopDetector().params(),
               "cases": [{"name": name, "stream": stream, "expect": run(stream)} for name, stream in cases()]}
    (HERE / "loopdetect.json").write_text(json.dumps(vectors, separators=(",", ":")) + "\n")
    for case in vectors["cases"]:
        print(case["name"], case["expect"])


if __name__ == "__main__":
    main()
