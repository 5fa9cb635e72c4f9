"""pi's four tools (read, bash, edit, write) and the two ways a harness gets their results:
from the cassette in replay (nothing runs on this machine), or run for real in a live trial."""
from __future__ import annotations

import difflib
import json
import re
import subprocess
from functools import lru_cache
from pathlib import Path

from pytest_tbreplay.core.cassette import Cassette

DATA = Path(__file__).parents[1] / "data"


@lru_cache(maxsize=None)
def pi_tools() -> list[dict]:
    """The tools exactly as pi 0.73.1 sends them, so one cassette replays against both harnesses."""
    return json.loads((DATA / "pi_tools.json").read_text())


CUT_CALL = ("Your last message was cut off at the max-tokens limit ({max_tokens} tokens) inside the arguments "
            "of this {name} call, so it was not run{where}. Write large files in parts: write the first part "
            "with write, then append each further part with bash (cat >> FILE <<'EOF' ... EOF), each part well "
            "under {max_tokens} tokens, then check the whole file.")


class ToolReplayError(AssertionError):
    pass


class ToolDivergence(ToolReplayError):
    """A replayed tool call whose arguments differ from the recorded call: its recorded result
    belongs to another action, so replay stops here with a diff instead of answering."""

    def __init__(self, where: str, call_id: str, name: str, diff: str):
        super().__init__(f"{where}: replay divergence at tool call {call_id} ({name}): its arguments differ "
                         f"from the recorded call's, so the recorded result does not apply:\n{diff}")
        self.call_id, self.diff = call_id, diff


def parse_partial_json(raw: str) -> dict:
    """Arguments as pi's streaming parser (pi-ai parseStreamingJson, partial-json) makes them of a
    stream cut anywhere: complete JSON as is, an unfinished string or container closed where it
    stopped, {} when nothing usable is left."""
    try:
        value = json.loads(raw or "{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        pass
    stack, in_string, escaped, out = [], False, False, []
    for ch in raw:
        out.append(ch)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif ch in "]}" and stack:
            stack.pop()
    text = "".join(out)
    if in_string:
        if escaped:
            text = text[:-1]  # a lone backslash: the escape never arrived
        # an escape cut short, or the first half of a surrogate pair whose second half never came
        for _ in range(2):
            text = re.sub(r"\\u(?:[0-9a-fA-F]{0,3}|[dD][89abAB][0-9a-fA-F]{2})$", "", text)
        text += '"'
    for attempt in range(3):
        candidate = text + "".join(reversed(stack))
        try:
            value = json.loads(candidate)
            return value if isinstance(value, dict) else {}
        except ValueError:
            # a dangling `,` / `:` / key / literal at the end: drop back to the last complete member
            text = re.sub(r'(,\s*"(?:[^"\\]|\\.)*"\s*:?\s*[^,{}\[\]"]*|,\s*|:\s*[^,{}\[\]"]*)$', "", text)
            if attempt == 1:
                text = re.sub(r'"(?:[^"\\]|\\.)*"\s*:?\s*$', "", text)
    return {}


def cut_call_message(name: str, args: dict, max_tokens: int) -> str:
    """What the model is told instead of running a tool call a length stop cut: where it was cut."""
    where = ""
    content = args.get("content") if isinstance(args.get("content"), str) else args.get("command")
    if isinstance(content, str):
        what = f"{args['path']} would have got" if args.get("path") else "the command would have had"
        where = (f": {what} only the first {len(content)} characters (line {content.count(chr(10)) + 1}), "
                 f"ending with {json.dumps(content[-60:], ensure_ascii=False)}")
    return CUT_CALL.format(max_tokens=max_tokens, name=name, where=where)


def argument_diff(recorded: dict, sent: dict, limit: int = 4000) -> str:
    """A unified diff of two calls' arguments, field by field (a long string diffs by lines)."""
    lines = []
    for key in sorted(set(recorded) | set(sent)):
        a, b = recorded.get(key), sent.get(key)
        if a == b:
            continue
        def as_lines(v):
            return (v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, indent=1)).splitlines() or [""]
        a_lines = as_lines(a) if key in recorded else []
        b_lines = as_lines(b) if key in sent else []
        lines += list(difflib.unified_diff(a_lines, b_lines, f"recorded {key}", f"sent {key}", lineterm="", n=2))
    text = "\n".join(lines)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more chars of diff)"


def same_arguments(recorded: dict, sent: dict) -> bool:
    # Through JSON both ways: numbers and unicode compare as the wire carries them.
    return json.loads(json.dumps(recorded)) == json.loads(json.dumps(sent))


class CassetteTools:
    """Answers each tool call with the result recorded for it, if the call is the recorded one (same
    arguments). Replay never executes a recorded command: a call the cassette has no result for, or
    one that differs from the recorded call, fails the trial instead."""

    def __init__(self, cassette: Cassette):
        self.cassette = cassette
        self.calls: list[tuple[str, str, dict]] = []

    def __call__(self, call_id: str, name: str, args: dict) -> tuple[str, bool]:
        self.calls.append((call_id, name, args))
        result = self.cassette.tool_result(call_id)
        if result is None:
            raise ToolReplayError(f"{self.cassette.path}: no recorded result for tool call {call_id} "
                                  f"{name}({json.dumps(args)[:200]}); replay does not run commands")
        if result.name != name or not same_arguments(result.arguments, args):
            diff = (f"recorded tool {result.name}, sent {name}\n" if result.name != name else "")
            raise ToolDivergence(str(self.cassette.path), call_id, name, diff + argument_diff(result.arguments, args))
        return result.output, result.is_error


class LocalTools:
    """Runs the tools for real in a live trial, inside the task's work folder."""

    def __init__(self, cwd: Path, timeout_s: float = 120):
        self.cwd, self.timeout_s = Path(cwd), timeout_s

    def __call__(self, call_id: str, name: str, args: dict) -> tuple[str, bool]:
        try:
            return getattr(self, f"_{name}")(**args), False
        except (AttributeError, TypeError) as e:
            return f"bad tool call {name}: {e}", True
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            return f"{type(e).__name__}: {e}", True

    def _path(self, path: str) -> Path:
        return (self.cwd / path) if not Path(path).is_absolute() else Path(path)

    def _read(self, path: str, offset: int | None = None, limit: int | None = None) -> str:
        lines = self._path(path).read_text(errors="replace").splitlines()
        start = max((offset or 1) - 1, 0)
        return "\n".join(lines[start:start + (limit or 2000)])

    def _write(self, path: str, content: str) -> str:
        p = self._path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        return f"Successfully wrote {len(content)} bytes to {path}"

    def _edit(self, path: str, edits: list[dict]) -> str:
        p = self._path(path)
        text = p.read_text()
        for e in edits:
            if text.count(e["oldText"]) != 1:
                raise ValueError(f"oldText must occur exactly once in {path}")
            text = text.replace(e["oldText"], e["newText"])
        p.write_text(text)
        return f"Successfully replaced text in {path}."

    def _bash(self, command: str, timeout: float | None = None) -> str:
        done = subprocess.run(["bash", "-c", command], cwd=self.cwd, capture_output=True, text=True,
                              timeout=timeout or self.timeout_s, errors="replace")
        out = (done.stdout + done.stderr)[-50_000:]
        if done.returncode:
            raise subprocess.SubprocessError(f"{out}\n\nCommand exited with code {done.returncode}")
        return out or "(no output)"
