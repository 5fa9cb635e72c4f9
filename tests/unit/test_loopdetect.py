"""The loop detector (pytest_tbreplay/policies/loopdetect.py and its port harnesses/pi/extensions/lib/loopdetect.ts).

Here: the recorded runaway, every generated family of tests/loop_family.py drawn by hypothesis (the
profile sets how many draws: a few in plain pytest, hundreds with every tier), and the shared vectors for both implementations. The tables (latency per
family, the corpus' cuts, tokens/s) come from tests/benchmarks/loop_bench.py."""
import json
import random
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import loop_family
from loop_family import STDLIB_MODULES, as_arguments, cut_at, runaway, stdlib_text, tokens
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.harnesses import pi as pi
from pytest_tbreplay.policies.texts import NUDGE
from pytest_tbreplay.harnesses.reference import Answer, Run
from pytest_tbreplay.policies.loopdetect import LoopDetector, text_repetition
from pytest_tbreplay.core.profiles import load_profile

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
JITI = pi.pi_dir() / "node_modules" / "jiti" / "lib" / "jiti-cli.mjs"
BASELINE, MITIGATED = load_profile("baseline"), load_profile("mitigated")


@pytest.fixture(scope="module")
def runaway_tokens():
    """The polyglot-rust-c runaway turn, token by token, and where its loop begins."""
    c = cs.load(ROOT / "cassettes" / "polyglot-rust-c.yaml")
    it = c.interactions[c.metadata["failure"]["interaction"]]
    tokens = [json.loads(e)["choices"][0]["delta"].get("content") for e in it.events[1:-3]]
    return [t for t in tokens if t], c.metadata["failure"]["loop_start_token"]


def test_detector_cuts_the_runaway_long_before_the_cap(runaway_tokens):
    tokens, loop_start = runaway_tokens
    assert len(tokens) == 32_000
    d = LoopDetector()
    cut = next(i for i, t in enumerate(tokens, 1) if d.feed(t))
    # measured: the sentences rule at token 954 (885 after the loop began; its sentences come back
    # shuffled, so the shingles break at every seam: the recur rule alone cut it at 1,273)
    assert cut - loop_start <= 2048, f"let {cut - loop_start} tokens through after the loop began"
    assert d.rule == "sentences"


# -- the generated families: each category of runaway, cycles up to 2,000 tokens ------------------
def cut_case(case: loop_family.Case, seed: int) -> tuple[int | None, str | None]:
    d = LoopDetector()
    feed = d.feed if case.kind == "t" else d.feed_arguments
    for n, piece in case.pieces(seed):
        if feed(piece):
            return n, d.rule
    return None, None


@pytest.mark.parametrize("family", list(loop_family.FAMILIES))
def test_family_is_cut_within_512_tokens_of_its_third_cycle(family):
    """Hypothesis draws the cases (cycle log-uniform from the family's smallest to 2,000 tokens,
    onset 0 or up to 3,000 tokens, the text from the seed); every case must be cut, never in its
    legitimate lead, and 95% of them within 512 tokens of the third cycle's start (issue 20's bar:
    a few cases of a family may land later, so the share is asserted over all the draws)."""
    results = []

    @settings(deadline=None)  # max_examples from the profile (tests/conftest.py)
    @given(st.integers(0, 2**30))
    def check(seed):
        case = loop_family.draw(family, random.Random(seed))
        n, rule = cut_case(case, seed)
        assert n is not None, f"never cut (cycle {case.cycle}, onset {case.onset})"
        assert n > case.onset, f"cut the legitimate lead at {n} of {case.onset} ({rule}, cycle {case.cycle})"
        results.append((n - case.third, case.cycle))

    check()
    late = [(lat, cycle) for lat, cycle in results if lat > loop_family.BOUND]
    assert len(results) - len(late) >= 0.95 * len(results), f"late (latency, cycle): {late} of {len(results)}"


