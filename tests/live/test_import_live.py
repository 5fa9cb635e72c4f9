"""Import fidelity on trials the real pi 0.73.1 wrote against the real embedded llama-server
(`pytest --live`). The recording proxy keeps what really went over the wire; the import, made
only from pi's own files, must rebuild it: the requests (as pi sends them), the response stream
(llama-server's shape; pi.jsonl's deltas are the very chunks), the token counts, and a strict
replay with both harnesses."""
import json
import shutil

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.analysis.importer import import_trial
from pytest_tbreplay.harnesses.pi.adapter import PiHarness
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.run import replay_cassette

pytestmark = pytest.mark.live
# Short turns, so SmolLM2 is cut by max tokens and print_continue.ts nudges it on: several model
# calls, whatever the model says.
PROFILE = load_profile("mitigated-cpu").replace(max_tokens=24, loop_detector=False, verify_before_done=False)
TASK = TaskSpec("haiku", "Write three haiku about lighthouses, then list five facts about tides.")


@pytest.fixture(scope="module")
def real_trial(llama_server, tmp_path_factory):
    """One pi trial in print mode as Harbor runs it, its logs laid out as MitigatedPi's, and the
    traffic the recording proxy saw."""
    root = tmp_path_factory.mktemp("trial") / "haiku__Live001"
    with RecordingProxy(llama_server.url) as proxy:
        ep = Endpoint(proxy.url, workdir=root.parent / "work", model=llama_server.model)
        trial = PiHarness(PROFILE, mode="print", logs_dir=root / "agent").run(TASK, ep)
    wire = [it for it in proxy.interactions if it.uri.endswith("/chat/completions")]
    assert trial.turns and len(wire) >= 2, (trial.error, [it.status for it in wire])
    return root, trial, wire


def _harbor_layout(root, dest):
    """The same trial as Harbor's own pi agent leaves it: pi.txt without message_update lines,
    sessions under agent/pi/sessions."""
    shutil.copytree(root / "agent" / "pi" / "sessions", dest / "agent" / "pi" / "sessions")
    lines = (root / "agent" / "pi.jsonl").read_text().splitlines(keepends=True)
    (dest / "agent" / "pi.txt").write_text("".join(x for x in lines if '"type":"message_update"' not in x))
    return dest


def _shape(event: str):
    """The keys of a chunk, in order, down to the delta."""
    if event == "[DONE]":
        return event
    e = json.loads(event)
    choice = (e.get("choices") or [{}])[0]
    return list(e), list(choice), sorted(choice.get("delta") or {})


@pytest.mark.parametrize("layout", ["mitigated-pi", "harbor-pi"])
def test_an_imported_real_trial_rebuilds_what_went_over_the_wire(real_trial, tmp_path, layout):
    root, trial, wire = real_trial
    if layout == "harbor-pi":
        root = _harbor_layout(root, tmp_path / root.name)
    c = import_trial(root, n_ctx=8192)
    calls = [it for it in c.interactions if not it.scripted]
    assert c.metadata["imported"]["layout"] == layout and len(calls) == len(wire)
    for got, sent in zip(calls, wire):
        # the conversation exactly as pi sent it (the system prompt names the machine's paths:
        # rebuilt from pi's template, it differs only there)
        assert got.request["messages"][1:] == sent.request["messages"][1:]
        assert got.request["messages"][0]["content"].split("\nCurrent date:")[0].split("Pi documentation")[0] == \
            sent.request["messages"][0]["content"].split("\nCurrent date:")[0].split("Pi documentation")[0]
        assert got.usage["prompt_tokens"] == sent.usage["prompt_tokens"]
        assert got.usage["completion_tokens"] == sent.usage["completion_tokens"]
        # the stream in llama-server's own shape: chunk for chunk, where pi.jsonl kept the deltas
        real, rebuilt = [_shape(e) for e in sent.events], [_shape(e) for e in got.events]
        assert rebuilt[0] == real[0] and rebuilt[-3:] == real[-3:]  # role; finish, usage+timings, [DONE]
        assert set(map(str, rebuilt[1:-3])) <= set(map(str, real[1:-3]))
        if layout == "mitigated-pi":
            assert _deltas(got) == _deltas(sent)
        assert json.loads(got.events[-2])["usage"] == json.loads(sent.events[-2])["usage"]


def _deltas(it: cs.Interaction) -> list:
    out = []
    for e in it.events[:-1]:
        for ch in json.loads(e).get("choices") or []:
            d = ch.get("delta") or {}
            out.append((d.get("content"), d.get("reasoning_content"), json.dumps(d.get("tool_calls"))))
    return [x for x in out if any(v not in (None, "null", "") for v in x)]


@pytest.mark.parametrize("which", ["reference", "pi"])
def test_an_imported_real_trial_replays_strictly_under_its_profile(real_trial, tmp_path, which):
    root, trial, wire = real_trial
    c = cs.load(cs.save(import_trial(root, n_ctx=8192), tmp_path / "imported.yaml"))
    r = replay_cassette(c, PROFILE, which)
    r.engine.check(strict=True)  # every interaction played, no mismatch
    assert r.trial.stop_reasons == trial.stop_reasons
    assert [t.completion_tokens for t in r.trial.turns] == [t.completion_tokens for t in trial.turns]
    # prompt tokens: the replay's estimate for what this harness sends (its own system prompt and
    # message framing), moved from the recorded count
    for got, was in zip(r.trial.turns, trial.turns):
        assert got.prompt_tokens == pytest.approx(was.prompt_tokens, rel=0.05)
    assert r.trial.outcome == trial.outcome
