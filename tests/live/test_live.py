"""Live mode against a real llama-server (the embedded SmolLM2 on the CPU unless --server-url):
decode rate, a real context overflow, a real length stop, DRY A/B, a record-replay round trip and
a server that dies mid-stream. Run with `pytest --live`."""
import json
import re
import statistics
import time

import httpx
import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.policies.texts import NUDGE
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.harnesses.reference import ReferenceHarness
from pytest_tbreplay.server.llama import LlamaServer
from pytest_tbreplay.core.trial import text_repetition
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.replay.engine import ReplayEngine, ReplayTransport
from pytest_tbreplay.smoke.report import thresholds_for

pytestmark = pytest.mark.live
BASELINE, MITIGATED = load_profile("baseline"), load_profile("mitigated")
COUNT = TaskSpec("count", "Count from 1 to 500, one number per line, and nothing else.")


@pytest.fixture(scope="module")
def small_server(pytestconfig):
    """A second embedded server with a 2048-token context, for a real overflow."""
    if not pytestconfig.option.live:
        pytest.skip("run with --live")
    with LlamaServer(pytestconfig.option.model_path, ctx_size=2048) as server:
        yield server


ESSAY = TaskSpec("essay", "Write a 500-word essay about the history of lighthouses.")


def test_decode_rate_matches_the_server_and_meets_the_floor(live, llama_server, pytestconfig):
    r = live(ESSAY, BASELINE.replace(max_tokens=256, dry={"ignore_eos": True}))  # 256 tokens, whatever the model says
    turn = r.trial.turns[0]
    assert turn.completion_tokens == 256
    print(f"\ndecode: client {turn.decode_tps:.1f} tok/s, server {turn.server_tps:.1f} tok/s")
    assert turn.decode_tps == pytest.approx(turn.server_tps, rel=0.05)
    assert turn.decode_tps >= thresholds_for(pytestconfig.option.model or llama_server.model)["decode_tok_s"]


WORDS = ("worker alpha finished the nightly import and reported no errors while the queue drained "
         "slowly because the upstream mirror was throttled during the maintenance window ").split()


def seeded_history(sizes=(1900, 1900, 1900, 1900, 4400)) -> list[dict]:
    """Earlier turns of a resumed session, log excerpts read with bash: about 2,300 tokens in all,
    more than the 2048-token server holds, while the older turns alone fit a summary request."""
    history = []
    for i, size in enumerate(sizes):
        call = {"id": f"call_{i}", "type": "function",
                "function": {"name": "bash", "arguments": json.dumps({"command": f"sed -n {i * 40},+39p app.log"})}}
        text = " ".join(WORDS[(n * 7 + i) % len(WORDS)] for n in range(size))[:size]
        history += [{"role": "assistant", "content": "", "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": f"call_{i}", "content": text}]
    return history


OVERFLOW = TaskSpec("overflow", "In one sentence: which worker processed the most batches?", ["one sentence"],
                    history=seeded_history())
SMALL = MITIGATED.replace(max_tokens=64, headroom=256, reserve_tokens=320, keep_recent_tokens=200,
                          length_nudge=False)


def test_a_real_overflow_ends_the_baseline_trial(live, small_server):
    r = live(OVERFLOW, BASELINE.replace(max_tokens=64), server=small_server)
    assert r.proxy.interactions[0].status == 400  # the real server's answer
    body = json.loads(r.proxy.interactions[0].body)["error"]
    assert body["type"] == "exceed_context_size_error" and body["n_ctx"] == 2048
    assert r.trial.stop_reason == "error" and "exceeds the available context size (2048 tokens)" in r.trial.error


def test_a_real_overflow_is_compacted_and_the_mitigated_trial_carries_on(live, small_server):
    r = live(OVERFLOW, SMALL, server=small_server)
    assert [c["reason"] for c in r.trial.compactions] == ["threshold"]
    assert all(it.status == 200 for it in r.proxy.interactions)  # no request reached the limit
    assert r.trial.outcome == "completed" and r.trial.turns[-1].stop_reason in ("stop", "length"), \
        (r.trial.error, r.proxy.upstream_failures)
    assert r.trial.turns[-1].prompt_tokens < small_server.n_ctx
    assert OVERFLOW.instruction in json.loads(r.proxy.interactions[-1].request_body)["messages"][1]["content"]


def test_b_a_real_400_is_routed_into_compaction_and_retried(live, small_server):
    r = live(OVERFLOW, SMALL.replace(proactive_compaction=False), server=small_server)
    assert [it.status for it in r.proxy.interactions][:3] == [400, 200, 200]  # 400, summary, retry
    assert [c["reason"] for c in r.trial.compactions] == ["overflow"]
    assert r.trial.outcome == "completed" and r.trial.stop_reason != "error"


# Request fields that make an answer a property of any correct server, not of one continuation:
# no prompt cache (it changed SmolLM2's output between runs: a 7-token stop where 8 was the max),
# a fixed seed, and no end-of-generation token, so a max-tokens stop is certain.
CERTAIN_LENGTH_STOP = {"cache_prompt": False, "seed": 42, "ignore_eos": True}


