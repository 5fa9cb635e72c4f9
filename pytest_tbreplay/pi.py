"""The `pi` harness: Mario Zechner's coding agent (npm @mariozechner/pi-coding-agent 0.73.1) run for
real against the replay server (or a live llama-server), its JSON events turned into the same
`Trial` the reference harness produces.

How a profile drives pi:
- baseline: what the failing run did. Print mode (`--mode json -p`, as Harbor runs it, but the
  instruction on stdin: see print_args), contextWindow 131072 and maxTokens 32000 in models.json, no extensions but the tool replay.
- each mitigation maps to pi settings or to a TypeScript extension in pi_extensions/ (see
  `_extensions`); a profile with any policy that must continue a finished run (nudges, verify
  demands, the retry after an overflow compaction) runs pi in RPC mode, because print mode exits
  as soon as its prompts are answered: after an overflow it prints compaction_start and exits 0
  while the retry goes on unseen (NOTES: runs/f2), and a run that ended aborted or on a length stop
  takes no follow-up. The extensions decide what to say; the RPC driver here only says it once pi
  is idle.
- replay trials run in RPC mode on a kept pi, a new session each (PiProcess), since starting
  Node and pi costs more than most replayed trials. For baseline, print and RPC mode drive the same
  agent session: tests/test_pi.py replays the recorded trials both ways and compares.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


from .harness import (MAX_NUDGES, MAX_VERIFY_DEMANDS, NUDGE, SUMMARY_ASK, SUMMARY_SYSTEM, TOOL_RESULT_CUT, Endpoint,
                      InfraError, TaskSpec, server_n_ctx)
from .llama import CACHE, progress
from .loopdetect import LoopDetector
from .profiles import Budget, Profile
from .tools import CUT_CALL, ToolDivergence, ToolReplayError, argument_diff
from .trial import Trial, Turn
from .verify import SUCCESS_CLAIM, VERIFY_CONTRACT, VerifyGate, rules

PI_PACKAGE = "@mariozechner/pi-coding-agent"
PI_VERSION = "0.73.1"
NODE_MIN = (20, 6)  # pi 0.73.1's engines field
EXTENSIONS = Path(__file__).parent / "pi_extensions"
LIBRARIES = ("common.ts", "gate.ts", "summary.ts", "loopdetect.ts")  # modules the extensions import (not extensions)
PROVIDER = "tbreplay"
# Preloaded into pi (NODE_OPTIONS=--import): print message_update events without their `partial`
# and `message` copies of the whole message so far. pi prints one per streamed token, so the
# 32,000-token runaway would print ~2.7 GB of JSON (quadratic in the turn's length): 12 s of pi's
# time instead of 2. Only the printed line changes; pi's agent, session and extensions see the
# full events, and the line keeps its prefix {"type":"message_update","assistantMessageEvent":{"type":…
# It also gathers the lines of one event-loop turn into one write to the pipe.
# (A string here, not a file in pi_extensions/: the package ships only *.ts from there, and Node
# 20 cannot --import TypeScript.)
SLIM_UPDATES_JS = """\
const stringify = JSON.stringify;
JSON.stringify = function (value, ...rest) {
  if (rest.length === 0 && value?.type === "message_update" && value.assistantMessageEvent) {
    const { type, contentIndex, delta } = value.assistantMessageEvent;
    return stringify({ type: "message_update", assistantMessageEvent: { type, contentIndex, delta } });
  }
  return stringify(value, ...rest);
};
// One write per turn of the event loop instead of one per event: pi writes a line per streamed
// token, each a syscall on the pipe. Pipes are synchronous on Linux, so what is left is written
// at exit too.
const write = process.stdout.write.bind(process.stdout);
let pending = [];
const flush = () => { if (pending.length) { const text = pending.join(""); pending = []; write(text); } };
process.stdout.write = function (chunk, encoding, callback) {
  if (typeof encoding === "function" || typeof callback === "function" || typeof chunk !== "string") {
    flush();
    return write(chunk, encoding, callback);
  }
  if (pending.push(chunk) === 1) setImmediate(flush);
  return true;
};
process.on("exit", flush);
"""

# Print mode's spare prompts (print_continue.ts): one per message the extensions may ask for, plus
# one per possible overflow retry.
PLACEHOLDER = "__PI_NEXT__"


def print_args(spare_prompts: int) -> list[str]:
    """pi's print-mode arguments; the instruction itself goes to pi's stdin. On the command line
    pi's parser reads a message starting with `-` as an option and one starting with `@` as a file
    to include (cli/args.js); piped stdin is taken as it is (main.js readPipedStdin, only trimmed).
    The empty message after -p is the one pi joins to the stdin text (cli/initial-message.js), so
    the spare prompts stay whole prompts."""
    return ["-p", ""] + [PLACEHOLDER] * spare_prompts
SPARE_PROMPTS = MAX_NUDGES + MAX_VERIFY_DEMANDS + 2



class PiUnavailable(RuntimeError):
    """Node or pi is missing; the message says what to install."""


# -- installation ---------------------------------------------------------------------------------
def node_problem() -> str | None:
    """Why pi cannot run here (None when Node is fine)."""
    need = ".".join(map(str, NODE_MIN))
    node = shutil.which("node")
    if not node:
        return f"pi needs Node.js >= {need}: install it (https://nodejs.org, or nvm install 20) and put `node` on PATH"
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    m = re.match(r"v(\d+)\.(\d+)", out)
    if not m or (int(m[1]), int(m[2])) < NODE_MIN:
        return f"pi needs Node.js >= {need}, found {out or 'an unknown version'} at {node}: install Node 20 or newer"
    return None


def pi_problem(version: str = PI_VERSION) -> str | None:
    """Why pi cannot run here (Node missing, or pi not installed), saying what to do; None when it can.
    Only `tbreplay setup` and `tbreplay install-pi` install pi: a test or a trial never does."""
    if problem := node_problem():
        return problem
    if not pi_binary(version).exists():
        return (f"pi {version} is not installed in {pi_dir(version)}: run `python -m pytest_tbreplay.cli install-pi` "
                "(or `... setup`)")
    return None


def pi_dir(version: str = PI_VERSION) -> Path:
    return CACHE / f"pi-{version}"


def pi_binary(version: str = PI_VERSION) -> Path:
    return pi_dir(version) / "node_modules" / ".bin" / "pi"


def install_pi(version: str = PI_VERSION) -> Path:
    """npm-install pi into the cache (outside the repo) once; later calls reuse it. Returns the
    install folder."""
    if pi_binary(version).exists():
        return pi_dir(version)
    if problem := node_problem():
        raise PiUnavailable(problem)
    npm = shutil.which("npm")
    if not npm:
        raise PiUnavailable("installing pi needs npm (it comes with Node.js): install Node 20 or newer")
    CACHE.mkdir(parents=True, exist_ok=True)
    progress(f"installing pi {version} (npm install {PI_PACKAGE}@{version})")
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="pi-install-") as tmp:
        done = subprocess.run([npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--loglevel=error",
                               f"{PI_PACKAGE}@{version}"], capture_output=True, text=True)
        if done.returncode:
            raise PiUnavailable(f"npm install {PI_PACKAGE}@{version} failed:\n{done.stderr[-2000:]}")
        try:
            os.rename(tmp, pi_dir(version))  # atomic: a half-installed pi is never seen as installed
        except OSError:
            if not pi_binary(version).exists():  # not a concurrent install that won the race
                raise
        else:
            os.mkdir(tmp)  # TemporaryDirectory wants something to delete
    return pi_dir(version)


# -- configuration --------------------------------------------------------------------------------
def uses_rpc(p: Profile) -> bool:
    """RPC mode when a policy has to continue a run that pi itself would end."""
    return p.overflow_retry or p.loop_detector or p.length_nudge or p.verify_before_done


# Load order matters for before_provider_request: replay_tools.ts logs the payload after payload.ts
# changed it. A fresh pi loads its profile's extensions only; a kept pi loads them all, and each
# acts only when the trial's config turns it on (`on`, common.ts), so one pi serves every profile.
ALL_EXTENSIONS = ("payload.ts", "loop_guard.ts", "length_nudge.ts", "verify.ts", "compaction.ts",
                  "run_compaction.ts", "replay_tools.ts")


def extensions(p: Profile, replay: bool) -> list[str]:
    """The extension files a profile turns on, in load order (ALL_EXTENSIONS)."""
    on = {
        "payload.ts": bool(p.dry),
        "loop_guard.ts": p.loop_detector,
        "length_nudge.ts": p.length_nudge,
        "verify.ts": p.verify_before_done,
        # pi's own compaction, shaped: it keeps the last step, cancels an unwanted kind (pi has one
        # switch for both), starts the summary with the task (anchored if asked).
        "compaction.ts": p.compacts,
        # Proactive compaction inside a run (before the request that would pass the window), which
        # pi itself does only between runs.
        "run_compaction.ts": p.proactive_compaction,
        "replay_tools.ts": replay,
    }
    return [name for name in ALL_EXTENSIONS if on[name]]


def models_json(base_url: str, model: str, window: int, max_tokens: int) -> dict:
    # No compat overrides: pi then sends max_completion_tokens = min(maxTokens, 32000), as it did
    # in the failing run.
    return {"providers": {PROVIDER: {
        "baseUrl": base_url, "api": "openai-completions", "apiKey": "none",
        "models": [{"id": model, "contextWindow": window, "maxTokens": max_tokens, "reasoning": False}]}}}


def settings_json(p: Profile, model: str, budget: Budget) -> dict:
    return {"defaultProvider": PROVIDER, "defaultModel": model, "quietStartup": True,
            "enableInstallTelemetry": False,
            # Off in baseline: there the overflow compaction would only start after print mode
            # stopped printing (the trial is lost either way), and its summary request would reach
            # the server unseen.
            "compaction": {"enabled": p.compacts,
                           "reserveTokens": budget.reserve_tokens, "keepRecentTokens": budget.keep_recent_tokens}}


def extension_config(p: Profile, budget: Budget, task: TaskSpec, base_url: str, model: str, log: Path,
                     tool_results: Path | None) -> dict:
    """What the extensions read (TBREPLAY_PI_CONFIG): texts, patterns and rules come from the
    Python modules, so both harnesses apply the same policies."""
    return {"log": str(log), "on": extensions(p, replay=tool_results is not None),
            "tool_results": str(tool_results) if tool_results else None,
            "base_url": base_url, "model": model, "dry": p.dry or {},
            "task": {"instruction": task.instruction, "acceptance": list(task.acceptance)},
            "nudge": NUDGE, "max_nudges": MAX_NUDGES, "verify_contract": VERIFY_CONTRACT,
            "max_verify_demands": MAX_VERIFY_DEMANDS, "verify_rules": {k: v for k, v in rules().items() if k != "_re"},
            "success_pattern": SUCCESS_CLAIM.pattern, "summary_system": SUMMARY_SYSTEM,
            "summary_ask": SUMMARY_ASK, "tool_result_cut": TOOL_RESULT_CUT, "cut_call": CUT_CALL,
            "max_tokens": budget.max_tokens, "summary_tokens": budget.summary_tokens,
            "keep_recent_tokens": budget.keep_recent_tokens, "length_nudge": p.length_nudge,
            "proactive_compaction": p.proactive_compaction,
            "overflow_retry": p.overflow_retry, "anchored_summary": p.anchored_summary,
            "loop": LoopDetector().params()}


# -- the harness ----------------------------------------------------------------------------------
class PiHarness:
    """`mode`: None picks by profile (print for baseline, RPC when a policy continues runs), and
    RPC for every replay (a kept pi, see PiProcess); "print" forces print mode, continuing runs with
    print_continue.ts as the Harbor agent does."""
    name = "pi"

    def __init__(self, profile: Profile, version: str = PI_VERSION, mode: str | None = None,
                 logs_dir: Path | None = None):
        """`logs_dir`: keep pi's logs there as MitigatedPi keeps them in /logs/agent (pi.jsonl,
        pi.stderr, pi/sessions/), so a live trial can be imported like a Harbor one."""
        self.profile, self.version, self.mode, self.logs_dir = profile, version, mode, logs_dir

    def run(self, task: TaskSpec, endpoint: Endpoint) -> Trial:
        if getattr(task, "history", None):
            raise ValueError(f"{task.name}: the pi harness cannot start from earlier turns (TaskSpec.history); "
                             "pi would need them as a session file")
        if problem := pi_problem(self.version):
            raise PiUnavailable(problem)
        with tempfile.TemporaryDirectory(prefix="tbreplay-pi-") as tmp:
            # Replay trials share a kept pi (see PiProcess); a live one gets its own, whose logs and
            # working folder are the trial's.
            keep = endpoint.cassette is not None and self.logs_dir is None
            run = _PiRun(self.profile, task, endpoint, Path(tmp), pi_binary(self.version), self.mode, keep)
            if self.logs_dir:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
            run.stdout_log = self.logs_dir / "pi.jsonl" if self.logs_dir else None
            try:
                return run.run()
            finally:
                for name, to in (("sessions", "pi/sessions"), ("stderr.txt", "pi.stderr")) if self.logs_dir else ():
                    if (Path(tmp) / name).is_dir():
                        shutil.copytree(Path(tmp) / name, self.logs_dir / to, dirs_exist_ok=True)
                    elif (Path(tmp) / name).exists():
                        shutil.copy(Path(tmp) / name, self.logs_dir / to)


# One message_update per streamed token: classified by its fixed prefix, never parsed.
_UPDATE = b'{"type":"message_update","assistantMessageEvent":{"type":"'
_TOKEN_EVENTS = {b"text_delta": "text", b"thinking_delta": "reasoning", b"toolcall_delta": "tool"}


@dataclass
class _Streaming:
    """Token events of the assistant message being streamed."""
    tokens: int = 0
    reasoning: int = 0
    first: float | None = None
    last: float | None = None


@dataclass
class _TrialBuilder:
    """Turns pi's events into the Trial, event by event."""
    trial: Trial
    streaming: _Streaming = field(default_factory=_Streaming)
    compaction: str | None = None  # a finished compaction the next turn starts from
    compacted_turns: dict[int, str] = field(default_factory=dict)  # turn index -> reason (run_compaction.ts)
    gate: VerifyGate = field(default_factory=VerifyGate)  # for telemetry: which turns checked output
    tool_args: dict[str, tuple[str, dict]] = field(default_factory=dict)  # running tool calls by id
    cut_messages: set[int] = field(default_factory=set)  # assistant message ordinals the loop guard cut
    conversation: list[dict] = field(default_factory=list)  # pi messages, for print mode
    last_assistant: dict | None = None

    def token(self, kind: str, at: float) -> None:
        s = self.streaming
        s.tokens += 1
        s.reasoning += kind == "reasoning"
        s.first, s.last = s.first or at, at

    def event(self, e: dict) -> None:
        t = e.get("type")
        if t == "message_start" and e["message"]["role"] == "assistant":
            self.streaming = _Streaming()
        elif t == "message_end":
            self.conversation.append(e["message"])
            if e["message"]["role"] == "assistant":
                self._turn(e["message"])
        elif t == "tool_execution_start":
            self.tool_args[e["toolCallId"]] = (e["toolName"], e.get("args") or {})
        elif t == "tool_execution_end" and e["toolCallId"] in self.tool_args and self.trial.turns:
            name, args = self.tool_args.pop(e["toolCallId"])
            output = _text(e.get("result") or {})
            self.trial.turns[-1].verifier_ran |= self.gate.observe(name, args, output, bool(e.get("isError")))
        elif t == "compaction_end" and e.get("result"):
            r = e["result"]
            self.trial.compactions.append({"reason": e["reason"], "tokens_before": r["tokensBefore"],
                                           "summary": r["summary"]})
            self.compaction = e["reason"]

    def _turn(self, m: dict) -> None:
        s, usage, index = self.streaming, m.get("usage") or {}, len(self.trial.turns)
        cut = index in self.cut_messages
        calls = [c for c in m["content"] if c["type"] == "toolCall"]
        # An aborted stream has no usage block: count what arrived, as the reference does.
        completion = usage.get("output") or (s.tokens if m["stopReason"] == "aborted" else 0)
        turn = Turn(index, "length" if cut else m["stopReason"],  # the reference reports a cut as a length stop
                    prompt_tokens=usage.get("input", 0) + usage.get("cacheRead", 0),
                    completion_tokens=completion, reasoning_tokens=s.reasoning,
                    text_tokens=completion - s.reasoning,
                    compaction=self.compaction or self.compacted_turns.pop(index, None),
                    cut_by="loop_detector" if cut else None, tool_calls=[c["name"] for c in calls],
                    decode_tps=(s.tokens - 1) / (s.last - s.first) if s.tokens > 1 and s.last > s.first else None)
        self.compaction = None
        self.trial.turns.append(turn)
        self.last_assistant = m

    def finish(self, messages: list[dict] | None) -> None:
        tr, last = self.trial, self.last_assistant
        tr.messages = [openai_message(m) for m in (messages if messages is not None else self.conversation)]
        tr.messages = [m for m in tr.messages if m]
        if last is None:
            if tr.outcome == "completed":
                tr.outcome, tr.error = "infra", "pi answered nothing"
            tr.stop_reason = "error"
            return
        tr.stop_reason = tr.turns[-1].stop_reason
        tr.final_text = _text(last)
        if last["stopReason"] == "error":
            tr.outcome, tr.error = "error", last.get("errorMessage")


