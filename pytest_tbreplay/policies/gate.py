"""Verify-before-done (failure-analysis §5.3): what a trial produced, and what checked it.

The gate is armed by any action that produces or changes output: a write or edit, and a bash
command that creates or modifies files (seen from the command: redirections, tee, -o, cp/mv,
sed -i, touch, code that opens a file for writing, a script whose code writes files; and from its
result: "wrote ... /path"). It is disarmed only by a check of that output: running tests or a
check script, inspecting the artifact itself (reading it back, diff/cmp, a program reading it), or
running the produced program. Re-running what produced an artifact is production, not a check;
an existence test (ls, stat, test -f) is not a check either.

The rules are data (`data/verify_rules.json`), read by this module and by the pi extension
(harnesses/pi/extensions/lib/gate.ts), and both are run against the same vectors
(tests/data/verify_cases.json)."""
from __future__ import annotations

import json
import posixpath
import re
import shlex
from functools import lru_cache
from pathlib import Path

RULES_FILE = Path(__file__).parents[1] / "data" / "verify_rules.json"
VERIFY_CONTRACT = ("Before you declare the task done: (a) run any provided check or test, (b) re-read the "
                   "file you wrote, (c) claim success only on observed passing output, never because a "
                   "pattern suggests it.")
# A finish that claims success (the "Done!" of failure mode D).
SUCCESS_CLAIM = re.compile(r"\b(done|completed?|success\w*|recovered|passe[sd]|fixed|works|finished)\b|✅", re.I)


@lru_cache(maxsize=None)
def rules() -> dict:
    r = json.loads(RULES_FILE.read_text())
    r["_re"] = {k: re.compile(v, re.I if k.startswith("result") else 0) for k, v in r["patterns"].items()}
    return r


def _substitutions(text: str) -> tuple[str, list[str]]:
    """The text with each $(...) or `...` replaced by a marker \\0k\\0, and the commands they held."""
    out, inner, i = [], [], 0
    while i < len(text):
        if text.startswith("$(", i):
            depth, j = 1, i + 2
            while j < len(text) and depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            inner.append(text[i + 2:j - 1])
            out.append(f"\0{len(inner) - 1}\0")
            i = j
        elif text[i] == "`":
            j = text.find("`", i + 1)
            j = len(text) if j < 0 else j
            inner.append(text[i + 1:j])
            out.append(f"\0{len(inner) - 1}\0")
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out), inner


def segments(command: str) -> list[list[str]]:
    """The simple commands of a shell command line, each as words: split at ; & | and newlines
    outside quotes, command substitutions taken as commands of their own (just before the command
    that holds them: they run first), heredoc bodies left out."""
    body, inner = _substitutions(_heredocs_out(command))
    out: list[list[str]] = []
    parts, cur, quote = [], [], None
    for ch in body:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in ";&|\n":
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    for part in parts:
        for k in re.findall(r"\0(\d+)\0", part):
            out += segments(inner[int(k)])
        part = re.sub(r"\0\d+\0", "_", part)
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and (re.match(r"^[A-Za-z_]\w*=", words[0]) or words[0] in rules()["prefixes"]):
            words = words[1:] if words[0] != "timeout" else words[2:]
        if words:
            out.append(words)
    return out


def _resolve(path: str, cwd: str | None) -> str:
    path = path.strip("'\"")
    if cwd and not path.startswith("/"):
        path = posixpath.join(cwd, path)
    return posixpath.normpath(path) if path else path


def code_outputs(code: str, shell: bool) -> list[str]:
    """Files a piece of code opens for writing: program code (a script, python -c, a heredoc body)
    by open(..., "w") and the like; shell text also by redirections and tee."""
    keys = ("code_open_write", "code_write_call") + (("shell_redirect", "shell_tee") if shell else ())
    found = [next(g for g in m.groups() if g) for key in keys for m in rules()["_re"][key].finditer(code)]
    return [f for f in found if f not in rules()["not_files"]]


def _heredocs_out(command: str) -> str:
    return re.sub(r"<<-?\s*['\"]?(\w+)['\"]?.*?\n.*?\n\1\b", "", command, flags=re.S)


