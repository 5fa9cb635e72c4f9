"""The live smoke set: per-trial records, the thresholds per model, the report and the table."""
from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from pathlib import Path

import pytest
import yaml

from pytest_tbreplay.core.harbor_result import harbor_outcome as read_outcome
from pytest_tbreplay.core.trial import Trial
from pytest_tbreplay.smoke.tasks import SMOKE_ROOT, Task, VerifierResult

THRESHOLDS = SMOKE_ROOT / "thresholds.yaml"


class ThresholdError(LookupError):
    pass


def thresholds_for(model: str, path: Path = THRESHOLDS) -> dict:
    """The floors for a model: an exact key, else the key contained in the model's name."""
    table = yaml.safe_load(Path(path).read_text())
    if model in table:
        return table[model]
    for key, floors in table.items():
        if key.lower() in model.lower():
            return floors
    raise ThresholdError(f"{path}: no thresholds for model {model!r}; add an entry "
                         f"(known: {', '.join(table)})")


def record(task: Task, trial: Trial, verdict: VerifierResult | None, model: str) -> dict:
    """One smoke trial as the report keeps it. Infra errors and timeouts are not model failures."""
    if trial.outcome in ("infra", "timeout"):
        outcome = trial.outcome
    else:
        outcome = "passed" if verdict and verdict.passed else "failed"
    m = trial.metrics()
    return {"task": task.name, "task_class": task.task_class, "harness": trial.harness, "profile": trial.profile,
            "model": model, "outcome": outcome, "turns": m["turns"], "stop_reasons": trial.stop_reasons,
            "peak_prompt_tokens": m["peak_prompt_tokens"], "compactions": m["compactions"],
            "decode_tps": m["decode_tps"], "wall_s": round(trial.wall_s, 2), "error": trial.error,
            "verifier_output": (verdict.output[-2000:] if verdict else None)}


Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k passes in n trials: unlike k/n +- z*se it stays inside [0, 1]
    and is honest at 0/n and n/n, which a handful of trials per task mostly are."""
    if n <= 0:
        return 0.0, 1.0
    p, zz = k / n, z * z
    centre = (p + zz / (2 * n)) / (1 + zz / n)
    half = z * math.sqrt(p * (1 - p) / n + zz / (4 * n * n)) / (1 + zz / n)
    # 0/n and n/n touch the bound exactly (the formula's rounding would miss it by 1e-17)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def rate(records: list[dict]) -> dict:
    """Passed of scored (infra excluded), the rate and its 95% Wilson interval."""
    scored = [r for r in records if r["outcome"] in ("passed", "failed", "timeout")]
    k, n = sum(r["outcome"] == "passed" for r in scored), len(scored)
    lo, hi = wilson(k, n)
    return {"passed": k, "scored": n, "pass_rate": k / n if n else None, "ci95": [round(lo, 4), round(hi, 4)]}


def per_task(records: list[dict]) -> dict[str, dict]:
    tasks: dict[str, list] = {}
    for r in records:
        tasks.setdefault(r["task"], []).append(r)
    return {t: rate(rs) for t, rs in tasks.items()}


def _fmt(r: dict) -> str:
    lo, hi = r["ci95"]
    return f"{r['pass_rate']:.0%} ({r['passed']}/{r['scored']}; 95% interval {lo:.0%}-{hi:.0%})"


def totals(records: list[dict]) -> dict:
    scored = [r for r in records if r["outcome"] in ("passed", "failed", "timeout")]
    rates = [r["decode_tps"] for r in records if r["decode_tps"]]
    return {"trials": len(records), "scored": len(scored),
            "passed": sum(r["outcome"] == "passed" for r in scored),
            "infra": sum(r["outcome"] == "infra" for r in records),
            "timeouts": sum(r["outcome"] == "timeout" for r in records),
            "pass_rate": sum(r["outcome"] == "passed" for r in scored) / len(scored) if scored else None,
            "pass_rate_ci95": rate(records)["ci95"], "tasks": per_task(records),
            "decode_tps_median": statistics.median(rates) if rates else None}


def check(records: list[dict], floors: dict) -> list[str]:
    """What falls below the model's floors (empty when the run meets them)."""
    t, problems = totals(records), []
    if t["pass_rate"] is None:
        problems.append("no trial was scored (all infra errors)")
    elif t["pass_rate_ci95"][1] < floors["pass_rate"]:  # the whole interval is below: a real shortfall
        problems.append(f"pass rate {_fmt(rate(records))} is below the floor {floors['pass_rate']:.0%}")
    if t["decode_tps_median"] is None:
        problems.append("no decode rate was measured")
    elif t["decode_tps_median"] < floors["decode_tok_s"]:
        problems.append(f"decode {t['decode_tps_median']:.1f} tok/s is below the floor {floors['decode_tok_s']} tok/s")
    return problems