def _text(m: dict) -> str:
    content = m.get("content")
    if isinstance(content, str):
        return content
    return "".join(c.get("text", "") for c in content or [] if c.get("type") == "text")


def openai_message(m: dict) -> dict | None:
    """A pi session message in the chat format the reference harness keeps."""
    role = m.get("role")
    if role == "user":
        return {"role": "user", "content": _text(m)}
    if role == "assistant":
        out = {"role": "assistant", "content": _text(m)}
        calls = [c for c in m["content"] if c["type"] == "toolCall"]
        if calls:
            out["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
                "name": c["name"], "arguments": json.dumps(c.get("arguments") or {})}} for c in calls]
        return out
    if role == "toolResult":
        return {"role": "tool", "tool_call_id": m["toolCallId"], "content": _text(m)}
    if role == "compactionSummary":
        return {"role": "user", "content": m.get("summary", "")}
    return None


class RunState:
    """Whether pi in RPC mode is really idle, from its events. A run may be followed by more work
    pi starts itself: a compaction (compaction_start after agent_end), the retry after an overflow
    compaction (compaction_end willRetry, then agent.continue() 100 ms later), an auto-retry. So
    after anything that may have left pi idle the driver asks (get_state, answered after whatever
    pi emits synchronously with agent_end), and pi is idle only if nothing started meanwhile and
    pi itself says it is neither streaming nor compacting."""

    def __init__(self):
        self.prompting, self.busy, self.compacting, self.retry = True, False, False, False
        self.asked: str | None = None  # the id of the get_state in flight

    def prompted(self) -> None:
        self.prompting = True

    def event(self, e: dict) -> str | None:
        """"ask" (send get_state), "idle" (pi is idle: say the next thing or stop), or None."""
        t = e.get("type")
        if t == "agent_start":
            self.prompting, self.busy, self.retry = False, True, False
        elif t == "agent_end":
            self.busy = False
        elif t == "compaction_start":
            self.compacting = True
        elif t == "compaction_end":
            self.compacting, self.retry = False, self.retry or bool(e.get("willRetry"))
        elif t == "auto_retry_start":
            self.retry = True
        elif t == "response" and self.asked and e.get("id") == self.asked:
            self.asked, data = None, e.get("data") or {}
            if self.prompting or self.busy or self.compacting or self.retry or data.get("isStreaming") \
                    or data.get("isCompacting"):
                return None
            return "idle"
        if t in ("agent_end", "compaction_end") and not self.asked:
            return "ask"
        return None


