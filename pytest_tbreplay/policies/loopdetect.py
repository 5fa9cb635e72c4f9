"""A streaming loop detector: cut a runaway turn once repetition is evident.

The same algorithm runs in pi's extension (harnesses/pi/extensions/lib/loopdetect.ts); both are
checked against tests/vectors/loopdetect.json (tests/vectors/make_loopdetect.py). Design and measurements:
docs/loop-detector.md. Text (content, reasoning) and a tool call's streamed JSON arguments are separate
streams, each read as whitespace-separated words (in arguments, the escapes \\n \\t \\r separate too).

Word rule, on a window of the last `window` words. Every word closes a shingle of the last `k`
normalized words (digit runs folded to 0, so a counter in a name or a body is the same word every
cycle), and the detector remembers where each shingle last occurred twice (within `horizon` words).
A word *recurs* once its shingle has occurred twice before (its third time: a cycle that has gone
round twice), *repeats* once it has occurred once before. A word is *novel* when it was not seen in
the horizon at all. The rule fires when
  - (third time) at least `recur` of the window recurs and at most `novel_max` of its words are novel:
    a loop re-says what it said; a table, a list of links, a templated reference or a family of
    functions names something new every row or entry. Shingles tolerate an indel or a changed word
    (it breaks k of them), sentence swaps (only the k-1 shingles across a seam break), and the window
    is judged as a whole, so the lag of the cycle may change by a few words every round;
  - (second time, prose) most of the window is plain words, at least `repeat` of it repeats, and
    almost nothing is novel: a paragraph said again verbatim (an A B A B alternation comes back once
    before its third round).
  - (sentences, prose) the sentences of the last cycle were each said twice before and the stretch
    names nothing new: short cycles whose sentences are dropped, added or swapped every round.
The period rule (word i against word i - lag) is described at _period.
Data lines (most words values: hex, digits, addresses: a dump, a CSV row, objdump) neither fold
digits nor count as recurring: a dump names new values every line.

Character rules: a run without whitespace that is periodic (period <= `period_max` characters) over
its last `run_min` characters (`}}}}`, `....`, `hahaha`, one CJK character), and a whitespace run
with `newlines_max` newlines or `space_max` characters. Only the last `run_min` characters of a run
are kept and a word is kept to its last `word_max` characters, so memory is bounded and every
character is handled a constant number of times (linear time).
"""
from __future__ import annotations

import re

from pytest_tbreplay.core.trial import repeated_ngram_rate, text_repetition  # noqa: F401 (re-exported)

WS = re.compile(r"[ \t\n\r\f\v]+")
TEXT_SEP = re.compile(r"([ \t\n\r\f\v]+)")
ARGS_SEP = re.compile(r"((?:[ \t\n\r\f\v]|\\[ntr])+)")
DIGITS = re.compile(r"[0-9]+")
EDGE = re.compile(r"^[^0-9A-Za-z]+|[^0-9A-Za-z]+$")
# A value: a number (a Python literal too: 1.42151_17583e-7, 2j), hex, an address, a code point
# (U+00E9, <U00E9> in glibc's locale tables).
VALUE = re.compile(r"(?:0[xX]|[Uu]\+?)?[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*|[0-9][0-9_.,:/+-]*(?:[eE][+-]?[0-9][0-9_]*)?[jJ]?")
SENT_END = re.compile(r"[.!?][\"')\]]*$")
PROSE_WORD = re.compile(r"(?:[A-Za-z][a-z]*(?:'[a-z]+)?|[0-9]+)[,.!?:;]?")

