"""`tbreplay summarize`: the failure analysis' §5.5 table, computed from trials.

Sources: a Harbor job folder (or trial folder, or pi session), cassettes, or the smoke report.
Each becomes one `Record` per trial; a trial's failure modes follow the analysis' §4 taxonomy,
each with the rule that assigned it; the totals count a trial under every mode it shows, as §4
does (modes overlap)."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_tbreplay.analysis.claims import claim
from pytest_tbreplay.analysis.importer import (
    NoSession,
    TrialImportError,
    _count,
    _dig,
    _read_result,
    find_trials,
    locate,
    trial_facts,
    unexpected,
)
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.jobfiles import display, tail_text
from pytest_tbreplay.core.sse import DONE
from pytest_tbreplay.core.wire import OVERFLOW_SIZES, is_overflow
from pytest_tbreplay.harnesses.pi.session import SessionError, read_session, text_of
from pytest_tbreplay.policies.gate import VerifyGate

MODES = {"A": "overflow into compaction", "A'": "context 400, trial lost", "B": "runaway length stop",
         "C": "timeout", "D": "confident false success", "E": "infra", "F": "other failure"}
COLORS = {"pass": "#2ca02c", "A": "#ff7f0e", "A'": "#d62728", "B": "#9467bd", "C": "#8c564b", "D": "#e377c2",
          "E": "#7f7f7f", "F": "#1f77b4", "?": "#bcbd22"}


@dataclass
class Record:
    task: str
    trial: str
    source: str
    reward: float | None = None
    outcome: str = "unknown"  # passed | failed | timeout | infra | error | incomplete | unknown
    turns: int = 0
    stop_reasons: dict = field(default_factory=dict)  # pi stopReason -> count
    max_thinking_tokens: int = 0
    max_text_tokens: int = 0
    compactions: dict = field(default_factory=dict)  # threshold | overflow -> count
    peak_prompt_tokens: int = 0
    n_ctx: int | None = None
    max_tokens: int | None = None
    max_turn_tokens: int = 0
    checked: bool = False  # a test, check or provided verifier ran
    wall_s: float | None = None
    overflow_lost: bool = False  # the trial's last call was a context 400
    final_text: str = ""
    exception_type: str | None = None
    stderr_tail: str | None = None
    modes: list[str] = field(default_factory=list)
    mode: str = "?"
    rule: str = ""


# -- the taxonomy ---------------------------------------------------------------------------------
def classify(r: Record) -> Record:
    """Every mode the trial shows, with its rule; the first (in this order) is its mode."""
    found: list[tuple[str, str]] = []
    if r.outcome == "infra":
        found.append(("E", f"Harbor exception {r.exception_type} is infrastructure (not graded)"))
    elif r.outcome != "passed" and not r.overflow_lost and \
            r.stop_reasons.get("error", 0) + r.stop_reasons.get("aborted", 0) == r.turns:
        # pi exited before any turn, or no request got an answer: the model never had a say.
        tail = (r.stderr_tail or "").strip().splitlines()[-1:] or ["(empty)"]
        found.append(("E", f"the agent never got a model answer; pi stderr: {tail[0][:80]}"))
    if r.outcome == "passed":
        return _assign(r, [("pass", f"reward {r.reward}")])
    if r.overflow_lost:
        found.append(("A'", "the last request got the context 400 and nothing retried it"))
    if sum(r.compactions.values()):
        kinds = ", ".join(f"{n} {k}" for k, n in r.compactions.items() if n)
        found.append(("A", f"compacted ({kinds})"))
    if r.stop_reasons.get("length"):
        found.append(("B", f"{r.stop_reasons['length']} length stop(s), longest turn {r.max_turn_tokens} tokens"
                           + (f" of {r.max_tokens}" if r.max_tokens else "")))
    if r.outcome == "timeout":
        found.append(("C", f"Harbor {r.exception_type or 'AgentTimeoutError'}: out of the agent's time"))
    if r.outcome == "failed" and (said := claim(r.final_text)):
        found.append(("D", f"reward {r.reward} after a final message claiming success ({said!r})"))
    if not found and r.outcome in ("failed", "error"):
        found.append(("F", f"reward {r.reward}, {r.outcome}, no mechanical mode"))
    if not found:
        found.append(("?", f"outcome {r.outcome}: not scored"))
    return _assign(r, found)


def _assign(r: Record, found: list[tuple[str, str]]) -> Record:
    r.modes = [m for m, _ in found]
    r.mode, r.rule = found[0]
    return r


# -- records from each source -----------------------------------------------------------------------
def records(sources: list[Path]) -> tuple[list[Record], list[tuple[Path, str]]]:
    out, failed = [], []
    for source in map(Path, sources):
        try:
            if source.suffix in (".yaml", ".yml"):
                out.append(from_cassette(cs.load(source)))
            elif source.suffix == ".json":
                out += from_smoke_report(source)
            else:
                for trial in find_trials(source):
                    try:
                        out.append(_one_trial(Path(trial)))
                    except (TrialImportError, SessionError) as e:
                        failed.append((trial, str(e)))
                    except Exception as e:  # noqa: BLE001 - one trial's surprise must not drop the rest of the job
                        failed.append((trial, unexpected(trial, e)))
        except (TrialImportError, cs.CassetteError, SessionError, ValueError, OSError) as e:
            failed.append((source, str(e)))
        except Exception as e:  # noqa: BLE001
            failed.append((source, unexpected(source, e)))
    return [classify(r) for r in out], failed


def _one_trial(trial: Path) -> Record:
    try:
        return from_trial(trial)
    except NoSession:  # pi ran but wrote no session: it never got an answer
        return from_unstarted(trial)


def from_trial(path: Path) -> Record:
    """From the session and result.json directly: no cassette is built (fast on big job folders)."""
    t = locate(path)
    try:
        session = read_session(t.session, t.root)
    except SessionError as e:
        raise TrialImportError(str(e)) from None
    facts = trial_facts(t, session)
    r = Record(facts["task"], facts["trial"], facts["source"], facts["reward"], facts["outcome"],
               n_ctx=facts["n_ctx"], max_tokens=facts["max_tokens"], wall_s=facts["wall_s"],
               exception_type=facts["exception_type"], stderr_tail=facts["pi_stderr"])
    calls = session.calls
    gate = VerifyGate()  # "checked": a check of produced output ran (verify.py's rules)
    for call in calls:
        m = call.message
        stop = m.get("stopReason", "stop")
        r.stop_reasons[stop] = r.stop_reasons.get(stop, 0) + 1
        usage = m.get("usage") or {}
        prompt = int(usage.get("input", 0)) + int(usage.get("cacheRead", 0)) + int(usage.get("cacheWrite", 0))
        if over := OVERFLOW_SIZES.search(m.get("errorMessage") or ""):
            prompt = int(over.group(1))
        r.peak_prompt_tokens = max(r.peak_prompt_tokens, prompt)
        thinking, text = _split(m, int(usage.get("output", 0)))
        r.max_thinking_tokens, r.max_text_tokens = max(r.max_thinking_tokens, thinking), max(r.max_text_tokens, text)
        r.max_turn_tokens = max(r.max_turn_tokens, int(usage.get("output", 0)))
        for c in (b for b in m.get("content") or [] if b.get("type") == "toolCall"):
            r.checked |= gate.observe(c.get("name"), c.get("arguments") or {})
        if call.compaction is not None:
            kind = "overflow" if _after_overflow(session.branch, call.compaction) else "threshold"
            r.compactions[kind] = r.compactions.get(kind, 0) + 1
    r.turns = len(calls)
    last = calls[-1].message if calls else {}
    r.overflow_lost = bool(OVERFLOW_SIZES.search(last.get("errorMessage") or ""))
    r.final_text = text_of(last)
    return r


def from_unstarted(trial: Path) -> Record:
    """A trial whose pi wrote no session (pi writes it with the first answer)."""
    result = _read_result(trial / "result.json", trial) or {}
    reward = _dig(result, "verifier_result", "rewards", "reward")
    name = display(trial.name)
    return Record(result.get("task_name") or name.split("__")[0], result.get("trial_name") or name,
                  name, reward, "failed" if result else "incomplete",
                  exception_type=_dig(result, "exception_info", "exception_type"),
                  stderr_tail=tail_text(trial / "agent" / "pi.stderr", trial, 2000))


def _split(m: dict, output: int) -> tuple[int, int]:
    """Thinking and text tokens of a turn: its output tokens split by characters."""
    blocks = m.get("content") or []
    thinking = sum(len(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking")
    rest = sum(len(b.get("text", "")) for b in blocks if b.get("type") == "text")
    rest += sum(len(json.dumps(b.get("arguments") or {})) for b in blocks if b.get("type") == "toolCall")
    total = thinking + rest
    return (round(output * thinking / total), round(output * rest / total)) if total else (0, 0)


def _after_overflow(branch: list[dict], compaction: dict) -> bool:
    at = next(i for i, e in enumerate(branch) if e["id"] == compaction["id"])
    before = [e for e in branch[:at] if e.get("type") == "message"]
    return bool(before) and bool(OVERFLOW_SIZES.search(before[-1]["message"].get("errorMessage") or ""))


def from_cassette(c: cs.Cassette) -> Record:
    m = c.metadata
    imp = m.get("imported") or {}
    r = Record(m["task"], m.get("trial", m["task"]), str(c.path), imp.get("reward"), imp.get("outcome", "unknown"),
               n_ctx=c.n_ctx, max_tokens=_count((m.get("harness_profile") or {}).get("max_tokens")),
               exception_type=imp.get("exception_type"), stderr_tail=imp.get("pi_stderr"))
    if m["provenance"] != "imported":
        r.outcome = "failed"  # a reconstructed or recorded failure cassette shows a failed trial
    gate = VerifyGate()
    calls = [it for it in c.interactions if not it.scripted]
    for it in calls:
        if it.status != 200:
            r.stop_reasons["error"] = r.stop_reasons.get("error", 0) + 1
            if is_overflow(it.status, it.body):
                r.peak_prompt_tokens = max(r.peak_prompt_tokens, json.loads(it.body)["error"]["n_prompt_tokens"])
            continue
        turn = _turn(it)
        r.stop_reasons[turn["stop"]] = r.stop_reasons.get(turn["stop"], 0) + 1
        r.peak_prompt_tokens = max(r.peak_prompt_tokens, turn["prompt"])
        r.max_thinking_tokens = max(r.max_thinking_tokens, turn["thinking"])
        r.max_text_tokens = max(r.max_text_tokens, turn["text"])
        r.max_turn_tokens = max(r.max_turn_tokens, turn["completion"])
        for t in it.tool_results:
            r.checked |= gate.observe(t.name, t.arguments, t.output, t.is_error)
        r.final_text = turn["content"]
    # An imported trial keeps its compactions as answered summary requests.
    r.compactions = {"summary": sum(1 for it in c.interactions if (it.scripted or "").startswith("imported:"))}
    r.turns = len(calls)
    r.overflow_lost = bool(calls) and is_overflow(calls[-1].status, calls[-1].body)
    return r


def _turn(it: cs.Interaction) -> dict:
    finish, content, thinking_chunks, text_chunks = "stop", "", 0, 0
    for data in it.events:
        if data == DONE:
            break
        e = json.loads(data)
        for ch in e.get("choices") or []:
            d = ch.get("delta") or {}
            finish = ch.get("finish_reason") or finish
            thinking_chunks += bool(d.get("reasoning_content"))
            text_chunks += bool(d.get("content") or d.get("tool_calls"))
            content += d.get("content") or ""
    u = it.usage
    completion = int(u.get("completion_tokens", thinking_chunks + text_chunks))
    share = thinking_chunks / (thinking_chunks + text_chunks) if thinking_chunks + text_chunks else 0
    stop = {"tool_calls": "toolUse", "length": "length"}.get(finish, "stop")
    return {"stop": stop, "prompt": int(u.get("prompt_tokens", 0)), "completion": completion,
            "thinking": round(completion * share), "text": completion - round(completion * share), "content": content}


def from_smoke_report(path: Path) -> list[Record]:
    report = json.loads(Path(path).read_text())
    out = []
    for i, t in enumerate(report.get("trials") or []):
        r = Record(t["task"], f"{t['task']}#{i}", str(path), 1.0 if t["outcome"] == "passed" else 0.0,
                   t["outcome"], turns=t.get("turns", 0), peak_prompt_tokens=t.get("peak_prompt_tokens", 0),
                   wall_s=t.get("wall_s"), final_text=t.get("final_text", ""))
        for s in t.get("stop_reasons") or []:
            r.stop_reasons[s] = r.stop_reasons.get(s, 0) + 1
        for k in t.get("compactions") or []:
            r.compactions[k] = r.compactions.get(k, 0) + 1
        out.append(r)
    return out


# -- output --------------------------------------------------------------------------------------
def totals(recs: list[Record]) -> dict:
    scored = [r for r in recs if r.outcome in ("passed", "failed", "timeout", "error")]
    return {"trials": len(recs), "passed": sum(r.outcome == "passed" for r in recs),
            "failed": sum(r.outcome in ("failed", "timeout", "error") for r in recs),
            "infra": sum(r.mode == "E" for r in recs),
            "pass_rate": round(sum(r.outcome == "passed" for r in scored) / len(scored), 3) if scored else None,
            "by_mode": {m: sum(m in r.modes for r in recs) for m in MODES},
            "primary_mode": {m: sum(r.mode == m for r in recs) for m in MODES}}


def table(recs: list[Record]) -> list[str]:
    """At most 120 columns."""
    lines = [f"{'task':24} {'rew':>3} {'turns':>5} {'stops s/l/t/e':13} {'think':>5} {'text':>6} {'cmp t/o':7} "
             f"{'peak ctx':>9} {'n_ctx':>7} {'chk':3} {'wall s':>6} {'mode':4} rule"]
    for r in recs:
        s = r.stop_reasons
        stops = f"{s.get('stop', 0)}/{s.get('length', 0)}/{s.get('toolUse', 0)}/{s.get('error', 0)}"
        cmp_ = f"{r.compactions.get('threshold', 0) + r.compactions.get('summary', 0)}/{r.compactions.get('overflow', 0)}"
        rew = "-" if r.reward is None else f"{r.reward:.0f}"
        wall = "-" if r.wall_s is None else f"{r.wall_s:.0f}"
        line = (f"{r.task[:24]:24} {rew:>3} {r.turns:>5} {stops:13} {r.max_thinking_tokens:>5} {r.max_text_tokens:>6} "
                f"{cmp_:7} {r.peak_prompt_tokens:>9} {r.n_ctx or '-':>7} {'yes' if r.checked else '-':3} {wall:>6} "
                f"{r.mode:4} ")
        lines.append((line + r.rule)[:120])
    t = totals(recs)
    lines.append("")
    lines.append(f"{t['trials']} trials: {t['passed']} passed, {t['failed']} failed, {t['infra']} infra; "
                 f"pass rate {t['pass_rate']}")
    lines.append(f"{'mode':5} {'description':28} {'trials':>6} {'as main mode':>12}")
    for m, desc in MODES.items():
        lines.append(f"{m:5} {desc:28} {t['by_mode'][m]:>6} {t['primary_mode'][m]:>12}")
    return lines


def write_json(recs: list[Record], path: Path) -> None:
    Path(path).write_text(json.dumps({"trials": [asdict(r) for r in recs], "totals": totals(recs)}, indent=1))


def write_csv(recs: list[Record], path: Path) -> None:
    rows = [asdict(r) for r in recs]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["task"])
        w.writeheader()
        for row in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in row.items()})


MAX_ROWS = 60  # trials drawn one bar each; more are drawn as a scatter and counts (readable, seconds)


def _ratio(a, b) -> float:
    return a / b if isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 else 0.0


def plot(recs: list[Record], path: Path) -> None:
    """Per trial: peak context / n_ctx and longest turn / max tokens, coloured by mode. Past
    MAX_ROWS trials, one point per trial and the trials per mode instead of a bar each."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = [COLORS.get(r.mode, COLORS["?"]) for r in recs]
    ctx = [_ratio(r.peak_prompt_tokens, r.n_ctx) for r in recs]
    turn = [_ratio(r.max_turn_tokens, r.max_tokens) for r in recs]
    used = dict.fromkeys(r.mode for r in recs)
    if len(recs) > MAX_ROWS:
        fig, axes = _aggregate(plt, recs, ctx, turn, colors, used)
    else:
        fig, axes = _bars(plt, recs, ctx, turn, colors)
    fig.legend(handles=[Patch(color=COLORS.get(m, COLORS["?"]), label=f"{m}: {MODES.get(m, m)}") for m in used],
               loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bars(plt, recs, ctx, turn, colors):
    names = [f"{r.task[:28]} ({r.trial[-7:]})" if r.trial != r.task else r.task[:36] for r in recs]
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.5 + 0.28 * len(recs)), sharey=True)
    for ax, values, title in ((axes[0], ctx, "peak prompt tokens / n_ctx"),
                              (axes[1], turn, "longest turn / max tokens")):
        ax.barh(range(len(recs)), values, color=colors)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_title(title)
        ax.set_xlim(0, max([1.1, *values]) * 1.05)
    axes[0].set_yticks(range(len(recs)), names, fontsize=8)
    axes[0].invert_yaxis()
    return fig, axes


def _aggregate(plt, recs, ctx, turn, colors, used):
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    axes[0].scatter(ctx, turn, c=colors, s=8, alpha=0.6, linewidths=0)
    axes[0].axvline(1.0, color="black", linewidth=1)
    axes[0].axhline(1.0, color="black", linewidth=1)
    axes[0].set_xlabel("peak prompt tokens / n_ctx")
    axes[0].set_ylabel("longest turn / max tokens")
    axes[0].set_title(f"{len(recs):,} trials, one point each")
    counts = [sum(r.mode == m for r in recs) for m in used]
    axes[1].barh(range(len(used)), counts, color=[COLORS.get(m, COLORS["?"]) for m in used])
    axes[1].set_yticks(range(len(used)), [f"{m}: {MODES.get(m, m)}" for m in used], fontsize=8)
    axes[1].invert_yaxis()
    axes[1].set_title("trials by main mode")
    return fig, axes