class PiProcess:
    """A running pi and its stdout, read line by line on a thread (token events are only counted).

    Starting pi costs about 2 s of CPU (Node loading its modules) before it does anything, which
    made pi's start-ups most of the default test run. So a replay trial in RPC mode takes an idle
    pi started with the same command line from `_IDLE`, and gives it back when the trial ended
    cleanly. Between trials pi.py rewrites models.json, settings.json and the extensions' config
    in the process' `home`, and `renew()` asks pi for a new session: pi then reads those files
    again and loads the extensions afresh (common.ts drops the previous trial's state), so each
    trial sees what a fresh pi would, except its working folder and stderr file, which stay the
    process'."""

    def __init__(self, args: list[str], home: Path, cwd: Path, env: dict, stdin, stdout_log: Path | None = None,
                 owns_home: bool = False):
        self.args, self.home, self.owns_home = args, home, owns_home
        self.stderr = home / "stderr.txt"
        with open(self.stderr, "ab") as stderr:
            self.proc = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.ids = 0
        threading.Thread(target=self._read, args=(stdout_log,), daemon=True).start()

    def _read(self, stdout_log: Path | None) -> None:
        log = open(stdout_log, "wb") if stdout_log else None
        for line in self.proc.stdout:
            if log:
                log.write(line)
            if line.startswith(_UPDATE):
                kind = _TOKEN_EVENTS.get(line[len(_UPDATE):line.index(b'"', len(_UPDATE))])
                if kind:
                    self.lines.put(("token", kind, time.monotonic()))
                continue
            try:
                self.lines.put(("event", json.loads(line), None))
            except ValueError:
                continue  # not an event (a stray console line)
        if log:
            log.close()
        self.lines.put(None)

    def send(self, command: dict) -> str:
        self.ids += 1
        command["id"] = f"tb{self.ids}"
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        return command["id"]

    def renew(self, timeout: float = 30.0) -> bool:
        """A new session in a kept pi; False when it does not answer as it should (then stop it)."""
        if self.proc.poll() is not None:
            return False
        want, deadline = self.send({"type": "new_session"}), time.monotonic() + timeout
        while (wait := deadline - time.monotonic()) > 0:
            try:
                item = self.lines.get(timeout=wait)
            except queue.Empty:
                return False
            if item is None:
                return False
            if item[0] == "event" and item[1].get("type") == "response" and item[1].get("id") == want:
                return bool(item[1].get("success")) and not (item[1].get("data") or {}).get("cancelled")
        return False

    def stderr_size(self) -> int:
        return self.stderr.stat().st_size

    def stderr_tail(self, since: int, n: int = 3000) -> str:
        with open(self.stderr, errors="replace") as f:
            f.seek(since)
            return f.read()[-n:]

    def stop(self) -> None:
        if self.proc.stdin:
            try:
                self.proc.stdin.close()  # RPC mode ends on EOF
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.stop()
        if self.owns_home:
            shutil.rmtree(self.home, ignore_errors=True)