def test_e_a_real_length_stop_nudges_only_under_mitigated(live, llama_server):
    base = live(COUNT, BASELINE.replace(max_tokens=8, dry=CERTAIN_LENGTH_STOP))
    assert base.trial.stop_reasons == ["length"] and base.trial.nudges == []
    assert base.trial.turns[0].completion_tokens == 8
    mit = live(COUNT, MITIGATED.replace(max_tokens=8, headroom=2048, dry=MITIGATED.dry | CERTAIN_LENGTH_STOP))
    assert mit.trial.turns[0].stop_reason == "length"
    second = json.loads(mit.proxy.interactions[1].request_body)["messages"][-1]
    assert second == {"role": "user", "content": NUDGE}
    assert len(mit.trial.nudges) >= 1


LOOPY = ["I tried this approach and it failed. Let me try a completely different approach.",
         "Wait, I've tried this. OK, let me try a completely different approach.",
         "The build failed again. Let me think about why the build failed."]


def test_i_dry_lowers_repetition_on_the_real_server(llama_server):
    def rate(prompt, dry):
        body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 200,
                "seed": 1, "cache_prompt": False} | dry
        text = httpx.post(f"{llama_server.url}/v1/chat/completions", json=body, timeout=300).json()
        return text_repetition(text["choices"][0]["message"]["content"])

    dry = MITIGATED.dry
    without = statistics.mean(rate(p, {}) for p in LOOPY)
    with_dry = statistics.mean(rate(p, dry) for p in LOOPY)
    print(f"\nrepeated 4-gram rate: without DRY {without:.1%}, with DRY {with_dry:.1%}")
    assert with_dry < without


def test_round_trip_record_then_replay_offline(live, tmp_path):
    # every turn a length stop (ignore_eos), so nudges make it multi-turn whatever the model says
    profile = MITIGATED.replace(max_tokens=8, headroom=2048, dry=MITIGATED.dry | CERTAIN_LENGTH_STOP)
    rec = live(COUNT, profile)
    path = cs.save(rec.cassette, tmp_path / "round-trip.yaml")
    c = cs.load(path)
    assert c.metadata["provenance"] == "recorded" and c.metadata["server"]["n_ctx"] == 8192
    engine = ReplayEngine(c)
    replayed = ReferenceHarness(profile).run(TaskSpec.from_cassette(c), Endpoint(
        "http://replay", ReplayTransport(engine), cassette=c, model=c.metadata["server"]["model"]))
    engine.check(strict=True)
    assert [s.request for s in engine.served] == [it.request for it in rec.proxy.interactions]
    assert (replayed.outcome, replayed.stop_reason, replayed.final_text) == \
        (rec.trial.outcome, rec.trial.stop_reason, rec.trial.final_text)
    strip = lambda m: {k: v for k, v in m.items() if k != "decode_tps"}  # noqa: E731 - replay streams at memory speed
    assert strip(replayed.metrics()) == strip(rec.trial.metrics()) and replayed.metrics()["turns"] >= 2


class KillMidStream(httpx.HTTPTransport):
    """Kills the real server once a few chunks of the answer have reached the harness."""

    def __init__(self, server, after: int = 5):
        super().__init__()
        self.server, self.after = server, after

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.url.path.endswith("/chat/completions"):
            response.stream = _Killing(response.stream, self.server, self.after)
        return response


class _Killing(httpx.SyncByteStream):
    def __init__(self, stream, server, after):
        self.stream, self.server, self.after = stream, server, after

    def __iter__(self):
        for n, chunk in enumerate(self.stream):
            if n == self.after:
                self.server.kill()
                self.server.killed_at = time.monotonic()
            yield chunk

    def close(self):
        self.stream.close()


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "proxy"])
def test_a_server_dying_mid_stream_is_an_infra_error(pytestconfig, through_proxy, tmp_path):
    with LlamaServer(pytestconfig.option.model_path, ctx_size=2048) as server, RecordingProxy(server.url) as proxy:
        url = proxy.url if through_proxy else server.url
        trial = ReferenceHarness(BASELINE.replace(max_tokens=1500)).run(
            COUNT, Endpoint(url, transport=KillMidStream(server), workdir=tmp_path))
    assert time.monotonic() - server.killed_at < 30  # nothing hangs after the kill (a loaded machine too)
    assert trial.outcome == "infra", trial.error
    received = trial.error.split("received so far: ")[1]
    assert re.search(r"mid-response after [1-9]\d* tokens", trial.error) and len(received) > 2  # what did arrive


def test_a_server_that_is_down_is_an_infra_error(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    trial = ReferenceHarness(BASELINE).run(COUNT, Endpoint(f"http://127.0.0.1:{port}", workdir=tmp_path))
    assert trial.outcome == "infra" and "is down" in trial.error and "--server-url" in trial.error
