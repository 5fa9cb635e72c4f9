"""pi's session file (0.73.1 and 1.x), or its `--mode json` output, read back into the model
calls it made.

A session is JSONL: a header, then entries linked by parentId (docs/session-format.md). The
conversation pi sends is the active branch (walk parentId back from the last entry), with the
latest compaction applied (its summary, then the entries from firstKeptEntryId on). Each
assistant message on the branch is one model call; the request it answered is the context built
from the entries before it, converted the way pi-ai's openai-completions provider converts it
(`convertToLlm`, `transformMessages`, `convertMessages` in pi-ai/pi-coding-agent 0.73.1, for a
provider without compat overrides, as models.json configures llama-server).

pi 1.x stores the system prompt it sent as a first `role: system` message (its `sections`, joined,
are the prompt; `toolsAdded` the tools). A bare `pi --mode json` output file holds the same
messages as `message_end` events, without entry ids: `read_session` reads either.

Converted messages are built once per entry and shared by every request that carries them, so a
300-turn trial's requests cost a list of references each, not a copy of the history."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Iterator

from pytest_tbreplay.core.jobfiles import MAX_LOG, JobFileError, read_text, scrub

COMPACTION_PREFIX = "The conversation history before this point was compacted into the following summary:\n\n<summary>\n"
COMPACTION_SUFFIX = "\n</summary>"
BRANCH_PREFIX = "The following is a summary of a branch that this conversation came back from:\n\n<summary>\n"
BRANCH_SUFFIX = "</summary>"
NO_RESULT = "No result provided"  # pi-ai's synthetic result for a tool call that never got one


class SessionError(ValueError):
    """A session file that cannot be read, naming the file and the line."""


@dataclass
class Call:
    """One model call: the assistant message pi stored, and where it sits on the branch."""
    entry: dict  # the session entry of the assistant message
    at: int  # its index on the active branch
    results: list[dict]  # the toolResult messages that answered its tool calls
    compaction: dict | None = None  # a compaction entry that came just before this call

    @property
    def message(self) -> dict:
        return self.entry["message"]


@dataclass
class Session:
    path: Path
    header: dict
    entries: list[dict]
    branch: list[dict] = field(default_factory=list)

    @property
    def cwd(self) -> str:
        return self.header.get("cwd", "")

    @property
    def started(self) -> str:
        return self.header.get("timestamp", "")

    @property
    def from_events(self) -> bool:
        """Read from `--mode json` output rather than a session file."""
        return self.header.get("_events", False)

    @cached_property
    def system_message(self) -> dict | None:
        """pi >= 1.0's record of the system prompt it sent (0.73.1 stored none)."""
        for e in self.branch:
            if e.get("type") == "message" and e["message"].get("role") == "system":
                return e["message"]
        return None

    def system_prompt(self) -> str | None:
        """The system prompt as sent: the message's content, else its sections joined as pi joins them."""
        m = self.system_message
        if m is None:
            return None
        if text := text_of(m):
            return text
        sections = m.get("sections") or {}
        return "\n\n".join(v for v in sections.values() if isinstance(v, str) and v)

    def tools(self) -> list[dict] | None:
        """The tools pi 1.x sent, as the request's `tools` (pi-ai: name, description, parameters)."""
        added = (self.system_message or {}).get("toolsAdded")
        if not isinstance(added, list):
            return None
        return [{"type": "function", "function": {"name": t.get("name"), "description": t.get("description"),
                                                  "parameters": t.get("parameters")}}
                for t in added if isinstance(t, dict)]

    def first_user_text(self) -> str:
        return next(iter(self.user_texts()), "")

    def user_texts(self) -> list[str]:
        """Every user prompt on the active branch, in order: the task, then what the user (or a
        harness continuing the run: a nudge) said after each run ended."""
        return [text_of(e["message"]) for e in self.branch
                if e.get("type") == "message" and e["message"].get("role") == "user"]

    @cached_property
    def calls(self) -> list[Call]:
        """Every model call on the active branch, in order."""
        out, pending = [], None
        for i, e in enumerate(self.branch):
            if e.get("type") == "compaction":
                pending = e
            role = e["message"].get("role") if e.get("type") == "message" else None
            if role == "assistant":
                out.append(Call(e, i, [], pending))
                pending = None
            elif role == "toolResult" and out:
                out[-1].results.append(e["message"])
        return out

    def requests(self, system: str | None) -> Iterator[tuple[Call, list[dict]]]:
        """Each call with the chat messages pi sent for it. Built incrementally: each request
        shares the converted messages of the one before (a copy of a list of references)."""
        convert, sent, compaction, done = Converter(), [], None, 0
        for call in self.calls:
            if call.compaction is not None and call.compaction is not compaction:
                compaction = call.compaction  # rebuild from the summary on
                sent = convert.messages(system, context_of(self.branch[:call.at], compaction))
            else:
                if not sent:
                    sent = [{"role": "system", "content": system}] if system is not None else []
                sent = sent + convert.extend([m for e in self.branch[done:call.at] if (m := _message_of(e))])
            done = call.at
            yield call, convert.close(sent)


