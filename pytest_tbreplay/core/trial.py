"""The trial: what one harness run against one endpoint did, the same shape for every harness."""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from pytest_tbreplay.core.cassette import Cassette

# pi's stopReason vocabulary (packages/ai/src/types.ts)
STOP_REASONS = ("stop", "length", "toolUse", "error", "aborted")


@dataclass
class Turn:
    """Per-turn telemetry (failure-analysis §5.5)."""
    index: int
    stop_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    text_tokens: int = 0
    compaction: str | None = None  # "threshold" or "overflow" when this turn compacted first
    verifier_ran: bool = False  # a test, check or re-read of written output ran in this turn
    cut_by: str | None = None  # "loop_detector" when the harness cut the stream
    # Tokens streamed when the loop guard tripped. completion_tokens counts what arrived: pi aborts
    # asynchronously, so a few hundred more may arrive after the trip, more on a loaded machine.
    cut_at: int | None = None
    tool_calls: list[str] = field(default_factory=list)
    decode_tps: float | None = None  # client-measured, tokens per second after the first token
    server_tps: float | None = None  # the server's timings.predicted_per_second


@dataclass
class Trial:
    task: str
    harness: str
    profile: str
    stop_reason: str = "stop"  # of the last turn: how the trial ended
    outcome: str = "completed"  # completed | error | timeout | infra
    error: str | None = None
    final_text: str = ""
    turns: list[Turn] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)  # chat bodies as sent, in order
    messages: list[dict] = field(default_factory=list)  # the conversation at the end
    compactions: list[dict] = field(default_factory=list)  # {reason, tokens_before, summary}
    nudges: list[str] = field(default_factory=list)
    verify_demands: list[str] = field(default_factory=list)
    passed: bool | None = None  # the verifier's verdict, when one ran
    wall_s: float = 0.0

    @property
    def peak_prompt_tokens(self) -> int:
        return max((t.prompt_tokens for t in self.turns), default=0)

    @property
    def stop_reasons(self) -> list[str]:
        return [t.stop_reason for t in self.turns]

    def metrics(self) -> dict:
        rates = [t.decode_tps for t in self.turns if t.decode_tps]
        return {
            "turns": len(self.turns), "stop_reason": self.stop_reason, "outcome": self.outcome,
            "peak_prompt_tokens": self.peak_prompt_tokens,
            "completion_tokens": sum(t.completion_tokens for t in self.turns),
            "max_turn_tokens": max((t.completion_tokens for t in self.turns), default=0),
            "length_stops": self.stop_reasons.count("length"),
            "compactions": [c["reason"] for c in self.compactions],
            "verifier_ran": any(t.verifier_ran for t in self.turns),
            "decode_tps": sum(rates) / len(rates) if rates else None,
            # the most repetitive answer's repeated-4-gram rate (what DRY is meant to lower)
            "repeat_4gram": max((text_repetition(m["content"]) for m in self.messages
                                 if m.get("role") == "assistant" and isinstance(m.get("content"), str)), default=0.0),
        }

    def to_dict(self) -> dict:
        return asdict(self) | {"metrics": self.metrics()}


@dataclass
class TaskSpec:
    name: str
    instruction: str
    acceptance: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # earlier turns, as when a session is resumed
    system: str | None = None  # the recorded harness's system prompt (an imported trial keeps pi's)
    # What the user said after each run ended, in order (a session of several prompts): the
    # harness sends the next one each time its run ends with nothing of its own to say.
    prompts: list[str] = field(default_factory=list)

    @classmethod
    def from_cassette(cls, c: Cassette) -> "TaskSpec":
        m = c.metadata
        return cls(m["task"], m["instruction"], list(m.get("acceptance") or []), list(m.get("history") or []),
                   m.get("system_prompt"), list(m.get("prompts") or []))


class FollowUps:
    """A task's later prompts, in order. A recorded session keeps the harness's own messages
    (nudges) as user prompts too: when the harness says the next one itself, it is not sent again."""

    def __init__(self, prompts: list[str]):
        self.left = list(prompts)

    def said(self, text: str) -> None:
        if self.left and self.left[0] == text:
            self.left.pop(0)

    def next(self) -> str | None:
        return self.left.pop(0) if self.left else None


@dataclass
class Endpoint:
    """Where the harness talks to a server, and where its tool results come from."""
    url: str
    transport: httpx.BaseTransport | None = None  # in-process replay
    cassette: Cassette | None = None  # replay: tool results from the cassette
    workdir: Path | None = None  # live: tools run here
    model: str = "local"
    timeout_s: float = 600.0  # one request
    budget_s: float | None = None  # the whole trial (the task's time budget)
    # replay: set when the harness reaches the point where the recorded trial ran out of time
    out_of_time: threading.Event | None = None


def budget_ended_text(ended: dict) -> str:
    """Why a replay ended out of time: where the recorded trial's budget (metadata.ended) ran out."""
    return (f"the trial's time budget of {ended['after_s']:.0f} s ran out (as recorded: replay ends "
            f"before interaction {ended['at_interaction']})")


class InfraError(RuntimeError):
    """The server, not the model, failed: down, died mid-stream, or hung."""


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


def text_repetition(text: str, n: int = 4) -> float:
    """The repeated-4-gram rate of a whole text (the DRY A/B's figure)."""
    return repeated_ngram_rate(text.split(), n)
