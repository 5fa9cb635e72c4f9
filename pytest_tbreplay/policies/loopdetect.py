"""A streaming loop detector: cut a runaway turn once repetition is evident.

The same algorithm runs in pi's extension (harnesses/pi/extensions/lib/loopdetect.ts); both are checked against
tests/vectors/loopdetect.json. It reads whitespace-separated words and has two rules for text:

- pool: over the last 240 words, the share of word 4-grams already seen in those words, when
  most of them are plain words. A model stuck in "Wait, I've tried this... let me try a completely
  different approach" shuffles a few sentences, so the share passes 0.6 with no fixed period;
  mostly-prose windows of real files stay below 0.53, and code, tables of symbols (| ✅ | ❌ |) and data, which can repeat
  more (ggml.c's parameter lists: 0.61), are not mostly plain words.
- period: a long cycle that comes back with changes (a line number, a path, up to ~30% of its
  words) has a fixed lag d in words. Word 3-grams (numbers and path names folded) seen before vote
  for a lag (bounded memory: the last 2048 words); a voted lag becomes a candidate whose run is the
  stretch where word i equals word i-d, scored +1 a match and -1.5 a mismatch and ended by an
  X-drop (BLAST's extension rule). A run longer than d + margin words has gone round a third time;
  one copy of a block, or two similar functions, makes a run of at most d. Then either the cycle is
  mostly plain words and the run names almost nothing new (a table or a list names a new thing
  each row; a loop re-says what it said), or the run is near-verbatim and names nothing new at all.

Tool-call arguments (a write's content) get the period rule alone, near-verbatim only (>= 90% of
words) and over three whole blocks, since real files have templated rows and similar functions
but no reason to repeat a block three times over. Measured by tests/benchmarks/loop_bench.py."""
from __future__ import annotations

import re
from dataclasses import dataclass

from pytest_tbreplay.core.trial import repeated_ngram_rate, text_repetition  # noqa: F401 (text_repetition: re-exported)

TEXT_SPACE = re.compile(r"[ \t\n\r\f\v]+")
# Arguments stream as JSON: the content's newlines and tabs arrive as the two characters \n, \t.
ARGS_SPACE = re.compile(r"(?:[ \t\n\r\f\v]|\\[ntr])+")
DIGITS = re.compile(r"[0-9]+")
PATH_PARTS = re.compile(r"[A-Za-z0-9_.-]+")


def fold(word: str) -> str:
    """What stays of a word when its numbers and path names change: /app/src/x_12.c -> /0/0/0."""
    return PATH_PARTS.sub("0", word) if "/" in word else DIGITS.sub("0", word)


@dataclass(frozen=True)
class PeriodRule:
    beta: float = 1.5  # what a mismatched word costs (a match gains 1): a run needs > 60% matches
    margin: int = 160  # words a run must last beyond one lag (into the third cycle)
    margin_per_lag_word: int = 6  # but a short cycle's margin is 6 lags (it must fit 512 tokens)
    min_run: int = 104  # and at least this many words (a list of a dozen one-line items is not a loop)
    # Two ways a run fires. Loose: a cycle of prose (most of its words plain words), any matches
    # the run allows. Strict: any cycle, but near-verbatim (strict_rate of its words match), over
    # strict_cycles lags, and no word in the run new to the stream: code copied per type
    # (f16, f32) or a table's rows each bring a new name, a loop brings none (digits are folded).
    prose_share: float | None = 0.5  # None: no loose way
    novel_per_word: int = 16  # loose: at most one new word per this many (a table names a new thing a row)
    strict_rate: float = 0.9
    strict_cycles: int = 1
    min_distinct: int = 4  # distinct words in one cycle ("0, 0, 0," is left to the pool rule)
    x_drop: float = 48.0  # a run ends once its score falls this far below its best (a burst of 32 changed words)
    k: int = 3  # words per voting shingle
    max_lag: int = 2048  # words remembered (a 2,000-token cycle is under 2,000 words)
    max_candidates: int = 8