def read_session(path: Path | str, root: Path | str | None = None) -> Session:
    """The session at `path` (a regular file inside `root`, when given), every entry checked for
    the types this module relies on: a malformed entry is a SessionError naming its line."""
    path = Path(path)
    try:
        lines = read_text(path, root, MAX_LOG).splitlines()
    except JobFileError as e:
        raise SessionError(f"{e} (the pi session)") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            # pi appends entry by entry: a trial killed mid-write leaves a torn last line.
            if n == len(lines):
                break
            raise SessionError(f"{path}:{n}: not JSON ({str(e)[:80]}); is this a pi session file?") from None
        records.append((n, scrub(record) if _SURROGATE.search(line) else record))
    if not records or not isinstance(records[0][1], dict) or records[0][1].get("type") != "session":
        raise SessionError(f"{path}: no session header (first line must be {{\"type\":\"session\",...}}); "
                           "is this a pi session file or `pi --mode json` output?")
    header = records[0][1]
    for key in ("cwd", "timestamp"):
        if not isinstance(header.get(key, ""), str):
            raise SessionError(f"{path}:{records[0][0]}: the header's {key} is {header[key]!r}, not text")
    entries, lines_of = [], {}
    for n, r in records[1:]:
        if not isinstance(r, dict) or "id" not in r:
            continue
        problem = _entry_problem(r)
        if problem is None and r["id"] in lines_of:
            problem = (f"entry id {r['id']!r} is also on line {lines_of[r['id']]}: two sessions in one file? "
                       "(pi writes each id once)")
        if problem:
            raise SessionError(f"{path}:{n}: {problem}")
        lines_of[r["id"]] = n
        entries.append(r)
    if not entries and any(isinstance(r, dict) and r.get("type") == "message_end" for _, r in records[1:]):
        entries, header = entries_of_events([r for _, r in records[1:]]), dict(header, _events=True)
        if problem := next((p for e in entries if (p := _entry_problem(e))), None):
            raise SessionError(f"{path}: {problem}")
    try:
        return Session(path, header, entries, active_branch(entries))
    except SessionError as e:
        raise SessionError(f"{path}: {e}") from None


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a JSON escape of a UTF-16 surrogate (maybe a lone one)


def _is_count(v) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e15)


def _entry_problem(e: dict) -> str | None:
    """What is wrong with an entry's types, or None: the fields read by this module, importer and summarize."""
    if not isinstance(e["id"], str) or not isinstance(e.get("parentId"), (str, type(None))):
        return f"id {e['id']!r} / parentId {e.get('parentId')!r} must be text"
    if not isinstance(e.get("timestamp"), (str, type(None))):
        return f"timestamp {e.get('timestamp')!r} must be text"
    kind = e.get("type")
    if kind == "message":
        return _message_problem(e.get("message"))
    if kind == "compaction" and not (isinstance(e.get("summary", ""), str) and _is_count(e.get("tokensBefore"))
                                     and isinstance(e.get("firstKeptEntryId"), (str, type(None)))):
        return "compaction entry: summary must be text, tokensBefore a count, firstKeptEntryId an id"
    if kind == "branch_summary" and not isinstance(e.get("summary", ""), (str, type(None))):
        return "branch_summary entry: summary must be text"
    if kind == "custom_message" and not _content_ok(e.get("content", "")):
        return "custom_message entry: content must be text or a list of content blocks"
    return None