@settings(deadline=None)
@given(module=st.sampled_from(STDLIB_MODULES), start=st.integers(0, 10**6), words=st.integers(12, 1500),
       copies=st.integers(4, 8), seed=st.integers(0, 2**16))
def test_a_write_that_repeats_a_block_is_cut_within_its_third_block(module, start, words, copies, seed):
    source = stdlib_text(module)
    start %= len(source) - 12_000
    block = source[start:start + 6 * words] + "\n"
    lead = source[:start % 3000]
    d = LoopDetector()
    cut = cut_at(d.feed_arguments, as_arguments("/app/out.txt", lead + block * copies), seed)
    before = [len(tokens(as_arguments("/app/out.txt", lead + block * n)[:-2])) for n in (2, 3)]
    if len(block.split()) >= 64 and len(set(block.split())) >= 8:
        # measured: cut by the end of the fourth block; not always within 512 tokens of the third
        # (textwrap's first 1,716 characters x 5: +1,029), a gap docs/README-loop2.md reports
        fourth = len(tokens(as_arguments("/app/out.txt", lead + block * 4)[:-2]))
        assert cut is not None and d.rule.startswith("arguments-")
        assert cut <= fourth, f"cut {cut - before[1]} tokens into the third block"
    if cut is not None:
        assert cut > before[0], "cut before the second block began"


# -- legitimate long text: real sources, streamed in 1-4 token pieces ------------------------------
@pytest.mark.parametrize("module", STDLIB_MODULES[:10])
def test_no_false_positive_on_long_legitimate_source(module):
    """A long file written out in plain text (repetitive code included) is not a loop."""
    source = stdlib_text(module)[:80_000]
    d = LoopDetector()
    cut = cut_at(d.feed, source)
    assert cut is None, f"tripped on {module} at token {cut} by the {d.rule} rule"


@pytest.mark.parametrize("module", STDLIB_MODULES[10:])
def test_no_false_positive_on_a_long_legitimate_write(module):
    d = LoopDetector()
    cut = cut_at(d.feed_arguments, as_arguments(f"/app/{module}.py", stdlib_text(module)[:80_000]))
    assert cut is None, f"tripped on a write of {module} at token {cut}"


def test_text_and_arguments_are_separate_streams():
    """Arguments never count as text: a loop in the text is not hidden or made by a write."""
    block = " ".join(stdlib_text("textwrap")[3000:4200].split(" ")) + "\n"
    d = LoopDetector()
    for piece in tokens(block * 6):
        d.feed_arguments(json.dumps(piece)[1:-1])
    assert d.rule.startswith("arguments-") and d.text.pos == 0


def test_rate_is_high_for_a_loop_and_low_for_prose():
    import inspect
    loop = "Wait, I've tried this. OK, let me try a completely different approach. " * 40
    prose = inspect.getdoc(inspect) + " " + inspect.getsource(inspect.getmembers)
    assert text_repetition(loop) > 0.9
    assert text_repetition(prose) < 0.2


def test_words_split_across_chunks_count_once():
    d = LoopDetector()
    for piece in ["com", "pletely ", "diff", "erent"]:
        d.feed(piece)
    assert d.words == ["completely"] and d.text.run == "different"


def test_json_escapes_split_across_chunks_separate_words():
    d = LoopDetector()
    for piece in ['{"content": "x = 1\\', 'ny = 2\\', "n", " "]:
        d.feed_arguments(piece)
    assert d.args.words == ['{"content":', '"x', "=", "1", "y", "=", "2"]


def test_an_escaped_backslash_is_part_of_a_word_wherever_the_pieces_break():
    """`'\\t\\n'` in a write's JSON is a backslash-t backslash-n string literal, not two escapes: one
    word however the stream is split (a split that moved the words made every seam novel)."""
    args = json.dumps({"content": "ws = '\\t\\n' # x"})
    for cut in range(1, len(args)):
        d = LoopDetector()
        d.feed_arguments(args[:cut])
        d.feed_arguments(args[cut:] + " ")
        assert d.args.words[1:] == ['"ws', "=", "'\0\0t\0\0n'", "#", 'x"}'], cut


