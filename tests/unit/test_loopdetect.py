"""The loop detector (pytest_tbreplay/policies/loopdetect.py and its port harnesses/pi/extensions/lib/loopdetect.ts).

Latency and the false-positive count on the full corpus are measured by
tests/benchmarks/loop_bench.py; here: the recorded runaway, a generated family drawn by
hypothesis, the stdlib as legitimate text, and the shared vectors for both implementations."""
import json
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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
FAMILY = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])


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
    assert cut - loop_start <= 2048, f"let {cut - loop_start} tokens through after the loop began"
    assert d.rule == "pool" and d.rate >= 0.6


# -- the generated family: a cycle of 10 to 2,000 tokens, up to 30% of its words changed ---------
@FAMILY
@given(cycle=st.integers(10, 2000), variation=st.floats(0, 0.3), onset=st.integers(0, 3000),
       code_share=st.floats(0, 0.5), seed=st.integers(0, 2**16))
@example(cycle=1350, variation=0.25, onset=0, code_share=0.0, seed=250)  # a burst of changed words (x_drop)
def test_cuts_a_cycle_by_512_tokens_into_its_third_round(cycle, variation, onset, code_share, seed):
    r = runaway(cycle, variation, onset, code_share, seed)
    d = LoopDetector()
    cut = cut_at(d.feed, r.text, seed)
    assert cut is not None, "never cut"
    assert cut > r.onset, f"cut the legitimate lead at token {cut} of {r.onset}"
    assert cut <= r.third + 512, f"cut {cut - r.third} tokens into the third cycle (rule {d.rule})"


@FAMILY
@given(variation=st.sampled_from([0.1, 0.2, 0.3]), onset=st.integers(0, 1500), seed=st.integers(0, 2**16))
def test_the_old_window_missed_a_paragraph_cycle_the_new_detector_cuts(variation, onset, seed):
    """Issue 10's case: a paragraph of about a hundred words that comes back with small changes."""
    r = runaway(150, variation, onset, 0.0, seed)
    old = LoopDetector(window=240, threshold=0.6, pool_prose=0)
    old.period.r = old.period.r.__class__(margin=10**9)  # the pool rule alone: the detector before
    assert cut_at(old.feed, r.text[:len("".join(tokens(r.text)[:r.third + 512]))], seed) is None
    assert r.onset < cut_at(LoopDetector().feed, r.text, seed) <= r.third + 512


@FAMILY
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
        assert cut is not None and d.rule == "arguments"
        assert cut <= before[1] + 16, f"cut {cut - before[1]} tokens after the third block ended"
    if cut is not None:
        assert cut > before[0], "cut before the third block began"


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
    assert d.rule == "arguments" and d.period.base + len(d.period.raw) == 0


def test_rate_is_high_for_a_loop_and_low_for_prose():
    import inspect
    loop = "Wait, I've tried this. OK, let me try a completely different approach. " * 40
    prose = inspect.getdoc(inspect) + " " + inspect.getsource(inspect.getmembers)
    assert text_repetition(loop) > 0.9
    assert text_repetition(prose) < 0.2


def test_words_split_across_chunks_count_once():
    d = LoopDetector(window=8, every=1, threshold=1.1)
    for piece in ["com", "pletely ", "diff", "erent"]:
        d.feed(piece)
    assert d.words == ["completely"] and d._partial == "different"


def test_json_escapes_split_across_chunks_separate_words():
    d = LoopDetector()
    for piece in ['{"content": "x = 1\\', 'ny = 2\\', "n"]:
        d.feed_arguments(piece)
    assert d.args_period.raw == ['{"content":', '"x', "=", "1", "y", "=", "2"]


def test_memory_stays_bounded_over_a_long_stream():
    d = LoopDetector()
    text = "".join(stdlib_text(m) for m in STDLIB_MODULES[:6])[:150_000]
    cut_at(d.feed, text)
    p = d.period
    assert len(p.raw) <= 2 * p.r.max_lag and len(p.last) <= 2 * p.r.max_lag and len(p.seen) <= 2 * p.r.max_lag
    assert p.base > 0 and len(d.words) <= 2 * d.window


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
    return module.run(stream)


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
