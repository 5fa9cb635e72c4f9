"""`tbreplay sweep` and `pytest --live -m smoke --sweep NAME=V1,V2,...`: run a workload once per
setting and compare pass rate, length stops, decode tok/s, the repeated-4-gram rate, compactions
and time per task. Output: a JSON, a markdown table and one PNG per metric, each point with the
number of trials behind it and a note where two settings differ by less than the noise.

A setting is one of three kinds, by its name:
- a request field (`dry_multiplier`, `max_tokens`, `reasoning_budget_tokens`, `temperature`, ...):
  sent in every request;
- a server flag (`--cache-type-k`, `--spec-draft-n-max`, ...): the embedded llama-server is
  restarted with it (against --server-url, sweep llama-swap model variants instead);
- `model`: llama-swap model IDs, one variant per setting (each with its own flags in config.yaml)."""
from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pytest_tbreplay.harnesses import harness_name

from pytest_tbreplay.core.trial import text_repetition

# Loops in progress, in the words of the analysis' runaway turns (§4-B): the model is asked to
# continue each one, as a looping turn continues itself. Several, so a setting's figure is a mean
# over different loops, not one continuation seen again (temperature 0 makes each deterministic).
LOOP_PROMPTS = [
    "OK, let me try a completely different approach. Wait, I've tried this. " * 3,
    "The build failed. Let me fix the linker flags and rebuild. " * 3,
    "Actually, the simplest fix is to rewrite main.rs. Wait, that is what I did before. " * 3,
    "Let me check the output again. The output is still wrong. " * 3,
    "I need to verify the file. Let me read it again. " * 3,
    "Hmm, that didn't work. Let me think about this differently. " * 3,
]
METRICS = {  # key: (label, higher is better)
    "pass_rate": ("pass rate", True),
    "length_stop_rate": ("length stops per trial", False),
    "decode_tps": ("decode tok/s", True),
    "repeat_4gram": ("repeated-4-gram rate", False),
    "completion_tokens": ("completion tokens", None),
    "compactions": ("compactions per trial", None),
    "wall_s": ("time per trial (s)", False),
}


class SweepError(ValueError):
    pass


@dataclass
class Sweep:
    name: str
    values: list
    kind: str  # "request", "server" or "model"

    def label(self, value) -> str:
        return f"{self.name}={value}"


def parse(spec: str) -> Sweep:
    """`NAME=V1,V2,...`; a NAME starting with '-' is a llama-server flag (`--sweep=--cache-type-k=q8_0,q4_0`)."""
    name, eq, values = spec.partition("=")
    if not eq or not name or not values.strip(","):
        raise SweepError(f"--sweep {spec!r}: write NAME=V1,V2,... (a request field such as dry_multiplier=0,0.8, "
                         "a server flag such as --sweep=--cache-type-k=q8_0,q4_0, or model=ID1,ID2)")
    kind = "server" if name.startswith("-") else "model" if name == "model" else "request"
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if kind == "server":
        from pytest_tbreplay.serverconfig import serverargs
        flag = serverargs.flag_table().flag(name)
        if flag is None or flag.removed:
            raise SweepError(f"--sweep {spec!r}: {name} is not a llama-server flag "
                             f"(closest: {serverargs.flag_table().closest(name)})")
        return Sweep(name, vals, kind)
    return Sweep(name, [_value(v) for v in vals] if kind == "request" else vals, kind)


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text, text)


# -- the prompt workload: one completion per trial ----------------------------------------------
def prompt_trial(url: str, prompt: str, fields: dict, model: str = "local", max_tokens: int = 200,
                 timeout: float = 600) -> dict:
    """Continue `prompt` with the sweep's fields (llama-server's /completion, which llama-swap also
    routes on `model`); prompt caching off so every setting pays the same prefill."""
    body = {"model": model, "prompt": prompt, "n_predict": max_tokens, "temperature": 0, "seed": 1,
            "cache_prompt": False, "stream": False} | fields
    start = time.monotonic()
    r = httpx.post(f"{url}/completion", json=body, timeout=timeout)
    if r.status_code != 200:
        raise SweepError(f"{url}: HTTP {r.status_code} for {fields}: {r.text[:300]}")
    data = r.json()
    text = data.get("content") or ""
    timings = data.get("timings") or {}
    return {"stop_type": data.get("stop_type"), "completion_tokens": data.get("tokens_predicted", 0),
            "length_stop": data.get("stop_type") == "limit", "repeat_4gram": text_repetition(text),
            "decode_tps": timings.get("predicted_per_second"), "wall_s": time.monotonic() - start,
            "text": text[:2000]}