def undecided(records: list[dict], floors: dict) -> list[str]:
    """Rates under the floor whose interval still reaches it: too few trials to tell."""
    r = rate(records)
    if r["pass_rate"] is None or r["pass_rate"] >= floors["pass_rate"] or r["ci95"][1] < floors["pass_rate"]:
        return []
    return [f"pass rate {_fmt(r)} is under the floor {floors['pass_rate']:.0%} but its interval reaches it: "
            f"{r['scored']} scored trials are too few to tell (run more with --trials N)"]


def write_report(records: list[dict], path: Path) -> dict:
    """JSON report, one record per trial plus totals; written atomically."""
    report = {"trials": records, "totals": totals(records)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, path)
    return report


def table(records: list[dict]) -> list[str]:
    lines = [f"{'task':26} {'result':8} {'turns':>5} {'stop reasons':34} {'peak ctx':>8} {'compactions':12} {'tok/s':>7}"]
    for r in records:
        stops = ",".join(f"{s}x{r['stop_reasons'].count(s)}" for s in dict.fromkeys(r["stop_reasons"]))
        tps = f"{r['decode_tps']:.1f}" if r["decode_tps"] else "-"
        lines.append(f"{r['task'][:26]:26} {r['outcome']:8} {r['turns']:>5} {stops[:34]:34} "
                     f"{r['peak_prompt_tokens']:>8} {','.join(r['compactions']) or '-':12} {tps:>7}")
    t = totals(records)
    for task, r in t["tasks"].items():
        if r["scored"]:
            lines.append(f"  {task[:26]:26} pass rate {_fmt(r)}")
    overall = _fmt(rate(records)) if t["pass_rate"] is not None else "-"
    med = f"{t['decode_tps_median']:.1f}" if t["decode_tps_median"] else "-"
    lines.append(f"pass rate {overall} ({t['infra']} infra, {t['timeouts']} timeouts); median decode {med} tok/s")
    return lines


class SmokeReport:
    """The smoke records of one session (from this process or from xdist workers): written as a
    JSON report, checked against the model's floors, printed as a table. The plugin registers one
    per config, so an inner pytest session (pytester) keeps its own."""

    def __init__(self, config):
        self.config, self.records, self.path, self.problems, self.notes = config, [], None, [], []

    def pytest_runtest_logreport(self, report):
        for key, value in getattr(report, "user_properties", []):
            if key == "tbreplay_smoke" and report.when == "call":
                self.records.append(json.loads(value))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if not self.records or hasattr(self.config, "workerinput"):
            return
        config = self.config  # --smoke-report is this repository's option; a user's project gets the default
        self.path = Path(config.getoption("smoke_report", None) or config.rootpath / ".tbreplay" / "smoke-report.json")
        write_report(self.records, self.path)
        try:
            floors = thresholds_for(self.records[0]["model"])
            self.problems, self.notes = check(self.records, floors), undecided(self.records, floors)
        except ThresholdError as e:
            self.problems = [str(e)]
        if self.problems:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.records:
            return
        tr = terminalreporter
        tr.section("tbreplay smoke")
        for line in table(self.records):
            tr.write_line(line)
        tr.write_line(f"report: {self.path}")
        for p in self.problems:
            tr.write_line(f"THRESHOLD FAILED: {p}", red=True)
        for n in self.notes:
            tr.write_line(f"too few trials: {n}", yellow=True)
        if not self.problems:
            tr.write_line(f"thresholds for {self.records[0]['model']}: met", green=True)