def test_python_float_literals_are_values():
    """statistics.py's coefficients (`1.42151_17583_16445_88870e-7) * r +`) are values, new by their
    digits: folded, every one would be the same name and the polynomial would look like a loop."""
    from pytest_tbreplay.policies.loopdetect import is_value
    assert all(is_value(w) for w in ["1.42151_17583_16445_88870e-7)", "(((2.04e-15", "6.6579e+0)", "2j", "1_000"])
    assert not any(is_value(w) for w in ["x2", "v1.2", "test_retry_17", "1.5x"])


def test_memory_stays_bounded_over_a_long_stream():
    d = LoopDetector()
    text = "".join(stdlib_text(m) for m in STDLIB_MODULES[:6])[:150_000]
    cut_at(d.feed, text)
    s = d.text
    assert s.pos > s.p["horizon"] and len(d.words) <= 64
    assert len(s.last1) <= 2 * s.p["horizon"] and len(s.seen) <= 2 * s.p["horizon"]
    assert len(s.sent1) <= 2 * s.p["horizon"] and len(s.sent) <= s.p["sent_max"]


@pytest.mark.parametrize("unit", ["ha", "}", "....", "好", " ha", " }", "\n"])
def test_a_degenerate_run_keeps_memory_bounded(unit):
    """64k tokens of each degenerate kind with every rule that would trip turned off: what is kept
    stays bounded (the tokens/s are measured by tests/benchmarks/test_bench_loopdetect.py)."""
    d = LoopDetector(run_min=10**9, few_chars=0, newlines_max=10**9, space_max=10**12, recur=2.0, run2=10**9,
                     min_run=10**9, sent_recur=2.0)
    for _ in range(16_000):
        assert not d.feed(unit * 4)
    s = d.text
    assert len(s.run) <= 2 * 64_000 * len(unit) and len(s.words) <= 64
    assert len(s.last1) <= 2 * s.p["horizon"] and len(s.seen) <= 2 * s.p["horizon"]
    assert len(s.sent1) <= 2 * s.p["horizon"] and len(s.sent) <= s.p["sent_max"]


def test_a_long_run_without_spaces_keeps_its_tail_only():
    d = LoopDetector(period_max=0, few_chars=0)  # the periodic rules off: the run keeps growing
    for _ in range(20_000):
        d.feed("abcdefghij")
    assert len(d.text.run) <= 2 * d.text.p["run_min"] and d.text.run_len == 200_000