def run_prompts(url: str, sweep: Sweep, value, trials: int, model: str, max_tokens: int) -> list[dict]:
    fields = {sweep.name: value} if sweep.kind == "request" else {}
    if "max_tokens" in fields:
        max_tokens = int(fields.pop("max_tokens"))
    prompts = [LOOP_PROMPTS[i % len(LOOP_PROMPTS)] for i in range(trials)]
    return [prompt_trial(url, p, fields, model if sweep.kind != "model" else value, max_tokens) for p in prompts]


# -- the task workload: a smoke task through a harness ---------------------------------------------
def profile_with(profile, sweep: Sweep, value):
    """The profile for one setting. max_tokens is the profile's turn cap; other request fields ride in
    `profile.dry`, the sampler fields the harnesses merge into every request."""
    if sweep.kind != "request":
        return profile
    if sweep.name == "max_tokens":  # the profile's budget keeps a full turn inside its window
        return profile.replace(max_tokens=int(value))
    return profile.replace(dry=dict(profile.dry or {}) | {sweep.name: value})


def task_record(trial, passed: bool | None) -> dict:
    """The sweep's figures for one harness trial."""
    m = trial.metrics()
    return {"passed": passed, "outcome": trial.outcome, "length_stops": m["length_stops"], "turns": m["turns"],
            "length_stop": m["length_stops"] > 0, "decode_tps": m["decode_tps"], "repeat_4gram": m["repeat_4gram"],
            "completion_tokens": m["completion_tokens"], "compactions": len(m["compactions"]),
            "wall_s": trial.wall_s}


def run_tasks(url: str, sweep: Sweep, value, tasks: list[str], profile, harness: str, model: str,
              workdir: Path) -> list[dict]:
    from pytest_tbreplay.core.trial import Endpoint, TaskSpec
    from pytest_tbreplay.run import run_harness
    from pytest_tbreplay.smoke.tasks import load_tasks
    known = load_tasks()
    out = []
    for name in tasks:
        if name not in known:
            raise SweepError(f"task {name!r} is not in the smoke set ({', '.join(sorted(known))})")
        task = known[name]
        app = task.prepare(Path(tempfile.mkdtemp(dir=workdir, prefix=f"{name}-")))
        spec = TaskSpec(task.name, task.instruction_for(app), task.acceptance_for(app))
        endpoint = Endpoint(url, workdir=app, model=value if sweep.kind == "model" else model,
                            budget_s=task.time_budget_s)
        trial = run_harness(harness, profile_with(profile, sweep, value), spec, endpoint)
        verdict = None if trial.outcome in ("infra", "timeout") else task.verify(app, timeout=600)
        out.append(task_record(trial, bool(verdict and verdict.passed)) | {"task": name})
    return out


# -- the summary --------------------------------------------------------------------------------
def summarize(trials: list[dict]) -> dict:
    """Mean and 95% half-width per metric (None when no trial measured it), with n."""
    out = {"trials": len(trials)}
    columns = {
        "pass_rate": [float(t["passed"]) for t in trials if t.get("passed") is not None],
        "length_stop_rate": [float(t["length_stop"]) for t in trials],
        "decode_tps": [t["decode_tps"] for t in trials if t.get("decode_tps")],
        "repeat_4gram": [t["repeat_4gram"] for t in trials if t.get("repeat_4gram") is not None],
        "completion_tokens": [t["completion_tokens"] for t in trials],
        "compactions": [t["compactions"] for t in trials if "compactions" in t],
        "wall_s": [t["wall_s"] for t in trials],
    }
    for key, xs in columns.items():
        out[key] = _stat(xs)
    return out


def _stat(xs: list[float]) -> dict | None:
    if not xs:
        return None
    mean = statistics.fmean(xs)
    half = 1.96 * statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else None
    return {"mean": mean, "ci95": half, "n": len(xs)}