TEXT_RULE = PeriodRule()
# A write is code or data: near-verbatim repeats only, three whole blocks.
ARGS_RULE = PeriodRule(prose_share=None, margin=0, min_run=128, strict_cycles=2, min_distinct=8)
PROSE_WORD = re.compile(r"(?:[A-Za-z][a-z]*(?:'[a-z]+)?|[0-9]+)[,.!?]?")  # a plain word or number


class _Candidate:
    __slots__ = ("lag", "start", "score", "best", "best_pos", "matches", "best_matches")

    def __init__(self, lag: int, start: int, score: float, pos: int, matches: int):
        self.lag, self.start, self.score, self.best, self.best_pos = lag, start, score, score, pos
        self.matches = self.best_matches = matches


class PeriodDetector:
    """The period rule over one stream of words."""

    def __init__(self, rule: PeriodRule):
        self.r = rule
        # Per word since `base` (trimmed to bounded memory): the word, and running counts of the
        # words new to the stream (digits folded) and of plain prose words.
        self.raw: list[str] = []
        self.norm: list[str] = []
        self.novel: list[int] = [0]  # novel[i] = new words among the first i kept
        self.prose: list[int] = [0]
        self.base = 0  # absolute position of raw[0]
        self.last: dict[str, int] = {}  # shingle -> absolute position of its last word
        self.seen: dict[str, int] = {}  # folded word -> absolute position of its last occurrence
        self.cands: list[_Candidate] = []
        self.tripped_lag = 0

    def word(self, w: str) -> bool:
        r, p = self.r, self.base + len(self.raw)
        folded = fold(w)
        self.raw.append(w)
        self.norm.append(folded)
        self.novel.append(self.novel[-1] + (folded not in self.seen))
        self.seen[folded] = p
        self.prose.append(self.prose[-1] + bool(PROSE_WORD.fullmatch(w)))
        if len(self.raw) > 2 * r.max_lag:  # forget what no lag can reach
            m = r.max_lag
            del self.raw[:m], self.norm[:m], self.novel[:m], self.prose[:m]
            self.base += m
            self.last = {k: q for k, q in self.last.items() if q >= self.base}
            self.seen = {k: q for k, q in self.seen.items() if q >= self.base}
        for c in self.cands:
            self._extend(c, p)
        self.cands = [c for c in self.cands if c.score >= c.best - r.x_drop]
        if p >= r.k - 1:
            key = " ".join(self.norm[p - self.base - r.k + 1:p - self.base + 1])
            q = self.last.get(key)
            self.last[key] = p
            if q is not None and p - q <= r.max_lag and all(c.lag != p - q for c in self.cands):
                self._add(p - q, p)
        for c in self.cands:
            if self._fires(c):
                self.tripped_lag = c.lag
                return True
        return False

    def _match(self, i: int, lag: int) -> bool:
        return self.raw[i - self.base] == self.raw[i - lag - self.base]

    def _extend(self, c: _Candidate, p: int) -> None:
        if self._match(p, c.lag):
            c.score += 1.0
            c.matches += 1
        else:
            c.score -= self.r.beta
        if c.score > c.best:
            c.best, c.best_pos, c.best_matches = c.score, p, c.matches

    def _add(self, lag: int, p: int) -> None:
        """A new candidate lag: its run reaches back as far as the X-drop lets it."""
        score = best = 0.0
        matches = best_matches = 0
        start = i = p
        while i - lag >= self.base and score >= best - self.r.x_drop:
            if self._match(i, lag):
                score += 1.0
                matches += 1
            else:
                score -= self.r.beta
            if score >= best:
                best, start, best_matches = score, i, matches
            i -= 1
        if best <= 0:
            return
        if len(self.cands) >= self.r.max_candidates:
            weakest = min(self.cands, key=lambda c: c.best)
            if weakest.best >= best:
                return
            self.cands.remove(weakest)
        self.cands.append(_Candidate(lag, start, best, p, best_matches))

    def _count(self, sums: list[int], first: int, last: int) -> int:
        """How many of the words first..last (absolute, inclusive) a running count counted."""
        return sums[last + 1 - self.base] - sums[max(first, self.base) - self.base]

    def prose_in_last(self, n: int) -> int:
        """Plain words among the last n."""
        return self.prose[-1] - self.prose[max(0, len(self.prose) - 1 - n)]

    def _fires(self, c: _Candidate) -> bool:
        r, run = self.r, c.best_pos - c.start + 1
        if run < c.lag + min(r.margin, r.margin_per_lag_word * c.lag) or run < r.min_run:
            return False
        cycle = c.best_pos - c.lag + 1
        novel = self._count(self.novel, c.start, c.best_pos)
        loose = (r.prose_share is not None and self._count(self.prose, cycle, c.best_pos) >= r.prose_share * c.lag
                 and novel * r.novel_per_word <= run)
        strict = (not loose and run >= r.strict_cycles * c.lag and c.best_matches >= r.strict_rate * run
                  and novel == 0)
        if not (loose or strict):
            return False
        return len(set(self.raw[max(cycle, self.base) - self.base:c.best_pos + 1 - self.base])) >= r.min_distinct


