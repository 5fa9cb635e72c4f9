"""What `tbreplay view` shows of one trial: its turns in order, each with its numbers, what the
model said and called, and marks where a 400 came or the harness acted (compaction, nudge, verify
demand, loop cut, a refused cut call). Built from a replay (`run.Replayed`: what the harness did)
or from a cassette alone (what was recorded or imported). The marks of a replay are whatif's
effects; the trial's figures and failure mode are summarize's Record: nothing is computed twice."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pytest_tbreplay.analysis import summarize as sm
from pytest_tbreplay.analysis.departure import Course, course
from pytest_tbreplay.analysis.whatif import Effect, effects
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import Profile
from pytest_tbreplay.core.sse import DONE
from pytest_tbreplay.policies.texts import NUDGE
from pytest_tbreplay.run import Replayed

# whatif's mitigation -> the mark a page shows
MARK_OF = {"loop_detector": "loop-cut", "max_tokens": "max-tokens-cut", "proactive_compaction": "compaction",
           "overflow_retry": "compaction", "length_nudge": "nudge", "verify_before_done": "demand"}


@dataclass
class Mark:
    kind: str  # http-400 | compaction | nudge | refused-cut-call | demand | loop-cut | max-tokens-cut | loop-start
    text: str


@dataclass
class Call:
    name: str
    arguments: str
    result: str | None = None
    is_error: bool = False


@dataclass
class Row:
    index: int
    status: int = 200
    stop_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int = 0
    thinking: str = ""
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    said_after: list[str] = field(default_factory=list)  # what the harness told the model after this turn

    def key(self) -> tuple:
        """What two sides of a comparison must share for a turn to count as the same."""
        return self.status, self.stop_reason, self.completion_tokens, tuple(c.name for c in self.calls)


@dataclass
class TrialView:
    name: str  # the page's file stem
    task: str
    trial: str
    kind: str  # recorded | reconstructed | imported | replay
    profile: str
    harness: str
    n_ctx: int | None
    window: int | None
    max_tokens: int | None
    rows: list[Row]
    record: sm.Record
    instruction: str = ""
    final_text: str = ""
    reward: float | None = None
    verifier_output: str | None = None
    effects: list[Effect] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    course: Course | None = None  # a replay's: where it left the recording and why (whatif's answer)

    @property
    def side(self) -> str:
        """The replay side's name: the profile, with the harness when it is not the reference one."""
        return self.profile if self.harness == "reference" else f"{self.profile}@{self.harness}"


# -- a cassette as recorded --------------------------------------------------------------------
def from_cassette(c: cs.Cassette, name: str) -> TrialView:
    m, imp = c.metadata, c.metadata.get("imported") or {}
    hp = m.get("harness_profile") or {}
    rows: list[Row] = []
    pending: list[Mark] = []  # a compaction summary request marks the turn after it
    for it in c.interactions:
        if it.scripted:
            pending.append(Mark("compaction", f"compaction summary: {it.scripted.split(';')[0]}"))
            continue
        row = _recorded_row(it, len(rows), c.n_ctx)
        row.marks[:0], pending = pending, []
        rows.append(row)
    failure = m.get("failure") or {}
    if isinstance(failure.get("interaction"), int) and "loop_start_token" in failure:
        k = sum(1 for it in c.interactions[:failure["interaction"]] if not it.scripted)
        if k < len(rows):
            rows[k].marks.append(Mark("loop-start", f"the loop starts at token {failure['loop_start_token']:,}"))
    rec = sm.classify(sm.from_cassette(c))
    return TrialView(name, m["task"], m.get("trial", m["task"]), m.get("provenance", "recorded"),
                     hp.get("name", "recorded"), hp.get("harness", "?"), c.n_ctx, hp.get("context_window"),
                     hp.get("max_tokens"), rows, rec, m.get("instruction", ""), rows[-1].text if rows else "",
                     imp.get("reward"), imp.get("verifier_output"), notes=list(imp.get("synthesized") or []))


def _recorded_row(it: cs.Interaction, k: int, n_ctx: int | None) -> Row:
    if it.status != 200:
        row = Row(k, it.status, "error", _error_tokens(it))
        row.marks.append(Mark("http-400" if it.status == 400 else f"http-{it.status}", _error_text(it.body, n_ctx)))
        return row
    thinking, text, calls, finish = answer(it)
    u = it.usage
    row = Row(k, 200, {"tool_calls": "toolUse", "length": "length"}.get(finish, "stop"), u.get("prompt_tokens"),
              int(u.get("completion_tokens", 0)), thinking, text, calls)
    results = {r.id: r for r in it.tool_results}
    for call_id, call in zip([cid for cid, _ in _ids(it)], row.calls):
        if r := results.get(call_id):
            call.result, call.is_error = r.output, r.is_error
    return row


def answer(it: cs.Interaction) -> tuple[str, str, list[Call], str]:
    """A streamed answer gathered: reasoning, text, tool calls, finish reason."""
    thinking, text, finish, calls = [], [], "stop", {}
    for data in it.events:
        if data == DONE:
            break
        for ch in json.loads(data).get("choices") or []:
            d = ch.get("delta") or {}
            finish = ch.get("finish_reason") or finish
            thinking.append(d.get("reasoning_content") or "")
            text.append(d.get("content") or "")
            for tc in d.get("tool_calls") or []:
                c = calls.setdefault(tc.get("index", 0), ["", []])
                c[0] += (tc.get("function") or {}).get("name") or ""
                c[1].append((tc.get("function") or {}).get("arguments") or "")
    return "".join(thinking), "".join(text), [Call(n, "".join(a)) for n, a in calls.values()], finish


