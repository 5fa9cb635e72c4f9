"""Rebuild the reconstructed cassettes from the failure analysis' evidence.

    python cassettes/reconstruct.py            # writes cassettes/*.yaml and tests/cassettes/*.yaml
    python cassettes/reconstruct.py --check    # re-runs the scripted tool calls; exits 1 on a difference

The failing trials' raw traffic was not kept, so these cassettes are reconstructed
(provenance `reconstructed`): the turns follow the failure analysis §4 and the tasks of
Terminal-Bench 2.0, the wire format is llama-server's (one SSE chunk per token, usage and timings
on the last chunk, the exact exceed_context_size_error body), the requests are pi 0.73.1's and the
tool calls use pi's schemas. Where the mitigated harness leaves the recording (after a nudge, a
compaction, a verify demand) a short continuation is written by hand and marked `scripted`: its
model text is written, but every tool result in it (and every file write anywhere) comes from
running the call in a Sandbox, a temp /app prepared by the smoke task's own setup, and the code it
writes passes that task's verifier. `--check` runs them again and compares.
Prompt tokens are the request's size at 3.2 characters per token, the ratio the replay engine
then calibrates back."""
from __future__ import annotations

import json
import random
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from pytest_tbreplay.core import cassette as cs  # noqa: E402
from pytest_tbreplay.core.wire import exceed_body  # noqa: E402
from pytest_tbreplay.smoke.tasks import load_tasks, map_app  # noqa: E402
from pytest_tbreplay.replay.tools import LocalTools, pi_tools  # noqa: E402

MODEL = "qwen3.6-35b-a3b"
N_CTX = 262144
CHARS_PER_TOKEN = 3.2
DECODE_TPS, PROMPT_TPS = 112.0, 2400.0  # an RTX 3090 with MTP drafts, the analysis' setup
URI = "http://127.0.0.1:8080/v1/chat/completions"
PI_SYSTEM = ("You are an expert coding assistant operating inside pi, a coding agent harness. You help "
             "users by reading files, executing commands, editing code, and writing new files.\n\n"
             "Available tools:\n- read: Read file contents\n- bash: Execute bash commands\n"
             "- edit: Make surgical edits to files\n- write: Create or overwrite files\n\n"
             "Current working directory: /app")
SERVER = {"n_ctx": N_CTX, "model": MODEL, "build": "b11434-g515e85511",
          "settings": {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "dry_multiplier": 0.0,
                       "reasoning_budget": 4000, "cache_type_k": "q4_0", "cache_type_v": "q4_0"}}
PROFILE = {"harness": "pi", "name": "baseline", "context_window": 131072, "max_tokens": 32000,
           "mode": "print --mode json"}


