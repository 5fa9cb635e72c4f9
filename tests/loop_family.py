"""Runaways for the loop detector, as a model would stream them: one generated family per category
of runaway (issue 20), each drawn by hypothesis in tests/unit/test_loopdetect.py and measured by
tests/benchmarks/loop_bench.py. The legitimate texts are in tests/loop_corpus.py.

Every case is a legitimate lead (real text of this machine: stdlib source or the Python docs' prose)
followed by a cycle that comes back again and again with the family's kind of change. Token counts
use GPT-2's pre-tokenizer (TOKEN); the degenerate families are built token by token (a model emits
`}` or `ha` a token at a time; the regex would glue a run of them into one token). A case knows its
onset (tokens before the loop) and `third` (tokens before its third cycle began); the bar: a cut in
(onset, third + 512]."""
from __future__ import annotations

import json
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


_SENTENCES: dict[tuple[int, int], list[str]] = {}


def prose_sentences(shortest: int = 4, longest: int = 60) -> list[str]:
    """Sentences of the Python documentation (pydoc's topics): real prose that does not repeat."""
    if (shortest, longest) not in _SENTENCES:
        from pydoc_data.topics import topics
        text = re.sub(r"\s+", " ", re.sub(r"[*=\-~^`]{3,}", " ", " ".join(topics.values())))
        # pydoc's topics share sections ("exceptions" is in "execmodel" too): each sentence once
        _SENTENCES[shortest, longest] = list(dict.fromkeys(
            s.strip() + ". " for s in text.split(". ") if shortest <= len(s.split()) <= longest))
    return _SENTENCES[shortest, longest]


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


def as_arguments(path: str, text: str) -> str:
    """A write call's arguments as the model streams them: JSON, newlines escaped."""
    return json.dumps({"path": path, "content": text})


# -- the families of issue 20 -----------------------------------------------------------------------
BOUND = 512  # a cut must land within this many tokens of the third cycle's start
LEAD_MODULES = ["argparse", "textwrap", "json/decoder", "http/server", "email/message", "typing", "dataclasses",
                "inspect", "tarfile", "pathlib", "subprocess", "difflib", "ast", "statistics", "csv"]


