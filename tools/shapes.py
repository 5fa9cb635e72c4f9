"""Reconstructed cassettes of failure shapes beyond the three recorded trials (issue 10, item 6).

    python cassettes/shapes.py            # writes cassettes/shapes/*.yaml

Built like cassettes/reconstruct.py (its `Trial` writes pi 0.73.1's requests and llama-server's
streams), through pytest_tbreplay.cassette's dataclasses and `save`, so a change of the cassette
format only needs this script rerun. Every tool result here, recorded part and scripted
continuation alike, is produced by running the call at reconstruct time in a scratch folder that
stands in for /app (`Sandbox`): nothing is typed. Sizes follow the failure analysis §4: an overflow
climbs to a last request within ~1% under the server's n_ctx and the 400 comes at the first
request at or above it (at 262,144: 259k-262k, then the 400).

- overflow-{8k,32k,64k,128k,256k}: the context-overflow shape (A/A') on servers of every size the
  `auto` profile claims to fit, each a different task;
- runaway-long-cycle: a text loop whose cycle is a ~100-word paragraph that comes back with its
  line numbers, file names and counts changed (B, beyond the loop detector's old reach);
- bash-artifact-claim: "Done!" about a file a bash command produced, after re-running the producer
  (D, which a write-armed, name-disarmed gate missed);
- cut-write: a length stop in the middle of a large write's arguments (B's cost to legit writes);
- stuck-build: many short turns re-running one failing build with the same compiler error
  (build-pov-ray's 296 turns), for the stuck-turn guard (j);
- poll-converges: a poll of a job's status whose result changes until the job is done (the guard's
  negative control: a repeated call that is not stuck).
"""
from __future__ import annotations

import json
import math
import random
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import reconstruct as rc  # noqa: E402
from pytest_tbreplay.core import cassette as cs  # noqa: E402
from pytest_tbreplay.core.wire import exceed_body  # noqa: E402
from pytest_tbreplay.replay.tools import LocalTools, parse_partial_json  # noqa: E402

OUT = ROOT / "cassettes" / "shapes"
STEP = 12000  # tokens a read adds at most: pi's bash tool keeps the last 50 KB of output
# The recorded harness: pi as the failing run drove it (failure-analysis §4): contextWindow 131072,
# maxTokens 32000 (pi sends min(maxTokens, 32000)).
PROFILE = {"harness": "pi", "name": "baseline", "context_window": 131072, "max_tokens": 32000,
           "mode": "print --mode json"}


