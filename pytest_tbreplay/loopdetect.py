"""A streaming loop detector: cut a runaway turn once repetition is evident.

It watches the words of the streamed text and, over a sliding window, the share of word 4-grams
that already occurred in that window. A model stuck in "Wait, I've tried this... let me try a
completely different approach" repeats whole sentences, so that share climbs towards 1; prose and
source code, even repetitive code, stay well below (see tests/test_loopdetect.py)."""
from __future__ import annotations



def repeated_ngram_rate(words: list[str], n: int = 4) -> float:
    """Share of the n-grams of `words` that occurred earlier in the same list."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple] = set()
    repeats = 0
    for g in grams:
        repeats += g in seen
        seen.add(g)
    return repeats / len(grams)


class LoopDetector:
    def __init__(self, n: int = 4, window: int = 240, threshold: float = 0.6, every: int = 16):
        self.n, self.window, self.threshold, self.every = n, window, threshold, every
        self.words: list[str] = []
        self._partial = ""
        self._since_check = 0
        self.tripped = False
        self.rate = 0.0

    def feed(self, text: str) -> bool:
        """Add streamed text; True once the loop is evident (and from then on)."""
        if self.tripped:
            return True
        parts = (self._partial + text).split()
        self._partial = "" if not parts or text[-1:].isspace() else parts.pop()
        self.words += parts
        self._since_check += len(parts)
        if self._since_check >= self.every and len(self.words) >= self.window:
            self._since_check = 0
            self.rate = repeated_ngram_rate(self.words[-self.window:], self.n)
            self.tripped = self.rate >= self.threshold
        return self.tripped


def text_repetition(text: str, n: int = 4) -> float:
    """The repeated-4-gram rate of a whole text (the DRY A/B's figure)."""
    return repeated_ngram_rate(text.split(), n)