def lead_text(rng: random.Random, n_tokens: int) -> str:
    """A legitimate lead of about n_tokens: stdlib source or docs prose."""
    if n_tokens <= 0:
        return ""
    if rng.random() < 0.5:
        src = stdlib_text(rng.choice(LEAD_MODULES))
        text = "".join(tokens(src[rng.randrange(len(src) // 2):])[:n_tokens])
    else:
        p = prose_sentences(5, 40)
        s, parts, size = rng.randrange(len(p)), [], 0
        while size < n_tokens:
            parts.append(p[s % len(p)])
            size += len(tokens(parts[-1]))
            s += 1
        text = "".join(parts)
    return text.rstrip() + "\n\n"


# -- thinking-style sentences (an agent's reasoning), from a small grammar --------------------------
SUBJ = ["the build", "the test", "the parser", "the config loader", "the function", "the server", "the output",
        "the cache", "the import", "the linker", "the script", "the migration", "the fixture", "the query"]
VERB = ["fails", "breaks", "hangs", "returns the wrong value", "crashes", "times out", "prints nothing",
        "raises an error", "skips the file", "loses the header"]
ACT = ["check", "look at", "inspect", "re-read", "go back to", "verify", "examine", "reconsider"]
OBJ = ["the error message", "the stack trace", "the Makefile", "the environment", "the previous output",
       "the input file", "the flags", "the path", "the docs", "the return code", "the log", "the version"]
CONNECTIVES = ["Wait,", "Hold on,", "Hmm, wait,", "Actually,", "But wait,", "Hmm,", "No, wait,", "Oh wait,",
               "Let me think.", "OK so", "Right,", "Hmm, actually,"]
SYN = {"check": ["look at", "inspect", "verify"], "fails": ["breaks", "errors out", "does not work"],
       "again": ["once more", "one more time", "again"], "maybe": ["perhaps", "possibly", "it could be that"],
       "the problem": ["the issue", "the bug", "what is wrong"], "I think": ["I believe", "it seems", "probably"],
       "try": ["attempt", "test", "try out"], "because": ["since", "as", "given that"]}


def thinking_sentence(rng: random.Random) -> str:
    forms = [
        lambda: f"I think {rng.choice(SUBJ)} {rng.choice(VERB)} because of {rng.choice(OBJ)}.",
        lambda: f"Let me {rng.choice(ACT)} {rng.choice(OBJ)} again.",
        lambda: f"Maybe the problem is that {rng.choice(SUBJ)} {rng.choice(VERB)} when {rng.choice(OBJ)} changes.",
        lambda: f"So {rng.choice(SUBJ)} {rng.choice(VERB)}, and I need to try a different approach.",
        lambda: f"If I {rng.choice(ACT)} {rng.choice(OBJ)}, then {rng.choice(SUBJ)} should work.",
        lambda: f"I already tried to {rng.choice(ACT)} {rng.choice(OBJ)} and {rng.choice(SUBJ)} still {rng.choice(VERB)}.",
    ]
    return rng.choice(forms)()


def sentences(rng: random.Random, n_tokens: int, thinking: float) -> list[str]:
    """Sentences worth about n_tokens: docs prose mixed with thinking sentences."""
    p = prose_sentences(5, 40)
    s, out, size = rng.randrange(len(p)), [], 0
    while size < n_tokens:
        if rng.random() < thinking:
            sent = thinking_sentence(rng) + " "
        else:
            sent, s = p[s % len(p)], s + 1
        out.append(sent)
        size += len(tokens(sent))
    return out


def paraphrase(sentence: str, rng: random.Random) -> str:
    """Another wording: synonyms, an opener, or a clause moved."""
    words = sentence.split()
    out = sentence
    for key in rng.sample(sorted(SYN), len(SYN)):
        if key in out and rng.random() < 0.7:
            out = out.replace(key, rng.choice(SYN[key]), 1)
    if out == sentence:
        k = rng.randrange(3)
        if k == 0 and len(words) > 4:
            i = rng.randrange(1, len(words) - 1)
            out = " ".join(words[i:]).rstrip(". ") + ", " + " ".join(words[:i]).lower() + ". "
        elif k == 1:
            out = rng.choice(["In other words, ", "That is, ", "Put differently, ", "Again, "]) + sentence[0].lower() + sentence[1:]
        else:
            i = rng.randrange(len(words))
            words[i] = rng.choice(["really", "actually", "still", "just", "also", "then"]) + " " + words[i]
            out = " ".join(words) + " "
    return out if out.endswith(" ") else out + " "


@dataclass
class Case:
    family: str
    toks: list[str]
    onset: int
    third: int
    kind: str = "t"  # t: text, a: a write's arguments
    cycle: int = 0

    def pieces(self, seed: int) -> list[tuple[int, str]]:
        return deltas(self.toks, random.Random(seed))


def _assemble(family: str, lead: str, cycles: list[str], kind: str = "t", cap_extra: int = 1500) -> Case:
    """Lead + cycles as one stream; onset and third counted in tokens of the stream as streamed."""
    if kind == "a":
        whole = json.dumps({"path": "/app/out.py", "content": lead + "".join(cycles)})
        pre = lambda n: len(tokens(json.dumps({"path": "/app/out.py", "content": lead + "".join(cycles[:n])})[:-2]))  # noqa: E731
        onset = len(tokens(json.dumps({"path": "/app/out.py", "content": lead})[:-2]))
    else:
        whole = lead + "".join(cycles)
        pre = lambda n: len(tokens(lead + "".join(cycles[:n])))  # noqa: E731
        onset = len(tokens(lead))
    return Case(family, tokens(whole), onset, pre(2), kind, pre(1) - onset)


def _repeat(make_cycle, cycle_tokens: int, minimum: int = 5) -> list[str]:
    """Cycles from make_cycle(i) until there are `minimum` and 3 cycles + 1,500 tokens."""
    out, size = [], 0
    while len(out) < minimum or size < 2 * cycle_tokens + 1500 + BOUND:
        out.append(make_cycle(len(out)))
        size += len(tokens(out[-1]))
    return out


def verbatim(cycle: int, onset: int, seed: int) -> Case:
    rng = random.Random(seed)
    base = "".join(sentences(rng, cycle, rng.random() * 0.6))
    return _assemble("verbatim prose", lead_text(rng, onset), _repeat(lambda i: base, cycle))


VOCAB = ("really just also now then still maybe probably quickly carefully first again here there simply "
         "the a an this that it very quite more less exactly").split()


def indel(cycle: int, onset: int, seed: int) -> Case:
    """One word inserted or deleted per cycle (relative to the first), anywhere."""
    rng = random.Random(seed)
    base = "".join(sentences(rng, cycle, rng.random() * 0.6)).split(" ")

    def make(i: int) -> str:
        if i == 0:
            return " ".join(base)
        words = list(base)
        j = rng.randrange(len(words) - 1)
        if rng.random() < 0.5:
            words.insert(j, rng.choice(VOCAB + [w for w in base if w][:50]))
        else:
            del words[j]
        return " ".join(words)
    return _assemble("one word inserted/deleted", lead_text(rng, onset), _repeat(make, cycle))


def connectives(cycle: int, onset: int, seed: int) -> Case:
    """A thinking paragraph whose connectives change every cycle ("Wait," / "Hold on," / "Hmm, wait,")."""
    rng = random.Random(seed)
    sents = sentences(rng, cycle, 0.8)
    slots = sorted(rng.sample(range(len(sents)), max(1, min(len(sents), 1 + len(sents) // 3))))

    def make(i: int) -> str:
        return "".join((rng.choice(CONNECTIVES) + " " + s[0].lower() + s[1:]) if j in slots else s
                       for j, s in enumerate(sents)) + "\n\n"
    return _assemble("thinking, changing connectives", lead_text(rng, onset), _repeat(make, cycle))


def sentence_ops(cycle: int, onset: int, seed: int) -> Case:
    """A sentence dropped, added (from a few the model keeps coming back to) or reordered per cycle."""
    rng = random.Random(seed)
    sents = sentences(rng, cycle, 0.5)
    extra = sentences(rng, 60, 0.7)[:3]

    def make(i: int) -> str:
        s = list(sents)
        op = rng.randrange(3) if i else -1
        if op == 0 and len(s) > 1:
            del s[rng.randrange(len(s))]
        elif op == 1:
            s.insert(rng.randrange(len(s) + 1), rng.choice(extra))
        elif op == 2 and len(s) > 1:
            a, b = rng.sample(range(len(s)), 2)
            s[a], s[b] = s[b], s[a]
        return "".join(s) + "\n"
    return _assemble("sentence dropped/added/reordered", lead_text(rng, onset), _repeat(make, cycle))


def drift(cycle: int, onset: int, seed: int) -> Case:
    """Slow drift: each cycle the previous one with one sentence paraphrased."""
    rng = random.Random(seed)
    state = sentences(rng, cycle, 0.7)

    def make(i: int) -> str:
        if i:
            j = rng.randrange(len(state))
            state[j] = paraphrase(state[j], rng)
        return "".join(state) + "\n"
    return _assemble("slow drift (a sentence paraphrased per cycle)", lead_text(rng, onset), _repeat(make, cycle))


FN = ["retry", "parse", "load", "merge", "encode", "decode", "flush", "connect", "render", "resolve", "split", "sort"]
HELPERS = ["make_input", "build_case", "fixture", "sample", "payload", "gen_data"]


def _py_block(rng: random.Random, cycle: int):
    name, helper, fn = rng.choice(FN), rng.choice(HELPERS), rng.choice(FN)
    body = [f"    data = {helper}({{n}})", f"    result = {fn}(data, attempts={rng.randint(2, 9)})"]
    extra = ["    assert result.ok, 'case {n} failed'", "    assert not result.errors",
             "    log.debug('checked %s', data)", f"    result = {fn}(result, strict=True)",
             "    assert isinstance(result.value, int)", f"    assert len(result.items) == {rng.randint(1, 5)}",
             "    data.reset()", f"    assert result.name == '{name}_{{n}}'"]
    size = len(tokens("\n".join(body)))
    while size < cycle - 20:
        line = rng.choice(extra)
        body.append(line)
        size += len(tokens(line)) + 1
    body.append("    assert result.value == {n}")
    head = f"def test_{name}_{{n}}():\n"
    return lambda n: (head + "\n".join(body) + "\n\n\n").replace("{n}", str(n))


def _js_block(rng: random.Random, cycle: int):
    fn = rng.choice(FN)
    body = [f"    const input = {rng.choice(HELPERS)}({{n}});", f"    const out = {fn}(input);"]
    extra = ["    expect(out.ok).toBe(true);", "    expect(out.errors).toHaveLength(0);",
             "    expect(out.items[{n}]).toBeDefined();", f"    expect({fn}(out)).toEqual(out);",
             "    expect(out.name).toMatch(/case/);", "    await flush();"]
    size = len(tokens("\n".join(body)))
    while size < cycle - 20:
        line = rng.choice(extra)
        body.append(line)
        size += len(tokens(line)) + 1
    body.append("    expect(out.value).toBe({n});")
    head = "  it('handles case {n}', async () => {\n"
    return lambda n: (head + "\n".join(body) + "\n  });\n\n").replace("{n}", str(n))


def _code(lang: str, kind: str):
    def make(cycle: int, onset: int, seed: int) -> Case:
        rng = random.Random(seed)
        block = (_py_block if lang == "py" else _js_block)(rng, cycle)
        start = rng.randint(1, 40)
        lead = lead_text(rng, onset)
        return _assemble(f"code runaway ({lang}, counter) as {'text' if kind == 't' else 'write arguments'}",
                         lead, _repeat(lambda i: block(start + i), cycle), kind)
    return make


def alternation(cycle: int, onset: int, seed: int) -> Case:
    """A B A B: two paragraphs taking turns; its third cycle is A's first return."""
    rng = random.Random(seed)
    a = "".join(sentences(rng, cycle, 0.6)) + "\n\n"
    b = "".join(sentences(rng, max(10, int(cycle * rng.uniform(0.6, 1.4))), 0.6)) + "\n\n"
    return _assemble("A B A B alternation", lead_text(rng, onset), _repeat(lambda i: a if i % 2 == 0 else b, cycle))


DEGENERATE = {  # family key -> (what it is, the tokens a model emits for it)
    "newlines": ("newlines only", ["\n", "\n\n"]),
    "braces": ("no-space }}}}", ["}", "}}"]),
    "dots": ("no-space ....", ["....", "...", "."]),
    "haha": ("no-space hahaha", ["ha", "haha"]),
    "cjk": ("one CJK character", ["好"]),
    "word_brace": ("symbol-only words: }", [" }", "\n}"]),
    "word_table": ("symbol-only words: |---|", [" |---|", "\n|---|"]),
    "emoji": ("an emoji, spaced or not", [" 😂", "😂"]),
    "ha_spaced": ("ha ha ha", [" ha", " haha", "ha"]),
}


def degenerate(kind: str):
    def make(cycle: int, onset: int, seed: int) -> Case:
        rng = random.Random(seed)
        lead = lead_text(rng, onset)
        if kind == "newlines" or rng.random() < 0.5:
            lead = lead.rstrip() + rng.choice([" ", "\n", "\n\n", ": "])
        name, unit = DEGENERATE[kind]
        lt = tokens(lead)
        toks = lt + [rng.choice(unit) for _ in range(2000)]
        return Case(f"degenerate: {name}", toks, len(lt), len(lt) + 2, "t", 1)
    return make


def changed_words(cycle: int, onset: int, seed: int) -> Case:
    """The first family (runaway above): up to 30% of a cycle's words changed every round (its line
    numbers and paths first), prose mixed with up to half code lines."""
    rng = random.Random(seed)
    r = runaway(cycle, rng.uniform(0, 0.3), onset, rng.uniform(0, 0.5), seed)
    return Case("up to 30% of words changed", tokens(r.text), r.onset, r.third, "t", r.cycle)


# family name -> (make(cycle_tokens, onset_tokens, seed) -> Case, smallest cycle in tokens)
FAMILIES = {
    "changed_words": (changed_words, 10),
    "verbatim": (verbatim, 12),
    "indel": (indel, 30),
    "connectives": (connectives, 30),
    "sentence_ops": (sentence_ops, 40),
    "drift": (drift, 40),
    "code_py_text": (_code("py", "t"), 30),
    "code_py_args": (_code("py", "a"), 30),
    "code_js_text": (_code("js", "t"), 30),
    "code_js_args": (_code("js", "a"), 30),
    "alternation": (alternation, 30),
    **{"degenerate_" + k: (degenerate(k), 1) for k in DEGENERATE},
}


def draw(family: str, rng: random.Random) -> Case:
    """One case of a family with parameters drawn like the tests draw them (log-uniform cycle)."""
    make, smallest = FAMILIES[family]
    cycle = int(round(smallest * (2000 / smallest) ** rng.random()))
    return make(cycle, rng.choice([0, rng.randint(0, 3000)]), rng.randrange(2**20))