_IDLE: dict[tuple, PiProcess] = {}  # kept pi processes between trials, by command line, oldest first
_IDLE_LOCK = threading.Lock()
MAX_IDLE = 8  # each idle pi holds 100-200 MB; replays of one model use one command line


def _take_idle(args: list[str]) -> PiProcess | None:
    with _IDLE_LOCK:
        return _IDLE.pop(tuple(args), None)


def _give_back(pi: PiProcess) -> None:
    with _IDLE_LOCK:
        spare = [_IDLE.pop(tuple(pi.args))] if tuple(pi.args) in _IDLE else []  # one per command line
        _IDLE[tuple(pi.args)] = pi
        while len(_IDLE) > MAX_IDLE:
            spare.append(_IDLE.pop(next(iter(_IDLE))))
    for process in spare:
        process.close()


@atexit.register
def stop_idle() -> None:
    """End every kept pi (at exit; tests call it to start from nothing)."""
    with _IDLE_LOCK:
        kept = list(_IDLE.values())
        _IDLE.clear()
    for pi in kept:
        pi.close()


class _PiRun:
    def __init__(self, p: Profile, task: TaskSpec, ep: Endpoint, tmp: Path, pi: Path, mode: str | None = None,
                 keep: bool = False):
        self.p, self.task, self.ep, self.tmp, self.pi = p, task, ep, tmp, pi
        self.trial = Trial(task.name, "pi", p.name)
        self.build = _TrialBuilder(self.trial)
        # Replay runs every profile in RPC mode, so that it can keep pi: for a profile with nothing
        # to continue, print mode and RPC mode drive the same agent session (test_pi proves they give
        # the same trial); live trials run as the profile says.
        self.rpc = (uses_rpc(p) or keep) if mode is None else mode == "rpc"
        self.print_continue = not self.rpc and uses_rpc(p)
        self.keep = keep and self.rpc  # print mode exits after its prompts: nothing to keep
        self.log = tmp / "events.jsonl"  # what the extensions report
        self.log_offset = 0
        self.process: PiProcess | None = None
        self._log_entries: list[dict] = []
        self._pending: list[dict] = []  # user messages the extensions asked for, not sent yet

    # -- setup --------------------------------------------------------------------------------------
    def _write_config(self, home: Path) -> None:
        """This trial's files: pi's models.json and settings.json and the extensions' config in the
        process' home, tool results and the event log in the trial's folder."""
        agent, budget = home / "agent", self.budget
        agent.mkdir(exist_ok=True)
        base_url = self.ep.url.rstrip("/") + "/v1"
        (agent / "models.json").write_text(json.dumps(models_json(base_url, self.ep.model, budget.window, budget.max_tokens)))
        (agent / "settings.json").write_text(json.dumps(settings_json(self.p, self.ep.model, budget)))
        results = None
        if self.ep.cassette:
            results = self.tmp / "tool_results.json"
            results.write_text(json.dumps({r.id: {"name": r.name, "arguments": r.arguments, "output": r.output,
                                                  "is_error": r.is_error}
                                           for it in self.ep.cassette.interactions for r in it.tool_results}))
        (home / "extensions.json").write_text(json.dumps(extension_config(self.p, budget, self.task, base_url,
                                                                          self.ep.model, self.log, results)))
        self.log.touch()
        if not self.rpc:
            (self.tmp / "instruction.txt").write_text(self.task.instruction, encoding="utf-8")

    def _command(self) -> list[str]:
        """pi's command line: everything in it is fixed for the life of the process (a kept pi is
        found by it), so the process' own files are not named here but in the environment."""
        args = [str(self.pi), "--mode", "rpc" if self.rpc else "json", "--provider", PROVIDER, "--model", self.ep.model,
                # A reproducible prompt: nothing from the machine's ~/.pi, AGENTS.md files or skills.
                "--no-context-files", "--no-extensions", "--no-skills", "--no-prompt-templates", "--no-themes"]
        # A kept pi serves trials of any profile, so its command line loads every extension.
        for ext in ALL_EXTENSIONS if self.keep else extensions(self.p, replay=self.ep.cassette is not None):
            args += ["-e", str(EXTENSIONS / ext)]
        if self.print_continue:
            args += ["-e", str(EXTENSIONS / "print_continue.ts")]
        if not self.rpc:
            args += print_args(SPARE_PROMPTS if self.print_continue else 0)
        return args

    def _start(self, args: list[str]) -> PiProcess:
        home = Path(tempfile.mkdtemp(prefix="tbreplay-pi-kept-")) if self.keep else self.tmp
        self._write_config(home)
        work = self.ep.workdir or home / "work"
        work.mkdir(parents=True, exist_ok=True)
        (home / "slim_updates.mjs").write_text(SLIM_UPDATES_JS)
        env = dict(os.environ, PI_CODING_AGENT_DIR=str(home / "agent"), PI_OFFLINE="1", PI_TELEMETRY="0",
                   PI_SKIP_VERSION_CHECK="1", TBREPLAY_PI_CONFIG=str(home / "extensions.json"),
                   PI_CODING_AGENT_SESSION_DIR=str(home / "sessions"),
                   NODE_OPTIONS=f"{os.environ.get('NODE_OPTIONS', '')} --import {home / 'slim_updates.mjs'}".strip())
        # Print mode: the instruction is pi's stdin (see print_args); RPC mode: the JSON commands.
        stdin = subprocess.PIPE if self.rpc else open(self.tmp / "instruction.txt", "rb")
        try:
            return PiProcess(args, home, work, env, stdin, self.stdout_log, owns_home=self.keep)
        except OSError:
            if self.keep:  # nobody else will remove a kept pi's home
                shutil.rmtree(home, ignore_errors=True)
            raise
        finally:
            if not self.rpc:
                stdin.close()

    def _process(self) -> PiProcess:
        """A kept pi given this trial's files and a new session, or a new pi."""
        args = self._command()
        while self.keep and (kept := _take_idle(args)):
            self._write_config(kept.home)
            if kept.renew():
                return kept
            kept.close()
        return self._start(args)

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> Trial:
        start = self.started = time.monotonic()
        # Before pi starts: a profile that cannot fit this server is refused here (ProfileError).
        self.budget = self.p.budget(server_n_ctx(self.ep.url))
        self.process = pi = self._process()
        stderr_from = pi.stderr_size()
        messages = None
        try:
            messages = self._drive() if self.rpc else self._print()
        except TimeoutError as e:
            self.trial.outcome, self.trial.error = "timeout", str(e)
        except InfraError as e:
            self.trial.outcome, self.trial.error = "infra", str(e)
        finally:
            # Kept only when the trial ended as pi meant it to: idle, answering, its run complete.
            keep = self.keep and self.trial.outcome == "completed" and messages is not None and pi.proc.poll() is None
            if not keep:
                pi.stop()
            err = pi.stderr_tail(stderr_from)
            _give_back(pi) if keep else pi.close()
            self._read_log()
        self.build.finish(messages)
        if self.trial.outcome == "timeout":
            self.trial.stop_reason = "aborted"  # as the reference harness reports a trial out of time
        if self.trial.outcome == "infra":
            self.trial.error = f"{self.trial.error}; pi exited {pi.proc.returncode}; stderr:\n{err}"
        self.trial.wall_s = time.monotonic() - start
        if missing := [e for e in self._log_entries if e["kind"] == "tool_missing"]:
            raise ToolReplayError(f"{self.ep.cassette.path}: no recorded result for tool call "
                                  f"{missing[0]['id']} {missing[0]['name']}; replay does not run commands")
        if diverged := [e for e in self._log_entries if e["kind"] == "tool_diverged"]:
            e = diverged[0]
            head = f"recorded tool {e['recorded_name']}, sent {e['name']}\n" if e["recorded_name"] != e["name"] else ""
            raise ToolDivergence(str(self.ep.cassette.path), e["id"], e["name"],
                                 head + argument_diff(e["recorded"], e["params"]))
        return self.trial

    stdout_log: Path | None = None  # where to keep pi's stdout (PiHarness logs_dir)

    def _next(self) -> dict | None:
        """The next event (None when pi closed stdout); token events are booked on the way."""
        while True:
            wait = self.ep.timeout_s
            if budget := getattr(self.ep, "budget_s", None):
                if (wait := min(wait, self.started + budget - time.monotonic())) <= 0:
                    raise TimeoutError(f"the trial's time budget of {budget:.0f} s ran out")
            try:
                item = self.process.lines.get(timeout=wait)
            except queue.Empty:
                raise TimeoutError(f"pi printed nothing for {wait:.0f} s") from None
            if item is None:
                return None
            kind, value, at = item
            if kind == "token":
                self.build.token(value, at)
                continue
            if value.get("type") == "message_end" and value["message"]["role"] == "assistant":
                self._read_log()  # the loop guard logs its cut before pi prints the message's end
            self.build.event(value)
            return value

    def _print(self) -> None:
        while self._next() is not None:
            pass
        self.process.proc.wait(timeout=30)
        self._read_log()
        while self._next_message() is not None:  # print_continue.ts sent them all
            pass
        return None

    # -- RPC mode -----------------------------------------------------------------------------------
    def _send(self, command: dict) -> str:
        return self.process.send(command)

    def _drive(self) -> list[dict] | None:
        """Prompt, then after each run wait until pi is really idle (RunState) and send what the
        extensions asked for, if anything."""
        self._send({"type": "prompt", "message": self.task.instruction})
        state = RunState()
        while True:
            e = self._next()
            if e is None:
                self.trial.outcome, self.trial.error = "infra", "pi exited in RPC mode"
                return None
            if e.get("type") == "response" and not e.get("success"):
                raise InfraError(f"pi refused {e.get('command')}: {e.get('error')}")
            action = state.event(e)
            if action == "ask":
                state.asked = self._send({"type": "get_state"})
            elif action == "idle":
                if (say := self._next_message()) is None:
                    break
                self._send({"type": "prompt", "message": say})
                state.prompted()
        want = self._send({"type": "get_messages"})
        while (e := self._next()) is not None:
            if e.get("type") == "response" and e.get("id") == want:
                return e["data"]["messages"]
        return None

    def _next_message(self) -> str | None:
        """The user message an extension asked for at the last agent_end (in the log by then)."""
        self._read_log()
        if not self._pending:
            return None
        entry = self._pending.pop(0)
        (self.trial.nudges if entry["as"] == "nudge" else self.trial.verify_demands).append(entry["text"])
        return entry["text"]

    def _read_log(self) -> None:
        with open(self.log, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]
        self.log_offset += len(complete)
        for line in complete.splitlines():
            entry = json.loads(line)
            self._log_entries.append(entry)
            if entry["kind"] == "next":
                self._pending.append(entry)
            elif entry["kind"] == "cut":
                self.build.cut_messages.add(entry["message"])
            elif entry["kind"] == "cut_call":  # length_nudge.ts blocked a tool call a length stop cut
                self.trial.nudges.append(entry["text"])
            elif entry["kind"] == "request":
                self.trial.requests.append(entry["body"])
            elif entry["kind"] == "compaction":  # compaction.ts compacted the request of this turn
                self.trial.compactions.append({k: entry[k] for k in ("reason", "tokens_before", "summary")})
                self.build.compacted_turns[entry["turn"]] = entry["reason"]
