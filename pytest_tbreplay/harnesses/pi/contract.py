"""The typed contract between the harness (Python) and the pi extensions (TypeScript): what the
extensions read from TBREPLAY_PI_CONFIG (`ExtensionConfig`) and what they write to the event log
(`LOG`, by kind). The TypeScript side declares the same as `type Config` and `type LogEntry` in
extensions/lib/common.ts; tests/unit/test_pi_contract.py compares `contract_json()` with them, so
a field added, renamed or retyped on one side only fails a test instead of reading `undefined`."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class TaskConfig:
    instruction: str
    acceptance: list[str]


@dataclass(frozen=True)
class ExtensionConfig:
    pi_version: str  # the pi running the trial (launch.extensions picks the files by it; for a branch inside one)
    log: str  # the event log (LOG entries, one JSON a line)
    on: list[str]  # the extension files this trial's profile turns on (a kept pi loads them all)
    tool_results: str | None  # replay: the recorded tool results by call id (replay_tools.ts)
    base_url: str  # the server, for the summary request (summary.ts)
    model: str
    dry: dict[str, float]  # DRY sampler fields added to every request (dry.ts), {} for none
    task: TaskConfig
    nudge: str
    max_nudges: int
    verify_contract: str
    max_verify_demands: int
    verify_rules: dict[str, typing.Any]  # policies/gate.py rules() for gate.ts
    success_pattern: str
    summary_system: str
    summary_ask: str
    cut_call: str
    max_tokens: int
    summary_tokens: int
    keep_recent_tokens: int
    proactive_compaction: bool
    overflow_retry: bool
    anchored_summary: bool
    loop: dict[str, typing.Any]  # policies/loopdetect.py LoopDetector.params() for loopdetect.ts
    stuck_guard: dict[str, int] | None  # profiles.stuck_config: the stuck-turn guard's sizes, None for off
    stuck_nudge: str
    stuck_stop: str
    # print_continue.ts: how long a spare prompt waits for pi to settle
    settle_timeout_ms: int = 600_000
    # manifest.ts: where to write the first request (the Harbor agent), None for no manifest
    request_manifest: str | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# What the extensions log, by kind: each entry's fields (besides `kind`) with their TypeScript
# types as common.ts's `type LogEntry` declares them (`name?` for an optional field).
LOG: dict[str, dict[str, str]] = {
    "next": {"text": "string", "as": '"nudge" | "verify_demand"'},  # a user message to send once pi is idle
    "cut": {"message": "number", "rule": "string", "tokens": "number"},  # the loop guard cut assistant message N after `tokens`
    "cut_call": {"id": "string", "text": "string"},  # a cut tool call was not run; the model was told `text`
    "request": {"body": "any"},  # a chat payload sent (pi's, or the summary request)
    "compaction": {"reason": "string", "tokens_before": "number", "summary": "string", "turn": "number"},
    "compaction_cancelled": {"reason": "string", "why?": "string"},
    "stuck_nudge": {"text": "string"},  # the stuck guard steered this nudge into the run
    "stuck": {"text": "string", "rule": "string"},  # the stuck guard stopped the run
    "tool_missing": {"id": "string", "name": "string", "params": "any"},
    "tool_diverged": {"id": "string", "name": "string", "params": "any", "recorded_name": "string", "recorded": "any"},
}

_TS = {str: "string", int: "number", float: "number", bool: "boolean"}


def _ts_type(t) -> str:
    """A Python annotation as the TypeScript type common.ts declares for it."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t in _TS:
        return _TS[t]
    if dataclasses.is_dataclass(t):
        return "{ " + "; ".join(f"{name}: {_ts_type(h)}" for name, h in typing.get_type_hints(t).items()) + " }"
    if origin is list:
        return f"{_ts_type(args[0])}[]"
    if origin is dict:
        return f"Record<string, {'any' if args[1] is typing.Any else _ts_type(args[1])}>"
    if origin in (typing.Union, types.UnionType):
        return " | ".join("null" if a is type(None) else _ts_type(a) for a in args)
    raise TypeError(f"no TypeScript type for {t!r}")


def contract_json() -> dict:
    """The contract as the test compares it with common.ts: config field -> TypeScript type, log
    kind -> {field: type}."""
    hints = typing.get_type_hints(ExtensionConfig)
    return {"config": {f.name: _ts_type(hints[f.name]) for f in dataclasses.fields(ExtensionConfig)},
            "log": LOG}
