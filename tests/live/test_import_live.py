"""Import fidelity on trials the real pi wrote against the real embedded llama-server
(`pytest --live`), once with the pi the recorded trials were made with (0.73.1) and once with the
current pin (1.x). The recording proxy keeps what really went over the wire; the import, made
only from pi's own files, must rebuild it: the requests (as pi sends them; pi 1.x keeps its system
prompt and tools in the session, so those too), the response stream (llama-server's shape;
pi.jsonl's deltas are the very chunks), the token counts, and a strict replay with both harnesses
(pi at the version that made the trial). The recording itself replays strictly with that pi too."""
import json
import shutil

import pytest

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.analysis.importer import import_trial
from pytest_tbreplay.harnesses.pi.adapter import PiHarness
from pytest_tbreplay.harnesses.pi.install import PI_VERSION, RECORDED_PI, pi_problem
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.run import recording_metadata, replay_cassette

pytestmark = pytest.mark.live
# Short turns, so SmolLM2 is cut by max tokens and print_continue.ts nudges it on: several model
# calls, whatever the model says.
PROFILE = load_profile("mitigated-cpu").replace(max_tokens=12, loop_detector=False, verify_before_done=False)
TASK = TaskSpec("haiku", "Write three haiku about lighthouses, then list five facts about tides.")


@pytest.fixture(scope="module", params=[RECORDED_PI, PI_VERSION])
def real_trial(request, llama_server, tmp_path_factory):
    """One pi trial in print mode as Harbor runs it, its logs laid out as MitigatedPi's, the
    traffic the recording proxy saw, the cassette it recorded, and pi's version."""
    version = request.param
    if problem := pi_problem(version):
        pytest.skip(problem)
    root = tmp_path_factory.mktemp(f"trial-{version}") / "haiku__Live001"
    with RecordingProxy(llama_server.url) as proxy:
        ep = Endpoint(proxy.url, workdir=root.parent / "work", model=llama_server.model)
        trial = PiHarness(PROFILE, version=version, mode="print", logs_dir=root / "agent").run(TASK, ep)
    wire = [it for it in proxy.interactions if it.uri.endswith("/chat/completions")]
    assert trial.turns and len(wire) >= 2, (trial.error, [it.status for it in wire])
    recorded = proxy.cassette(recording_metadata(TASK, trial, PROFILE, f"pi@{version}", llama_server,
                                                 llama_server.model))
    return root, trial, wire, recorded, version


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
    root, trial, wire, _, version = real_trial
    if layout == "harbor-pi":
        root = _harbor_layout(root, tmp_path / root.name)
    c = import_trial(root, n_ctx=8192)
    calls = [it for it in c.interactions if not it.scripted]
    assert c.metadata["imported"]["layout"] == layout and len(calls) == len(wire)
    pi1 = version != RECORDED_PI
    assert c.metadata["imported"]["pi_version"] == ("1.x" if pi1 else RECORDED_PI)
    for got, sent in zip(calls, wire):
        assert got.request["messages"][1:] == sent.request["messages"][1:]  # the conversation as pi sent it
        if pi1:  # the session keeps the system prompt and the tools pi sent
            assert got.request["messages"][0] == sent.request["messages"][0]
            assert got.request["tools"] == sent.request["tools"]
        else:  # rebuilt from pi 0.73.1's template, it differs where it names the machine's paths
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
    root, trial, wire, _, version = real_trial
    c = cs.load(cs.save(import_trial(root, n_ctx=8192), tmp_path / "imported.yaml"))
    r = replay_cassette(c, PROFILE, which if which == "reference" else f"pi@{version}")
    r.engine.check(strict=True)  # every interaction played, no mismatch
    assert r.trial.stop_reasons == trial.stop_reasons
    assert [t.completion_tokens for t in r.trial.turns] == [t.completion_tokens for t in trial.turns]
    # prompt tokens: the replay's estimate for what this harness sends (its own system prompt and
    # message framing), moved from the recorded count
    for got, was in zip(r.trial.turns, trial.turns):
        assert got.prompt_tokens == pytest.approx(was.prompt_tokens, rel=0.05)
    assert r.trial.outcome == trial.outcome


def test_the_recorded_real_trial_replays_strictly_with_the_pi_that_made_it(real_trial, tmp_path):
    _, trial, wire, recorded, version = real_trial
    c = cs.load(cs.save(recorded, tmp_path / "recorded.yaml"))
    r = replay_cassette(c, PROFILE, f"pi@{version}")
    r.engine.check(strict=True)
    assert [s.request for s in r.served][0]["messages"][1:] == wire[0].request["messages"][1:]
    assert r.trial.stop_reasons == trial.stop_reasons and r.trial.outcome == trial.outcome
