"""`tbreplay import`: real trials in, cassettes out (provenance `imported`).

A source is a Harbor job folder (all its trials), one trial folder, or a bare pi session `.jsonl`.
Two trial layouts exist (Harbor 0.26, pi 0.73.1):
  MitigatedPi   agent/pi.jsonl (print-mode events, every delta kept), agent/pi.stderr,
                agent/pi/sessions/*.jsonl, agent/tbreplay.json (manifest: profile, n_ctx, /props, pi
                version, models.json, settings), agent/tbreplay-request.json (the first request
                without its conversation: system prompt, tools, max tokens, sampling fields)
  Harbor's pi   agent/pi.txt (events without deltas), agent/pi/sessions/*.jsonl, agent/trajectory.json
pi 1.x sessions keep the system prompt and tools they sent (a `role: system` message); a bare
`pi --mode json` output file is read as its session. pi's version comes from the manifest, Harbor's
result.json or config.json, else from the session's shape (1.x has the system message).
Either way the session file is the source of the conversation: each assistant message on its
active branch is one interaction. What the files do not keep is rebuilt and named in
`metadata.imported.synthesized`."""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core import jobfiles, redact
from pytest_tbreplay.core.harbor_result import harbor_outcome
from pytest_tbreplay.core.llama_stream import Completion, ToolCall, sse, word_pieces
from pytest_tbreplay.core.profiles import Profile, ProfileError, load_profile
from pytest_tbreplay.core.wire import exceed_body, overflow_sizes
from pytest_tbreplay.policies.texts import is_harness_message
from pytest_tbreplay.harnesses.pi.session import (
    Call,
    Session,
    SessionError,
    read_session,
    text_of,
)
from pytest_tbreplay.replay.tools import DATA, pi_tools

URI = "http://llama-server/v1/chat/completions"
HTTP_ERROR = re.compile(r"^(\d{3})\b\s*(.*)", re.S)
PI_VERSION = "0.73.1"  # what a session without a system message and without a manifest was made with
VERSION = re.compile(r"\d+\.\d+\.\d+")
# What Harbor's own pi agent configures: models.json without contextWindow or maxTokens, so pi's
# defaults (model-registry.js: 128000 and 16384), and none of this project's mitigations.
HARBOR_PI_PROFILE = {"name": "harbor-pi", "context_window": 128000, "max_tokens": 16384}
EXCERPT = 2000  # characters of verifier output and stderr kept in the metadata


class TrialImportError(ValueError):
    """A trial that cannot be imported: names the file and what is missing."""


class NoSession(TrialImportError):
    """A trial folder whose pi wrote no session (pi writes it with its first answer)."""