def tokenize(text: str) -> list[str]:
    """Word-piece-like tokens: a leading space sticks to its word, long words split in two."""
    out = []
    for t in re.findall(r" ?[A-Za-z]+| ?[0-9]{1,3}|\s+|[^\sA-Za-z0-9]", text):
        out += [t[:len(t) // 2], t[len(t) // 2:]] if len(t) > 9 else [t]
    return out


def split_to(text: str, n_tokens: int) -> list[str]:
    """Exactly n_tokens pieces of text (tokenize, then split the longest pieces as needed)."""
    toks = tokenize(text)
    while len(toks) < n_tokens:
        need = n_tokens - len(toks)
        nxt = []
        for t in toks:
            if need and len(t) >= 2:
                nxt += [t[:len(t) // 2], t[len(t) // 2:]]
                need -= 1
            else:
                nxt.append(t)
        toks = nxt
    assert len(toks) == n_tokens and "".join(toks) == text, "text too short for that many tokens"
    return toks


class Trial:
    """Builds one cassette turn by turn, keeping the conversation pi would send."""

    def __init__(self, task: str, instruction: str, seed: int):
        self.rng = random.Random(seed)
        self.task, self.instruction, self.created = task, instruction, 1751500000 + seed * 1000
        self.messages = [{"role": "system", "content": PI_SYSTEM}, {"role": "user", "content": instruction}]
        self.interactions: list[cs.Interaction] = []
        self.calls = 0

    def request(self, messages=None, max_tokens=32000, tools=True) -> dict:
        body = {"model": MODEL, "messages": messages or self.messages, "stream": True,
                "stream_options": {"include_usage": True}, "store": False, "max_completion_tokens": max_tokens}
        if tools:
            body["tools"] = pi_tools()
        return body

    @staticmethod
    def prompt_tokens(body: dict) -> int:
        chars = len(json.dumps(body.get("messages", []))) + len(json.dumps(body.get("tools", [])))
        return round(chars / CHARS_PER_TOKEN)

    def _chunk(self, delta: dict | None = None, finish=None, **extra) -> str:
        c = {"choices": [{"finish_reason": finish, "index": 0, "delta": delta or {}}] if delta is not None else [],
             "created": self.created, "id": f"chatcmpl-{self.task[:8]}{len(self.interactions):03d}",
             "model": MODEL, "system_fingerprint": SERVER["build"], "object": "chat.completion.chunk", **extra}
        return json.dumps(c, separators=(",", ":"), ensure_ascii=False)

    def _stream(self, body: dict, pieces: list[tuple[str, str]], tool_calls: list[dict], finish: str,
                cached: int) -> tuple[str, list[float]]:
        prompt = self.prompt_tokens(body)
        t = (prompt - cached) / PROMPT_TPS
        events, offsets = [self._chunk({"role": "assistant", "content": None})], [t]
        for kind, text in pieces:
            t += self.rng.uniform(0.7, 1.3) / DECODE_TPS
            events.append(self._chunk({kind: text}))
            offsets.append(t)
        for i, call in enumerate(tool_calls):
            args = json.dumps(call["arguments"], ensure_ascii=False)
            head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
            for j, piece in enumerate([None] + tokenize(args)):
                t += self.rng.uniform(0.7, 1.3) / DECODE_TPS
                events.append(self._chunk({"tool_calls": [head if piece is None else
                                                          {"index": i, "function": {"arguments": piece}}]}))
                offsets.append(t)
        n = len(events) - 1 - len(tool_calls)
        events.append(self._chunk({}, finish))
        offsets.append(t)
        prompt_ms, predicted_ms = (prompt - cached) / PROMPT_TPS * 1000, (offsets[-1] - offsets[0]) * 1000
        timings = {"cache_n": cached, "prompt_n": prompt - cached, "prompt_ms": round(prompt_ms, 3),
                   "prompt_per_token_ms": round(1000 / PROMPT_TPS, 3), "prompt_per_second": PROMPT_TPS,
                   "predicted_n": n, "predicted_ms": round(predicted_ms, 3),
                   "predicted_per_token_ms": round(predicted_ms / max(n - 1, 1), 3),
                   "predicted_per_second": round((n - 1) / predicted_ms * 1000, 3) if predicted_ms else 0}
        usage = {"completion_tokens": n, "prompt_tokens": prompt, "total_tokens": prompt + n,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        events.append(self._chunk(None, usage=usage, timings=timings))
        events.append("[DONE]")
        offsets += [t, t]
        return "".join(f"data: {e}\n\n" for e in events), offsets

    def say(self, text: str) -> None:
        """A user message the harness adds (a nudge, a verify demand)."""
        self.messages.append({"role": "user", "content": text})

    def turn(self, text: str = "", calls=(), reasoning: str = "", finish: str | None = None,
             n_tokens: int | None = None, scripted: str | None = None, match: str | None = None,
             request: dict | None = None, max_tokens: int = 32000) -> list[str]:
        """The model's answer to the conversation so far (or to `request`, a side request such as a
        compaction summary that does not enter the conversation); returns its tool call ids."""
        body = request or self.request(max_tokens=max_tokens)
        ids = range(self.calls + 1, self.calls + 1 + len(calls))
        calls = [dict(c, id=f"call_{self.task[:4]}{n:03d}") for c, n in zip(calls, ids)]
        self.calls += len(calls)
        pieces = [("reasoning_content", p) for p in tokenize(reasoning)]
        pieces += [("content", p) for p in (split_to(text, n_tokens) if n_tokens else tokenize(text))]
        prev = self.interactions[-1].usage.get("prompt_tokens", 0) if self.interactions else 0
        sse, offsets = self._stream(body, pieces, calls, finish or ("tool_calls" if calls else "stop"),
                                    cached=min(prev, self.prompt_tokens(body)) if request is None else 0)
        it = cs.Interaction("POST", URI, json.dumps(body, ensure_ascii=False), 200, sse,
                            headers={"Content-Type": ["text/event-stream"]},
                            request_headers={"Content-Type": ["application/json"], "Authorization": ["Bearer none"]},
                            chunk_offsets=offsets, scripted=scripted, match=match)
        self.interactions.append(it)
        if request is None:
            msg = {"role": "assistant", "content": text}
            if calls:
                msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                                     for c in calls]
            self.messages.append(msg)
        self._pending = calls
        return [c["id"] for c in calls]

    def run(self, box: "Sandbox") -> list[str]:
        """The last turn's tool calls run in the sandbox: their results are what running them gives."""
        done = [box.run(c["name"], c["arguments"]) for c in self._pending]
        self.results(*(out for out, _ in done), errors=tuple(err for _, err in done), ran=True)
        return [out for out, _ in done]

    def results(self, *outputs: str, errors: tuple[bool, ...] = (), ran: bool = False) -> None:
        """The tool results of the last turn, as recorded and as the next request carries them.
        Typed results are for the reconstructed failure only: scripted turns and writes are run."""
        it = self.interactions[-1]
        if not ran and (it.scripted or any(c["name"] == "write" for c in self._pending)):
            raise ValueError(f"{self.task}: interaction {len(self.interactions) - 1}: scripted results and "
                             "writes come from Trial.run(sandbox), never typed")
        for i, (call, out) in enumerate(zip(self._pending, outputs)):
            err = errors[i] if i < len(errors) else False
            it.tool_results.append(cs.ToolResult(call["id"], call["name"], call["arguments"], out, err))
            self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": out})

    def overflow(self) -> None:
        body = self.request()
        n = self.prompt_tokens(body)
        self.interactions.append(cs.Interaction("POST", URI, json.dumps(body, ensure_ascii=False), 400,
                                                json.dumps(exceed_body(n, N_CTX)),
                                                headers={"Content-Type": ["application/json"]},
                                                request_headers={"Content-Type": ["application/json"]}))

    def save(self, path: Path, metadata: dict) -> None:
        meta = {"format": cs.FORMAT, "task": self.task, "trial": f"{self.task}__reconstructed",
                "provenance": "reconstructed", "server": SERVER, "harness_profile": PROFILE,
                "instruction": self.instruction} | metadata
        path.unlink(missing_ok=True)  # this script owns the reconstructed files
        cs.save(cs.Cassette(meta, self.interactions), path, redact=True)
        print(f"{path.relative_to(ROOT)}: {len(self.interactions)} interactions, {path.stat().st_size / 1e6:.1f} MB")


class Sandbox:
    """A temp /app where tool calls really run (the live harness' LocalTools), prepared by the smoke
    task's own setup.py (an empty /app for a task with no smoke twin); /app in the calls is mapped
    to it and mapped back in the results."""

    def __init__(self, smoke_task: str | None):
        self._tmp = tempfile.TemporaryDirectory(prefix="tbreplay-reconstruct-")
        self.task = load_tasks()[smoke_task] if smoke_task else None
        self.app = self.task.prepare(Path(self._tmp.name)) if self.task else Path(self._tmp.name) / "app"
        self.app.mkdir(exist_ok=True)
        self.tools = LocalTools(self.app, timeout_s=600)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._tmp.cleanup()

    def run(self, name: str, args: dict) -> tuple[str, bool]:
        mapped = {k: map_app(v, self.app) if isinstance(v, str) and k != "content" else v for k, v in args.items()}
        out, err = self.tools("reconstruct", name, mapped)
        return out.replace(str(self.app), "/app"), err

    def verify(self, files: dict[str, str] | None = None) -> str:
        """The smoke task's verifier on the sandbox's /app (plus `files`, where the cassette's task
        names its answer differently from the smoke twin); fails the reconstruction unless it passes."""
        for name, text in (files or {}).items():
            (self.app / name).write_text(text)
        verdict = self.task.verify(self.app, timeout=600)
        if not verdict.passed:
            raise SystemExit(f"{self.task.name}: the scripted code fails the verifier:\n{verdict.output[-3000:]}")
        return verdict.output


# Each cassette's smoke twin: the task whose setup and verifier its scripted part runs against.
SMOKE_TWIN = {"polyglot-rust-c": "polyglot-rust-c", "path-tracing-reverse": "path-tracing"}


def check(path: Path) -> list[str]:
    """Run a saved cassette's scripted tool calls (and its writes) again in a fresh sandbox: the
    results that differ from what running them gives now."""
    c, problems = cs.load(path), []
    with Sandbox(SMOKE_TWIN.get(c.metadata["task"])) as box:
        for i, it in enumerate(c.interactions):
            for r in it.tool_results:
                if it.scripted or r.name == "write":
                    now = box.run(r.name, r.arguments)
                    if now != (r.output, r.is_error):
                        problems.append(f"{path.name}: interaction {i} {r.name}: recorded {(r.output, r.is_error)!r}, "
                                        f"running it now gives {now!r}")
    return problems


def bash(command: str) -> dict:
    return {"name": "bash", "arguments": {"command": command}}


def write(path: str, content: str) -> dict:
    return {"name": "write", "arguments": {"path": path, "content": content}}


def hexdump(rng: random.Random, start: int, n_lines: int) -> str:
    return "\n".join(f"{start + 16 * i:08x}: " + " ".join(f"{rng.getrandbits(16):04x}" for _ in range(8)) + "  "
                     + "".join(rng.choice("........@ABHIL^_`dhptx") for _ in range(16)) for i in range(n_lines))


def disassembly(rng: random.Random, start: int, n_lines: int) -> str:
    ops = ["movss  xmm0,DWORD PTR [rsp+0x{:x}]", "mulss  xmm1,xmm{}", "addss  xmm0,xmm{}", "call   {:x} <sqrtf>",
           "comiss xmm0,DWORD PTR [rip+0x{:x}]", "cvttss2si eax,xmm{}", "mov    DWORD PTR [rbp-0x{:x}],eax",
           "jbe    {:x}", "lea    rdi,[rip+0x{:x}]", "pxor   xmm{},xmm{}"]
    return "\n".join(f"  {start + 4 * i:x}:\t" + rng.choice(ops).format(*(rng.randrange(16, 4096) for _ in range(2)))
                     for i in range(n_lines))


# -- polyglot-rust-c: the runaway text loop (mode B) -------------------------------------------
POLYGLOT_INSTRUCTION = (
    "Write a single file /app/polyglot/main.rs that is at the same time a valid Rust program and a valid "
    "C++ program. `rustc /app/polyglot/main.rs` and `g++ -x c++ /app/polyglot/main.rs -o /app/polyglot/cmain` "
    "must both build it, and both binaries must print the Nth Fibonacci number for the argument N, with "
    "f(0) = 1, f(1) = 1, f(2) = 2. When you are done, /app/polyglot must contain only main.rs.")
LOOP_CYCLE = [
    "OK, let me try a completely different approach. What if I use a block comment that Rust sees as nested "
    "but C++ closes early? ",
    "Wait, I've tried this. Rust block comments nest and C++ ones don't, so the C++ code ends up inside the "
    "Rust comment, but then the Rust part is inside a C++ comment too. ",
    "OK, let me try a completely different approach. What if I use the preprocessor to hide the Rust code "
    "with #if 0? ",
    "Wait, I've tried this. Rust does not accept a line starting with # unless it is an attribute, so #if 0 "
    "breaks rustc. ",
    "OK, let me try a completely different approach. What if the Rust code lives in a raw string that C++ "
    "ignores? ",
    "Wait, I've tried this. C++ has no way to skip a Rust raw string at file scope, and the macro trick fails "
    "the same way. ",
]


# The scripted answer: Rust block comments nest and C++ ones do not (the smoke task's oracle).
POLYGLOT_SOURCE = (ROOT / "smoke" / "polyglot-rust-c" / "solution" / "main.rs").read_text()


def polyglot(path: Path) -> None:
    t, box = Trial("polyglot-rust-c", POLYGLOT_INSTRUCTION, seed=1), Sandbox("polyglot-rust-c")
    first = "fn main() {\n    let n: u64 = std::env::args().nth(1).unwrap().parse().unwrap();\n" \
            "    let (mut a, mut b) = (1u64, 1u64);\n    for _ in 0..n { let c = a + b; a = b; b = c; }\n" \
            "    println!(\"{}\", a);\n}\n"
    t.turn("I'll start with a Rust version and then make it parse as C++.", [write("/app/polyglot/main.rs", first)],
           reasoning="The file must compile as both. Start with Rust, check what g++ says.")
    t.run(box)
    t.turn("", [bash("cd /app/polyglot && rustc main.rs -o /tmp/r && g++ -x c++ main.rs -o cmain")])
    t.results("main.rs:1:1: error: 'fn' does not name a type\n    1 | fn main() {\n      | ^~\n\n"
              "Command exited with code 1", errors=(True,))
    poly = "#[cfg(any())] /*\n#include <cstdio>\nint main(int c,char**v){return 0;}\n// */\n" + first
    t.turn("C++ chokes on `fn`. Hide the Rust from C++ with a comment trick.",
           [write("/app/polyglot/main.rs", poly)])
    t.run(box)
    t.turn("", [bash("cd /app/polyglot && rustc main.rs -o /tmp/r && g++ -x c++ main.rs -o cmain && ls")])
    t.results("main.rs:1:1: error: expected identifier before '[' token\n    1 | #[cfg(any())] /*\n"
              "      |  ^\n\nCommand exited with code 1", errors=(True,))
    # The runaway: a little real thinking, then the loop, 97,344 characters and 32,000 tokens.
    lead = ("g++ rejects the attribute syntax. I need a construct that both front ends skip. Let me think "
            "about what each language treats as a comment or as ignorable tokens. ")
    loop, rng = "", random.Random(7)
    while len(lead) + len(loop) < 97_344:
        loop += rng.choice(LOOP_CYCLE)
    text = (lead + loop)[:97_344]
    t.turn(text, n_tokens=32_000, finish="length")
    pieces, loop_start = split_to(text, 32_000), 0
    while sum(map(len, pieces[:loop_start])) < len(lead):
        loop_start += 1
    # Scripted: what the model does once nudged to take a different concrete action.
    t.say("Your last message was cut off for looping; stop and take a different concrete action.")
    t.turn("Different concrete action: Rust block comments nest and C++ ones do not, so `/* /* */` leaves Rust "
           "inside a comment that hides `#if 0`, while C++ skips the Rust part under `#if 0`.",
           [write("/app/polyglot/main.rs", POLYGLOT_SOURCE)], scripted="answer to the length-stop nudge",
           match="cut off for looping", max_tokens=16384)
    t.run(box)
    check_cmd = ("cd /app/polyglot && d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && rustc main.rs -o \"$d/r\" && "
                 "g++ -x c++ main.rs -o \"$d/c\" && for n in 0 1 2 10 42; do echo \"$n $(\"$d/r\" $n) $(\"$d/c\" $n)\"; "
                 "done && ls")
    t.turn("", [bash(check_cmd)], scripted="after the nudge: build both and test")
    [out] = t.run(box)
    printed = dict(line.split(" ", 1) for line in out.splitlines() if line[:1].isdigit())
    box.verify()
    t.turn(f"Both builds print the same numbers: f(0), f(1), f(2), f(10), f(42) = "
           f"{', '.join(printed[n].split()[0] for n in ('0', '1', '2', '10', '42'))} from Rust and "
           f"{', '.join(printed[n].split()[1] for n in ('0', '1', '2', '10', '42'))} from C++, and `ls` shows only "
           f"{out.split()[-1]} in /app/polyglot.", scripted="after the nudge: verified finish")
    box.close()
    t.save(path, {"failure_mode": "B: single-turn runaway text loop to the 32000-token length stop",
                  "source": "failure-analysis.md §4-B (polyglot-rust-c: a 97,344-char text block)",
                  "acceptance": ["rustc main.rs and g++ -x c++ main.rs both build",
                                 "both print f(N) with f(0)=1, f(1)=1, f(2)=2; f(10)=89, f(42)=433494437",
                                 "/app/polyglot contains only main.rs"],
                  "failure": {"interaction": 4, "loop_start_token": loop_start}})


# -- path-tracing-reverse: the context 400 (mode A') ------------------------------------------
PATH_INSTRUCTION = (
    "/app/mystery is a compiled program that renders an image and writes it to image.ppm. Write "
    "/app/mystery.c, a C program that does the same thing without calling ./mystery: it must produce an "
    "image with a cosine similarity of at least 0.995 to the original. The source must be small: under "
    "2 KB after gzip compression. It is built with `gcc -static -O3 -o mystery mystery.c -lm`.")


# The climb the analysis saw: tool outputs of 2k to 20k tokens, requests rising into 259k-262k,
# and the 400 at the first request at or above the server's 262,144.
DUMP_TOKENS = (2_000, 20_000)
LAST_OK = (259_000, N_CTX)
DUMPS = [("objdump -d --no-show-raw-insn /app/mystery | sed -n {a},{b}p", disassembly),
         ("xxd -s 0x{a:x} -l 0x{n:x} /app/mystery", hexdump)]
# The scripted renderer: the smoke twin's oracle, writing image.ppm as the mystery binary does.
MYSTERY_SOURCE = (ROOT / "smoke" / "path-tracing" / "solution" / "image.c").read_text().replace(
    '"reconstructed.ppm"', '"image.ppm"')
COSINE = """import numpy as np
pixels = lambda path: np.fromstring(open(path, 'rb').read().split(maxsplit=4)[4], np.int32, sep=' ').astype(float)
a, b = pixels('image.ppm'), pixels('/app/image.ppm')
print('cosine similarity: %.4f' % (a @ b / np.linalg.norm(a) / np.linalg.norm(b)))"""


def tool_tokens(call_id: str, text: str) -> float:
    """What a tool message adds to the next request, in the reconstruction's tokens."""
    return (len(json.dumps({"role": "tool", "tool_call_id": call_id, "content": text})) + 2) / CHARS_PER_TOKEN


def sized_dump(dump, start: int, call_id: str, tokens: int) -> str:
    """A dump of about `tokens` tokens (lines added until it is that big)."""
    line = dump(random.Random(start), start, 1)
    lines = max(int(tokens / tool_tokens(call_id, line + "\n")), 1)
    out = dump(random.Random(start), start, lines)
    while tool_tokens(call_id, out) < tokens:
        lines += max(int((tokens - tool_tokens(call_id, out)) / tool_tokens(call_id, line)), 1)
        out = dump(random.Random(start), start, lines)
    return out


def path_tracing(path: Path) -> None:
    t, box = Trial("path-tracing-reverse", PATH_INSTRUCTION, seed=2), Sandbox("path-tracing")
    t.turn("Let me look at the binary first.", [bash("cd /app && ls -la && file mystery")])
    t.results("total 812\n-rwxr-xr-x 1 root root 829312 Jul  2 11:04 mystery\n"
              "mystery: ELF 64-bit LSB executable, x86-64, statically linked, stripped")
    t.turn("", [bash("cd /tmp && /app/mystery && head -c 40 image.ppm | head -3")])
    t.results("P3\n2400 1800\n255")
    skeleton = "#include <stdio.h>\n#include <math.h>\nint main(){FILE*f=fopen(\"image.ppm\",\"w\");" \
               "fprintf(f,\"P3\\n2400 1800\\n255\\n\");fclose(f);}\n"
    t.turn("A P3 2400x1800 image. I'll write a skeleton, then read the rendering code.",
           [write("/app/mystery.c", skeleton)])
    t.run(box)
    # The climb: dump after dump of the binary, each 2k-20k tokens, until the request no longer fits.
    rng, addr, n = random.Random(22), 0x401000, 0
    while True:
        command, dump = DUMPS[n % 2]
        [call_id] = t.turn("", [bash(command.format(a=addr, b=addr + 900, n=0x4000))])
        sent = t.interactions[-1].usage["prompt_tokens"]
        low, high = DUMP_TOKENS
        if sent >= LAST_OK[0]:  # the last request that fits: this dump pushes the next one past the limit
            low = max(low, N_CTX - sent + 100)
        elif sent + high >= LAST_OK[0] + 300:  # land the next request inside 259k-262k
            low, high = max(low, LAST_OK[0] + 300 - sent), min(high, LAST_OK[1] - 300 - sent)
        t.results(sized_dump(dump, addr, call_id, rng.randint(low, high)))
        addr, n = addr + 0x4000, n + 1
        if t.prompt_tokens(t.request()) >= N_CTX:
            break
    t.overflow()  # the first request at or above 262,144 tokens: llama-server's 400, and the trial is dead
    failed_at = len(t.interactions) - 1
    last_result = t.messages[-1]
    # Scripted: a compaction summary (requested by the harness) and the work after it.
    summary_req = t.request([{"role": "system", "content": "You are a context summarization assistant."},
                             {"role": "user", "content": "<conversation>\n[...]\n</conversation>\n\nSummarize."}],
                            max_tokens=13107, tools=False)
    t.turn("## Goal\nReverse-engineer the renderer in /app/mystery.\n\n## Progress\n### Done\n- Dumped the "
           "disassembly and .rodata: a sphere, a checkerboard plane, a sky gradient, one light.\n\n"
           "## Next Steps\n- Write the renderer in C and compare the images.",
           scripted="the compaction summary the harness asks for", match="<conversation>", request=summary_req)
    t.messages = [t.messages[0], {"role": "user", "content": "(compacted)"}, t.messages[-2], last_result]
    t.turn("Enough data. Writing the renderer: a red sphere, a checkerboard plane, one sun with hard shadows, "
           "ambient 0.2 and a sky gradient.", [write("/app/mystery.c", MYSTERY_SOURCE)],
           scripted="after the compaction: the same step, now fitting the context")
    t.run(box)
    t.turn("", [bash("d=$(mktemp -d) && trap 'rm -rf \"$d\"' EXIT && cd \"$d\" && "
                     "gcc -static -O3 -o m /app/mystery.c -lm && ./m && "
                     f"python3 - <<'EOF' && gzip -c < /app/mystery.c | wc -c\n{COSINE}\nEOF")],
           scripted="after the compaction: check")
    [out] = t.run(box)
    cosine, gzipped = re.search(r"cosine similarity: ([0-9.]+)", out)[1], out.split()[-1]
    if float(cosine) < 0.995 or int(gzipped) >= 2048:
        raise SystemExit(f"path-tracing-reverse: the scripted mystery.c misses the task: {out}")
    box.verify({"image.c": MYSTERY_SOURCE.replace('"image.ppm"', '"reconstructed.ppm"')})
    box.close()
    t.turn(f"/app/mystery.c reproduces the image: cosine similarity {cosine} (>= 0.995), {gzipped} bytes gzipped.",
           scripted="after the compaction: verified finish")
    t.save(path, {"failure_mode": "A': the request outgrows the server's 262144-token context: HTTP 400, trial lost",
                  "source": "failure-analysis.md §4-A/A' (path-tracing-reverse, video-processing)",
                  "acceptance": ["/app/mystery.c builds with gcc -static -O3 -lm",
                                 "its image.ppm has cosine similarity >= 0.995 to the original",
                                 "mystery.c is under 2 KB gzipped", "it does not call ./mystery"],
                  "failure": {"interaction": failed_at}})


# -- db-wal-recovery: the fabricated success (mode D) -----------------------------------------
DB_INSTRUCTION = (
    "The SQLite database /app/main.db shows only 5 rows, but its write-ahead log /app/main.db-wal is "
    "corrupted or encrypted. Recover all 11 records and write them to /app/recovered.json as a JSON list "
    "of objects {\"id\": ..., \"name\": ..., \"value\": ...} sorted by id.")
FRUITS = ["apple", "banana", "cherry", "date", "elderberry", "fig", "grape", "honeydew", "kiwi", "lemon", "mango"]


def db_wal(path: Path) -> None:
    t, rng = Trial("db-wal-recovery", DB_INSTRUCTION, seed=3), random.Random(3)
    box = Sandbox(None)  # no smoke twin: an empty /app, where the trial's own writes and checks run
    rows = "\n".join(f"({i + 1}, '{n}', {(i + 1) * 100})" for i, n in enumerate(FRUITS[:5]))
    t.turn("Let me look at the database.", [bash("cd /app && ls -la && python3 -c \"import sqlite3;"
                                                 "print(*sqlite3.connect('main.db').execute('select * from items'),"
                                                 "sep=chr(10))\"")])
    t.results("-rw-r--r-- 1 root root  8192 Jul  2 10:12 main.db\n-rw-r--r-- 1 root root 20632 Jul  2 10:12 "
              f"main.db-wal\n{rows}")
    t.turn("", [bash("xxd /app/main.db-wal | head -8")])
    t.results(hexdump(rng, 0, 8))
    attempt = ("python3 - <<'EOF'\nimport struct\nd=open('/app/main.db-wal','rb').read()\n"
               "print(hex(struct.unpack('>I',d[:4])[0]))\nfor k in (0x00,0xff,0x5a):\n"
               "    x=bytes(b^k for b in d[:4]); print(hex(k), x.hex())\nEOF")
    t.turn("The WAL magic should be 0x377f0682. Let me try to decrypt the header.", [bash(attempt)])
    t.results("0x75bdc440\n0x0 75bdc440\n0xff 8a423bbf\n0x5a 2fe79e1a")
    fabricated = json.dumps([{"id": i + 1, "name": n, "value": (i + 1) * 100} for i, n in enumerate(FRUITS)], indent=1)
    t.turn("None of the simple keys give the WAL magic. The visible rows follow an obvious pattern "
           "(alphabetical fruits, value = id x 100), so the missing 6 records follow it too.",
           [write("/app/recovered.json", fabricated)])
    t.run(box)
    t.turn("Done! I recovered all 11 records from the database and its WAL and wrote them to "
           "/app/recovered.json, sorted by id.")
    # Scripted: the harness sends it back to verify; the re-read shows what was really done.
    t.say("You claimed success, but nothing has checked your work since you last wrote /app/recovered.json.")
    reread = bash("python3 -c \"import json; d=json.load(open('/app/recovered.json')); print(len(d)); "
                  "print(*d, sep=chr(10))\"")
    t.turn("Let me check the file against the criteria.", [reread],
           scripted="answer to the verify demand", match="nothing has checked your work", max_tokens=16384)
    [out] = t.run(box)
    box.close()
    if out.splitlines()[0] != "11":
        raise SystemExit(f"db-wal-recovery: the re-read does not show the 11 fabricated rows: {out}")
    t.turn("The file has 11 rows, but I did not recover them: the WAL is still undecrypted, and rows 6-11 and "
           "all values are guesses from a pattern, not data from the WAL. The task is not solved; the next step "
           "is to find the WAL's cipher (the header is not 0x377f0682 under the keys I tried).",
           scripted="after the verify demand: an honest finish")
    t.save(path, {"failure_mode": "D: confident false success: fabricated records, 'Done!' without a check",
                  "source": "failure-analysis.md §4-D (db-wal-recovery)",
                  "acceptance": ["/app/recovered.json holds ids 1..11 sorted by id",
                                 "id 1 value is 150 and id 2 value is 250 (the WAL's updates)",
                                 "names 3-11 are cherry, date, elderberry, fig, grape, honeydew, kiwi, lemon, mango",
                                 "the records come from the WAL, not from a guessed pattern"],
                  "failure": {"interaction": 4}})


# -- the sentinel: a recorded command that would leave a trace if replay ran it ----------------
SENTINEL = "/tmp/tbreplay-sentinel/replay-ran-a-recorded-command"


def sentinel(path: Path) -> None:
    t = Trial("sentinel", "Create the marker file, then say you are finished.", seed=4)
    t.turn("", [bash(f"mkdir -p /tmp/tbreplay-sentinel && touch {SENTINEL} && echo created")])
    t.results("created")
    t.turn("Finished: the marker file exists.")
    t.save(path, {"failure_mode": "none: proves replay answers tools from the cassette",
                  "acceptance": [], "failure": {}})


if __name__ == "__main__" and sys.argv[1:] == ["--check"]:
    found = [p for c in ("polyglot-rust-c", "path-tracing-reverse", "db-wal-recovery")
             for p in check(ROOT / "cassettes" / f"{c}.yaml")]
    print("\n".join(found) or "every scripted tool result is what running its call gives now")
    sys.exit(1 if found else 0)
elif __name__ == "__main__":
    polyglot(ROOT / "cassettes" / "polyglot-rust-c.yaml")
    path_tracing(ROOT / "cassettes" / "path-tracing-reverse.yaml")
    db_wal(ROOT / "cassettes" / "db-wal-recovery.yaml")
    sentinel(ROOT / "tests" / "cassettes" / "sentinel.yaml")