def _message_problem(m) -> str | None:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        return f"message must be an object with a role, not {str(m)[:40]!r}"
    if not _content_ok(m.get("content")) or (m["role"] in ("assistant", "toolResult")
                                            and not isinstance(m.get("content") or [], list)):
        return f"{m['role']} message: content must be a list of content blocks" + (
            " (or text)" if m["role"] not in ("assistant", "toolResult") else "")
    for b in m.get("content") if isinstance(m.get("content"), list) else []:
        if b.get("type") == "toolCall" and not (isinstance(b.get("id"), str) and isinstance(b.get("name"), str)
                                                and isinstance(b.get("arguments"), (dict, type(None)))):
            return "toolCall block: id and name must be text, arguments an object"
    usage = m.get("usage")
    if usage is not None and not (isinstance(usage, dict) and all(_is_count(usage.get(k)) for k in USAGE_KEYS)):
        return f"usage {str(usage)[:60]}: input, output, cacheRead and cacheWrite must be counts (finite, >= 0)"
    if not _is_count(m.get("timestamp")):
        return f"message timestamp {m.get('timestamp')!r} must be milliseconds"
    for key in ("stopReason", "errorMessage", "toolCallId", "responseId", "model", "responseModel"):
        if not isinstance(m.get(key), (str, type(None))):
            return f"message {key} {m.get(key)!r} must be text"
    return None


USAGE_KEYS = ("input", "output", "cacheRead", "cacheWrite")


def _content_ok(content) -> bool:
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(b, dict) and isinstance(b.get("type", ""), str)
        and all(isinstance(b.get(k, ""), str) for k in ("text", "thinking")) for b in content)


def entries_of_events(events: list[dict]) -> list[dict]:
    """A `--mode json` event stream as session entries: each `message_end` a message entry (the
    message is complete there; `message_update` lines are deltas only), each successful
    `compaction_end` a compaction entry, linked in order. The entries' ids are made up: the kept
    entries a compaction names (firstKeptEntryId) cannot be found in the stream."""
    out: list[dict] = []
    for n, ev in enumerate(e for e in events if isinstance(e, dict)):
        entry = None
        if ev.get("type") == "message_end" and isinstance(ev.get("message"), dict):
            m = ev["message"]
            end = m.get("timestamp", 0) + (m.get("durationMs") or 0) if isinstance(m.get("timestamp"), (int, float)) else None
            entry = {"type": "message", "message": m, "timestamp": _iso(end)}
        elif ev.get("type") == "compaction_end" and isinstance(ev.get("result"), dict):
            r = ev["result"]
            entry = {"type": "compaction", "summary": r.get("summary", ""), "firstKeptEntryId": None,
                     "tokensBefore": r.get("tokensBefore")}
        if entry is not None:
            out.append(dict(entry, id=f"event{n:06d}", parentId=out[-1]["id"] if out else None))
    return out


def _iso(ms) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def active_branch(entries: list[dict]) -> list[dict]:
    """Root to leaf, the leaf being the last entry (what pi resumes from). A parentId chain that
    comes back to an entry (a cycle, an entry its own parent) is a SessionError, not an endless walk."""
    by_id = {e["id"]: e for e in entries}
    branch, seen, e = [], set(), entries[-1] if entries else None
    while e is not None:
        if e["id"] in seen:
            raise SessionError(f"the parentId chain loops back to entry {e['id']!r} (a cycle): not a pi session tree")
        seen.add(e["id"])
        branch.append(e)
        e = by_id.get(e.get("parentId"))
    return branch[::-1]


def context_of(path: list[dict], compaction: dict | None) -> list[dict]:
    """buildSessionContext: the messages pi has at the end of `path`."""
    if compaction is None:
        return [m for e in path if (m := _message_of(e))]
    # One summary object per compaction, so every later request shares it.
    summary = compaction.setdefault("_message", {"role": "compactionSummary", "summary": compaction.get("summary", "")})
    at = next(i for i, e in enumerate(path) if e["id"] == compaction["id"])
    kept = [i for i, e in enumerate(path[:at]) if e["id"] == compaction.get("firstKeptEntryId")]
    before = path[kept[0]:at] if kept else []
    return [summary] + [m for e in before + path[at + 1:] if (m := _message_of(e))]


def _message_of(e: dict) -> dict | None:
    kind = e.get("type")
    if kind == "message":
        return e["message"]
    if kind == "custom_message":
        return e.setdefault("_message", {"role": "custom", "content": e.get("content", "")})
    if kind == "branch_summary" and e.get("summary"):
        return e.setdefault("_message", {"role": "branchSummary", "summary": e["summary"]})
    return None


def text_of(m: dict, sep: str = "") -> str:
    content = m.get("content")
    if isinstance(content, str):
        return content
    return sep.join(c.get("text", "") for c in content or [] if c.get("type") == "text")


