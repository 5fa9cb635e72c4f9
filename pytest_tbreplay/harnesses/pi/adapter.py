"""The `pi` harness: Mario Zechner's coding agent (npm @mariozechner/pi-coding-agent 0.73.1) run for
real against the replay server (or a live llama-server), its JSON events turned into the same
`Trial` the reference harness produces.

How a profile drives pi:
- baseline: what the failing run did. Print mode (`--mode json -p`, as Harbor runs it, but the
  instruction on stdin: see print_args), contextWindow 131072 and maxTokens 32000 in models.json, no extensions but the tool replay.
- each mitigation maps to pi settings or to a TypeScript extension in extensions/ (see
  `_extensions`); a profile with any policy that must continue a finished run (nudges, verify
  demands, the retry after an overflow compaction) runs pi in RPC mode, because print mode exits
  as soon as its prompts are answered: after an overflow it prints compaction_start and exits 0
  while the retry goes on unseen (NOTES: runs/f2), and a run that ended aborted or on a length stop
  takes no follow-up. The extensions decide what to say; the RPC driver here only says it once pi
  is idle.
- replay trials run in RPC mode on a kept pi, a new session each (PiProcess), since starting
  Node and pi costs more than most replayed trials. For baseline, print and RPC mode drive the same
  agent session: tests/test_pi.py replays the recorded trials both ways and compares."""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pytest_tbreplay.core.profiles import Profile
from pytest_tbreplay.core.props import server_n_ctx
from pytest_tbreplay.core.trial import Endpoint, FollowUps, InfraError, TaskSpec, Trial, budget_ended_text
from pytest_tbreplay.harnesses.pi.events import RunState, _TrialBuilder
from pytest_tbreplay.harnesses.pi.install import (
    PI_VERSION,
    PiUnavailable,
    pi_binary,
    pi_env,
    pi_problem,
)
from pytest_tbreplay.harnesses.pi.launch import (
    EXTENSIONS,
    SLIM_UPDATES_JS,
    SPARE_PROMPTS,
    command,
    extension_config,
    extension_files,
    models_json,
    settings_json,
    uses_rpc,
)
from pytest_tbreplay.harnesses.pi.pool import POOL, PiProcess
from pytest_tbreplay.replay.tools import ToolDivergence, ToolReplayError, argument_diff


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
            run = _PiRun(self.profile, task, endpoint, Path(tmp), self.version, self.mode, keep)
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




