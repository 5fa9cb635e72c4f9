"""Where a replay leaves the recording, and why: read off the replay engine's own record (each
`Served` request: which interaction answered it, its status, where max tokens cut the stream) and
its mismatch report (the request the cassette had no answer for).

This is what `tbreplay whatif --harness pi@X.Y.Z` reports when another pi version replays trials
recorded with the old one: a newer pi lowers max tokens, compacts, retries, or refuses a tool call
whose arguments were cut, and from then on the conversation is one the recording never had.

Interactions are numbered as `tbreplay show` numbers them (from 0)."""
from __future__ import annotations

from dataclasses import dataclass

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.wire import is_overflow, max_tokens_of, message_text
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayMismatch, Served

# pi 1.x's tool result for a call whose arguments a length stop may have cut (agent-session).
REFUSED_CUT_CALL = ("was not executed", "output token limit")


@dataclass
class Departure:
    """The first point where what the harness saw or sent is not what the recording holds."""
    interaction: int  # the cassette's interaction where it happened
    kind: str  # max_tokens | compaction | retry | overflow | refused_cut_call | nudge | scripted | unrecorded_request
    # (nudge: a message the harness added, a length nudge or a verify demand; scripted: a request
    # beyond the recording that a scripted interaction answered)
    text: str
    value: int | None = None  # max_tokens: what max tokens were lowered to

    @property
    def label(self) -> str:
        return f"max tokens {self.value:,}" if self.kind == "max_tokens" else LABELS.get(self.kind, self.kind)


LABELS = {"compaction": "compaction", "retry": "retry", "overflow": "context 400 where the recording had none",
          "scripted": "scripted continuation",
          "refused_cut_call": "refused cut call", "nudge": "harness message", "unrecorded_request": "unrecorded request"}


@dataclass
class Course:
    """How a replay went against its recording."""
    departures: list[Departure]
    first_lowered: tuple[int, int] | None  # (interaction, max tokens) where the request's max tokens first fell
    played: int  # recorded interactions the replay played
    recorded: int  # recorded (not scripted) interactions
    ending: str
    outcome: str = ""

    @property
    def short(self) -> str:
        """A table cell: where, why (and what it led to), how it ended."""
        played = f"{self.played}/{self.recorded} played"
        if not self.departures:
            return f"follows the recording; {self.outcome}, {played}"
        chain = " → ".join(d.label for d in self.departures[:2])
        return f"{self.departures[0].interaction}: {chain}; {self.outcome}, {played}"

    @property
    def first(self) -> Departure | None:
        return self.departures[0] if self.departures else None

    @property
    def why(self) -> str:
        """The first departure and what it led to (the next one), in a line."""
        if not self.departures:
            return "follows the recording to its end"
        first, rest = self.departures[0], self.departures[1:2]
        return "; then ".join(d.text for d in [first, *rest])


def course(engine: ReplayEngine, outcome: str, stop_reason: str) -> Course:
    c = engine.cassette
    recorded = [i for i, it in enumerate(c.interactions) if not it.scripted]
    out = _served_departures(c, engine.served)
    mismatch = next((e for e in engine.errors if isinstance(e, ReplayMismatch)), None)
    if mismatch is not None:
        out.append(_unrecorded(mismatch))
    out.sort(key=lambda d: d.interaction)
    played = sum(i in engine.played for i in recorded)
    ending = f"{outcome} (stop {stop_reason}), {played} of {len(recorded)} recorded interactions played"
    if mismatch is not None:
        ending += f", no recorded answer at {mismatch.index}"
    return Course(out, _first_lowered(c, engine.served), played, len(recorded), ending, outcome)


def _served_departures(c: cs.Cassette, served: list[Served]) -> list[Departure]:
    out, seen, at, was_scripted = [], set(), -1, False
    for s in served:
        scripted = s.index is not None and bool(c.interactions[s.index].scripted)
        nxt = _next_recorded(c, at)
        if not s.request.get("tools") and (s.index is None or scripted):  # pi's summary request has no tools
            out.append(Departure(nxt, "compaction", f"compaction at {nxt} (a scripted summary answered it)"))
        elif scripted and not was_scripted:  # a nudge, a verify demand: the scripted continuation starts
            last = (s.request.get("messages") or [{}])[-1]
            kind = "nudge" if last.get("role") == "user" else "scripted"
            out.append(Departure(nxt, kind, f"a new {last.get('role', '?')} message at {nxt} "
                                            f"({message_text(last)[:50]!r}; a scripted answer)"))
        elif s.index is None and s.status == 400:
            it = c.interactions[nxt] if nxt < len(c.interactions) else None
            if it is None or not is_overflow(it.status, it.body):
                was = it.usage.get("prompt_tokens") if it is not None else None
                out.append(Departure(nxt, "overflow", f"context 400 at {nxt} ({s.prompt_tokens:,} prompt tokens "
                                                      f"estimated; the recording's {_n(was)} got an answer)"))
            at = nxt if it is not None and is_overflow(it.status, it.body) else at
        elif s.index is not None and s.index in seen:
            out.append(Departure(s.index, "retry", f"retry at {s.index}: the same request sent again"))
        elif s.cut_at is not None:
            was = c.interactions[s.index].usage.get("completion_tokens")
            out.append(Departure(s.index, "max_tokens", f"max tokens lowered to {max_tokens_of(s.request):,} at "
                                                        f"{s.index}: the recorded answer ({_n(was)} tokens) cut at "
                                                        f"{s.cut_at:,}", max_tokens_of(s.request)))
        was_scripted = scripted
        if s.index is not None and not scripted:
            seen.add(s.index)
            at = max(at, s.index)
    return out


def _unrecorded(e: ReplayMismatch) -> Departure:
    """The request the cassette had no answer for, named by what it ends in."""
    request = getattr(e, "request", None) or {}
    msgs = [m for m in request.get("messages", []) if m.get("role") not in ("system", "developer")]
    last = msgs[-1] if msgs else {}
    text = message_text(last)
    if request and not request.get("tools"):
        return Departure(e.index, "compaction", f"compaction at {e.index}: a summary request the recording lacks")
    if last.get("role") == "tool" and all(w in text for w in REFUSED_CUT_CALL):
        return Departure(e.index, "refused_cut_call", f"pi refused the cut tool call; no recorded answer at {e.index}")
    if last.get("role") == "user":
        return Departure(e.index, "nudge", f"a new user message ({text[:50]!r}); no recorded answer at {e.index}")
    return Departure(e.index, "unrecorded_request", f"a request the recording lacks at {e.index} "
                                                    f"(ends in a {last.get('role', '?')} message)")


def _first_lowered(c: cs.Cassette, served: list[Served]) -> tuple[int, int] | None:
    """The first request whose max tokens fell below the trial's first request's: the harness
    lowering them as the context fills (pi >= 0.75), not a profile's cap, which holds from the start."""
    sent = [(s.index, m) for s in served if s.index is not None and s.request.get("tools")
            and (m := max_tokens_of(s.request)) is not None]
    return next(((i, m) for i, m in sent if m < sent[0][1]), None)


def _next_recorded(c: cs.Cassette, after: int) -> int:
    """The recorded interaction due after `after` (scripted ones skipped); after + 1 past the
    recording's end."""
    return next((i for i in range(after + 1, len(c.interactions)) if not c.interactions[i].scripted), after + 1)


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else "?"