class Converter:
    """pi-ai's message conversion for llama-server, memoized per pi message object."""

    def __init__(self):
        self._memo: dict[int, tuple[dict, list[dict]]] = {}
        self._pending: list[dict] = []  # extend(): tool calls of the last assistant still unanswered
        self._answered: set[str] = set()

    def extend(self, new: list[dict]) -> list[dict]:
        """The converted form of messages appended to a conversation already converted by
        earlier extend() calls (the same rules as messages(), applied incrementally)."""
        out = []
        for m in new:
            role = m.get("role")
            if role == "assistant" or role in ("user", "custom", "compactionSummary", "branchSummary"):
                out += self._orphans(self._pending, self._answered)
                self._pending, self._answered = [], set()
            if role == "assistant":
                if m.get("stopReason") in ("error", "aborted"):
                    continue
                self._pending = [c for c in m.get("content") or [] if c.get("type") == "toolCall"]
            elif role == "toolResult":
                self._answered.add(m.get("toolCallId"))
            out += self._convert(m)
        return out

    def close(self, sent: list[dict]) -> list[dict]:
        """A request ends the conversation: tool calls still unanswered get pi-ai's placeholder."""
        missing = self._orphans(self._pending, self._answered)
        return sent + missing if missing else sent

    def messages(self, system: str | None, context: list[dict]) -> list[dict]:
        """A whole context (convertToLlm, transformMessages, convertMessages). Errored and aborted
        assistant turns are never resent; a tool call without a result gets a placeholder."""
        self._pending, self._answered = [], set()
        out = [{"role": "system", "content": system}] if system is not None else []
        return out + self.extend(context)

    def _orphans(self, pending: list[dict], answered: set[str]) -> list[dict]:
        return [{"role": "tool", "content": NO_RESULT, "tool_call_id": c["id"]}
                for c in pending if c["id"] not in answered]

    def _convert(self, m: dict) -> list[dict]:
        hit = self._memo.get(id(m))
        if hit is None or hit[0] is not m:
            hit = self._memo[id(m)] = (m, convert(m))
        return hit[1]


def convert(m: dict) -> list[dict]:
    """One pi message as the chat messages pi-ai sends for it (0, 1 or 2 of them)."""
    role = m.get("role")
    if role == "user":
        content = m.get("content")
        if isinstance(content, str):
            return [{"role": "user", "content": content}]
        parts = [_part(c) for c in content or []]
        return [{"role": "user", "content": parts}] if parts else []
    if role in ("custom", "compactionSummary", "branchSummary"):
        text = (COMPACTION_PREFIX + m["summary"] + COMPACTION_SUFFIX if role == "compactionSummary" else
                BRANCH_PREFIX + m["summary"] + BRANCH_SUFFIX if role == "branchSummary" else None)
        if text is None:
            content = m.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else [_part(c) for c in content or []]
        else:
            parts = [{"type": "text", "text": text}]
        return [{"role": "user", "content": parts}]
    if role == "assistant":
        return _assistant(m)
    if role == "toolResult":
        text = "\n".join(c.get("text", "") for c in m.get("content") or [] if c.get("type") == "text")
        return [{"role": "tool", "content": text or "(see attached image)", "tool_call_id": m.get("toolCallId")}]
    return []


def _part(c: dict) -> dict:
    if c.get("type") == "text":
        return {"type": "text", "text": c.get("text", "")}
    return {"type": "image_url", "image_url": {"url": f"data:{c.get('mimeType')};base64,{c.get('data')}"}}


def _assistant(m: dict) -> list[dict]:
    blocks = m.get("content") or []
    out: dict = {"role": "assistant", "content": None}
    text = "".join(b["text"] for b in blocks if b.get("type") == "text" and b.get("text", "").strip())
    if text:
        out["content"] = text
    thinking = [b for b in blocks if b.get("type") == "thinking" and b.get("thinking", "").strip()]
    if thinking and (signature := thinking[0].get("thinkingSignature")):
        out[signature] = "\n".join(b["thinking"] for b in thinking)
    calls = [b for b in blocks if b.get("type") == "toolCall"]
    if calls:
        out["tool_calls"] = [{"id": c["id"], "type": "function", "function": {
            "name": c["name"], "arguments": json.dumps(c.get("arguments") or {}, ensure_ascii=False,
                                                       separators=(",", ":"))}} for c in calls]
    if not out["content"] and not calls:
        return []  # pi skips an assistant message with nothing to send
    return [out]