def _ids(it: cs.Interaction) -> list[tuple[str, int]]:
    ids = {}
    for data in it.events:
        if data != DONE:
            for ch in json.loads(data).get("choices") or []:
                for tc in (ch.get("delta") or {}).get("tool_calls") or []:
                    if tc.get("id"):
                        ids.setdefault(tc.get("index", 0), tc["id"])
    return [(v, k) for k, v in sorted(ids.items())]


def _error_tokens(it: cs.Interaction) -> int | None:
    try:
        return json.loads(it.body)["error"]["n_prompt_tokens"]
    except (ValueError, KeyError, TypeError):
        return None


def _error_text(body: str, n_ctx: int | None) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body[:300] or f"HTTP error (n_ctx {n_ctx})"


# -- a replay: what the harness did -------------------------------------------------------------
def from_replay(r: Replayed, profile: Profile, harness: str, name: str) -> TrialView:
    c, trial = r.cassette, r.trial
    recorded = from_cassette(c, name)
    sizes = profile.budget(c.n_ctx).sizes() if c.n_ctx else {}
    main = [s for s in r.served if s.request.get("tools")]  # one per turn, as whatif counts them
    rows = []
    for k, turn in enumerate(trial.turns):
        served = main[k] if k < len(main) else None
        row = Row(k, served.status if served else 200, turn.stop_reason, turn.prompt_tokens, turn.completion_tokens)
        later = main[k + 1].request["messages"] if k + 1 < len(main) else trial.messages
        _fill(row, later)
        if served and served.status != 200:
            body = c.interactions[served.index].body if served.index is not None else ""
            row.marks.append(Mark("http-400" if served.status == 400 else f"http-{served.status}",
                                  _error_text(body, c.n_ctx) if body else
                                  f"request of {served.prompt_tokens:,} tokens exceeds n_ctx {c.n_ctx:,} (emulated)"))
        rows.append(row)
    found = effects(c, r)
    for e in found:
        if 0 <= e.turn < len(rows):
            rows[e.turn].marks.append(Mark(MARK_OF.get(e.mitigation, e.mitigation), e.text))
    for text in (t for t in trial.nudges if t != NUDGE):  # a cut tool call answered by where it was cut
        row = next((x for x in rows if any(c.result == text for c in x.calls)), None)
        if row:
            row.marks.append(Mark("refused-cut-call", text))
    rec = sm.classify(_record_of(recorded.record, trial, sizes))
    return TrialView(name, c.metadata["task"], recorded.trial, "replay", profile.name, harness, c.n_ctx,
                     sizes.get("context_window"), sizes.get("max_tokens"), rows, rec, recorded.instruction,
                     trial.final_text, recorded.reward, recorded.verifier_output, found,
                     course=course(r.engine, trial.outcome, trial.stop_reason))


def _fill(row: Row, later: list[dict]) -> None:
    """The turn's answer is the last assistant message of the next request (or of the conversation
    at the end), with the tool results and harness messages after it; a compaction in between
    keeps it (it is the most recent thing)."""
    if row.status != 200:
        return
    at = max((i for i, m in enumerate(later) if m.get("role") == "assistant"), default=None)
    if at is None:
        return
    m = later[at]
    row.text, row.thinking = m.get("content") or "", m.get("reasoning_content") or ""
    results = {x.get("tool_call_id"): x.get("content") for x in later[at + 1:] if x.get("role") == "tool"}
    for tc in m.get("tool_calls") or []:
        f = tc.get("function") or {}
        row.calls.append(Call(f.get("name", "?"), f.get("arguments", ""), results.get(tc.get("id"))))
    row.said_after = [x["content"] for x in later[at + 1:] if x.get("role") == "user" and isinstance(x.get("content"), str)]


def _record_of(recorded: sm.Record, trial, sizes: dict) -> sm.Record:
    """summarize's Record for the replayed trial: the recorded one's verdict, the replay's figures."""
    r = sm.Record(recorded.task, recorded.trial, recorded.source, recorded.reward, recorded.outcome,
                  n_ctx=recorded.n_ctx, max_tokens=sizes.get("max_tokens"))
    m = trial.metrics()
    r.turns, r.peak_prompt_tokens, r.max_turn_tokens = m["turns"], m["peak_prompt_tokens"], m["max_turn_tokens"]
    for s in trial.stop_reasons:
        r.stop_reasons[s] = r.stop_reasons.get(s, 0) + 1
    for c in m["compactions"]:
        r.compactions[c] = r.compactions.get(c, 0) + 1
    r.checked = m["verifier_ran"]
    r.final_text = trial.final_text
    r.overflow_lost = bool(trial.turns) and trial.turns[-1].stop_reason == "error" and trial.peak_prompt_tokens > (r.n_ctx or 1 << 62)
    return r


# -- two sides ---------------------------------------------------------------------------------
def parting(a: TrialView, b: TrialView) -> tuple[int | None, list[Effect]]:
    """The first turn where the two sides differ (a mitigation acting, or the turns themselves),
    and the mitigations that acted there."""
    acted = [e.turn for e in a.effects + b.effects]
    differ = next((k for k, (x, y) in enumerate(zip(a.rows, b.rows)) if x.key() != y.key()), None)
    if differ is None and len(a.rows) != len(b.rows):
        differ = min(len(a.rows), len(b.rows))
    turn = min([t for t in [*acted, differ] if t is not None], default=None)
    return turn, [e for e in a.effects + b.effects if e.turn == turn]
