"""The loop detector on the legitimate corpus (tests/loop_corpus.py, built at test time from this
machine's tools and files: binary dumps, release notes, API references, function docs, data
tables, logs, code), each text streamed as text and as a write's arguments: no cut but the listed
ones, each indistinguishable from a runaway. Building and streaming the corpus (about 6M tokens)
takes minutes, so it runs with every tier, not in plain pytest."""
import random

import pytest

import loop_corpus
import loop_family
from loop_family import as_arguments, tokens
from pytest_tbreplay.policies.loopdetect import LoopDetector


# -- the legitimate corpus: dumps, release notes, API docs, function docs, tables, logs, code ------
@pytest.fixture(scope="module")
def corpus_docs():
    return loop_corpus.build()


# The corpus' remaining cuts, each indistinguishable from a runaway (docs/README-loop2.md says why):
# the name of the text -> the streams (text, write) it is cut in.
KNOWN = {
    "API reference snowball": {"text", "write"},  # DescribeCluster/DescribeJob/...: one doc, the noun swapped
    "API reference arc-region-switch": {"text", "write"},  # the same responses and errors block per operation
    "pydoc socket": {"text"},  # the inherited methods of two classes: the same 1,200 words twice
    "pydoc signal": {"text"},  # the same inherited-method block as socket's
    "pydoc array": {"text"},  # the same 1,100-word method block twice (array and ArrayType)
    "pydoc codecs": {"text", "write"},  # the same encoder/decoder docstrings in 3+ classes, verbatim
    "pydoc hashlib": {"text"},  # openssl_md5 .. openssl_sha512: one docstring, the name's digits changed
    "tool output ps aux": {"text", "write"},  # one process' 100-word environment repeated per process
    # iso8859_2, _3, _4: the same six alias lines, only their numbers changed (a block with a counter)
    "code encodings/aliases.py": {"text", "write"},
}


def known(name: str) -> set[str]:
    """The streams a corpus text is known to be cut in (code files by their stdlib-relative path)."""
    return next((v for k, v in KNOWN.items() if name == k or k.startswith("code ") and name.endswith("/" + k[5:])), set())


def test_corpus_has_every_kind(corpus_docs):
    kinds = {k for k, _, _ in corpus_docs}
    assert len(corpus_docs) >= 300, (len(corpus_docs), loop_corpus.MISSING)
    assert kinds == {"binary dump", "release notes", "API docs", "function-family docs", "data table", "log", "code"}


def corpus_cuts(docs) -> list[str]:
    cuts = []
    for kind, name, text in docs:
        for how, stream in [("text", text), ("write", as_arguments("/app/f", text))]:
            d = LoopDetector()
            feed = d.feed if how == "text" else d.feed_arguments
            n = next((n for n, piece in loop_family.deltas(tokens(stream), random.Random(0)) if feed(piece)), None)
            if n is not None and how not in known(name):
                cuts.append(f"{kind}: {name} as {how} at token {n} ({d.rule})")
    return cuts


def test_no_cut_on_the_legitimate_corpus(corpus_docs):
    """Every text as text and as a write."""
    cuts = corpus_cuts(corpus_docs)
    assert not cuts, f"{len(cuts)} cuts:\n" + "\n".join(cuts)


def test_the_known_cuts_are_still_cuts(corpus_docs):
    """The remaining cuts are listed because they happen: a listed text the detector no longer cuts
    must leave the list (and the README's)."""
    named = [d for d in corpus_docs if known(d[1]) and not d[1].startswith("tool output")]  # ps changes per run
    assert len(named) == len(KNOWN) - 1, [d[1] for d in named]
    for kind, name, text in named:
        for how in known(name):
            d = LoopDetector()
            stream = text if how == "text" else as_arguments("/app/f", text)
            feed = d.feed if how == "text" else d.feed_arguments
            assert any(feed(p) for _, p in loop_family.deltas(tokens(stream), random.Random(0))), (name, how)