class Sandbox:
    """A scratch folder standing in for /app: tool calls run here for real, paths mapped both ways."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tbreplay-shape-"))
        self.tools = LocalTools(self.dir, timeout_s=60)

    def _in(self, text: str) -> str:
        return text.replace("/app", str(self.dir))

    def _out(self, text: str) -> str:
        return text.replace(str(self.dir), "/app")

    def file(self, path: str, content: str) -> None:
        """A file of the task's own setup (not a tool call)."""
        p = Path(self._in(path))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self._in(content))

    def run(self, call: dict) -> tuple[str, bool]:
        args = {k: self._in(v) if isinstance(v, str) else v for k, v in call["arguments"].items()}
        if call["name"] == "write":  # pi's write tool: its exact result text, after writing for real
            output, err = self.tools("x", "write", args)
            content = call["arguments"]["content"]
            output = f"Successfully wrote {len(content)} bytes to {call['arguments']['path']}" if not err else output
        else:
            output, err = self.tools("x", call["name"], args)
        return self._out(output), err

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class ShapeTrial(rc.Trial):
    """reconstruct.Trial on a server of any n_ctx, whose tool results come from running the calls."""

    def __init__(self, task: str, instruction: str, seed: int, n_ctx: int, sandbox: Sandbox):
        super().__init__(task, instruction, seed)
        self.n_ctx, self.box = n_ctx, sandbox

    def step(self, text: str = "", calls=(), **kw) -> list[tuple[str, bool]]:
        """A turn whose tool calls run in the sandbox; their results go into the cassette."""
        self.turn(text, calls, **kw)
        results = [self.box.run(c) for c in self._pending]
        self.results(*[o for o, _ in results], errors=tuple(e for _, e in results), ran=True)
        return results

    def overflow(self) -> int:
        body = self.request()
        n = self.prompt_tokens(body)
        assert n >= self.n_ctx, f"{self.task}: the overflowing request has only {n} tokens"
        self.interactions.append(cs.Interaction("POST", rc.URI, json.dumps(body, ensure_ascii=False), 400,
                                                json.dumps(exceed_body(n, self.n_ctx)),
                                                headers={"Content-Type": ["application/json"]},
                                                request_headers={"Content-Type": ["application/json"]}))
        return len(self.interactions) - 1

    def cut_call(self, text: str, call: dict, n_tokens: int) -> dict:
        """A turn that hits max tokens (finish_reason length) inside `call`'s arguments after
        n_tokens tokens in all; returns the arguments as pi parses the cut stream."""
        call = dict(call, id=f"call_{self.task[:4]}{self.calls + 1:03d}")
        self.calls += 1
        body = self.request()
        pieces = [("content", p) for p in rc.tokenize(text)]
        raw_pieces = rc.tokenize(json.dumps(call["arguments"], ensure_ascii=False))
        keep = n_tokens - len(pieces) - 1  # the call's head chunk is a token too
        assert 0 < keep < len(raw_pieces), "the call is not longer than the turn's tokens"
        raw = "".join(raw_pieces[:keep])
        sse, offsets = self._cut_stream(body, pieces, call, raw_pieces[:keep])
        self.interactions.append(cs.Interaction("POST", rc.URI, json.dumps(body, ensure_ascii=False), 200, sse,
                                                headers={"Content-Type": ["text/event-stream"]},
                                                request_headers={"Content-Type": ["application/json"]},
                                                chunk_offsets=offsets))
        args = parse_partial_json(raw)
        # pi sends the call back as its parser made it (openai-completions.js: JSON.stringify(arguments))
        self.messages.append({"role": "assistant", "content": text, "tool_calls": [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": json.dumps(args, ensure_ascii=False, separators=(",", ":"))}}]})
        self._pending = [dict(call, arguments=args)]
        return args

    def _cut_stream(self, body, pieces, call, arg_pieces):
        prompt = self.prompt_tokens(body)
        prev = self.interactions[-1].usage.get("prompt_tokens", 0) if self.interactions else 0
        cached = min(prev, prompt)
        t = (prompt - cached) / rc.PROMPT_TPS
        events, offsets = [self._chunk({"role": "assistant", "content": None})], [t]
        head = {"index": 0, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        deltas = [{"content": p} for _, p in pieces] + [{"tool_calls": [head]}] + \
                 [{"tool_calls": [{"index": 0, "function": {"arguments": p}}]} for p in arg_pieces]
        for d in deltas:
            t += self.rng.uniform(0.7, 1.3) / rc.DECODE_TPS
            events.append(self._chunk(d))
            offsets.append(t)
        n = len(deltas)
        events.append(self._chunk({}, "length"))
        offsets.append(t)
        usage = {"completion_tokens": n, "prompt_tokens": prompt, "total_tokens": prompt + n,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        ms = (offsets[-1] - offsets[0]) * 1000
        timings = {"cache_n": cached, "prompt_n": prompt - cached, "predicted_n": n, "predicted_ms": round(ms, 3),
                   "predicted_per_second": round((n - 1) / ms * 1000, 3)}
        events.append(self._chunk(None, usage=usage, timings=timings))
        events.append("[DONE]")
        offsets += [t, t]
        return "".join(f"data: {e}\n\n" for e in events), offsets

    def save(self, path: Path, metadata: dict) -> None:
        meta = {"format": cs.FORMAT, "task": self.task, "trial": f"{self.task}__reconstructed",
                "provenance": "reconstructed", "server": dict(rc.SERVER, n_ctx=self.n_ctx),
                "harness_profile": PROFILE, "instruction": self.instruction} | metadata
        path.unlink(missing_ok=True)  # this script owns these files
        cs.save(cs.Cassette(meta, self.interactions), path, redact=True)
        print(f"{path}: {len(self.interactions)} interactions, {path.stat().st_size / 1e6:.2f} MB")


def bash(command: str) -> dict:
    return rc.bash(command)


def write(path: str, content: str) -> dict:
    return rc.write(path, content)


def summary_request(t: ShapeTrial) -> dict:
    return t.request([{"role": "system", "content": "You are a context summarization assistant."},
                      {"role": "user", "content": "<conversation>\n[...]\n</conversation>\n\nSummarize."}],
                     max_tokens=819, tools=False)


# -- overflow at every server size (mode A') ---------------------------------------------------
OVERFLOW_TASKS = {
    8192: ("log-error-codes", "The logs of a service are the files /app/logs/part-*.log. Write /app/top_errors.txt "
           "with the three most frequent error codes (E followed by 4 digits), most frequent first, one per line "
           "as `CODE COUNT`.", "log"),
    32768: ("csv-merge-totals", "The sales exports /app/exports/m*.csv have the columns "
            "region,product,units. Write /app/totals.csv with the total units per region, sorted by region, "
            "with the header region,units.", "csv"),
    65536: ("config-audit", "Audit the service configs /app/conf/svc-*.ini: write /app/audit.txt "
            "listing every service whose `timeout` is above 30, one name per line, sorted.", "ini"),
    131072: ("trace-slowest", "The request traces /app/traces/t*.jsonl hold one JSON object per line "
             "with `path` and `ms`. Write /app/slowest.txt with the five slowest paths by their mean ms, slowest "
             "first, as `PATH MEAN` with the mean rounded to an integer.", "jsonl"),
    262144: ("symbol-census", "The object dumps /app/dumps/d*.txt list symbols as `ADDRESS TYPE NAME`. "
             "Write /app/census.txt with the number of symbols per TYPE letter, sorted by letter, as `TYPE COUNT`.",
             "sym"),
}


def _rows(kind: str, rng: random.Random, n: int, part: int) -> str:
    if kind == "log":
        return "\n".join(f"2026-07-0{part} {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} "
                         f"{rng.choice(['INFO', 'WARN', 'ERROR'])} worker-{rng.randrange(8)} "
                         f"{'E%04d' % rng.choice([1042, 1042, 1042, 2210, 2210, 3001, 3333, 4004]) if rng.random() < .6 else 'ok'}"
                         f" req={rng.getrandbits(32):08x}" for _ in range(n))
    if kind == "csv":
        return "region,product,units\n" + "\n".join(
            f"{rng.choice(['north', 'south', 'east', 'west'])},p{rng.randrange(400):03d},{rng.randrange(1, 90)}"
            for _ in range(n))
    if kind == "ini":
        return "\n".join(f"[svc-{part}-{i}]\ntimeout = {rng.randrange(5, 60)}\nretries = {rng.randrange(5)}\n"
                         f"endpoint = http://10.0.{rng.randrange(255)}.{rng.randrange(255)}:{rng.randrange(1024, 9000)}/"
                         for i in range(n))
    if kind == "jsonl":
        return "\n".join(json.dumps({"path": f"/api/v1/{rng.choice(['users', 'orders', 'items', 'search', 'cart'])}"
                                             f"/{rng.randrange(40)}", "ms": rng.randrange(3, 900),
                                     "id": f"{rng.getrandbits(48):012x}"}) for _ in range(n))
    return "\n".join(f"{rng.getrandbits(40):010x} {rng.choice('TtDdBbURW')} sym_{rng.getrandbits(24):06x}_{part}"
                     for _ in range(n))


SOLVERS = {  # the scripted solution after the compaction: real code, run for real
    "log": ("/app/solve.py", "import collections, glob, re\nc = collections.Counter()\n"
            "for f in glob.glob('/app/logs/*.log'):\n    c.update(re.findall(r'\\bE\\d{4}\\b', open(f).read()))\n"
            "open('/app/top_errors.txt', 'w').write(''.join(f'{k} {v}\\n' for k, v in c.most_common(3)))\n",
            "cat /app/top_errors.txt"),
    "csv": ("/app/solve.py", "import collections, csv, glob\nt = collections.Counter()\n"
            "for f in sorted(glob.glob('/app/exports/*.csv')):\n    for r in csv.DictReader(open(f)):\n"
            "        t[r['region']] += int(r['units'])\n"
            "open('/app/totals.csv', 'w').write('region,units\\n' + ''.join(f'{k},{t[k]}\\n' for k in sorted(t)))\n",
            "cat /app/totals.csv"),
    "ini": ("/app/solve.py", "import configparser, glob\nnames = []\nfor f in glob.glob('/app/conf/*.ini'):\n"
            "    c = configparser.ConfigParser(); c.read(f)\n"
            "    names += [s for s in c.sections() if c.getint(s, 'timeout') > 30]\n"
            "open('/app/audit.txt', 'w').write(''.join(n + '\\n' for n in sorted(names)))\n",
            "wc -l /app/audit.txt && head -3 /app/audit.txt"),
    "jsonl": ("/app/solve.py", "import collections, glob, json\ns = collections.defaultdict(list)\n"
              "for f in glob.glob('/app/traces/*.jsonl'):\n    for line in open(f):\n"
              "        r = json.loads(line); s[r['path']].append(r['ms'])\n"
              "m = sorted(((sum(v) / len(v), p) for p, v in s.items()), reverse=True)[:5]\n"
              "open('/app/slowest.txt', 'w').write(''.join(f'{p} {round(x)}\\n' for x, p in m))\n",
              "cat /app/slowest.txt"),
    "sym": ("/app/solve.py", "import collections, glob\nc = collections.Counter()\n"
            "for f in glob.glob('/app/dumps/*.txt'):\n    c.update(line.split()[1] for line in open(f) if line.strip())\n"
            "open('/app/census.txt', 'w').write(''.join(f'{k} {c[k]}\\n' for k in sorted(c)))\n",
            "cat /app/census.txt"),
}
FOLDERS = {"log": ("logs", "part-{}.log"), "csv": ("exports", "m{}.csv"), "ini": ("conf", "svc-{}.ini"),
           "jsonl": ("traces", "t{}.jsonl"), "sym": ("dumps", "d{}.txt")}


def overflow(n_ctx: int, path: Path) -> None:
    """Files read one by one, each output at most ~12k tokens (pi's bash tool keeps the last 50 KB):
    they bring the request to within ~1% under n_ctx, one more read passes it, and the server
    answers llama-server's exceed-context 400: the trial is lost."""
    task, instruction, kind = OVERFLOW_TASKS[n_ctx]
    box = Sandbox()
    try:
        t = ShapeTrial(task, instruction, seed=n_ctx % 1000 + 11, n_ctx=n_ctx, sandbox=box)
        folder, pattern = FOLDERS[kind]
        t.step("Let me see what there is.", [bash(f"ls /app/{folder}")])
        base = t.prompt_tokens(t.request())
        # reads of at most STEP tokens to ~0.99 n_ctx, then one of ~2% of n_ctx past the limit
        n_reads = max(5, math.ceil((0.99 * n_ctx - base) / STEP))
        targets = [base + (0.99 * n_ctx - base) * (i + 1) / n_reads for i in range(n_reads)] + [1.01 * n_ctx + 200]
        for i, target in enumerate(targets, 1):
            name = f"/app/{folder}/{pattern.format(i)}"
            lines = 20
            while True:  # size the file so this read brings the request to its target
                box.file(name, _rows(kind, random.Random(n_ctx * 10 + i), lines, i) + "\n")
                t.messages.append({"role": "tool", "tool_call_id": "x", "content": box.run(bash(f"cat {name}"))[0]})
                grown = t.prompt_tokens(t.request())
                t.messages.pop()
                if grown >= target:
                    break
                lines = max(lines + 1, int(lines * (target - base) / max(grown - base, 1)))
            # the read, for real; then the next request is ~target
            t.step("" if i > 1 else "I'll read each file.", [bash(f"cat {name}")])
            now = t.prompt_tokens(t.request())
            assert now < n_ctx or i > n_reads, f"{task}: read {i} already passes n_ctx ({now})"
            base = now
        last_ok = t.interactions[-1].usage["prompt_tokens"]
        failed = t.overflow()
        # Scripted: the summary the mitigated harness asks for, and the work after it.
        t.turn(f"## Goal\n{instruction.split('.')[0]}.\n\n## Progress\n### Done\n- Read all the files: they are "
               f"regular, one record per line.\n\n## Next Steps\n- Compute the answer with a short script.",
               scripted="the compaction summary the harness asks for", match="<conversation>",
               request=summary_request(t))
        last_result = t.messages[-1]
        t.messages = [t.messages[0], {"role": "user", "content": "(compacted)"}, t.messages[-2], last_result]
        script, code, show = SOLVERS[kind]
        t.step("All files read. Computing it with a script.", [write(script, code)],
               scripted="after the compaction: the same step, now fitting the context")
        [(out, err)] = t.step("", [bash(f"cd /app && python3 {Path(script).name} && {show}")],
                              scripted="after the compaction: run and check")
        assert not err, out
        t.step(f"Done, and checked: the output file holds\n{out.strip()}", scripted="after the compaction: verified finish")
        t.save(path, {"failure_mode": f"A': the request outgrows the server's {n_ctx}-token context: HTTP 400, trial lost",
                      "source": "failure-analysis.md §4-A/A' (path-tracing-reverse, video-processing), on a "
                                f"{n_ctx}-token server",
                      "acceptance": [instruction.split(". ", 1)[1] if ". " in instruction else instruction],
                      "failure": {"interaction": failed, "last_ok_prompt_tokens": last_ok}})
    finally:
        box.close()


# -- a runaway whose cycle is a paragraph that changes every time (mode B, long cycle) -----------
READER = ('"""Read CSV lines into lists of fields."""\n\n\ndef split_fields(line):\n'
          '    return [f.strip().strip(\'"\') for f in line.split(",")]\n')
READER_FIXED = ('"""Read CSV lines into lists of fields."""\nimport csv\n\n\ndef split_fields(line):\n'
                '    return [f.strip() for f in next(csv.reader([line], skipinitialspace=True))]\n')
READER_TEST = ("import sys\nsys.path.insert(0, '/app/src')\nfrom reader import split_fields\n\n"
               "cases = [('a,b,c', ['a', 'b', 'c']), ('\"x, y\",z', ['x, y', 'z']), ('1, \"2,3\", 4', ['1', '2,3', '4'])]\n"
               "failed = [(line, split_fields(line), want) for line, want in cases if split_fields(line) != want]\n"
               "for line, got, want in failed:\n    print(f'FAIL {line!r}: got {got}, want {want}')\n"
               "print(f'{len(cases) - len(failed)} of {len(cases)} passed')\nsys.exit(1 if failed else 0)\n")
CYCLE = ("Looking at line {a} of src/{f}.py again: split_fields() strips the quotes after splitting, so the quoted "
         "comma on line {b} of the test becomes two fields, and the case at line {c} of tests/test_{f}.py expects {k} "
         "fields but gets {k1}. Wait, I already checked this. The order of the split and the strip is right, so the "
         "problem must be in the loop on line {d}. Let me re-read it: it walks the characters and toggles in_quotes on "
         "every double quote, and a comma only ends a field outside quotes. That should work for line {b}. So the bug "
         "is somewhere else. Let me look at the reader again from the top. ")


def runaway(path: Path) -> None:
    """A 64k server, pi with maxTokens 8192: two real steps, then a ~100-word paragraph that comes
    back with its line numbers, file names and counts changed, until the 8192-token length stop."""
    box = Sandbox()
    try:
        box.file("/app/src/reader.py", READER)
        box.file("/app/tests/test_reader.py", READER_TEST)
        instruction = ("Fix /app/src/reader.py so that `python3 /app/tests/test_reader.py` passes: a quoted field may "
                       "contain commas.")
        t = ShapeTrial("csv-quoted-fields", instruction, seed=21, n_ctx=65536, sandbox=box)
        t.step("Let me run the tests first.", [bash("python3 /app/tests/test_reader.py")])
        t.step("", [bash("cat /app/src/reader.py")])
        rng = random.Random(21)
        lead = ("The split on every comma ignores quotes. I need to understand why the quoted case fails exactly, "
                "so let me trace it carefully. ")
        text, starts = lead, []
        while len(rc.tokenize(text)) < 8192 + 200:
            starts.append(len(text))
            k = rng.randrange(2, 5)
            text += CYCLE.format(a=rng.randrange(3, 40), b=rng.randrange(2, 30), c=rng.randrange(5, 60),
                                 d=rng.randrange(4, 20), f=rng.choice(["reader", "fields", "csvio"]), k=k,
                                 k1=k + rng.randrange(1, 3))
        text = "".join(rc.tokenize(text)[:8192])
        third = len(rc.tokenize(text[:starts[2]]))
        cycle = len(rc.tokenize(text[starts[1]:starts[2]]))
        t.turn(text, finish="length", max_tokens=8192)
        failed = len(t.interactions) - 1
        t.say("Your last message was cut off for looping; stop and take a different concrete action.")
        t.step("Different concrete action: parse with the csv module instead of splitting by hand.",
               [write("/app/src/reader.py", READER_FIXED)], scripted="answer to the length-stop nudge",
               match="cut off for looping", max_tokens=8192)
        [(out, err)] = t.step("", [bash("python3 /app/tests/test_reader.py")], scripted="after the nudge: run the tests")
        assert not err and "3 of 3 passed" in out, out
        t.step(f"Fixed: the tests print `{out.strip()}`.", scripted="after the nudge: verified finish")
        t.save(path, {"failure_mode": "B: a runaway whose ~100-word cycle changes every time, to the 8192-token length stop",
                      "source": "failure-analysis.md §4-B (build-pov-ray, polyglot-rust-c); issue 10: a paragraph "
                                "that comes back with small changes",
                      "harness_profile": dict(PROFILE, max_tokens=8192),
                      "acceptance": ["python3 /app/tests/test_reader.py prints 3 of 3 passed"],
                      "failure": {"interaction": failed, "third_cycle_token": third, "cycle_tokens": cycle}})
    finally:
        box.close()


# -- "Done!" about a file a bash command produced (mode D) -------------------------------------
REPORT = ("import csv, collections\nt = collections.Counter()\nfor r in csv.DictReader(open('/app/sales.csv')):\n"
          "    t[r['month']] += int(r['amount'])\n"
          "w = open('/app/report.csv', 'w')\nfor m in sorted(t):\n    w.write(f'{m},{t[m]}\\n')\n"
          "print(f'wrote {len(t)} rows to /app/report.csv')\n")
REPORT_FIXED = REPORT.replace("w = open('/app/report.csv', 'w')\n",
                              "w = open('/app/report.csv', 'w')\nw.write('month,total\\n')\n")
CHECK_REPORT = ("import csv, collections\nt = collections.Counter()\nfor r in csv.DictReader(open('/app/sales.csv')):\n"
                "    t[r['month']] += int(r['amount'])\nrows = list(csv.reader(open('/app/report.csv')))\n"
                "if not rows or rows[0] != ['month', 'total']:\n"
                "    raise SystemExit(f'FAIL: header is {rows[:1]}, want month,total')\n"
                "got = {m: int(v) for m, v in rows[1:]}\nif got != dict(t):\n    raise SystemExit('FAIL: totals differ')\n"
                "print(f'OK: {len(got)} months')\n")


def bash_artifact(path: Path) -> None:
    """A 128k server: the report is produced by a bash command running a script, re-run once more
    (production again, not a check), listed (existence, not a check), then claimed done."""
    box = Sandbox()
    try:
        rng = random.Random(31)
        box.file("/app/sales.csv", "month,amount\n" + "".join(
            f"2026-{rng.randrange(1, 13):02d},{rng.randrange(10, 500)}\n" for _ in range(200)))
        box.file("/app/check_report.py", CHECK_REPORT)
        instruction = ("Write /app/report.csv with the total amount per month from /app/sales.csv: a header "
                       "`month,total`, then one row per month, sorted. `python3 /app/check_report.py` checks it.")
        t = ShapeTrial("monthly-report", instruction, seed=31, n_ctx=131072, sandbox=box)
        t.step("Let me look at the data.", [bash("head -5 /app/sales.csv && wc -l /app/sales.csv")])
        t.step("I'll write a script that builds the report.", [write("/app/make_report.py", REPORT)])
        t.step("", [bash("cd /app && python3 make_report.py")])
        t.step("Let me make sure it is complete.", [bash("cd /app && python3 make_report.py && ls report.csv")])
        t.turn("Done! /app/report.csv holds the total per month, sorted by month.")
        claim = len(t.interactions) - 1
        # Scripted: sent back to check; the provided checker shows the missing header.
        t.say("You claimed success, but nothing has checked your work since it produced /app/report.csv.")
        [(out, err)] = t.step("Running the provided check.", [bash("python3 /app/check_report.py")],
                              scripted="answer to the verify demand", match="nothing has checked your work",
                              max_tokens=16384)
        assert err and "FAIL: header" in out, out
        t.step("The header is missing. Adding it.", [write("/app/make_report.py", REPORT_FIXED)],
               scripted="after the verify demand: the fix")
        [(out, err)] = t.step("", [bash("cd /app && python3 make_report.py && python3 /app/check_report.py")],
                              scripted="after the verify demand: produce and check")
        assert not err and "OK:" in out, out
        t.step(f"Now checked: check_report.py prints `{out.strip().splitlines()[-1]}`.",
               scripted="after the verify demand: verified finish")
        t.save(path, {"failure_mode": "D: 'Done!' about a file a bash command produced, after re-running the producer",
                      "source": "failure-analysis.md §4-D (train-fasttext: 'Done! model saved to /app/model.bin')",
                      "acceptance": ["/app/report.csv starts with the header month,total",
                                     "one row per month with its total amount, sorted by month",
                                     "python3 /app/check_report.py prints OK"],
                      "failure": {"interaction": claim}})
    finally:
        box.close()


# -- a length stop inside a large write (mode B's cost to legit writes) --------------------------
def _primes(n: int) -> list[int]:
    out, k = [], 2
    while len(out) < n:
        if all(k % p for p in out if p * p <= k):
            out.append(k)
        k += 1
    return out


def _table(primes: list[int], first: bool, last: bool) -> str:
    rows = "".join("  " + ", ".join(map(str, primes[i:i + 10])) + ",\n" for i in range(0, len(primes), 10))
    head = "#pragma once\n#define PRIMES_N 3000\nstatic const unsigned PRIMES[PRIMES_N] = {\n" if first else ""
    return head + rows + ("};\n" if last else "")


def cut_write(path: Path) -> None:
    """A 32k server, pi with maxTokens 8192: the model writes a 3000-prime C table in one write;
    the length stop cuts its arguments at token 8192; pi runs the cut write (2,515 of the 3,000 primes)
    and the model declares it done."""
    box = Sandbox()
    try:
        instruction = ("Write /app/primes.h defining PRIMES_N as 3000 and `static const unsigned PRIMES[PRIMES_N]` "
                       "holding the first 3000 primes in order.")
        t = ShapeTrial("primes-table", instruction, seed=41, n_ctx=32768, sandbox=box)
        t.step("", [bash("ls /app")])
        primes = _primes(3000)
        for text in ("I'll write the table directly.", "Writing the whole table directly now."):
            # a cut that does not fall inside an escape, so every JSON parser reads it alike
            args = t.cut_call(text, write("/app/primes.h", _table(primes, True, True)), 8192)
            if not json.dumps(args["content"]).endswith(("\\", "\\n\"")):
                break
            t.interactions.pop(), t.messages.pop()
            t.calls -= 1
        [(out, err)] = [box.run(c) for c in t._pending]
        t.results(out, errors=(err,), ran=True)
        cut_at = len(args["content"])
        t.turn("Done! /app/primes.h defines PRIMES with the first 3000 primes.")
        claim = len(t.interactions) - 1
        # Scripted: told where the write was cut (the harness's tool result instead of running it),
        # the model writes the table in parts and checks it.
        t.messages.pop()
        t.messages[-1] = dict(t.messages[-1], content="(the harness's cut-call message)")
        parts = [primes[:1000], primes[1000:2000], primes[2000:]]
        t.step("The write was cut. Writing the table in three parts.",
               [write("/app/primes.h", _table(parts[0], True, False))], scripted="answer to the cut write",
               match="inside the arguments of this write call", max_tokens=4096)
        for i in (1, 2):
            t.step("", [bash(f"cat >> /app/primes.h <<'EOF'\n{_table(parts[i], False, i == 2)}EOF")],
                   scripted=f"after the cut write: part {i + 1} of 3", max_tokens=4096)
        test = ("cd /app && printf '#include <stdio.h>\\n#include \"primes.h\"\\nint main(void){printf(\"%%d %%u %%u\\\\n\", "
                "(int)(sizeof PRIMES / sizeof *PRIMES), PRIMES[0], PRIMES[PRIMES_N - 1]); return 0;}\\n' > /tmp/t.c && "
                "gcc -I/app -o /tmp/t /tmp/t.c && /tmp/t")
        [(out, err)] = t.step("", [bash(test)], scripted="after the cut write: compile and check")
        assert not err and out.strip() == f"3000 2 {primes[-1]}", out
        t.step(f"Checked: a test program built against /app/primes.h prints `{out.strip()}` (3000 entries, "
               f"from 2 to {primes[-1]}).", scripted="after the cut write: verified finish")
        for it in t.interactions:
            tokens = sum(1 for e in it.events if '"delta":{"content"' in e or '"tool_calls"' in e)
            assert not it.scripted or tokens <= 4096, f"a scripted turn of {tokens} tokens passes 4096"
        t.save(path, {"failure_mode": "B': a length stop cut a large write's arguments; the cut write ran, then 'Done!'",
                      "source": "failure-analysis.md §5.2 (a max-tokens cap cuts legit large writes)",
                      "harness_profile": dict(PROFILE, max_tokens=8192),
                      "acceptance": ["/app/primes.h defines PRIMES_N 3000",
                                     f"PRIMES holds the first 3000 primes in order (2 .. {primes[-1]})"],
                      "failure": {"interaction": claim - 1, "cut_at_char": cut_at}})
    finally:
        box.close()


# -- many short turns re-running one failing build (build-pov-ray, 296 turns) ----------------------
RENDER_C = ('#include <stdio.h>\n#include "scene_parser.h"\n\nint main(int argc, char **argv) {\n'
            '    scene_t s = parse_scene(argc > 1 ? argv[1] : "/app/scene.pov");\n'
            '    printf("%d objects\\n", s.n_objects);\n    return 0;\n}\n')
RENDER_MAKEFILE = "CFLAGS = -O2 -Wall -Iinclude\n\nrender: render.o\n\t$(CC) -o $@ $^\n\nrender.o: render.c\n\t$(CC) $(CFLAGS) -c render.c\n"
RETRIES = ["Let me try the build again.", "Building again.", "Let me run make once more.", "Retrying the build.",
           "Let me try again.", "Running make again to see the error.", "Trying the build again.",
           "One more build attempt.", "Let me rebuild.", "Building once more.", "Let me try make again.",
           "Running the build again.", "Rebuilding."]


def stuck_build(path: Path) -> None:
    """A 32k server: the build fails on a missing header (the parser's header lives in src/, the
    Makefile looks in include/); the model re-runs `make` turn after turn with one line of text and
    gets the same compiler error every time, then gives up. Scripted for the guard: after its nudge
    the model runs the same build twice more (as build-pov-ray did), so the guard stops it."""
    box = Sandbox()
    try:
        box.file("/app/render.c", RENDER_C)
        box.file("/app/Makefile", RENDER_MAKEFILE)
        box.file("/app/src/scene_parser.h", "typedef struct { int n_objects; } scene_t;\nscene_t parse_scene(const char *path);\n")
        instruction = "Build the renderer in /app with `make` so that /app/render exists and runs."
        t = ShapeTrial("render-build", instruction, seed=51, n_ctx=32768, sandbox=box)
        t.step("Let me look at the project.", [bash("ls -R /app")])
        build = lambda: bash("cd /app && make")  # a fresh dict each time (no YAML aliases)
        [(first, err)] = t.step("", [build()])
        assert err and "scene_parser.h" in first, first
        for text in RETRIES:
            [(out, err)] = t.step(text, [build()])
            assert err and out == first, "the same build must give the same error every time"
        t.turn("I could not get the renderer to build: make keeps failing on scene_parser.h.")
        # Scripted: the nudge after the fourth identical failing build, ignored twice.
        nudged_after = 2 + 3  # interactions: ls, make, then 3 retries -> the 4th identical make's result
        t.messages = t.messages[:_messages_through_turn(t.messages, nudged_after)]
        t.say("(the stuck-turn guard's nudge)")
        for n in (1, 2):
            [(out, err)] = t.step(RETRIES[n], [build()], scripted=f"after the stuck nudge: the same build again ({n} of 2)",
                                  match="Repeating it will not change the outcome" if n == 1 else None)
            assert err and out == first
        t.save(path, {"failure_mode": "stuck: many short turns re-running one failing build, same compiler error",
                      "source": "failure-analysis.md §4-B (build-pov-ray: 296 turns, 242k output tokens)",
                      "acceptance": ["/app/render exists", "/app/render runs and prints the number of objects"],
                      "failure": {"build": build()["arguments"]["command"], "builds": 2 + len(RETRIES) - 1,
                                  "nudge_after_interaction": nudged_after - 1}})
    finally:
        box.close()


def _messages_through_turn(messages: list[dict], turns: int) -> int:
    """How many messages the conversation held after `turns` assistant turns and their results."""
    seen = 0
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            seen += 1
            if seen > turns:
                return i
    return len(messages)


# -- a poll whose result changes until the job is done (the guard's negative control) ---------------
def poll_converges(path: Path) -> None:
    """The same `cat` of a job's status file, polled: missing at first (the job has not started),
    then a progress line that moves, then done; the model checks the output and finishes. Between
    polls the job (the sandbox) moves on; every result is what the `cat` gave."""
    box = Sandbox()
    try:
        instruction = ("A batch job writes /app/job/status while it runs and /app/job/result.csv when done. Wait "
                       "for it and report the number of rows in the result.")
        t = ShapeTrial("job-poll", instruction, seed=61, n_ctx=32768, sandbox=box)
        poll = lambda: bash("cat /app/job/status")  # a fresh dict each time (no YAML aliases)
        for text in ("Let me check the job's status.", "Not started yet; checking again."):
            [(out, err)] = t.step(text, [poll()])
            assert err, out
        for pct in (10, 35, 35, 60, 85):
            box.file("/app/job/status", f"running {pct}% (rows so far: {pct * 12})\n")
            [(out, err)] = t.step("Still running; polling again.", [poll()])
            assert not err and f"{pct}%" in out
        box.file("/app/job/status", "done\n")
        box.file("/app/job/result.csv", "id,value\n" + "".join(f"{i},{i * i}\n" for i in range(1200)))
        t.step("Polling again.", [poll()])
        [(out, err)] = t.step("The job is done. Counting the rows.", [bash("tail -n +2 /app/job/result.csv | wc -l")])
        t.step(f"The job finished: /app/job/result.csv has {out.strip()} rows.")
        t.save(path, {"failure_mode": "none: a repeated poll whose result changes (the stuck guard's negative control)",
                      "source": "issue 20 item 3: a legitimate polling loop that converges",
                      "acceptance": ["the number of rows of /app/job/result.csv is reported"]})
    finally:
        box.close()


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    only = sys.argv[1:]
    for n in OVERFLOW_TASKS:
        if not only or f"overflow-{n // 1024}k" in only:
            overflow(n, OUT / f"overflow-{n // 1024}k.yaml")
    for name, make in (("runaway-long-cycle", runaway), ("bash-artifact-claim", bash_artifact), ("cut-write", cut_write),
                       ("stuck-build", stuck_build), ("poll-converges", poll_converges)):
        if not only or name in only:
            make(OUT / f"{name}.yaml")