def noise_notes(sweep: Sweep, points: dict[str, dict]) -> list[str]:
    """Per metric: which neighbouring settings differ by less than their combined 95% intervals."""
    notes = []
    labels = list(points)
    for key, (label, _) in METRICS.items():
        for a, b in zip(labels, labels[1:]):
            sa, sb = points[a].get(key), points[b].get(key)
            if not sa or not sb:
                continue
            if sa["ci95"] is None or sb["ci95"] is None:
                notes.append(f"{label}: {a} vs {b}: one trial each, no noise estimate")
            elif abs(sa["mean"] - sb["mean"]) <= sa["ci95"] + sb["ci95"]:
                notes.append(f"{label}: {a} vs {b} differ by {abs(sa['mean'] - sb['mean']):.3g}, within noise "
                             f"(95% intervals ±{sa['ci95']:.3g} and ±{sb['ci95']:.3g})")
    return notes


def markdown(result: dict) -> str:
    keys = [k for k in METRICS if any(p.get(k) for p in result["points"].values())]
    lines = [f"| {result['sweep']} | trials | " + " | ".join(METRICS[k][0] for k in keys) + " |",
             "|---|---:|" + "---:|" * len(keys)]
    for label, p in result["points"].items():
        cells = []
        for k in keys:
            s = p.get(k)
            cells.append("-" if not s else f"{s['mean']:.3g}" + (f" ± {s['ci95']:.2g}" if s["ci95"] else "")
                         + f" (n={s['n']})")
        lines.append(f"| {label} | {p['trials']} | " + " | ".join(cells) + " |")
    lines += ["", f"workload: {result['workload']}; server: {result['server']}; ± is a 95% interval."]
    lines += [f"- {n}" for n in result["notes"]] or ["- no difference within noise"]
    return "\n".join(lines) + "\n"


def plot(result: dict, out_dir: Path, stem: str) -> list[Path]:
    """One PNG per metric: mean per setting with its 95% interval, n above each point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    labels = list(result["points"])
    for key, (label, _) in METRICS.items():
        stats = [result["points"][lab].get(key) for lab in labels]
        if not any(stats):
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        xs = [i for i, s in enumerate(stats) if s]
        means = [s["mean"] for s in stats if s]
        errs = [s["ci95"] or 0 for s in stats if s]
        ax.errorbar(xs, means, yerr=errs, fmt="o-", capsize=4)
        for x, s in zip(xs, [s for s in stats if s]):
            ax.annotate(f"n={s['n']}", (x, s["mean"]), textcoords="offset points", xytext=(0, 8), ha="center",
                        fontsize=8)
        ax.set_xticks(range(len(labels)), [lab.split("=", 1)[1] for lab in labels])
        ax.set_xlabel(result["sweep"])
        ax.set_ylabel(label)
        ax.set_title(f"{label} by {result['sweep']}", fontsize=10)
        ax.margins(y=0.2)
        fig.tight_layout()
        path = out_dir / f"{stem}-{key}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def write(result: dict, out_dir: Path) -> dict[str, Path]:
    """sweep-<name>.json and .md and one PNG per metric, each written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "sweep-" + result["sweep"].lstrip("-").replace("/", "_")
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md"}
    for key, text in (("json", json.dumps(result, indent=1)), ("markdown", markdown(result))):
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, paths[key])
    for p in plot(result, out_dir, stem):
        paths[p.stem.removeprefix(stem + "-")] = p
    return paths


def result_of(sweep: Sweep, workload: str, server: str, per_setting: dict[str, list[dict]]) -> dict:
    points = {label: summarize(trials) for label, trials in per_setting.items()}
    return {"sweep": sweep.name, "kind": sweep.kind, "workload": workload, "server": server,
            "points": points, "notes": noise_notes(sweep, points), "trials": per_setting}