# -- the real benchmark path: the same tasks through `harbor run` ------------------------------
HARBOR_AGENT = "pytest_tbreplay.harbor:MitigatedPi"
def harbor_command(task: str | Path, model: str, jobs_dir: Path, job_name: str, *, api_base: str,
                   time_scale: float = 1.0, n_ctx: int | None = None, profile: str | None = None,
                   agent: str = HARBOR_AGENT, environment: str | None = None, harbor: str = "harbor") -> list[str]:
    """`harbor run` of one task with our agent into jobs_dir/job_name. `task` is a task folder
    (`-p`, e.g. smoke/regex-log) or a Terminal-Bench 2.0 task name (`-d terminal-bench@2.0 -i`).
    `-n 1`: Harbor's default 4 would put four trials on one llama-server."""
    where = ["-p", str(task)] if Path(task).is_dir() else ["-d", "terminal-bench@2.0", "-i", str(task)]
    kwargs = [f"api_base={api_base}"] + ([f"n_ctx={n_ctx}"] if n_ctx else []) + ([f"profile={profile}"] if profile else [])
    return [harbor, "run", *where, "-a", agent, "-m", model if "/" in model else f"openai/{model}",
            *[a for kw in kwargs for a in ("--ak", kw)], "-n", "1", "-k", "1",
            "--timeout-multiplier", str(time_scale), "-o", str(jobs_dir), "--job-name", job_name, "-y", "-q",
            *(["-e", environment] if environment else [])]


def harbor_trial(job_dir: Path, task_name: str) -> tuple[Path, dict] | None:
    """The trial of `task_name` in a job folder, by what its own result.json says (the folder name
    ends in a random suffix); the latest finished one if the job holds several."""
    found = []
    for path in Path(job_dir).glob("*/result.json"):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(r, dict) and r.get("task_name") == task_name and r.get("trial_name"):
            found.append((r.get("finished_at") or r.get("started_at") or "", path.parent, r))
    return max(found, key=lambda f: f[0])[1:] if found else None


def harbor_outcome(r: dict) -> str:
    """passed | failed | timeout | infra (core.harbor_result's reading; a graded trial with no
    reward failed)."""
    outcome = read_outcome(r)
    return "failed" if outcome in ("error", "incomplete") else outcome


def harbor_record(task: Task, job_dir: Path, model: str, profile: str = "mitigated") -> dict:
    """One smoke record from the trial Harbor wrote (result.json, agent/trajectory.json)."""
    found = harbor_trial(job_dir, task.name)
    rec = {"task": task.name, "task_class": task.task_class, "harness": "pi (harbor)", "profile": profile,
           "model": model, "outcome": "infra", "turns": 0, "stop_reasons": [], "peak_prompt_tokens": 0,
           "compactions": [], "decode_tps": None, "wall_s": 0, "error": f"no trial of {task.name} in {job_dir}",
           "verifier_output": None}
    if not found:
        return rec
    trial, r = found
    exc = r.get("exception_info") or {}
    steps = _trajectory_steps(trial / "agent" / "trajectory.json")
    prompts = [(s.get("metrics") or {}).get("prompt_tokens") or 0 for s in steps]
    stdout = trial / "verifier" / "test-stdout.txt"
    return rec | {"outcome": harbor_outcome(r), "turns": len(prompts), "peak_prompt_tokens": max(prompts, default=0),
                  "stop_reasons": [(s.get("extra") or {}).get("stop_reason") or "?" for s in steps],
                  "wall_s": _seconds(r.get("started_at"), r.get("finished_at")),
                  "error": f"{exc['exception_type']}: {exc.get('exception_message', '')[-1000:]}" if exc else None,
                  "verifier_output": stdout.read_text()[-2000:] if stdout.is_file() else None}


def _trajectory_steps(path: Path) -> list[dict]:
    """The model's steps (those with token metrics) of an ATIF trajectory."""
    try:
        steps = json.loads(path.read_text()).get("steps") or []
    except (OSError, ValueError):
        return []
    return [s for s in steps if s.get("source") == "agent" and s.get("metrics")]


def _seconds(start: str | None, end: str | None) -> float:
    from datetime import datetime
    try:
        return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 2)
    except (TypeError, ValueError):
        return 0
