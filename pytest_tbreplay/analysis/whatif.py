"""`tbreplay whatif`: what another profile would have done to a recorded trial.

The trial is replayed under the profile until the harness leaves the recording (a cut stream,
a compaction, a nudge: the model's answer to those was never recorded). Whatever the harness
did differently before that point is a mitigation acting, at a turn, with numbers. The first one
is the answer; a replay that plays every recorded interaction unchanged means the profile changes
nothing for this trial."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pytest_tbreplay.analysis.departure import Course, course
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import Profile
from pytest_tbreplay.core.wire import is_overflow
from pytest_tbreplay.replay.engine import ReplayMismatch
from pytest_tbreplay.replay.tools import ToolReplayError
from pytest_tbreplay.run import Replayed, replay_cassette

# The analysis' §7 experiment each mitigation belongs to (1 = first to run).
EXPERIMENT = {"proactive_compaction": 1, "overflow_retry": 1, "dry": 2, "max_tokens": 3, "loop_detector": 3,
              "length_nudge": 3, "verify_before_done": 4}


@dataclass
class Effect:
    mitigation: str  # a profile key
    turn: int
    text: str


@dataclass
class WhatIf:
    trial: str
    task: str
    profile: str
    effects: list[Effect] = field(default_factory=list)
    left_recording_at: int | None = None  # the interaction the harness asked for and the cassette lacked
    notes: list[str] = field(default_factory=list)
    harness: str = "reference"
    source: str = ""  # the cassette's file name (a trial's name can differ from it)
    course: Course | None = None  # where the replay left the recording, why, and how the trial ended

    @property
    def first(self) -> Effect | None:
        return min(self.effects, key=lambda e: e.turn, default=None)

    def summary(self) -> str:
        if self.first is None:
            return "no mitigation acts: this profile changes nothing for this trial"
        return f"{self.first.mitigation}: {self.first.text}"


def whatif(c: cs.Cassette, profile: Profile, harness: str = "reference") -> WhatIf:
    w = WhatIf(c.metadata.get("trial", c.metadata["task"]), c.metadata["task"], profile.name, harness=harness)
    w.source = c.path.name if c.path else w.trial
    try:
        r = replay_cassette(c, profile, harness)
    except ToolReplayError as e:
        w.notes.append(f"stopped: {e}")
        return w
    errors = [e for e in r.engine.errors if isinstance(e, ReplayMismatch)]
    w.left_recording_at = errors[0].index if errors else None
    w.effects = effects(c, r)
    w.course = course(r.engine, r.trial.outcome, r.trial.stop_reason)
    if profile.dry and not any(k in it.request for it in c.interactions for k in profile.dry):
        w.notes.append("DRY fields go with every request; what they change needs a live server (tbreplay sweep)")
    if not w.effects and errors:
        w.notes.append(f"left the recording at interaction {errors[0].index} without a mitigation acting "
                       "(the harness sends a different conversation: see `tbreplay replay`)")
    return w


def effects(c: cs.Cassette, r: Replayed) -> list[Effect]:
    """Each mitigation that acted, at the turn it acted, against what the recording did there."""
    out, trial = [], r.trial
    main = [s for s in r.engine.served if s.request.get("tools")]  # one per turn; summaries have none
    recorded = [it for it in c.interactions if not it.scripted]
    for k, turn in enumerate(trial.turns):
        served = main[k] if k < len(main) else None
        was = c.interactions[served.index] if served and served.index is not None else None
        was_tokens = was.usage.get("completion_tokens") if was else None
        if turn.cut_by == "loop_detector":
            out.append(Effect("loop_detector", k, f"loop detector cut turn {k} at {turn.cut_at:,} tokens; "
                                                  f"recorded {_n(was_tokens)}"))
        elif served and served.cut_at is not None and served.cut_at < (was_tokens or 0):
            out.append(Effect("max_tokens", k, f"max tokens cut turn {k} at {served.cut_at:,} tokens; "
                                               f"recorded {_n(was_tokens)}"))
        if turn.compaction:
            out.append(_compaction(turn.compaction, k, trial, recorded))
    for text in trial.nudges:
        k = _turn_of(main, text)
        out.append(Effect("length_nudge", k, f"nudge after the length stop of turn {k - 1} instead of ending the trial"))
    claim = (_final_text(recorded) or "its final answer") if trial.verify_demands else ""
    for text in trial.verify_demands:
        k = _turn_of(main, text)
        out.append(Effect("verify_before_done", k, f"verify demand instead of ending on {claim[:60]!r}"))
    return out


def _compaction(reason: str, k: int, trial, recorded: list[cs.Interaction]) -> Effect:
    before = next((x["tokens_before"] for x in trial.compactions if x["reason"] == reason), None)
    overflow = next((it for it in recorded if is_overflow(it.status, it.body)), None)
    at = f" at {before:,} tokens" if before else ""
    if reason == "overflow":
        return Effect("overflow_retry", k, f"the context 400 before turn {k} routed into compaction{at} and a retry")
    instead = (f" instead of the 400 at {_n(json.loads(overflow.body)['error']['n_prompt_tokens'])}" if overflow
               else "")
    return Effect("proactive_compaction", k, f"compaction before turn {k}{at}{instead}")


def _turn_of(main: list, text: str) -> int:
    """The turn that answered a harness message: the first request (as served) carrying it."""
    for k, served in enumerate(main):
        if any(m.get("role") == "user" and text in str(m.get("content")) for m in served.request.get("messages", [])):
            return k
    return len(main)


def _final_text(recorded: list[cs.Interaction]) -> str:
    text = ""
    for data in recorded[-1].events:
        if data.startswith("{"):
            for ch in json.loads(data).get("choices") or []:
                text += (ch.get("delta") or {}).get("content") or ""
    return text.strip()


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else "-"


def table(results: list[WhatIf]) -> list[str]:
    lines = [f"{'trial':36} {'first mitigation':22} {'turn':>4}  what"]
    for w in results:
        f = w.first
        lines.append(f"{w.trial[:36]:36} {(f.mitigation if f else '-'):22} {(f.turn if f else ''):>4}  "
                     f"{(f.text if f else w.summary())}"[:120])
    counts: dict[str, int] = {}
    for w in results:
        if w.first:
            counts[w.first.mitigation] = counts.get(w.first.mitigation, 0) + 1
    acting: dict[str, int] = {}
    for w in results:
        for m in dict.fromkeys(e.mitigation for e in w.effects):
            acting[m] = acting.get(m, 0) + 1
    lines += ["", f"{'mitigation':22} {'§7 step':>7} {'acts in':>7} {'acts first in':>13}"]
    for m in sorted(set(acting) | set(counts), key=lambda m: (EXPERIMENT.get(m, 9), m)):
        lines.append(f"{m:22} {EXPERIMENT.get(m, '-'):>7} {acting.get(m, 0):>7} {counts.get(m, 0):>13}")
    lines.append(f"{sum(w.first is None for w in results)} of {len(results)} trials: no mitigation acts")
    return lines


def departures(results: list[WhatIf], markdown: bool = False) -> list[str]:
    """Per trial, profile and harness: where the replay left the recording, why, and how it ended."""
    head = ("trial", "profile", "harness", "leaves at", "why", "ends")
    rows = []
    for w in results:
        c = w.course
        at = "" if c is None or c.first is None else str(c.first.interaction)
        lowered = f" (max tokens first lowered at {c.first_lowered[0]}: {c.first_lowered[1]:,})" \
            if c and c.first_lowered else ""
        why = (c.why + lowered) if c else "; ".join(w.notes)
        rows.append((w.source or w.trial, w.profile, w.harness, at or "-", why, c.ending if c else "not replayed"))
    if markdown:
        return [f"| {' | '.join(head)} |", "|" + "---|" * len(head)] + \
               [f"| {' | '.join(str(x).replace('|', '/') for x in r)} |" for r in rows]
    return [f"{(w.source or w.trial)[:30]:30} {w.profile[:10]:10} {w.harness:10} {at:>6}  {why}  => {end}"
            for w, (_, _, _, at, why, end) in zip(results, rows)]


def grid(results: list[WhatIf]) -> list[str]:
    """The departures as a markdown table: a row per cassette, a column per profile and harness,
    each cell where the replay leaves the recording, why, and how the trial ends."""
    columns = list(dict.fromkeys((w.profile, w.harness) for w in results))
    cells: dict[str, dict] = {}
    for w in results:
        cells.setdefault(w.source or w.trial, {})[(w.profile, w.harness)] = \
            w.course.short if w.course else "; ".join(w.notes) or "not replayed"
    head = ["cassette"] + [f"{p} {h}" for p, h in columns]
    return [f"| {' | '.join(head)} |", "|" + "---|" * len(head)] + \
           [f"| {name} | " + " | ".join(row.get(col, "").replace("|", "/") for col in columns) + " |"
            for name, row in cells.items()]