# -- running it: the CLI and the embedded server per setting ----------------------------------------
def add_arguments(p) -> None:
    p.add_argument("--sweep", required=True, metavar="NAME=V1,V2,...",
                   help="a request field (dry_multiplier=0,0.8), a server flag (--sweep=--cache-type-k=q8_0,q4_0) "
                        "or model=ID1,ID2 (llama-swap variants)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--prompt", action="store_true", help="workload: continue loops in progress (the default)")
    w.add_argument("--task", action="append", default=None, help="workload: this smoke task (repeatable)")
    w.add_argument("--smoke", action="store_true", help="workload: every smoke task")
    p.add_argument("--trials", type=int, default=6, help="trials per setting (loops, or runs of each task)")
    p.add_argument("--max-tokens", type=int, default=64, help="loop workload: tokens per continuation")
    p.add_argument("--server-url", help="an existing llama-server or llama-swap (default: the embedded server)")
    p.add_argument("--model", default="local", help="model to request (llama-swap routes on it)")
    p.add_argument("--server-arg", action="append", default=[], help="extra flag for the embedded server")
    p.add_argument("--ctx-size", type=int, default=8192, help="embedded server context")
    p.add_argument("--profile", default=None, help="task workload: harness profile (default: mitigated-cpu, "
                                                   "or mitigated for a server with n_ctx >= 65536)")
    p.add_argument("--harness", type=harness_name, default="reference", help="reference, pi or pi@VERSION")
    p.add_argument("--out", default=".tbreplay/sweep", help="where the JSON, markdown and PNGs go")


class EmbeddedServers:
    """One embedded llama-server per setting of a server-flag sweep (one at a time), else one for all."""

    def __init__(self, base_args: list[str], ctx_size: int):
        self.base_args, self.ctx_size, self.server, self.key = list(base_args), ctx_size, None, None

    def url_for(self, sweep: Sweep, value) -> str:
        from pytest_tbreplay.server.llama import LlamaServer
        extra = self.base_args + ([sweep.name, str(value)] if sweep.kind == "server" else [])
        if self.server is None or self.key != extra:
            self.close()
            self.server = LlamaServer(ctx_size=self.ctx_size, extra_args=extra).start()
            self.key = extra
        return self.server.url

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def run(sweep: Sweep, trials: int = 6, server_url: str | None = None, model: str = "local",
        tasks: list[str] | None = None, max_tokens: int = 64, profile=None, harness: str = "reference",
        server_args: list[str] = (), ctx_size: int = 8192) -> dict:
    if sweep.kind == "server" and server_url:
        raise SweepError(f"cannot restart the server at {server_url} with {sweep.name}: give each setting its own "
                         f"llama-swap model (e.g. qwen-{sweep.name.lstrip('-')}-{sweep.values[0]}) and sweep "
                         "--sweep model=ID1,ID2")
    if sweep.kind == "model" and not server_url:
        raise SweepError("--sweep model=... names llama-swap model variants: add --server-url")
    servers = None if server_url else EmbeddedServers(list(server_args), ctx_size)
    per_setting = {}
    with tempfile.TemporaryDirectory(prefix="tbreplay-sweep-") as tmp:
        try:
            for value in sweep.values:
                url = server_url.rstrip("/") if server_url else servers.url_for(sweep, value)
                if tasks:
                    rows = [r for _ in range(trials)
                            for r in run_tasks(url, sweep, value, tasks, profile, harness, model, Path(tmp))]
                else:
                    rows = run_prompts(url, sweep, value, trials, model, max_tokens)
                per_setting[sweep.label(value)] = rows
        finally:
            if servers:
                servers.close()
    workload = f"smoke tasks {', '.join(tasks)} ({harness})" if tasks else \
        f"{trials} loops in progress continued (/completion), temperature 0, max_tokens {max_tokens}, " \
        "cache_prompt false"
    server = server_url or f"embedded llama-server (SmolLM2-135M, {' '.join(['-c', str(ctx_size), *server_args])})"
    return result_of(sweep, workload, server, per_setting)


def main(args) -> int:
    from pytest_tbreplay.core.profiles import load_profile
    from pytest_tbreplay.smoke.tasks import load_tasks
    sweep = parse(args.sweep)
    tasks = sorted(load_tasks()) if args.smoke else args.task
    profile = None
    if tasks:
        profile = load_profile(args.profile or ("mitigated-cpu" if not args.server_url else "mitigated"))
    result = run(sweep, args.trials, args.server_url, args.model, tasks, args.max_tokens, profile, args.harness,
                 args.server_arg, args.ctx_size)
    paths = write(result, Path(args.out))
    print(markdown(result))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