DEFAULTS = {
    "k": 3,  # words per shingle
    "window": 64,  # words judged together
    "horizon": 4096,  # words remembered (two 2,000-token cycles)
    "recur": 0.8,  # third time: share of the window whose shingle occurred twice before
    "novel_max": 3,  # plain words new to the horizon the window may hold
    "names_max": 0,  # names (identifiers, paths, handles) new to the horizon
    "values_max": 2,  # values (numbers, hex) new to the horizon (a counter)
    "reach": 48,  # names are looked for this many words before the last cycle too
    "values_rate": 6,  # and at most one a this many words of the window
    "prose": 0.6,  # second time: share of plain words
    "repeat": 0.92,  # second time: share of the window whose shingle occurred before
    "novel_max_prose": 0,
    "drift": 4, "gap": 8, "aligned": 0.75, "run3": 48, "run2": 256,
    # the period rule (word diagonal): a match gains 1, a mismatch costs beta; the run ends x_drop below its best
    "beta": 1.5, "x_drop": 48, "match": 0.6, "margin": 160, "margin_per_lag": 6, "min_run": 104,
    "novel_per_word": 16,  # at most one new plain word or name per this many words of the run
    # the sentence rule: the last cycle (a sentence's lag + sent_margin words) is mostly sentences said twice before
    "sent_recur": 0.8, "sent_margin": 32, "sent_max": 64, "sent_lags": 4,
    "word_max": 64,  # characters kept of a word
    "run_min": 192,  # characters of a no-space run checked for a period
    "period_max": 16,
    "few_chars": 2,
    "newlines_max": 64,
    "space_max": 1024,
}
ARGS_DEFAULTS = {**DEFAULTS, "prose": 2.0}  # a write is code or data: the third-time rule only


def fold(word: str) -> str:
    return DIGITS.sub("0", word)


def is_value(word: str) -> bool:
    core = EDGE.sub("", word)
    return bool(core) and VALUE.fullmatch(core) is not None


