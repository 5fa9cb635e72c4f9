"""Profiles that fit any server (issue 10 item 2): `auto` sizes from n_ctx per slot, max tokens
counted once, one clear refusal before a trial starts, compaction that never drops the task."""
from pathlib import Path
import pytest
from hypothesis import given, strategies as st

from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.harnesses.reference import ReferenceHarness, Run
from pytest_tbreplay.core.profiles import BASE_PROMPT, ProfileError, load_profile
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayTransport
from pytest_tbreplay.replay.tools import parse_partial_json

MITIGATED, BASELINE = load_profile("mitigated"), load_profile("baseline")

SHAPES = Path(__file__).resolve().parents[2] / "cassettes" / "shapes"


@given(st.integers(8192, 262144))
def test_mitigated_fits_every_server_from_8k_to_256k(n_ctx):
    b = MITIGATED.budget(n_ctx)
    assert b.window <= n_ctx and b.window == n_ctx - b.headroom
    assert b.prompt_limit == b.window - b.max_tokens  # max tokens counted once, on top of the request
    assert b.headroom < b.max_tokens <= 16384 and b.reserve_tokens == b.max_tokens
    # a compacted conversation plus a full turn fits, with room left for work
    assert BASE_PROMPT + b.summary_tokens + b.keep_recent_tokens + b.max_tokens <= b.window


def test_auto_at_262144_is_the_analysis_numbers():
    b = MITIGATED.budget(262144)
    assert (b.window, b.max_tokens, b.prompt_limit, b.keep_recent_tokens) == (253952, 16384, 237568, 20000)


@pytest.mark.parametrize("n_ctx, window, max_tokens", [(8192, 7936, 1024), (32768, 31744, 4096),
                                                       (65536, 63488, 8192), (131072, 126976, 16384)])
def test_auto_scales_with_the_server(n_ctx, window, max_tokens):
    b = MITIGATED.budget(n_ctx)
    assert (b.window, b.max_tokens) == (window, max_tokens)


def test_mitigated_cpu_is_an_alias():
    cpu = load_profile("mitigated-cpu")
    assert cpu.name == "mitigated-cpu" and cpu.budget(8192) == MITIGATED.budget(8192)


@pytest.mark.parametrize("profile, n_ctx, message", [
    (MITIGATED, 1024, "profile mitigated does not fit a server with n_ctx 1024 per slot: a compacted conversation "
                      r"needs \d+ tokens .* but the window is 768"),
    (MITIGATED.replace(context_window=131072, headroom=0), 32768,
     "context window 131072 is larger than the server's"),
    (MITIGATED.replace(max_tokens=16384), 8192, r"max_tokens 16384\) but the window is 7936"),
    (MITIGATED, None, "are auto but the server's n_ctx is unknown"),
])
def test_a_profile_that_cannot_fit_is_refused_with_one_clear_error(profile, n_ctx, message):
    with pytest.raises(ProfileError, match=message):
        profile.budget(n_ctx)


def test_baseline_is_never_refused_it_reproduces_the_recorded_harness():
    assert BASELINE.budget(8192).window == 131072 and BASELINE.budget(8192).max_tokens == 32000


def test_the_harness_refuses_before_any_chat_request(load_cassette):
    c = load_cassette(SHAPES / "overflow-32k.yaml")
    engine = ReplayEngine(c)
    misfit = MITIGATED.replace(context_window=131072, headroom=0)
    with pytest.raises(ProfileError, match="n_ctx 32768"):
        ReferenceHarness(misfit).run(TaskSpec.from_cassette(c), Endpoint("http://replay", ReplayTransport(engine), cassette=c))
    assert engine.served == []


def test_the_pi_harness_refuses_before_pi_starts(load_cassette, monkeypatch):
    from pytest_tbreplay.harnesses import pi as pi
    from pytest_tbreplay.replay.server import ReplayServer
    c = load_cassette(SHAPES / "overflow-32k.yaml")
    monkeypatch.setattr(pi.adapter, "pi_problem", lambda version: None)  # refused before pi would be needed
    started = []
    monkeypatch.setattr(pi.pool.subprocess, "Popen", lambda *a, **k: started.append(a))
    with ReplayServer(ReplayEngine(c)) as server, pytest.raises(ProfileError, match="n_ctx 32768"):
        pi.PiHarness(MITIGATED.replace(context_window=131072, headroom=0)).run(
            TaskSpec.from_cassette(c), Endpoint(server.url, cassette=c))
    assert started == []


def test_compaction_before_the_first_answer_keeps_the_task(load_cassette):
    c = load_cassette(SHAPES / "overflow-8k.yaml")
    run = Run(MITIGATED, TaskSpec.from_cassette(c), Endpoint("http://replay", ReplayTransport(ReplayEngine(c)), cassette=c))
    run.budget = MITIGATED.budget(8192)
    run.messages = [{"role": "system", "content": "s"}, {"role": "user", "content": c.metadata["instruction"]}]
    assert run.compact("threshold") is False  # nothing to summarize: the instruction stays as it is
    assert run.messages[1]["content"] == c.metadata["instruction"] and run.trial.compactions == []


@pytest.mark.parametrize("text, message", [
    ("name: x\ncontext_window: 1000\nmax_tokens: 10\nloop_detector: 'off'\n", "loop_detector must be bool, found 'off'"),
    ("name: x\ncontext_window: 1000\nmax_tokens: 10\ndry: true\n", "dry must be dict or None, found True"),
    ("name: x\ncontext_window: big\nmax_tokens: 10\n", "context_window must be a number of tokens or auto, found 'big'"),
])
def test_profile_fields_are_type_checked(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


@given(st.dictionaries(st.sampled_from(["path", "content", "command"]), st.text(max_size=40), min_size=1),
       st.data())
def test_partial_arguments_parse_as_a_prefix_of_the_whole(args, data):
    import json
    raw = json.dumps(args)
    cut = data.draw(st.integers(0, len(raw)))
    parsed = parse_partial_json(raw[:cut])
    assert isinstance(parsed, dict)
    for k, v in parsed.items():  # every value is the start of the whole one
        assert k in args and args[k].startswith(v), (raw[:cut], parsed)