# -- the reference harness feeds tool-call arguments to the detector --------------------------------
def test_reference_harness_cuts_a_tool_call_whose_arguments_repeat():
    block = stdlib_text("textwrap")[2000:3400]
    args = as_arguments("/app/out.py", block * 5)
    events = [json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "write", "arguments": ""}}]}}]})]
    events += [json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": piece}}]}}]}) for piece in tokens(args)]
    ans, calls = Answer(200), {}
    Run._consume(iter(events), LoopDetector(), ans, calls)
    assert ans.cut and ans.finish_reason == "length"
    streamed = len(calls[0]["function"]["arguments"])
    assert len(json.dumps(block * 2)) < streamed < len(json.dumps(block * 3)) + 100  # in its third block


def test_reference_harness_cuts_a_runaway_in_reasoning_text():
    r = runaway(300, 0.2, 400, 0.2, seed=3)
    events = [json.dumps({"choices": [{"index": 0, "delta": {"reasoning_content": piece}}]}) for piece in tokens(r.text)]
    ans = Answer(200)
    Run._consume(iter(events), LoopDetector(), ans, {})
    assert ans.cut and ans.content == ""
    assert r.onset < ans.reasoning_tokens <= r.third + 512


# -- one algorithm: the Python detector and pi's TypeScript port agree on the shared vectors -------
def vectors():
    return json.loads((VECTORS / "loopdetect.json").read_text())


def run_python(params: dict, stream: list) -> dict:
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_loopdetect", VECTORS / "make_loopdetect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run(stream, params)


def test_vectors_are_made_with_the_current_parameters():
    assert vectors()["params"] == json.loads(json.dumps(LoopDetector().params()))


@pytest.mark.parametrize("case", vectors()["cases"], ids=lambda c: c["name"])
def test_python_detector_matches_the_vectors(case):
    assert run_python(vectors()["params"], case["stream"]) == case["expect"]


@pytest.mark.needs("jiti")
def test_typescript_port_matches_the_vectors():
    node = shutil.which("node")
    done = subprocess.run([node, str(JITI), str(VECTORS / "run_loopdetect.ts"), str(VECTORS / "loopdetect.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout)
    expected = [c["expect"] for c in vectors()["cases"]]
    for case, g, e in zip(vectors()["cases"], got, expected):
        assert g == e, case["name"]
    assert len(got) == len(expected)


# -- both harnesses, end to end: a write whose content repeats block after block -------------------
def looping_write_cassette() -> cs.Cassette:
    """A model writes a module whose content is one real block over and over (eight times), then
    says it is done; nudged after a cut, it writes the block once. Built in memory with the
    cassette reconstruction's own builder."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("reconstruct", ROOT / "tools" / "reconstruct.py")
    rc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rc)
    t = rc.Trial("loop-write", "Write /app/wrap.py, a module that wraps text to a width.", seed=11)
    block = stdlib_text("textwrap")[2000:3400]
    with rc.Sandbox(None) as box:  # the writes run for real, in a temp /app: their results are real
        t.turn("I'll write the module.", [rc.write("/app/wrap.py", block * 8)])
        t.run(box)
        t.turn("Done: /app/wrap.py is written.")
        t.say(NUDGE)
        t.turn("Writing it once.", [rc.write("/app/wrap.py", block)], scripted="answer to the nudge",
               match="cut off for looping", max_tokens=16384)
        t.run(box)
    t.turn("Done: /app/wrap.py holds the block once.", scripted="after the nudge: finish")
    meta = {"format": cs.FORMAT, "task": t.task, "trial": "loop-write__reconstructed", "provenance": "reconstructed",
            "server": rc.SERVER, "harness_profile": rc.PROFILE, "instruction": t.instruction, "acceptance": []}
    return cs.Cassette(meta, t.interactions)


@pytest.mark.harnesses
def test_d_baseline_runs_the_looping_write_whole(replay, harness):
    r = replay(looping_write_cassette(), BASELINE, harness)
    assert r.trial.turns[0].stop_reason == "toolUse" and r.trial.turns[0].cut_by is None
    assert r.trial.final_text == "Done: /app/wrap.py is written." and r.trial.nudges == []


# verify-before-done off: it would (rightly) send the unchecked "Done" back, which this cassette
# has no answer for; the loop guard is what is under test.
GUARDED = MITIGATED.replace(verify_before_done=False)


@pytest.mark.harnesses
def test_d_mitigated_cuts_the_looping_write_in_its_third_block(replay, harness):
    r = replay(looping_write_cassette(), GUARDED, harness)
    cut = r.trial.turns[0]
    assert cut.cut_by == "loop_detector" and cut.stop_reason == "length"
    whole = r.engine.cassette.interactions[0].usage["completion_tokens"]
    # 8 blocks recorded; cut once the third is whole (pi aborts asynchronously: a few tokens later)
    assert whole * 2 / 8 < cut.completion_tokens < whole * 3 / 8 + 160
    assert r.trial.nudges == [NUDGE]
    assert r.trial.final_text == "Done: /app/wrap.py holds the block once."
    print(f"arguments rule cut the write at {cut.completion_tokens} of {whole} tokens")


@pytest.mark.harnesses
def test_d_off_the_looping_write_goes_through(replay, harness):
    r = replay(looping_write_cassette(), GUARDED.replace(loop_detector=False), harness)
    assert r.trial.turns[0].cut_by is None and r.trial.final_text == "Done: /app/wrap.py is written."