class Stream:
    """One stream (text or arguments) and its rules."""

    def __init__(self, p: dict, args: bool):
        self.p = p
        self.sep = ARGS_SEP if args else TEXT_SEP
        self.args = args
        self.pending = ""  # a trailing backslash held back (an escape split across pieces)
        self.run = ""  # the current run without whitespace (its last run_min characters at most)
        self.run_len = 0
        self.few: set[str] = set()
        self.few_len = 0
        self.ws_nl = 0  # newlines in the current whitespace run
        self.ws_len = 0
        self.nl = True  # the next word starts a line
        self.line_words = self.line_values = 0
        self.norm: list[str] = []  # last k-1 normalized words
        self.pos = 0  # words so far
        self.last1: dict[str, int] = {}  # shingle -> where it last occurred
        self.last2: dict[str, int] = {}  # shingle -> where it occurred before that
        self.seen: dict[str, int] = {}  # normalized word -> where it last occurred
        w = p["window"]
        self.ring = [0] * w  # per word: 1 repeats, 2 recurs, +4 novel, +8 plain
        self.s1 = self.s2 = self.plain = 0
        self.words: list[str] = []  # the last few words (for logs)
        self.lag = self.gap = self.hits = self.start = 0  # the current diagonal run
        self.keys: list[str] = [""] * p["horizon"]  # the shingle of each of the last horizon words
        self.cum = [(0, 0, 0)] * p["horizon"]  # running counts of novel plain words, names, values
        self.cum_last = (0, 0, 0)
        self.offsets = [0] + [s * j for j in range(1, p["drift"] + 1) for s in (-1, 1)]
        self.nwords: list[str] = [""] * p["horizon"]  # the normalized word of each of the last horizon words
        # The word diagonal (the period rule): word i against word i - wlag, +1 a match, -beta a mismatch.
        self.wlag = self.wstart = self.whits = 0
        self.wscore = self.wbest = 0.0
        # The sentence rule: the current sentence's words, where each sentence last occurred twice.
        self.sent: list[str] = []
        self.sent1: dict[str, int] = {}
        self.sent2: dict[str, int] = {}
        self.scum = [0] * p["horizon"]  # running count of words in sentences said twice before
        self.scum_last = 0
        self.slags = [0] * p["sent_lags"]
        self.rule: str | None = None

    # -- characters -------------------------------------------------------------------------
    def feed(self, text: str) -> bool:
        p = self.p
        text = self.pending + text
        self.pending = ""
        if self.args and text.endswith("\\") and (len(text) - len(text.rstrip("\\"))) % 2 == 1:
            text, self.pending = text[:-1], "\\"
        if self.args:  # an escaped backslash is part of a word: "\\\\n" is a backslash and an n, not a newline
            text = text.replace("\\\\", "\0\0")
        # Few distinct characters (whitespace aside) for a long stretch: "😂 😂😂 😂", "ha haha ha".
        # The stretch restarts at a piece that brings a third character.
        bare = WS.sub("", text)
        chars = set(bare)
        if len(chars) > p["few_chars"]:  # (most pieces: no set union)
            self.few, self.few_len = set(), 0
        elif chars:
            both = self.few | chars
            if len(both) <= p["few_chars"]:
                self.few, self.few_len = both, self.few_len + len(bare)
            elif len(chars) <= p["few_chars"]:
                self.few, self.few_len = chars, len(bare)
            else:
                self.few, self.few_len = set(), 0
            if self.few_len >= p["run_min"]:
                return self._trip("few-chars")
        parts = self.sep.split(text)
        for i, part in enumerate(parts):
            if i % 2 == 0:  # a piece of a word
                if not part:
                    continue
                self.ws_nl = self.ws_len = 0
                self.run += part
                self.run_len += len(part)
                if len(self.run) > 2 * p["run_min"]:
                    self.run = self.run[-p["run_min"]:]
                if self.run_len >= p["run_min"] and self._periodic():
                    return self._trip("run")
            else:  # a separator: the word before it is whole
                if self.run:
                    if self._word(self.run[-p["word_max"]:]):
                        return True
                    self.run, self.run_len = "", 0
                nls = part.count("\n") + (part.count("\\n") if self.args else 0)
                if nls:
                    self.nl = True
                self.ws_nl += nls
                self.ws_len += len(part)
                if self.ws_nl >= p["newlines_max"] or self.ws_len >= p["space_max"]:
                    return self._trip("whitespace")
        return False

    def _periodic(self) -> bool:
        t = self.run[-self.p["run_min"]:]
        return any(t[q:] == t[:-q] for q in range(1, self.p["period_max"] + 1))

    # -- words ------------------------------------------------------------------------------
    def _word(self, w: str) -> bool:
        p = self.p
        if self.nl:
            self.nl = False
            self.line_words = self.line_values = 0
        self.line_words += 1
        core = EDGE.sub("", w)
        value = bool(core) and VALUE.fullmatch(core) is not None
        self.line_values += value
        data = 2 * self.line_values >= self.line_words
        n = w if data else fold(w)
        pos = self.pos
        self.pos += 1
        self.words.append(w)
        if len(self.words) > 64:
            del self.words[:32]
        k, h = p["k"], p["horizon"]
        self.norm.append(n)
        key = "\x01".join(self.norm[-k:])
        if len(self.norm) >= k:
            del self.norm[0]
        flags = 0
        q1, q2 = self.last1.get(key), self.last2.get(key)
        if q1 is not None:
            self.last2[key] = q1
        self.last1[key] = pos
        d1 = pos - q1 if q1 is not None and pos - q1 <= h and not data else 0
        d2 = pos - q2 if q2 is not None and pos - q2 <= h and not data else 0
        # The diagonal: a run of words copied from one earlier stretch, its lag allowed to drift by
        # `drift` words a step (an indel) and to miss `gap` words in a row (a changed word, a seam).
        lag, keys = self.lag, self.keys  # (the drift is in self.offsets)
        hit = 0
        if lag and not data:
            for j in self.offsets:
                if lag + j > 0 and keys[(pos - lag - j) % h] == key:
                    hit = lag + j
                    break
        keys[pos % h] = key
        self._word_diagonal(n, pos, 0 if data else d1)
        if hit:
            self.lag, self.gap, self.hits = hit, 0, self.hits + 1
        elif lag and self.gap < p["gap"] and not (d1 and self.hits < p["aligned"] * (pos - self.start)):
            self.gap += 1  # (a diagonal that follows too little of its lag gives way to the shingle's lag)
        elif d1:
            self.lag, self.gap, self.hits, self.start = d1, 0, 1, pos
        else:
            self.lag = self.gap = self.hits = 0
            self.start = pos + 1
        if not data:
            if d1:
                flags = 2 if d2 else 1
            plain = PROSE_WORD.fullmatch(w) is not None
            u = core if value else n  # a value is new by its digits, a name by its shape
            q = self.seen.get(u)
            if q is None or pos - q > h:  # novel: a value, a plain word, or a name
                flags |= 16 if value else 4 if plain else 32
            self.seen[u] = pos
            if plain:
                flags |= 8
        if pos % h == h - 1:  # forget what the horizon no longer reaches (amortized, bounded memory)
            self.last1 = {x: q for x, q in self.last1.items() if pos - q <= h}
            self.last2 = {x: q for x, q in self.last2.items() if pos - q <= h}
            self.seen = {x: q for x, q in self.seen.items() if pos - q <= h}
            self.sent1 = {x: q for x, q in self.sent1.items() if pos - q <= h}
            self.sent2 = {x: q for x, q in self.sent2.items() if pos - q <= h}
        cum, c = self.cum, self.cum_last
        c = (c[0] + ((flags & 4) > 0), c[1] + ((flags & 32) > 0), c[2] + ((flags & 16) > 0))
        cum[pos % h] = c
        self.cum_last = c
        ring, i = self.ring, pos % p["window"]
        old = ring[i]
        ring[i] = flags
        self.s1 += ((flags & 3) > 0) - ((old & 3) > 0)
        self.s2 += ((flags & 3) == 2) - ((old & 3) == 2)
        self.plain += ((flags & 8) > 0) - ((old & 8) > 0)
        slag = self._sentence(w, n if core == w else fold(core), pos, data)
        if pos + 1 < p["window"]:
            return False
        if self._period(pos):
            return self._trip("period")
        if slag and self._sentences(pos, slag):
            return self._trip("sentences")
        w_ = p["window"]
        run = pos + 1 - self.start
        if not self.lag or self.hits < p["aligned"] * run:
            return False
        # What the last cycle (the run's lag, at least a window) named new: plain words and names;
        # values over the cycle alone (a counter names one a cycle). The second-time rule: over the run.
        c, h1 = self.cum_last, h - 1
        b = self.cum[(pos - min(max(self.lag, w_), h1, pos)) % h]
        # Names over the last cycle and `reach` words before it: the window must be mostly
        # third-time words, so a loop is that far into its third round already and its second
        # named nothing new; a templated reference names a new thing a little before every
        # stretch of boilerplate (an operation, then its parameters, then the same responses). One
        # is allowed there: where a cycle meets the next, two words can glue into a new one.
        bn = self.cum[(pos - min(max(self.lag, w_) + p["reach"], h1, pos)) % h]
        v = self.cum[(pos - min(self.lag, h1, pos)) % h]
        # Values: a counter brings a new one a cycle; a list that counts ("KEY_F25 = 289", a
        # progress line's 70%) brings one every few words.
        vw = self.cum[(pos - min(w_, h1, pos)) % h]
        if (run >= p["run3"] and self.s2 >= p["recur"] * w_ and c[0] - b[0] <= p["novel_max"]
                and c[1] - b[1] <= p["names_max"] and c[1] - bn[1] <= p["names_max"] + 1 and c[2] - v[2] <= p["values_max"]
                and (c[2] - vw[2]) * p["values_rate"] <= w_):
            return self._trip("recur")
        r = self.cum[(pos - min(run, h1)) % h]
        if (run >= p["run2"] and self.plain >= p["prose"] * w_ and self.s1 >= p["repeat"] * w_
                and c[0] - r[0] <= p["novel_max_prose"] and c[1] == r[1] and c[2] == r[2]):
            return self._trip("repeat")
        return False

    def _word_diagonal(self, n: str, pos: int, d1: int) -> None:
        """Follow one lag word by word: a cycle whose words are replaced here and there (a line
        number, a path, a third of its words) keeps its lag, while its shingles mostly break. The
        run ends once its score falls `x_drop` below its best (BLAST's X-drop); a new shingle lag
        replaces a run that matches less than `match` of its words."""
        p, h, nw = self.p, self.p["horizon"], self.nwords
        if self.wlag:
            if nw[(pos - self.wlag) % h] == n:
                self.wscore += 1.0
                self.whits += 1
            else:
                self.wscore -= p["beta"]
            self.wbest = max(self.wbest, self.wscore)
            if self.wscore < self.wbest - p["x_drop"]:
                self.wlag = 0
        nw[pos % h] = n
        if d1 and d1 != self.wlag and (not self.wlag or self.whits < p["match"] * (pos + 1 - self.wstart)):
            k = p["k"]  # the shingle that voted for d1: its k words match
            self.wlag, self.wstart, self.whits, self.wscore, self.wbest = d1, pos - k + 1, k, float(k), float(k)

    def _period(self, pos: int) -> bool:
        """A prose cycle come round a third time with up to a third of its words changed: the word
        diagonal has lasted a lag plus a margin, matches `match` of its words, the window is mostly
        plain words, and the run names almost nothing new (a table names a new thing every row)."""
        p, lag = self.p, self.wlag
        run = pos + 1 - self.wstart
        if not lag or run < lag + min(p["margin"], p["margin_per_lag"] * lag) or run < p["min_run"]:
            return False
        if self.whits < p["match"] * run or self.plain < p["prose"] * p["window"]:
            return False
        c, b = self.cum_last, self.cum[(pos - min(run, p["horizon"] - 1)) % p["horizon"]]
        return (c[0] - b[0] + c[1] - b[1]) * p["novel_per_word"] <= run

    def _sentence(self, w: str, n: str, pos: int, data: bool) -> int:  # n: the word folded, its edges cut
        """Add the word to the current sentence; at its end (. ! ?, or sent_max words) remember it and
        credit its words if it was said twice before. Returns the sentence's lag (words since it was
        last said, the longest of the last sent_lags) when a twice-said sentence ended here, else 0."""
        p, h = self.p, self.p["horizon"]
        lag = 0
        if data:  # a data line is no sentence
            self.sent = []
        else:
            self.sent.append(n.lower())
            if SENT_END.search(w) is not None or len(self.sent) >= p["sent_max"]:
                key, size = "\x01".join(self.sent), len(self.sent)
                self.sent = []
                q1, q2 = self.sent1.get(key), self.sent2.get(key)
                if q1 is not None:
                    self.sent2[key] = q1
                self.sent1[key] = pos
                if q2 is not None and pos - q2 <= h:
                    self.scum_last += size
                    # the cycle: the longest lag of the last few (a sentence can come twice a cycle)
                    self.slags = self.slags[1:] + [pos - q1]
                    lag = max(self.slags)
        self.scum[pos % h] = self.scum_last
        return lag

    def _sentences(self, pos: int, lag: int) -> bool:
        """Short cycles whose sentences are dropped, added or swapped every round: the shingles
        break at every seam, but the sentences themselves come back. The last cycle (the lag of the
        sentence that just ended, and some) is mostly sentences said twice before, the window is
        prose, and the stretch names nothing new: a templated reference says the same responses
        and errors for every operation, but names a new operation each time."""
        p, W, h = self.p, self.p["window"], self.p["horizon"]
        span = max(W, lag + p["sent_margin"])
        if span >= min(h, pos + 1) or self.plain < p["prose"] * W:
            return False
        if self.scum_last - self.scum[(pos - span) % h] < p["sent_recur"] * span:
            return False
        c, b = self.cum_last, self.cum[(pos - span) % h]
        return c[0] - b[0] <= p["novel_max"] and c[1] - b[1] <= p["names_max"] and c[2] - b[2] <= p["values_max"]

    def _trip(self, rule: str) -> bool:
        self.rule = rule
        return True


