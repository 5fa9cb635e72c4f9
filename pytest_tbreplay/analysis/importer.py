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

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core import redact
from pytest_tbreplay.core.harbor_result import harbor_outcome
from pytest_tbreplay.core.llama_stream import Answer, ToolCall, sse, word_pieces
from pytest_tbreplay.core.profiles import Profile, ProfileError, load_profile
from pytest_tbreplay.core.wire import exceed_body, overflow_sizes
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


@dataclass
class Trial:
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
        return "trial_name" in json.loads((d / "result.json").read_text())
    except (OSError, ValueError):
        return False


def locate(path: Path) -> Trial:
    path = Path(path)
    if not path.exists():
        raise TrialImportError(f"{path}: no such file or folder (give a Harbor job or trial folder, or a pi session .jsonl)")
    if path.is_file():
        return Trial(path.parent, path, "pi-session")
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
        return Trial(path, sessions[-1], "mitigated-pi" if mitigated else "harbor-pi", path.parent)
    what = "agent/ folder" if not agent.is_dir() else "pi session (agent/pi/sessions/*.jsonl or agent/sessions/*.jsonl)"
    raise TrialImportError(f"{path}: no {what}: the agent never started or was not pi"
                           + (f" (result.json says {_exception(path) or 'no exception'})" if (path / "result.json").exists() else ""))


def _exception(trial_dir: Path) -> str | None:
    info = (_read_json(trial_dir / "result.json") or {}).get("exception_info") or {}
    return info.get("exception_type")


def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise TrialImportError(f"{path}: not readable JSON ({e})") from None


