"""(j) The stuck-turn guard: a trial going round in circles across turns, which the streaming loop
detector cannot see since every single turn is short (build-pov-ray: 296 turns, one failing
build after another).

A step is one turn's tool calls with their results. The trial is stuck when
- the last `repeats` steps are the same calls (name and canonical arguments) with the same
  results, or the same calls each failing (a tool error, whatever its text), or
- the last `2 * alternation` steps alternate between two different steps: A B A B ...
The first time it is stuck the guard asks for a nudge; if it is still stuck `after_nudge` steps
later (each of them stuck), it stops the trial. A step that changes anything (other arguments, a
result that moved, as a poll of a server that comes up does) is not stuck and resets the count.

Pure: the harnesses feed it steps and act on the verdict. harnesses/pi/extensions/lib/stuck.ts is
the same algorithm; tests/data/stuck_cases.json holds the vectors both must decide alike."""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

from pytest_tbreplay.core.profiles import ProfileError as StuckConfigError  # noqa: F401 - for callers
from pytest_tbreplay.core.profiles import stuck_config  # noqa: F401 - the config is the profile's

STUCK_NUDGE = ("You have run {what} {n} times with the same result. Repeating it will not change the outcome: "
               "stop, read the error, and take a different concrete action (change the code or the command, "
               "or inspect what is failing).")
STUCK_STOP = "stuck: {what} came back {n} times with the same result, and again after the nudge"


def canonical(args) -> str:
    """Arguments as one string, key order ignored (a model may reorder keys between calls)."""
    return json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Step:
    calls: tuple  # ((name, canonical arguments), ...)
    results: tuple  # ((is_error, output), ...)

    @property
    def failed(self) -> bool:
        return bool(self.results) and all(err for err, _ in self.results)

    def describe(self) -> str:
        return " and ".join(f"`{name} {_short(args)}`" for name, args in self.calls)


def step_of(calls: list[tuple[str, dict, str, bool]]) -> Step:
    """A turn's (name, arguments, output, is_error) as a Step."""
    return Step(tuple((n, canonical(a)) for n, a, _, _ in calls), tuple((bool(e), o) for _, _, o, e in calls))


def _short(args: str) -> str:
    try:
        value = json.loads(args)
    except ValueError:
        value = args
    text = value.get("command") if isinstance(value, dict) and isinstance(value.get("command"), str) else args
    return text if len(text) <= 80 else text[:77] + "..."


class StuckGuard:
    def __init__(self, repeats: int = 4, alternation: int = 3, after_nudge: int = 2):
        self.repeats, self.alternation, self.after_nudge = repeats, alternation, after_nudge
        self.steps: deque[Step] = deque(maxlen=max(repeats, 2 * alternation))  # bounded memory
        self.nudged = False
        self.stuck_since_nudge = 0
        self.rule: str | None = None  # "repeat", "error" or "alternation" once stuck
        self.what = ""

    @classmethod
    def from_config(cls, config: dict) -> "StuckGuard":
        return cls(**config)

    def observe(self, step: Step) -> str | None:
        """Feed one turn's step: "nudge", "stop" or None. A turn without tool calls is not a step
        (the harness does not feed it)."""
        self.steps.append(step)
        rule = self._stuck()
        if rule is None:
            self.stuck_since_nudge = 0
            return None
        self.rule, self.what = rule, self._what(rule)
        if not self.nudged:
            self.nudged = True
            return "nudge"
        self.stuck_since_nudge += 1
        return "stop" if self.stuck_since_nudge >= self.after_nudge else None

    def _stuck(self) -> str | None:
        s = list(self.steps)
        if len(s) >= self.repeats:
            last = s[-self.repeats:]
            if all(x.calls == last[0].calls for x in last):
                if all(x.results == last[0].results for x in last):
                    return "repeat"
                if all(x.failed for x in last):
                    return "error"
        n = 2 * self.alternation
        if len(s) >= n:
            last = s[-n:]
            if last[0] != last[1] and all(last[i] == last[i % 2] for i in range(n)):
                return "alternation"
        return None

    def _what(self, rule: str) -> str:
        if rule == "alternation":
            return f"{self.steps[-2].describe()} then {self.steps[-1].describe()}, alternating,"
        return self.steps[-1].describe()

    def text(self, template: str) -> str:
        """STUCK_NUDGE or STUCK_STOP for what the guard saw."""
        n = 2 * self.alternation if self.rule == "alternation" else self.repeats
        return template.format(what=self.what, n=n)