class LoopDetector:
    """feed(text) for streamed text and reasoning, feed_arguments(text) for a tool call's streamed
    JSON arguments; each returns True once a loop is evident (and from then on). `rule` names the
    rule that tripped: recur, repeat, run or whitespace (text), arguments-* (arguments)."""

    def __init__(self, text: dict | None = None, arguments: dict | None = None, **overrides):
        self.text_params = {**DEFAULTS, **(text or {}), **overrides}
        self.args_params = {**ARGS_DEFAULTS, **(arguments or {}), **overrides}
        self.text = Stream(self.text_params, False)
        self.args = Stream(self.args_params, True)
        self.tripped = False
        self.rule: str | None = None

    @property
    def words(self) -> list[str]:
        return self.text.words

    def feed(self, text: str) -> bool:
        """Add streamed text (content or reasoning); True once a loop is evident (and from then on)."""
        if self.tripped:
            return True
        if self.text.feed(text):
            self.tripped, self.rule = True, self.text.rule
        return self.tripped

    def feed_arguments(self, text: str) -> bool:
        """Add streamed tool-call arguments (JSON text); True once they loop."""
        if self.tripped:
            return True
        if self.args.feed(text):
            self.tripped, self.rule = True, "arguments-" + str(self.args.rule)
        return self.tripped

    def params(self) -> dict:
        """The parameters, as pi's extension reads them (config.loop)."""
        return {"text": dict(self.text_params), "arguments": dict(self.args_params)}
