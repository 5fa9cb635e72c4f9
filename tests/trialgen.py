"""Hand-made Harbor trials for the import tests: pi 0.73.1 session entries, print-mode events and
Harbor 0.26 result.json, in both layouts (MitigatedPi's and Harbor's own pi agent's).

The shapes follow the real files (context/harbor-llamaswap-pi.md); tests/test_import.py validates
what this writes against Harbor's own pydantic models (TrialResult, Trajectory)."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

MODEL = "qwen3.6-35b-a3b"
START_MS = 1_795_000_000_000


def _iso(ms: int) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Session:
    """A pi session being written turn by turn, with the print-mode events pi printed for it."""
    instruction: str
    cwd: str = "/app"
    now: int = START_MS
    entries: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # pi --mode json stdout, message_update kept
    calls: int = 0

    def __post_init__(self):
        self.header = {"type": "session", "version": 3, "id": "01a2281d-0000-7000-8000-000000000001",
                       "timestamp": _iso(self.now), "cwd": self.cwd}
        self._add({"type": "model_change", "provider": "tbreplay", "modelId": MODEL})
        self.user(self.instruction)

    def _add(self, entry: dict, parent: str | None = None) -> dict:
        entry = {"type": entry.pop("type"), "id": f"{len(self.entries) + 1:08x}",
                 "parentId": parent if parent is not None else (self.entries[-1]["id"] if self.entries else None),
                 "timestamp": _iso(self.now), **entry}
        self.entries.append(entry)
        return entry

    def user(self, text: str) -> None:
        self.now += 5
        msg = {"role": "user", "content": [{"type": "text", "text": text}], "timestamp": self.now}
        self._add({"type": "message", "message": msg})
        self.events += [{"type": "message_start", "message": msg}, {"type": "message_end", "message": msg}]

    def assistant(self, text: str = "", thinking: str = "", calls: list[dict] = (), stop: str | None = None,
                  prompt: int = 1000, output: int | None = None, cached: int = 0, seconds: float = 1.0,
                  error: str | None = None, parent: str | None = None) -> list[str]:
        """One model call; returns the ids of its tool calls."""
        start = self.now + 10
        blocks = ([{"type": "thinking", "thinking": thinking, "thinkingSignature": "reasoning_content"}] if thinking else [])
        blocks += [{"type": "text", "text": text}] if text else []
        ids = []
        for c in calls:
            self.calls += 1
            ids.append(f"call_{self.calls:04d}")
            blocks.append({"type": "toolCall", "id": ids[-1], "name": c["name"], "arguments": c["arguments"]})
        stop = stop or ("error" if error else "toolUse" if calls else "stop")
        words = len((thinking + " " + text).split()) + sum(len(json.dumps(c["arguments"])) // 4 for c in calls)
        out = output if output is not None else words
        msg = {"role": "assistant", "content": blocks, "api": "openai-completions", "provider": "tbreplay",
               "model": MODEL, "responseId": f"chatcmpl-gen{len(self.entries):05d}",
               "usage": {"input": prompt - cached, "output": 0 if error else out, "cacheRead": cached, "cacheWrite": 0,
                         "totalTokens": prompt + out, "cost": {"input": 0, "output": 0, "cacheRead": 0,
                                                               "cacheWrite": 0, "total": 0}},
               "stopReason": stop, "timestamp": start}
        if error:
            msg["errorMessage"] = error
        self.now = start + int(seconds * 1000)
        self._add({"type": "message", "message": msg}, parent)
        self.events.append({"type": "message_start", "message": dict(msg, content=[])})
        for i, b in enumerate(blocks):
            kind = {"thinking": "thinking", "text": "text", "toolCall": "toolcall"}[b["type"]]
            body = b.get("thinking") or b.get("text") or json.dumps(b.get("arguments"))
            self.events.append(_update(f"{kind}_start", i, None))
            # llama-server streams one chunk per token: a given output count is the chunk count
            exact = output if output is not None and len(blocks) == 1 and kind == "text" else None
            for piece in _pieces(body, exact):
                self.events.append(_update(f"{kind}_delta", i, piece))
            self.events.append(_update(f"{kind}_end", i, None))
        self.events.append({"type": "message_end", "message": msg})
        return ids

    def result(self, call_id: str, name: str, output: str, is_error: bool = False) -> None:
        self.now += 3
        msg = {"role": "toolResult", "toolCallId": call_id, "toolName": name,
               "content": [{"type": "text", "text": output}], "isError": is_error, "timestamp": self.now}
        self._add({"type": "message", "message": msg})
        self.events.append({"type": "tool_execution_end", "toolCallId": call_id, "toolName": name,
                            "result": {"content": msg["content"]}, "isError": is_error})
        self.events += [{"type": "message_start", "message": msg}, {"type": "message_end", "message": msg}]

    def compaction(self, summary: str, first_kept: str, tokens_before: int) -> None:
        self.now += 2000
        self._add({"type": "compaction", "summary": summary, "firstKeptEntryId": first_kept,
                   "tokensBefore": tokens_before, "details": {"readFiles": [], "modifiedFiles": []}})
        self.events += [{"type": "compaction_start", "reason": "threshold"}, {"type": "compaction_end"}]

    def lines(self) -> str:
        return "".join(json.dumps(e) + "\n" for e in [self.header, *self.entries])


def _update(kind: str, index: int, delta: str | None) -> dict:
    ev = {"type": kind, "contentIndex": index}
    if delta is not None:
        ev["delta"] = delta
    return {"type": "message_update", "assistantMessageEvent": ev}


def _pieces(text: str, n: int | None = None) -> list[str]:
    """Deltas as the server streamed them: a few characters each, as real tokens are (or n of them)."""
    if n:
        step = len(text) / n
        return [text[round(k * step):round((k + 1) * step)] for k in range(n)]
    out, i, rng = [], 0, random.Random(len(text))
    while i < len(text):
        n = rng.randint(1, 6)
        out.append(text[i:i + n])
        i += n
    return out


def bash(command: str) -> dict:
    return {"name": "bash", "arguments": {"command": command}}


def write(path: str, content: str) -> dict:
    return {"name": "write", "arguments": {"path": path, "content": content}}


def trial_result(task: str, trial: str, *, reward: float | None, exception: str | None = None,
                 agent: str = "mitigated-pi", n_ctx: int | None = 262144, profile: str | None = "mitigated",
                 started: str = "2026-11-01T10:00:00Z", finished: str = "2026-11-01T10:20:00Z") -> dict:
    """A Harbor 0.26 TrialResult, as few fields as the model requires plus what import reads."""
    kwargs = {"api_base": "http://host.docker.internal:8080"}
    kwargs |= {"n_ctx": n_ctx} if n_ctx else {}
    kwargs |= {"profile": profile} if profile else {}
    agent_cfg = ({"import_path": "pytest_tbreplay.harbor:MitigatedPi", "model_name": f"openai/{MODEL}", "kwargs": kwargs}
                 if agent == "mitigated-pi" else {"name": "pi", "model_name": f"openai/{MODEL}", "kwargs": {}})
    out = {"schema_version": 1, "task_name": task, "trial_name": trial, "trial_uri": f"file:///jobs/job/{trial}",
           "task_id": {"path": f"tasks/{task}"}, "task_checksum": "0" * 16,
           "config": {"task": {"path": f"tasks/{task}"}, "trial_name": trial, "agent": agent_cfg},
           "agent_info": {"name": "tbreplay-mitigated-pi" if agent == "mitigated-pi" else "pi", "version": "0.73.1",
                          "model_info": {"name": MODEL, "provider": "openai"}},
           "verifier_result": {"rewards": {"reward": reward}} if reward is not None else None,
           "started_at": started, "finished_at": finished,
           "agent_execution": {"started_at": started, "finished_at": finished}}
    if exception:
        out["exception_info"] = {"exception_type": exception, "exception_message": f"{exception}: it happened",
                                 "exception_traceback": "Traceback ...", "occurred_at": finished}
    return out


def write_trial(root: Path, s: Session, *, layout: str = "mitigated-pi", result: dict | None = None,
                stderr: str = "", verifier: str = "FAILED test_outputs.py::test_answer",
                manifest: dict | None = None) -> Path:
    """A trial folder as Harbor leaves it (MitigatedPi's manifest and first request if given)."""
    agent = root / "agent"
    (agent / "pi" / "sessions").mkdir(parents=True)
    (agent / "pi" / "sessions" / "2026-11-01T10-00-00-000Z_01a2281d.jsonl").write_text(s.lines())
    if layout == "mitigated-pi":
        (agent / "pi.jsonl").write_text("".join(json.dumps(e, separators=(",", ":")) + "\n"
                                                for e in [s.header, *s.events]))
        (agent / "pi.stderr").write_text(stderr)
        if manifest:
            (agent / "tbreplay.json").write_text(json.dumps(manifest))
            (agent / "tbreplay-request.json").write_text(json.dumps(first_request(manifest)))
    else:
        (agent / "pi.txt").write_text("".join(json.dumps(e) + "\n" for e in [s.header, *s.events]
                                              if e["type"] != "message_update"))
        (agent / "trajectory.json").write_text(json.dumps(trajectory(s)))
    if result is not None:
        (root / "result.json").write_text(json.dumps(result))
        (root / "verifier").mkdir()
        (root / "verifier" / "test-stdout.txt").write_text(verifier)
    return root


def manifest(profile: str = "mitigated", n_ctx: int = 262144) -> dict:
    """MitigatedPi's agent/tbreplay.json (pytest_tbreplay/harbor.py documents its keys)."""
    from dataclasses import asdict

    from pytest_tbreplay.core.profiles import load_profile
    prof = load_profile(profile)
    p = asdict(prof) | prof.budget(n_ctx).sizes()  # the sizes as sent (`auto` resolved for this server)
    return {"format": 1, "agent": "tbreplay-mitigated-pi", "pi_version": "0.73.1", "model": MODEL,
            "api_base": "http://host.docker.internal:8080", "profile": p, "n_ctx": n_ctx,
            "n_ctx_source": "agent kwarg n_ctx",
            "props": {"default_generation_settings": {"n_ctx": n_ctx, "params": {"temperature": 0.6, "top_k": 20}}}}


def first_request(m: dict) -> dict:
    """agent/tbreplay-request.json: the first request without its conversation."""
    from pytest_tbreplay.replay.tools import pi_tools
    p = m["profile"]
    return {"model": MODEL, "messages": [{"role": "system", "content": "You are pi, as logged.\nCurrent date: 2026-11-01"}],
            "stream": True, "stream_options": {"include_usage": True}, "store": False,
            "max_completion_tokens": min(p["max_tokens"], 32000), "tools": pi_tools()} | (p.get("dry") or {})


def trajectory(s: Session) -> dict:
    """The ATIF v1.7 trajectory Harbor's pi converter writes (text stripped, one step per message)."""
    steps = []
    for e in s.entries:
        m = e.get("message")
        if e["type"] != "message":
            continue
        if m["role"] == "user":
            steps.append({"step_id": len(steps) + 1, "timestamp": e["timestamp"], "source": "user",
                          "message": m["content"][0]["text"].strip()})
        elif m["role"] == "assistant":
            calls = [b for b in m["content"] if b["type"] == "toolCall"]
            step = {"step_id": len(steps) + 1, "timestamp": e["timestamp"], "source": "agent", "model_name": MODEL,
                    "message": "".join(b.get("text", "") for b in m["content"] if b["type"] == "text").strip(),
                    "metrics": {"prompt_tokens": m["usage"]["input"] + m["usage"]["cacheRead"],
                                "completion_tokens": m["usage"]["output"], "cached_tokens": m["usage"]["cacheRead"]}}
            if calls:
                step["tool_calls"] = [{"tool_call_id": b["id"], "function_name": b["name"], "arguments": b["arguments"]}
                                      for b in calls]
            steps.append(step)
        elif m["role"] == "toolResult" and steps:
            obs = steps[-1].setdefault("observation", {"results": []})
            obs["results"].append({"source_call_id": m["toolCallId"], "content": m["content"][0]["text"].strip()})
    return {"schema_version": "ATIF-v1.7", "session_id": s.header["id"],
            "agent": {"name": "pi", "version": "0.73.1", "model_name": MODEL}, "steps": steps,
            "final_metrics": {"total_prompt_tokens": sum(x.get("metrics", {}).get("prompt_tokens", 0) for x in steps),
                              "total_completion_tokens": sum(x.get("metrics", {}).get("completion_tokens", 0) for x in steps),
                              "total_steps": len(steps)}}


def long_trial(turns: int = 300, grow_to: int = 250_000, chars_per_token: float = 3.2, out_tokens: int = 300,
               seed: int = 0) -> Session:
    """A real-scale trial: `turns` tool calls whose outputs grow the context to `grow_to` tokens."""
    rng = random.Random(seed)
    s = Session("Build the project in /app and make every test pass.")
    per_turn = int((grow_to - 2000) * chars_per_token / turns) - out_tokens * 4
    prompt = 2000
    for k in range(turns):
        text = " ".join(rng.choice(WORDS) for _ in range(out_tokens // 2))
        [cid] = s.assistant(text=text, calls=[bash(f"make -C /app step{k} 2>&1 | tail -200")], prompt=prompt,
                            output=out_tokens, cached=max(prompt - 900, 0), seconds=3.0)
        log = "\n".join(f"[{k:03d}:{i:04d}] cc -O2 -c src/mod{i % 97}.c -o build/mod{i % 97}.o  # {rng.random():.6f}"
                        for i in range(max(per_turn // 60, 1)))
        s.result(cid, "bash", log)
        prompt = 2000 + int((k + 1) * (per_turn + out_tokens * 4) / chars_per_token)
    s.assistant(text="Done! All tests pass.", prompt=prompt, output=8)
    return s


OVERFLOW_400 = "400 request (262300 tokens) exceeds the available context size (262144 tokens), try increasing it"


def make_job(tmp_path) -> Path:
    """One trial per failure mode of the analysis' taxonomy, plus a pass."""
    job = tmp_path / "job"

    def trial(name, s, **kw):
        write_trial(job / f"{name}__{abs(hash(name)) % 10**7:07d}", s,
                    result=trial_result(name, f"{name}__x", **{"reward": 0.0} | kw))
    s = Session("pass task")
    s.assistant("All tests pass: 3 passed.", prompt=800)
    trial("passing", s, reward=1.0)
    s = Session("loop task")
    s.assistant("Wait, let me try again. " * 500, stop="length", output=32000, prompt=5000)
    trial("polyglot-rust-c", s)
    s = Session("overflow task")
    s.assistant(error=OVERFLOW_400)
    trial("path-tracing-reverse", s)
    s = Session("compaction task")
    [a] = s.assistant("looking", calls=[bash("ls")])
    s.result(a, "bash", "x")
    s.compaction("summary", s.entries[-2]["id"], 240_000)
    s.assistant("I could not finish.", prompt=60_000)
    trial("video-processing", s)
    s = Session("slow task")
    [a] = s.assistant("compiling", calls=[bash("make")])
    s.result(a, "bash", "...")
    trial("qemu-alpine-ssh", s, reward=None, exception="AgentTimeoutError")
    s = Session("false success")
    s.assistant("Done! The model is saved to /app/model.bin.", prompt=900)
    trial("train-fasttext", s)
    s = Session("infra")
    s.assistant(error="Connection error.")
    trial("caffe-cifar-10", s, reward=0.0)
    write_trial(job / "caffe-cifar-10__1111111", Session("never started"),
                result=trial_result("caffe-cifar-10", "caffe-cifar-10__1111111", reward=0.0),
                stderr='Error: Unknown provider "tbreplay"\n')
    (job / "caffe-cifar-10__1111111" / "agent" / "pi" / "sessions").rename(job / "caffe-cifar-10__1111111" / "agent" / "x")
    s = Session("miss")
    s.assistant("The best move is e4.", prompt=700)
    trial("chess-best-move", s)
    return job


WORDS = ("the build links against libfoo and the header is missing so I will add the include path then "
         "rerun make to check that the object files compile cleanly before the test suite runs").split()