class _PiRun:
    def __init__(self, p: Profile, task: TaskSpec, ep: Endpoint, tmp: Path, version: str, mode: str | None = None,
                 keep: bool = False):
        self.p, self.task, self.ep, self.tmp = p, task, ep, tmp
        self.version, self.pi = version, pi_binary(version)
        self.trial = Trial(task.name, f"pi@{version}", p.name)
        self.build = _TrialBuilder(self.trial)
        # Replay runs every profile in RPC mode, so that it can keep pi: for a profile with nothing
        # to continue, print mode and RPC mode drive the same agent session (test_pi proves they give
        # the same trial); live trials run as the profile says.
        self.rpc = (uses_rpc(p) or keep or bool(task.prompts)) if mode is None else mode == "rpc"
        if task.prompts and not self.rpc:  # print mode's prompts are all on its command line, held by no one
            raise ValueError(f"{task.name}: a task of several prompts runs pi in RPC mode, not print mode")
        self.print_continue = not self.rpc and uses_rpc(p)
        self.keep = keep and self.rpc  # print mode exits after its prompts: nothing to keep
        self.log = tmp / "events.jsonl"  # what the extensions report
        self.log_offset = 0
        self.process: PiProcess | None = None
        self._log_entries: list[dict] = []
        self.follow_ups = FollowUps(task.prompts)
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
        # Replaced, not rewritten: the extensions re-read it when its inode changes (common.ts).
        config = home / "extensions.json"
        config.with_suffix(".tmp").write_text(json.dumps(extension_config(self.p, budget, self.task, base_url,
                                                                          self.ep.model, self.log, results, self.version)))
        os.replace(config.with_suffix(".tmp"), config)
        self.log.touch()
        if not self.rpc:
            (self.tmp / "instruction.txt").write_text(self.task.instruction, encoding="utf-8")

    def _command(self) -> list[str]:
        """pi's command line (launch.command); the process' own files are named in the environment."""
        files = extension_files(self.p, self.version, replay=self.ep.cassette is not None,
                                print_continue=self.print_continue, keep=self.keep)
        return command(str(self.pi), str(EXTENSIONS), self.ep.model, files, rpc=self.rpc,
                       spare_prompts=SPARE_PROMPTS if self.print_continue else 0)

    def _start(self, args: list[str]) -> PiProcess:
        home = Path(tempfile.mkdtemp(prefix="tbreplay-pi-kept-")) if self.keep else self.tmp
        self._write_config(home)
        work = self.ep.workdir or home / "work"
        work.mkdir(parents=True, exist_ok=True)
        (home / "slim_updates.mjs").write_text(SLIM_UPDATES_JS)
        env = dict(pi_env(self.version, dict(os.environ)), PI_CODING_AGENT_DIR=str(home / "agent"), PI_OFFLINE="1", PI_TELEMETRY="0",
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
        while self.keep and (kept := POOL.take(args)):
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
            POOL.give_back(pi) if keep else pi.close()
            self._read_log()
        self.build.finish(messages)
        if self.stuck:
            self._end_stuck()
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
    stuck: str | None = None  # the stuck guard's stop text, when it ended the trial

    def _end_stuck(self) -> None:
        """The stuck guard aborted pi before its next request: pi books that as one more assistant
        message, empty and aborted, which the reference harness never has; the trial ends `stuck`
        after the last turn that ran tools, as there."""
        tr = self.trial
        if tr.turns and tr.turns[-1].stop_reason == "aborted" and not tr.turns[-1].tool_calls \
                and not tr.turns[-1].completion_tokens:
            tr.turns.pop()
            if tr.messages and tr.messages[-1]["role"] == "assistant" and not tr.messages[-1].get("content"):
                tr.messages.pop()
        tr.stop_reason, tr.error = "stuck", self.stuck

    def _next(self) -> dict | None:
        """The next event (None when pi closed stdout); token events are booked on the way."""
        while True:
            wait, silent = self.ep.timeout_s, f"pi printed nothing for {self.ep.timeout_s:.0f} s"
            if budget := getattr(self.ep, "budget_s", None):
                left = self.started + budget - time.monotonic()
                if left < wait:  # the budget runs out first: that is why the wait ends
                    wait, silent = left, f"the trial's time budget of {budget:.0f} s ran out"
                if wait <= 0:
                    raise TimeoutError(silent)
            item = self._line(wait, silent)
            if item is None:
                return None
            kind, value, at = item
            if kind == "token":
                self.build.token(value, at)
                continue
            if value.get("type") == "extension_error":  # pi >= 1.x goes on without the extension: wrong, silently
                raise InfraError(f"pi extension {value.get('extensionPath')} failed in {value.get('event')}: "
                                 f"{value.get('error')}")
            if value.get("type") == "message_end" and value["message"]["role"] == "assistant":
                self._read_log()  # the loop guard logs its cut before pi prints the message's end
            self.build.event(value)
            return value

    def _line(self, wait: float, silent: str):
        """pi's next line within `wait` seconds. In replay, a TimeoutError as soon as pi reaches the
        point where the recorded trial ran out of its time budget (it waits there on an answer
        that never comes, as it did live)."""
        ended = self.ep.out_of_time
        until = time.monotonic() + wait
        while True:
            left = until - time.monotonic()
            try:
                return self.process.lines.get(timeout=max(0.0, left if ended is None else min(left, 0.05)))
            except queue.Empty:
                if ended is not None and ended.is_set():
                    raise TimeoutError(budget_ended_text(self.ep.cassette.metadata["ended"])) from None
                if time.monotonic() >= until:
                    raise TimeoutError(silent) from None

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
                    say = self.follow_ups.next()  # the user's next prompt, as the recorded session had it
                if say is None:
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
        self.follow_ups.said(entry["text"])
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
                self.build.cut_messages[entry["message"]] = entry["tokens"]
            elif entry["kind"] == "stuck_nudge":  # stuck_guard.ts steered its nudge into the run
                self.trial.nudges.append(entry["text"])
                self.follow_ups.said(entry["text"])
            elif entry["kind"] == "stuck":  # stuck_guard.ts aborted the run
                self.stuck = entry["text"]
            elif entry["kind"] == "cut_call":  # length_nudge.ts blocked a tool call a length stop cut
                self.trial.nudges.append(entry["text"])
            elif entry["kind"] == "request":
                self.trial.requests.append(entry["body"])
            elif entry["kind"] == "compaction":  # auto_compaction.ts compacted the request of this turn
                self.trial.compactions.append({k: entry[k] for k in ("reason", "tokens_before", "summary")})
                self.build.compacted_turns[entry["turn"]] = entry["reason"]
