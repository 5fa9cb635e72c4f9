"""`tbreplay export --atif`: a trial (replayed, recorded or imported) as Harbor's ATIF trajectory,
the schema version Harbor 0.26 writes for pi (ATIF-v1.7), so `harbor view` shows replays next to
real trials. Built from the viewer's TrialView: one agent step per turn (text, reasoning, tool
calls, their results as the observation, token metrics), a user step for each message the harness
added (nudge, verify demand); what the harness did at a turn goes in the step's `extra`."""
from __future__ import annotations

import json

from pytest_tbreplay.analysis.trialview import Call, Row, TrialView

SCHEMA = "ATIF-v1.7"


def trajectory(v: TrialView, model: str | None, version: str = "unknown", session_id: str | None = None) -> dict:
    steps: list[dict] = [{"source": "user", "message": v.instruction}]
    for row in v.rows:
        steps.append(_agent_step(row, model, v))
        steps += [{"source": "user", "message": said, "extra": {"tbreplay": "harness message"}}
                  for said in row.said_after]
    for i, s in enumerate(steps):
        s["step_id"] = i + 1
    agent_rows = [r for r in v.rows]
    return {
        "schema_version": SCHEMA, "session_id": session_id or f"tbreplay-{v.name}",
        "agent": {"name": "pi" if v.harness == "pi" else f"tbreplay-{v.harness}", "version": version,
                  "model_name": model},
        "steps": steps,
        "final_metrics": {"total_prompt_tokens": sum(r.prompt_tokens or 0 for r in agent_rows),
                          "total_completion_tokens": sum(r.completion_tokens for r in agent_rows),
                          "total_steps": len(steps)},
        "extra": {"tbreplay": {"kind": v.kind, "task": v.task, "trial": v.trial, "profile": v.profile,
                               "harness": v.harness, "n_ctx": v.n_ctx, "reward": v.reward,
                               "failure_mode": v.record.mode, "rule": v.record.rule}},
    }


def _agent_step(row: Row, model: str | None, v: TrialView) -> dict:
    calls = [_call(c, row.index, i) for i, c in enumerate(row.calls)]
    step = {"source": "agent", "model_name": model, "message": row.text,
            "metrics": {"prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens},
            "llm_call_count": 1,
            "extra": {"stop_reason": row.stop_reason, "http_status": row.status,
                      "marks": [{"kind": m.kind, "text": m.text} for m in row.marks]}}
    if row.thinking:
        step["reasoning_content"] = row.thinking
    if calls:
        step["tool_calls"] = calls
        step["observation"] = {"results": [
            {"source_call_id": tc["tool_call_id"], "content": c.result, "extra": {"is_error": c.is_error}}
            for tc, c in zip(calls, row.calls) if c.result is not None]}
    return step


def _call(c: Call, turn: int, i: int) -> dict:
    try:
        args = json.loads(c.arguments) if c.arguments else {}
    except ValueError:  # a call the length stop cut mid-arguments
        args = None
    out = {"tool_call_id": f"turn{turn}-call{i}", "function_name": c.name,
           "arguments": args if isinstance(args, dict) else {}}
    if not isinstance(args, dict):
        out["extra"] = {"raw_arguments": c.arguments}
    return out