# -- one trial --------------------------------------------------------------------------------------
def import_trial(path: Path, n_ctx: int | None = None) -> cs.Cassette:
    """One trial (folder or session file) as a cassette, in memory."""
    t = locate(path)
    try:
        session = read_session(t.session)
    except SessionError as e:
        raise TrialImportError(str(e)) from None
    if not session.calls:
        raise TrialImportError(f"{t.session}: the session has no assistant message: pi never got an answer")
    return _Importer(t, session, n_ctx).cassette()


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
    def __init__(self, t: Trial, session: Session, n_ctx: int | None):
        self.t, self.session = t, session
        self.result = _read_json(t.file("result.json")) if t.layout != "pi-session" else None
        self.manifest = _read_json(t.file("agent", "tbreplay.json")) if t.layout == "mitigated-pi" else None
        self.template = _read_json(t.file("agent", "tbreplay-request.json")) if t.layout == "mitigated-pi" else None
        self.synthesized: set[str] = set()
        self.n_ctx, self.n_ctx_source = self._n_ctx(n_ctx)
        self.profile = _resolved(self._profile(), self.n_ctx)
        self.deltas: dict = {}

    # -- configuration the trial ran with --------------------------------------------------------
    def _profile(self) -> dict:
        if self.manifest and isinstance(self.manifest.get("profile"), dict):
            return self.manifest["profile"]
        name = ((self.result or {}).get("config", {}).get("agent", {}).get("kwargs") or {}).get("profile")
        if self.t.layout == "mitigated-pi":
            try:
                return asdict(load_profile(name or "mitigated"))
            except ProfileError:
                pass
        self.synthesized.add("profile (Harbor's pi defaults)" if self.t.layout == "harbor-pi" else "profile (unknown)")
        return asdict(Profile(**HARBOR_PI_PROFILE))

    def _n_ctx(self, given: int | None) -> tuple[int | None, str]:
        kwargs = ((self.result or {}).get("config", {}).get("agent", {}).get("kwargs") or {})
        for value, source in ((given, "--n-ctx"), (kwargs.get("n_ctx"), "agent kwargs"),
                              ((self.manifest or {}).get("n_ctx"), "manifest")):
            if value:
                return int(value), source
        for call in self.session.calls:
            if sizes := overflow_sizes(call.message.get("errorMessage") or ""):
                return sizes[1], "overflow message"
        return None, "unknown"

    def _version(self) -> tuple[str, str]:
        """pi's version and where it was read: the manifest, Harbor's result.json or config.json,
        else the session's shape."""
        r = self.result or {}
        config = (_read_json(self.t.file("config.json")) if self.t.layout != "pi-session" else None) or {}

        def kwarg(c: dict):
            kwargs = ((c or {}).get("agent") or {}).get("kwargs") or {}
            return kwargs.get("pi_version") or kwargs.get("version")  # MitigatedPi's, Harbor's pi's
        for value, source in (((self.manifest or {}).get("pi_version"), "manifest"),
                              ((r.get("agent_info") or {}).get("version"), "result.json agent_info"),
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
        system = next((m for m in template.pop("messages", []) if m.get("role") == "system"), None)
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
        answer = Answer(m.get("responseId") or f"chatcmpl-imported-{n:04d}",
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
        text, offsets = sse(Answer(f"chatcmpl-summary-{compaction['id']}", _model_name(call.message.get("model", "")),
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
            self.deltas = _deltas(self.t.file("agent", "pi.jsonl"))
        elif self.session.from_events:  # a bare `--mode json` file: its own message_update deltas
            self.deltas = _deltas(self.t.session)
        interactions = self._interactions()
        calls = self.session.calls
        meta = {"format": cs.FORMAT, "task": self._task(), "trial": self._trial_name(), "provenance": "imported",
                "server": {"n_ctx": self.n_ctx, "n_ctx_source": self.n_ctx_source,
                           "model": _model_name(calls[0].message.get("model", "local")),
                           "settings": ((self.manifest or {}).get("props") or {}).get("default_generation_settings", {})
                           .get("params", {})},
                "harness_profile": {"harness": "pi"} | self.profile,
                "instruction": self.session.first_user_text(), "acceptance": [],
                "system_prompt": self.system_prompt,
                "imported": self._imported(calls)}
        meta["failure_mode"] = meta["imported"]["outcome"]
        if self.n_ctx is None:
            self.synthesized.add("n_ctx unknown: replay cannot emulate the context limit (pass --n-ctx)")
        meta["imported"]["synthesized"] = sorted(self.synthesized)
        return cs.Cassette(meta, interactions)

    def _task(self) -> str:
        if self.result and self.result.get("task_name"):
            return self.result["task_name"]
        name = self.t.root.name.split("__")[0] if self.t.layout != "pi-session" else self.t.session.stem
        return name or "unknown"

    def _trial_name(self) -> str:
        return (self.result or {}).get("trial_name") or (self.t.root.name if self.t.layout != "pi-session"
                                                         else self.t.session.stem)

    def _imported(self, calls: list[Call]) -> dict:
        r = self.result or {}
        info = r.get("exception_info") or {}
        reward = ((r.get("verifier_result") or {}).get("rewards") or {}).get("reward")
        stderr = self.t.file("agent", "pi.stderr") if self.t.layout == "mitigated-pi" else None
        version, version_source = self._version()
        return {
            "source": _relative(self.t.session if self.t.layout == "pi-session" else self.t.root, self.t.job_root),
            "layout": self.t.layout, "reward": reward, "outcome": _outcome(r, self.t.layout, reward),
            "exception_type": info.get("exception_type"),
            "exception_message": (info.get("exception_message") or "")[-EXCERPT:] or None,
            "verifier_output": _tail(self.t.file("verifier", "test-stdout.txt")),
            "pi_stderr": _tail(stderr) if stderr else None,
            "profile_known": self.manifest is not None or self.t.layout == "mitigated-pi",
            "pi_version": version, "pi_version_source": version_source,
            "started_at": r.get("started_at") or self.session.started, "finished_at": r.get("finished_at"),
            "turns": [[_iso_ms(c.message.get("timestamp")), c.entry.get("timestamp")] for c in calls],
        }


def trial_facts(t: Trial, session: Session) -> dict:
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
            "outcome": meta["outcome"], "n_ctx": imp.n_ctx, "max_tokens": imp.profile.get("max_tokens"),
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


def _deltas(path: Path) -> dict:
    """Per assistant message (keyed by its timestamp, the request's start in ms): the streamed
    pieces in order, and each tool call's argument pieces, from print mode's message events."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.rstrip("\n") for line in f if line.startswith('{"type":"message_')]
    try:  # one parse for the whole file: a real trial prints ~100k events
        events = json.loads("[" + ",".join(lines) + "]")
    except ValueError:  # a torn last line of a killed trial
        events = json.loads("[" + ",".join(lines[:-1]) + "]") if len(lines) > 1 else []
    out, pieces, args, calls = {}, [], {}, {}
    for e in events:
        kind = e.get("type")
        if kind == "message_update":
            ev = e.get("assistantMessageEvent") or {}
            t = ev.get("type")
            if t == "text_delta":
                pieces.append(("content", ev.get("delta") or ""))
            elif t == "thinking_delta":
                pieces.append(("reasoning_content", ev.get("delta") or ""))
            elif t == "toolcall_delta":
                args.setdefault(calls.setdefault(ev.get("contentIndex"), len(calls)), []).append(ev.get("delta") or "")
            elif t == "toolcall_start":
                calls[ev.get("contentIndex")] = len(calls)
        elif kind == "message_start":
            pieces, args, calls = [], {}, {}
        elif kind == "message_end" and (e.get("message") or {}).get("role") == "assistant":
            out[e["message"].get("timestamp")] = (pieces, args)
    return out


def _tail(path: Path | None) -> str | None:
    if path is None or not path.exists():
        return None
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-EXCERPT:]


def _relative(path: Path, root: Path | None) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) if root else path.name
    except ValueError:
        return str(path)


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
    """Every trial of every source into `out`; a bad trial is reported, never stops the rest."""
    report = ImportReport()
    for source in sources:
        try:
            trials = find_trials(Path(source))
        except TrialImportError as e:
            report.failed.append((Path(source), str(e)))
            continue
        for trial in trials:
            try:
                c = import_trial(trial, n_ctx)
                name = re.sub(r"[^\w.-]+", "_", c.metadata["trial"])
                report.written.append(cs.save(c, Path(out) / f"{name}.yaml", overwrite=overwrite))
            except (TrialImportError, cs.CassetteError, FileExistsError, OSError) as e:
                report.failed.append((trial, str(e)))
    return report