def _redirects(words: list[str]) -> tuple[list[str], list[str]]:
    """(files stdout is redirected into, the words without redirections)."""
    targets, rest, i = [], [], 0
    while i < len(words):
        m = re.fullmatch(r"(\d*)(>>?|<)\|?(\S*)", words[i])
        if not m:
            rest.append(words[i])
            i += 1
            continue
        target = m.group(3) or (words[i + 1] if i + 1 < len(words) else "")
        i += 1 if m.group(3) else 2
        if m.group(2) != "<" and m.group(1) in ("", "1") and target and not target.startswith("&"):
            targets.append(target)
    return targets, rest


def _cwd_of(command: str) -> str | None:
    m = re.match(r"\s*cd\s+(\S+)\s*(?:&&|;)", command)
    return m.group(1) if m else None


def _names(text: str, artifact: str) -> bool:
    """A criterion names the artifact: its path, or a file name with an extension."""
    base = posixpath.basename(artifact)
    return artifact in text or ("." in base and base in text)


class VerifyGate:
    def __init__(self):
        self.armed: dict[str, str] = {}  # unchecked artifact -> what produced it
        self.artifacts: list[str] = []  # every artifact produced so far, in order
        self.script_outputs: dict[str, list[str]] = {}  # a written script -> files its code writes
        self.built_from: dict[str, list[str]] = {}  # a built program -> the artifacts it was built from

    # -- what a call did ---------------------------------------------------------------------
    def observe(self, name: str, args: dict, output: str = "", is_error: bool = False) -> bool:
        """Book one tool call and its result; True if it checked produced output."""
        produced, checked = self.classify(name, args, output, is_error)
        for path in checked:
            self.armed.pop(path, None)
        for path, by in produced.items():
            if path not in checked:
                self.armed[path] = by
            if path not in self.artifacts:
                self.artifacts.append(path)
        return bool(checked)

    def classify(self, name: str, args: dict, output: str = "", is_error: bool = False) -> tuple[dict, set]:
        """(artifacts this call produced -> how, artifacts it checked)."""
        if name in ("write", "edit"):
            path = _resolve(str(args.get("path", "")), None)
            if name == "write":
                content = str(args.get("content", ""))
                shell = path.endswith(".sh") or content.startswith("#!/bin/")
                self.script_outputs[path] = [_resolve(f, posixpath.dirname(path)) for f in code_outputs(content, shell)]
            return ({path: f"{name} {path}"} if path and not is_error else {}), set()
        if name == "read":
            path = _resolve(str(args.get("path", "")), None)
            return {}, {a for a in self.armed if a == path} if not is_error else set()
        if name != "bash":
            return {}, set()
        return self._bash(str(args.get("command", "")), output, is_error)

    def _bash(self, command: str, output: str, is_error: bool) -> tuple[dict, set]:
        """Simple commands in order: what each produces, then what each checks (a check counts for
        output produced by an earlier part of the same command line)."""
        r, cwd = rules(), _cwd_of(command)
        by = f"`{command if len(command) <= 80 else command[:77] + '...'}`"
        # Written by program code in the command (python -c, a heredoc body): order unknown, so a
        # check in the same command does not count for these.
        code = list(dict.fromkeys(_resolve(f, cwd) for f in code_outputs(command, False)))
        produced: dict[str, str] = dict.fromkeys(code, by)
        checked: set[str] = set()
        tested: set[str] = set()  # checked by tests or a check script: counts even when they fail
        for words in segments(command):
            prog, args = posixpath.basename(words[0]), words[1:]
            script = self._script_run(words[0], prog, args, cwd)
            outputs = self._segment_outputs(prog, args, cwd)
            if self._is_test_run(prog, args, script):  # tests and check scripts check everything so far
                tested |= {a for a in [*self.armed, *produced] if a not in code}
                checked |= tested
                produced.update(dict.fromkeys(outputs, by))
                continue
            if script in self.script_outputs and self.script_outputs[script]:
                # Running a producer: its outputs are what to check now, not the script (and running
                # it again is production again, never a check of them).
                outputs += self.script_outputs[script]
                if not is_error:
                    self.armed.pop(script, None)
            if prog in r["builders"] and (out := self._flag_value(args, "-o")):
                self.built_from[_resolve(out, cwd)] = [a for a in [*self.armed, *produced]
                                                       if any(self._mentions(w, a, cwd) for w in args)]
            for t in outputs:
                produced[t] = by
                checked.discard(t)
            if outputs or (script in self.script_outputs and self.script_outputs[script]):
                continue
            live = [a for a in [*self.armed, *produced] if a not in code]
            if script and script in live:  # running the produced program
                checked |= {script, *self.built_from.get(script, [])}
            elif prog not in r["existence_only"]:
                checked |= {a for a in live if any(self._mentions(w, a, cwd) for w in args)}
        if not is_error:
            for m in r["_re"]["result_wrote"].finditer(output or ""):
                produced.setdefault(_resolve(m.group(1).rstrip(".,:;"), cwd), by)
        else:
            checked = tested  # a failing test run was seen; a read of a missing file checked nothing
        return produced, checked

    def _segment_outputs(self, prog: str, args: list[str], cwd: str | None) -> list[str]:
        r = rules()
        out, args = _redirects(args)
        files = [a for a in args if not a.startswith("-")]
        if prog == "tee":
            out += files
        if prog in r["copy_like"] and len(files) >= 2:
            out.append(files[-1])
        elif prog in r["touch_like"]:
            out += files
        elif prog in r["in_place"] and any(a.startswith("-i") or a == "--in-place" for a in args) and files:
            out.append(files[-1])
        if value := self._flag_value(args, "-o") or self._flag_value(args, "--output"):
            if prog in r["builders"] or prog in r["o_writers"]:
                out.append(value)
        return [_resolve(f, cwd) for f in out if f not in r["not_files"]]

    @staticmethod
    def _flag_value(args: list[str], flag: str) -> str | None:
        for i, a in enumerate(args):
            if a == flag and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(flag + "=") or (flag == "-o" and a.startswith("-o") and len(a) > 2 and not a.startswith("-o=")):
                return a.split("=", 1)[1] if "=" in a else a[2:]
        return None

    @staticmethod
    def _script_run(first: str, prog: str, args: list[str], cwd: str | None) -> str | None:
        """The program or script a simple command runs, when it is a file (./x, /tmp/x, python3 x.py)."""
        if "/" in first:
            return _resolve(first, cwd)
        if prog in rules()["interpreters"]:
            files = [a for a in args if not a.startswith("-")]
            return _resolve(files[0], cwd) if files and not any(a in ("-c", "-m", "-") for a in args[:1]) else None
        return None

    @staticmethod
    def _is_test_run(prog: str, args: list[str], script: str | None) -> bool:
        r = rules()
        if r["_re"]["test_command"].search(" ".join([prog, *args[:2]])):
            return True
        return bool(script and r["_re"]["check_script"].search(posixpath.basename(script)))

    @staticmethod
    def _mentions(word: str, artifact: str, cwd: str | None) -> bool:
        """A word names the artifact: its path (resolved against a leading `cd`), or its file name."""
        base = posixpath.basename(artifact)
        for piece in re.split(r"[\s'\"(),=\[\]{}]+", word):
            if piece and (piece == artifact or _resolve(piece, cwd) == artifact or ("." in piece and piece == base)):
                return True
        return False

    # -- the claim -----------------------------------------------------------------------------
    def demand(self, final_text: str, acceptance: list[str]) -> str | None:
        """The message that sends a success claim over unchecked output back, or None."""
        if not self.armed or not SUCCESS_CLAIM.search(final_text or ""):
            return None
        # What the task's criteria name comes first (the model it trained, not the train.py that made
        # it), then what the claim names; the other unchecked outputs after them.
        wanted = [a for a in self.armed if any(_names(c, a) for c in acceptance)]
        named = [a for a in self.armed if a not in wanted and (a in final_text or posixpath.basename(a) in final_text)]
        about = wanted + named + [a for a in self.armed if a not in wanted and a not in named]
        how = "; ".join(f"{a} (by {self.armed[a]})" for a in about)
        criteria = "\n".join(f"- {c}" for c in acceptance) or "- (see the task)"
        return (f"You claimed success, but nothing has checked your work since it produced {', '.join(about)}: "
                f"no test or check ran on {'them' if len(about) > 1 else 'it'} and "
                f"{'they were' if len(about) > 1 else 'it was'} not read back ({how}). Re-running what produced "
                f"an output is not a check. Check it now against the task's acceptance criteria, quoted here, "
                f"and report only what the output shows:\n{criteria}")