# -- pytest --live -m smoke --sweep NAME=V1,V2,... ----------------------------------------------------
class SweepPlugin:
    """Runs every smoke test once per setting (the way pytest-repeat repeats a test: an added
    parameter), hands the `live` fixture the setting's profile and server, and writes the sweep's
    JSON, markdown and PNGs at the end of the session."""
    PARAM = "tbreplay_setting"

    def __init__(self, config):
        import pytest
        opt = config.option
        try:
            self.sweep = parse(opt.sweep)
        except SweepError as e:
            raise pytest.UsageError(str(e)) from None
        if not opt.live:
            raise pytest.UsageError("--sweep runs live trials: add --live (and -m smoke)")
        if self.sweep.kind == "server" and opt.server_url:
            raise pytest.UsageError(f"--sweep {self.sweep.name}: a running server cannot be restarted with a flag; "
                                    "sweep llama-swap model variants with `tbreplay sweep --server-url URL --sweep "
                                    "model=ID1,ID2`")
        if self.sweep.kind == "model":
            raise pytest.UsageError("--sweep model=... is for `tbreplay sweep --server-url`: pytest's --model "
                                    "names one model per session")
        self.config = config
        self.servers = EmbeddedServers(list(opt.server_arg), 8192)
        self.rows: dict[str, list[dict]] = {self.sweep.label(v): [] for v in self.sweep.values}
        self.paths: dict[str, Path] = {}
        self.labels: dict[str, str | None] = {}

    def pytest_generate_tests(self, metafunc):
        if "live" in metafunc.fixturenames and metafunc.definition.get_closest_marker("smoke"):
            metafunc.fixturenames.append(self.PARAM)
            metafunc.parametrize(self.PARAM, self.sweep.values, ids=[self.sweep.label(v) for v in self.sweep.values])

    def pytest_collection_modifyitems(self, items):
        # One setting after another, so the embedded server restarts once per setting.
        order = {self.sweep.label(v): i for i, v in enumerate(self.sweep.values)}
        items.sort(key=lambda it: order.get(self._label(it), 0))
        self.labels = {it.nodeid: self._label(it) for it in items}

    def _label(self, item) -> str | None:
        callspec = getattr(item, "callspec", None)
        return self.sweep.label(callspec.params[self.PARAM]) if callspec and self.PARAM in callspec.params else None

    def apply(self, item, profile, server):
        """The profile and server of this item's setting."""
        label = self._label(item)
        if label is None:
            return profile, server
        value = item.callspec.params[self.PARAM]
        if self.sweep.kind == "server":
            self.servers.url_for(self.sweep, value)
            server = self.servers.server
        return profile_with(profile, self.sweep, value), server

    def pytest_runtest_logreport(self, report):
        if report.when != "call":
            return
        label = self.labels.get(report.nodeid)
        props = dict(getattr(report, "user_properties", []))
        if label is None or "tbreplay_trial" not in props:
            return
        trial = json.loads(props["tbreplay_trial"])
        smoke = json.loads(props.get("tbreplay_smoke", "null")) or {}
        outcome = smoke.get("outcome")
        self.rows[label].append({
            "task": trial["task"], "passed": None if outcome in (None, "infra") else outcome == "passed",
            "length_stop": trial["length_stops"] > 0, "decode_tps": trial["decode_tps"],
            "repeat_4gram": trial.get("repeat_4gram"),
            "completion_tokens": trial["completion_tokens"], "compactions": len(trial["compactions"]),
            "wall_s": smoke.get("wall_s", report.duration)})

    def pytest_sessionfinish(self, session):
        self.servers.close()
        if hasattr(self.config, "workerinput") or not any(self.rows.values()):
            return
        result = result_of(self.sweep, "the smoke set (pytest --live -m smoke)", self.config.option.server_url
                           or "embedded llama-server (SmolLM2-135M, -c 8192)", self.rows)
        self.paths = write(result, Path(self.config.rootpath / ".tbreplay" / "sweep"))
        self.result = result

    def pytest_terminal_summary(self, terminalreporter):
        if not self.paths:
            return
        terminalreporter.section(f"tbreplay sweep {self.sweep.name}")
        for line in markdown(self.result).splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"written: {', '.join(str(p) for p in self.paths.values())}")