class _Words:
    """Whitespace-separated words from streamed pieces; a word split across pieces counts once."""

    def __init__(self, space: re.Pattern):
        self.space, self.partial = space, ""

    def add(self, text: str) -> list[str]:
        parts = self.space.split(self.partial + text)
        self.partial = parts.pop()
        return [w for w in parts if w]


class LoopDetector:
    def __init__(self, n: int = 4, window: int = 240, threshold: float = 0.6, every: int = 16, pool_prose: float = 0.5,
                 text_rule: PeriodRule = TEXT_RULE, args_rule: PeriodRule = ARGS_RULE):
        self.n, self.window, self.threshold, self.every = n, window, threshold, every
        self.pool_prose = pool_prose
        self.words: list[str] = []  # the last `window` words of the text
        self._text, self._args = _Words(TEXT_SPACE), _Words(ARGS_SPACE)
        self._since_check = 0
        self.period = PeriodDetector(text_rule)
        self.args_period = PeriodDetector(args_rule)
        self.tripped = False
        self.rule: str | None = None  # which rule fired: pool, period or arguments
        self.rate = 0.0

    @property
    def _partial(self) -> str:
        return self._text.partial

    def feed(self, text: str) -> bool:
        """Add streamed text (content or reasoning); True once a loop is evident (and from then on)."""
        if self.tripped:
            return True
        for w in self._text.add(text):
            self.words.append(w)
            if len(self.words) > 2 * self.window:
                del self.words[:self.window]
            self._since_check += 1
            if self.period.word(w):
                return self._trip("period")
            if self._since_check >= self.every and len(self.words) >= self.window:
                self._since_check = 0
                self.rate = repeated_ngram_rate(self.words[-self.window:], self.n)
                if self.rate >= self.threshold and self.period.prose_in_last(self.window) >= self.pool_prose * self.window:
                    return self._trip("pool")
        return False

    def feed_arguments(self, text: str) -> bool:
        """Add streamed tool-call arguments (JSON text); True once they repeat block after block."""
        if self.tripped:
            return True
        for w in self._args.add(text):
            if self.args_period.word(w):
                return self._trip("arguments")
        return False

    def _trip(self, rule: str) -> bool:
        self.tripped, self.rule = True, rule
        return True

    def params(self) -> dict:
        """The parameters, as pi's extension reads them."""
        return {"n": self.n, "window": self.window, "threshold": self.threshold, "every": self.every,
                "pool_prose": self.pool_prose,
                "text": vars(self.period.r), "arguments": vars(self.args_period.r)}