@dataclass
class TrialFiles:
    """Where one trial's files are, and which layout wrote them."""
    root: Path  # the trial folder (or the session file's folder)
    session: Path
    layout: str  # mitigated-pi | harbor-pi | pi-session
    job_root: Path | None = None

    def file(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


@dataclass
class ImportReport:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


# -- finding trials ---------------------------------------------------------------------------------
def find_trials(source: Path) -> list[Path]:
    """The trial folders (or session files) a source holds."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise TrialImportError(f"{source}: no such file or folder (give a Harbor job or trial folder, or a pi session .jsonl)")
    if _is_trial(source):
        return [source]
    found = sorted(p for p in source.iterdir() if p.is_dir() and _is_trial(p))
    if not found:  # a jobs folder holding job folders
        found = sorted(t for job in source.iterdir() if job.is_dir() for t in job.iterdir()
                       if t.is_dir() and _is_trial(t))
    if not found:
        raise TrialImportError(f"{source}: no trials found (a trial folder has agent/ or a result.json with trial_name)")
    return found


def _is_trial(d: Path) -> bool:
    if (d / "agent").is_dir():
        return True
    try:
        return "trial_name" in (_read_json(d / "result.json", d) or {})
    except TrialImportError:
        return False


def locate(path: Path) -> TrialFiles:
    path = Path(path)
    if not path.exists():
        raise TrialImportError(f"{path}: no such file or folder (give a Harbor job or trial folder, or a pi session .jsonl)")
    if path.is_file():
        return TrialFiles(path.parent, path, "pi-session")
    agent = path / "agent"
    # MitigatedPi keeps its sessions where Harbor's pi does (agent/pi/sessions: Harbor's converter
    # reads them there); earlier MitigatedPi versions used agent/sessions. Its manifest and pi.jsonl
    # tell the two agents apart.
    sessions = [p for folder in (agent / "pi" / "sessions", agent / "sessions") if folder.is_dir()
                for p in sorted(folder.glob("*.jsonl"))]
    if sessions:
        mitigated = (agent / "tbreplay.json").exists() or (agent / "pi.jsonl").exists()
        # One pi process per trial writes one session; a restart writes another: the last
        # (by name: pi names them by start time) is the run that ended the trial.
        return TrialFiles(path, sessions[-1], "mitigated-pi" if mitigated else "harbor-pi", path.parent)
    what = "agent/ folder" if not agent.is_dir() else "pi session (agent/pi/sessions/*.jsonl or agent/sessions/*.jsonl)"
    raise (NoSession if agent.is_dir() else TrialImportError)(f"{path}: no {what}: the agent never started or was not pi"
                           + (f" (result.json says {_exception(path) or 'no exception'})" if (path / "result.json").exists() else ""))


def _exception(trial_dir: Path) -> str | None:
    return _dig(_read_result(trial_dir / "result.json", trial_dir), "exception_info", "exception_type")


def _read_json(path: Path, root: Path | None) -> dict | None:
    """A JSON object file of the trial (None if absent); anything else names the file and the problem."""
    if not path.exists() and not path.is_symlink():
        return None
    try:
        data = json.loads(jobfiles.read_text(path, root, jobfiles.MAX_JSON))
    except jobfiles.JobFileError as e:
        raise TrialImportError(str(e)) from None
    except RecursionError:
        raise TrialImportError(f"{path}: nested too deeply to be a {path.name} this project reads") from None
    except ValueError as e:
        raise TrialImportError(f"{path}: not readable JSON ({str(e)[:100]})") from None
    if not isinstance(data, dict):
        raise TrialImportError(f"{path}: a JSON {type(data).__name__}, where an object is expected")
    return jobfiles.scrub(data)


# The fields of Harbor's result.json read here, and the types they may have (None always allowed).
RESULT_FIELDS = {("task_name",): str, ("trial_name",): str, ("config",): dict, ("config", "agent"): dict,
                 ("config", "agent", "kwargs"): dict, ("config", "agent", "kwargs", "n_ctx"): int,
                 ("config", "agent", "kwargs", "profile"): str, ("exception_info",): dict,
                 ("exception_info", "exception_type"): str, ("exception_info", "exception_message"): str,
                 ("exception_info", "policy"): dict, ("verifier_result",): dict, ("verifier_result", "rewards"): dict,
                 ("verifier_result", "rewards", "reward"): float, ("agent_execution",): dict,
                 ("agent_execution", "started_at"): str, ("agent_execution", "finished_at"): str,
                 ("started_at",): str, ("finished_at",): str, ("agent_info",): dict, ("agent_info", "version"): str}


def _dig(d, *keys):
    """d[k1][k2]... or None where a level is missing (or not an object)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _is(value, kind) -> bool:
    if value is None:
        return True
    if kind is float:  # a reward: a finite number
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value > 0
    return isinstance(value, kind)


def _read_result(path: Path, root: Path | None) -> dict | None:
    r = _read_json(path, root)
    for keys, kind in RESULT_FIELDS.items():
        value = _dig(r, *keys)
        if not _is(value, kind):
            what = {float: "a number", int: "a positive whole number", str: "text", dict: "an object"}[kind]
            raise TrialImportError(f"{path}: {'.'.join(keys)} is {str(value)[:40]!r}, not {what}")
    return r


# -- one trial --------------------------------------------------------------------------------------
def import_trial(path: Path, n_ctx: int | None = None) -> cs.Cassette:
    """One trial (folder or session file) as a cassette, in memory."""
    t = locate(path)
    try:
        session = read_session(t.session, t.root)
    except SessionError as e:
        raise TrialImportError(str(e)) from None
    if not session.calls:
        raise TrialImportError(f"{t.session}: the session has no assistant message: pi never got an answer")
    return _Importer(t, session, n_ctx).cassette()


def _count(value) -> int | None:
    """A size as a number, or None: `auto` (a MitigatedPi manifest's unresolved size) is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _int(value, default: int) -> int:
    """A size from a profile; `auto` unresolved (n_ctx unknown) gives pi's default."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _resolved(profile: dict, n_ctx: int | None) -> dict:
    """The profile with its `auto` sizes as the trial ran them: what the server's n_ctx gave."""
    if n_ctx is None or "auto" not in profile.values():
        return profile
    known = {f.name for f in fields(Profile)}
    try:
        return profile | Profile(**{k: v for k, v in profile.items() if k in known}).budget(n_ctx).sizes()
    except (ProfileError, TypeError):
        return profile


class _Importer:
    def __init__(self, t: TrialFiles, session: Session, n_ctx: int | None):
        self.t, self.session = t, session
        self.result = _read_result(t.file("result.json"), t.root) if t.layout != "pi-session" else None
        self.manifest = _read_json(t.file("agent", "tbreplay.json"), t.root) if t.layout == "mitigated-pi" else None
        self.template = _read_json(t.file("agent", "tbreplay-request.json"), t.root) if t.layout == "mitigated-pi" else None
        self.synthesized: set[str] = set()
        self.n_ctx, self.n_ctx_source = self._n_ctx(n_ctx)
        self.profile = _resolved(self._profile(), self.n_ctx)
        self.deltas: dict = {}

    # -- configuration the trial ran with --------------------------------------------------------
    def _profile(self) -> dict:
        if self.manifest and isinstance(self.manifest.get("profile"), dict):
            return self.manifest["profile"]
        name = _dig(self.result, "config", "agent", "kwargs", "profile")
        if self.t.layout == "mitigated-pi":
            try:
                return asdict(load_profile(name or "mitigated"))
            except ProfileError:
                pass
        self.synthesized.add("profile (Harbor's pi defaults)" if self.t.layout == "harbor-pi" else "profile (unknown)")
        return asdict(Profile(**HARBOR_PI_PROFILE))

    def _n_ctx(self, given: int | None) -> tuple[int | None, str]:
        for value, source in ((given, "--n-ctx"), (_dig(self.result, "config", "agent", "kwargs", "n_ctx"), "agent kwargs"),
                              ((self.manifest or {}).get("n_ctx"), "manifest")):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, source
        for call in self.session.calls:
            if sizes := overflow_sizes(call.message.get("errorMessage") or ""):
                return sizes[1], "overflow message"
        return None, "unknown"

    def _version(self) -> tuple[str, str]:
        """pi's version and where it was read: the manifest, Harbor's result.json or config.json,
        else the session's shape."""
        r = self.result or {}
        config = _read_json(self.t.file("config.json"), self.t.root) if self.t.layout != "pi-session" else None

        def kwarg(c):  # MitigatedPi's pi_version, Harbor's pi's version
            return _dig(c, "agent", "kwargs", "pi_version") or _dig(c, "agent", "kwargs", "version")
        for value, source in ((_dig(self.manifest, "pi_version"), "manifest"),
                              (_dig(r, "agent_info", "version"), "result.json agent_info"),
                              (kwarg(r.get("config")), "result.json agent kwargs"),
                              (kwarg(config), "config.json agent kwargs")):
            if isinstance(value, str) and VERSION.fullmatch(value):
                return value, source
        if self.session.system_message is not None:
            return "1.x", "session: it has a system message (pi >= 1.0); the exact version is not in it"
        return PI_VERSION, "assumed: a session without a system message, as pi 0.73.1 writes"

    # -- requests ----------------------------------------------------------------------------------
    def _template(self) -> tuple[dict, str]:
        """The request around the conversation, and the system prompt: as MitigatedPi logged the
        first request, else rebuilt from pi's defaults and the profile."""
        template = dict(self.template or self._rebuilt_template(self.session.calls[0]))
        messages = template.pop("messages", None)
        system = next((m for m in messages if isinstance(m, dict) and m.get("role") == "system"), None) \
            if isinstance(messages, list) else None
        if system is not None and not isinstance(system.get("content"), str):
            raise TrialImportError(f"{self.t.file('agent', 'tbreplay-request.json')}: the system message's content is not text")
        if system:
            return template, system["content"]
        sent = self.session.system_prompt()  # pi 1.x keeps the prompt it sent
        return template, sent if sent is not None else self._system_prompt()

    def _rebuilt_template(self, call: Call) -> dict:
        tools = self.session.tools()  # pi 1.x keeps them; 0.73.1's are fixed (data/pi_tools.json)
        if tools is None:
            self.synthesized.add("request fields other than messages (pi 0.73.1 defaults and the profile)")
        else:
            self.synthesized.add("request fields other than messages and tools (pi 1.x's defaults; max tokens "
                                 "the profile's: pi >= 0.75 lowers them per request as the context fills, "
                                 "and the session keeps none)")
        body = {"model": call.message.get("model", "local"), "stream": True, "stream_options": {"include_usage": True},
                "store": False, "max_completion_tokens": min(_int(self.profile.get("max_tokens"), 16384), 32000),
                "tools": pi_tools() if tools is None else tools}
        return body | (self.profile.get("dry") or {})

    def _system_prompt(self) -> str:
        self.synthesized.add("system prompt (pi 0.73.1's template, the session's date and cwd)")
        package = {"mitigated-pi": "/opt/tbreplay-pi/node_modules/@mariozechner/pi-coding-agent"}.get(
            self.t.layout, "/usr/local/lib/node_modules/@mariozechner/pi-coding-agent")
        date = self.session.started[:10]
        text = (DATA / "pi_system_prompt.txt").read_text().replace("{package}", package)
        text += f"Current date: {date}\nCurrent working directory: {self.session.cwd}"
        if self.profile.get("verify_before_done"):
            from pytest_tbreplay.harnesses.reference import VERIFY_CONTRACT
            text += f"\n\n{VERIFY_CONTRACT}"
        return text

    # -- responses ---------------------------------------------------------------------------------
    def _interactions(self) -> list[cs.Interaction]:
        template, system = self._template()
        self.system_prompt = system
        template = redact.value(template)  # redacted as a recording is (redact.py)
        model = _model_name(template.pop("model", None))
        out, clean = [], _Redacted()
        for n, (call, messages) in enumerate(self.session.requests(system)):
            if call.compaction is not None:
                out.append(self._summary(call.compaction, call))
            request = {"model": model or _model_name(call.message.get("model", "local")),
                       "messages": [clean(m) for m in messages]} | template
            it = self._answer(call, n, request)
            if it is not None:
                out.append(it)
        return out

    def _answer(self, call: Call, n: int, request: dict) -> cs.Interaction | None:
        m = call.message
        if m.get("stopReason") == "error":
            return self._error(request, m.get("errorMessage") or "")
        if m.get("stopReason") == "aborted":
            self.synthesized.add("the aborted last turn is left out (its stream never finished)")
            return None
        pieces, calls = self._pieces(m)
        usage = m.get("usage") or {}
        prompt = int(usage.get("input", 0)) + int(usage.get("cacheRead", 0)) + int(usage.get("cacheWrite", 0))
        start, end = m.get("timestamp", 0) / 1000, _seconds(call.entry.get("timestamp"))
        answer = Completion(m.get("responseId") or f"chatcmpl-imported-{n:04d}",
                        _model_name(m.get("responseModel") or m.get("model", "")),
                        int(start), pieces, calls, m.get("stopReason", "stop"), prompt, int(usage.get("output", 0)),
                        int(usage.get("cacheRead", 0)), max(end - start, 0.0) if end else 0.0)
        text, offsets = sse(answer)
        self.synthesized.add("chunk offsets and timings (spread evenly over the turn's wall time)")
        it = cs.Interaction("POST", URI, "", 200, text, headers={"Content-Type": ["text/event-stream"]},
                            request_headers={"Content-Type": ["application/json"]}, chunk_offsets=offsets,
                            tool_results=[_tool_result(c, r) for c, r in _pairs(m, call.results)])
        it.__dict__["request"] = request
        return it

    def _pieces(self, m: dict) -> tuple[list[tuple[str, str]], list[ToolCall]]:
        streamed = self.deltas.get(m.get("timestamp"))
        blocks = m.get("content") or []
        calls = [b for b in blocks if b.get("type") == "toolCall"]
        if streamed is not None:
            pieces, args = streamed
            tool_calls = [ToolCall(c["id"], c["name"], args.get(i, [])) for i, c in enumerate(calls)]
            return pieces, tool_calls
        self.synthesized.add("chunk boundaries (about one token per chunk: the source kept no deltas)")
        pieces = []
        for b in blocks:
            if b.get("type") == "thinking":
                pieces += [("reasoning_content", p) for p in word_pieces(b.get("thinking", ""))]
            elif b.get("type") == "text":
                pieces += [("content", p) for p in word_pieces(b.get("text", ""))]
        tool_calls = [ToolCall(c["id"], c["name"], word_pieces(json.dumps(c.get("arguments") or {}, ensure_ascii=False)))
                      for c in calls]
        return pieces, tool_calls

    def _error(self, request: dict, message: str) -> cs.Interaction:
        if sizes := overflow_sizes(message):
            status, body = 400, json.dumps(exceed_body(*sizes))
        else:
            self.synthesized.add("error bodies other than the context 400 (pi keeps only the message)")
            code = HTTP_ERROR.match(message)
            status = int(code.group(1)) if code else 500
            body = json.dumps({"error": {"code": status, "message": code.group(2) if code else message,
                                         "type": "server_error"}})
        it = cs.Interaction("POST", URI, "", status, body, headers={"Content-Type": ["application/json"]},
                            request_headers={"Content-Type": ["application/json"]})
        it.__dict__["request"] = request
        return it

    def _summary(self, compaction: dict, call: Call) -> cs.Interaction:
        """pi's compaction asks the model for a summary; the session keeps only the summary."""
        self.synthesized.add("compaction summary requests (answered with the session's summary)")
        summary = compaction.get("summary", "")
        text, offsets = sse(Completion(f"chatcmpl-summary-{compaction['id']}", _model_name(call.message.get("model", "")),
                                   int(_seconds(compaction.get("timestamp")) or 0),
                                   [("content", p) for p in word_pieces(summary)], [], "stop",
                                   int(compaction.get("tokensBefore") or 0), len(word_pieces(summary))))
        request = {"model": _model_name(call.message.get("model", "")), "messages": [
            {"role": "user", "content": "<conversation>(not kept by pi's session)</conversation>"}]}
        return cs.Interaction("POST", URI, json.dumps(request), 200, text, headers={"Content-Type": ["text/event-stream"]},
                              request_headers={"Content-Type": ["application/json"]}, chunk_offsets=offsets,
                              scripted="imported: pi's compaction summary request is not in the session; "
                                       "the session's summary answers it", match="<conversation>")

    # -- the cassette ------------------------------------------------------------------------------
    def cassette(self) -> cs.Cassette:
        if self.t.layout == "mitigated-pi":
            self.deltas = _deltas(self.t.file("agent", "pi.jsonl"), self.t.root)
        elif self.session.from_events:  # a bare `--mode json` file: its own message_update deltas
            self.deltas = _deltas(self.t.session, self.t.root)
        interactions = self._interactions()
        calls = self.session.calls
        meta = {"format": cs.FORMAT, "task": self._task(), "trial": self._trial_name(), "provenance": "imported",
                "server": {"n_ctx": self.n_ctx, "n_ctx_source": self.n_ctx_source,
                           "model": _model_name(calls[0].message.get("model", "local")),
                           "settings": redact.value(_dig(self.manifest, "props", "default_generation_settings", "params") or {})},
                "harness_profile": {"harness": "pi"} | self.profile,
                "instruction": self.session.first_user_text(), "acceptance": [],
                # the later prompts of a multi-prompt session (replay sends each when a run ends);
                # a mitigation's nudges are the replaying harness's own business
                "prompts": [t for t in self.session.user_texts()[1:] if not is_harness_message(t)],
                "system_prompt": self.system_prompt,
                "imported": self._imported(calls)}
        meta["failure_mode"] = meta["imported"]["outcome"]
        if self.n_ctx is None:
            self.synthesized.add("n_ctx unknown: replay cannot emulate the context limit (pass --n-ctx)")
        meta["imported"]["synthesized"] = sorted(self.synthesized)
        # Names from folder names (maybe not UTF-8) and texts from result.json: saveable as UTF-8.
        # and every value under a secret-like name (a manifest's profile or /props settings) redacted.
        return cs.Cassette(redact.value(jobfiles.scrub(meta)), interactions)

    def _task(self) -> str:
        if self.result and self.result.get("task_name"):
            return self.result["task_name"]
        name = self.t.root.name.split("__")[0] if self.t.layout != "pi-session" else self.t.session.stem
        return jobfiles.display(name) or "unknown"

    def _trial_name(self) -> str:
        return (self.result or {}).get("trial_name") or jobfiles.display(
            self.t.root.name if self.t.layout != "pi-session" else self.t.session.stem)

    def _tail(self, path: Path) -> str | None:
        """A log's last characters; a log that is a special file or a symlink out of the trial is named, not read."""
        try:
            return jobfiles.tail_text(path, self.t.root, EXCERPT)
        except jobfiles.JobFileError as e:
            self.synthesized.add(f"not read: {jobfiles.display(str(e))}")
            return None

    def _imported(self, calls: list[Call]) -> dict:
        r = self.result or {}
        info = r.get("exception_info") or {}
        reward = _dig(r, "verifier_result", "rewards", "reward")
        stderr = self.t.file("agent", "pi.stderr") if self.t.layout == "mitigated-pi" else None
        version, version_source = self._version()
        return {
            "source": _relative(self.t.session if self.t.layout == "pi-session" else self.t.root, self.t.job_root),
            "layout": self.t.layout, "reward": reward, "outcome": _outcome(r, self.t.layout, reward),
            "exception_type": info.get("exception_type"),
            "exception_message": redact.text((info.get("exception_message") or "")[-EXCERPT:]) or None,
            "verifier_output": redact.text(self._tail(self.t.file("verifier", "test-stdout.txt"))),
            "pi_stderr": redact.text(self._tail(stderr)) if stderr else None,
            "profile_known": self.manifest is not None or self.t.layout == "mitigated-pi",
            "pi_version": version, "pi_version_source": version_source,
            "started_at": r.get("started_at") or self.session.started, "finished_at": r.get("finished_at"),
            "turns": [[_iso_ms(c.message.get("timestamp")), c.entry.get("timestamp")] for c in calls],
        }


def trial_facts(t: TrialFiles, session: Session) -> dict:
    """What summarize needs of a trial without building its cassette."""
    imp = _Importer(t, session, None)
    meta = imp._imported(session.calls)
    r = imp.result or {}
    wall = _seconds((r.get("agent_execution") or {}).get("finished_at")), \
        _seconds((r.get("agent_execution") or {}).get("started_at"))
    if None in wall:
        turns = meta["turns"]
        wall = (_seconds(turns[-1][1]), _seconds(turns[0][0])) if turns else (None, None)
    return {"task": imp._task(), "trial": imp._trial_name(), "source": meta["source"], "reward": meta["reward"],
            "outcome": meta["outcome"], "n_ctx": imp.n_ctx, "max_tokens": _count(imp.profile.get("max_tokens")),
            "wall_s": round(wall[0] - wall[1], 1) if None not in wall else None,
            "exception_type": meta["exception_type"], "pi_stderr": meta["pi_stderr"]}


class _Redacted:
    """Each distinct message redacted once; unchanged messages stay the shared objects they are."""

    def __init__(self):
        self._memo: dict[int, tuple[dict, dict]] = {}

    def __call__(self, m: dict) -> dict:
        hit = self._memo.get(id(m))
        if hit is None or hit[0] is not m:
            clean = redact.value(m)
            hit = self._memo[id(m)] = (m, m if clean == m else clean)
        return hit[1]


def _model_name(model: str | None) -> str | None:
    """A local GGUF path becomes its file name, as in a recording."""
    return redact.file_name(model) if isinstance(model, str) and redact.is_local_path(model) else model


def _outcome(result: dict, layout: str, reward) -> str:
    """passed | failed | timeout | infra | error | incomplete (no result.json yet); unknown for a
    bare pi session."""
    return "unknown" if layout == "pi-session" else harbor_outcome(result, reward)


def _pairs(m: dict, results: list[dict]):
    by_id = {r.get("toolCallId"): r for r in results}
    for c in (b for b in m.get("content") or [] if b.get("type") == "toolCall"):
        if c["id"] in by_id:
            yield c, by_id[c["id"]]


def _tool_result(call: dict, result: dict) -> cs.ToolResult:
    return cs.ToolResult(call["id"], call["name"], call.get("arguments") or {}, text_of(result, "\n"),
                         bool(result.get("isError")))


def _deltas(path: Path, root: Path) -> dict:
    """Per assistant message (keyed by its timestamp, the request's start in ms): the streamed
    pieces in order, and each tool call's argument pieces, from print mode's message events."""
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        with open_text(path, root) as f:
            lines = [line.rstrip("\n") for line in f if line.startswith('{"type":"message_')]
    except jobfiles.JobFileError as e:
        raise TrialImportError(str(e)) from None
    try:  # one parse for the whole file: a real trial prints ~100k events
        events = json.loads("[" + ",".join(lines) + "]")
    except (ValueError, RecursionError):  # a torn line (the last of a killed trial, or one cut mid-file)
        events = _whole_events(lines)
    out, pieces, args, calls, torn = {}, [], {}, {}, False
    for e in events:
        kind = e.get("type") if isinstance(e, dict) else "torn"
        if kind == "torn":
            torn = True  # this message's deltas are incomplete: the session's text serves instead
        elif kind == "message_update":
            ev = e.get("assistantMessageEvent") or {}
            t = ev.get("type") if isinstance(ev, dict) else None
            delta = ev.get("delta") if isinstance(ev, dict) and isinstance(ev.get("delta"), str) else ""
            if t == "text_delta":
                pieces.append(("content", delta))
            elif t == "thinking_delta":
                pieces.append(("reasoning_content", delta))
            elif t == "toolcall_delta":
                args.setdefault(calls.setdefault(ev.get("contentIndex"), len(calls)), []).append(delta)
            elif t == "toolcall_start":
                calls[ev.get("contentIndex")] = len(calls)
        elif kind == "message_start":
            pieces, args, calls, torn = [], {}, {}, False
        elif kind == "message_end" and isinstance(e.get("message"), dict) and e["message"].get("role") == "assistant":
            if not torn:
                out[e["message"].get("timestamp")] = jobfiles.scrub((pieces, args))
    return out


def open_text(path: Path, root: Path):
    return io.TextIOWrapper(jobfiles.open_checked(path, root, jobfiles.MAX_LOG), encoding="utf-8", errors="replace")


def _whole_events(lines: list[str]) -> list:
    """Each line parsed alone; a line that does not parse stands as the marker "torn"."""
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except (ValueError, RecursionError):
            out.append("torn")
    return out


def _relative(path: Path, root: Path | None) -> str:
    try:
        return jobfiles.display(path.resolve().relative_to(root.resolve()) if root else path.name)
    except ValueError:
        return jobfiles.display(path)


def _seconds(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _iso_ms(ms) -> str | None:
    if not isinstance(ms, (int, float)):
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- many trials ------------------------------------------------------------------------------------
def import_all(sources: list[Path], out: Path, n_ctx: int | None = None, overwrite: bool = False) -> ImportReport:
    """Every trial of every source into `out`; a bad trial is reported, never stops the rest.
    Two trials whose names make the same file name get distinct files (`name-2.yaml`, ...):
    --force replaces what an earlier import wrote, never a trial of this one."""
    report, taken = ImportReport(), set()
    for source in sources:
        try:
            trials = find_trials(Path(source))
        except TrialImportError as e:
            report.failed.append((Path(source), str(e)))
            continue
        for trial in trials:
            try:
                c = import_trial(trial, n_ctx)
                path = _free_name(Path(out), re.sub(r"[^\w.-]+", "_", c.metadata["trial"]).strip("._") or "trial", taken)
                report.written.append(cs.save(c, path, overwrite=overwrite))
            except (TrialImportError, cs.CassetteError, FileExistsError, OSError) as e:
                report.failed.append((trial, str(e)))
            except Exception as e:  # noqa: BLE001 - one trial's surprise must not stop the others
                report.failed.append((trial, unexpected(trial, e)))
    return report


def _free_name(out: Path, stem: str, taken: set[str]) -> Path:
    name, k = stem, 1
    while name.lower() in taken:  # lower: a case-insensitive file system would still merge them
        k += 1
        name = f"{stem}-{k}"
    taken.add(name.lower())
    return out / f"{name}.yaml"


def unexpected(trial: Path, e: BaseException) -> str:
    """An error no check named: still the trial, and what went wrong, on one line."""
    return (f"{jobfiles.display(trial)}: cannot be read ({type(e).__name__}: {str(e)[:200]}); "
            "the other trials go on (please report this trial's files)")
