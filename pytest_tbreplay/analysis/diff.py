"""`tbreplay diff BEFORE AFTER`: two runs of the same tasks, task by task, for a CI gate on a
harness change. Each side is a job folder (summarize reads it) or summarize's JSON; a task run
several times is scored by its mean reward. A verdict per task: fixed, regressed, new failure
mode, unchanged (or only-before / only-after); any regression makes the exit status 1."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pytest_tbreplay.analysis import summarize as sm


@dataclass
class Side:
    trials: int
    reward: float | None  # mean over the task's trials (a missing reward counts 0)
    mode: str  # the most common main mode
    turns: float
    peak_context: int
    longest_turn: int  # output tokens of the longest turn


@dataclass
class TaskDiff:
    task: str
    before: Side | None
    after: Side | None
    verdict: str


def load(source: Path) -> list[sm.Record]:
    source = Path(source)
    if source.suffix == ".json" and source.is_file():
        data = json.loads(source.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("trials"), list):
            raise ValueError(f"{source}: not a `tbreplay summarize --json` file (no 'trials' list); give a job "
                             "folder or summarize's JSON")
        return [sm.Record(**t) for t in data["trials"]]
    recs, failed = sm.records([source])
    if failed:
        raise ValueError(f"{failed[0][0]}: {failed[0][1]}")
    if not recs:
        raise ValueError(f"{source}: no trials found; give a Harbor job folder or summarize's JSON")
    return recs


def side(recs: list[sm.Record]) -> Side:
    n = len(recs)
    return Side(n, round(sum(r.reward or 0.0 for r in recs) / n, 3), Counter(r.mode for r in recs).most_common(1)[0][0],
                round(sum(r.turns for r in recs) / n, 1), max(r.peak_prompt_tokens for r in recs),
                max(r.max_turn_tokens for r in recs))


def verdict(before: Side | None, after: Side | None) -> str:
    if before is None or after is None:
        return "only-after" if before is None else "only-before"
    if after.reward > before.reward:
        return "fixed"
    if after.reward < before.reward:
        return "regressed"
    if after.mode != before.mode and after.mode != "pass":
        return "new failure mode"
    return "unchanged"


def diff(before: list[sm.Record], after: list[sm.Record]) -> list[TaskDiff]:
    def by_task(recs):
        out: dict[str, list] = {}
        for r in recs:
            out.setdefault(r.task, []).append(r)
        return {t: side(rs) for t, rs in out.items()}
    b, a = by_task(before), by_task(after)
    return [TaskDiff(t, b.get(t), a.get(t), verdict(b.get(t), a.get(t))) for t in sorted(set(b) | set(a))]


def exit_status(diffs: list[TaskDiff]) -> int:
    return 1 if any(d.verdict == "regressed" for d in diffs) else 0


def as_json(diffs: list[TaskDiff]) -> dict:
    from dataclasses import asdict
    return {"tasks": [asdict(d) for d in diffs], "verdicts": dict(Counter(d.verdict for d in diffs))}


def _pair(d: TaskDiff, key: str, fmt=str) -> str:
    b, a = (getattr(s, key) if s else None for s in (d.before, d.after))
    return f"{'-' if b is None else fmt(b)} → {'-' if a is None else fmt(a)}"


def markdown(diffs: list[TaskDiff]) -> str:
    lines = ["| task | verdict | reward | mode | turns | peak context | longest turn |",
             "|---|---|---|---|---|---|---|"]
    for d in diffs:
        lines.append(f"| {d.task} | **{d.verdict}** | {_pair(d, 'reward')} | {_pair(d, 'mode')} | {_pair(d, 'turns')} "
                     f"| {_pair(d, 'peak_context', '{:,}'.format)} | {_pair(d, 'longest_turn', '{:,}'.format)} |")
    counts = Counter(d.verdict for d in diffs)
    lines += ["", ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "no tasks"]
    return "\n".join(lines)


def table(diffs: list[TaskDiff]) -> list[str]:
    lines = [f"{'task':28} {'verdict':16} {'reward':12} {'mode':10} {'turns':14} {'peak ctx':20} longest turn"]
    for d in diffs:
        lines.append(f"{d.task[:28]:28} {d.verdict:16} {_pair(d, 'reward'):12} {_pair(d, 'mode'):10} "
                     f"{_pair(d, 'turns'):14} {_pair(d, 'peak_context'):20} {_pair(d, 'longest_turn')}")
    return lines
