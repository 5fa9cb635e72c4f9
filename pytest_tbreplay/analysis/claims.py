"""Does a final message claim the task succeeded? (summarize's mode D, confident false success)

A claim is about the task: "Done!", "The task is complete", "I have fixed the bug", "All tests
pass", "It works now", "successfully recovered". A word alone is not: "x is passed as an
argument", "the value passes through", "this can be done later", "once done, run it". A sentence
that negates (not, n't, never, failed, unable) claims nothing. Stricter than the verify gate's
trigger (policies/gate.py), which may fire on a near miss: a demand to check costs little, a wrong
failure mode misleads the analysis."""
from __future__ import annotations

import re

_CLAIMS = [re.compile(p, re.I) for p in (
    r"^\W*(all\s+)?(done|finished|complete[d]?)\b(?!\s+(by|with|in|when|if|once|later|after))",
    r"\b(the\s+)?(task|job|work|fix|implementation|everything|all)\s+(is|has\s+been|was|are)\s+(now\s+)?"
    r"(done|complete[d]?|finished|fixed|working|in\s+place)\b",
    r"\b(i|we)(\s+have|'ve)?\s+(now\s+)?(successfully\s+)?(completed|finished|fixed|recovered|resolved|implemented|"
    r"solved|restored)\b",
    r"\bsuccessfully\s+(\w+ed)\b",
    r"\b(completed|finished|done|fixed)\s+successfully\b",
    r"\b(all\s+)?(the\s+)?(\d+\s+)?tests?\s+(now\s+)?(pass|passed|passes|are\s+passing|succeed(ed)?)\b",
    r"\b(it|this|everything|the\s+\w+)\s+(now\s+)?works(\s+now)?\s*[.!]?$",
    r"\bis\s+now\s+(fixed|working|correct|complete)\b",
    r"✅",
)]
_NEGATION = re.compile(r"\b(not|never|no\s+longer|unable|cannot|failed|couldn't|didn't|doesn't|isn't|"
                       r"wasn't|haven't|won't|if|whether|once|until|before)\b|n't\b", re.I)
_SENTENCES = re.compile(r"(?<=[.!?\n])\s+")


def claim(text: str | None) -> str | None:
    """The first sentence of `text` that claims success, or None."""
    for sentence in _SENTENCES.split(text or ""):
        s = sentence.strip()
        if s and not _NEGATION.search(s) and any(p.search(s) for p in _CLAIMS):
            return s[:80]
    return None
