"""`tbreplay import` of what pi 1.x writes, made by really running pi (tests/pi_bare.py: `pi --mode
json -p`, no extensions) against the loopback replay server: the bare `--mode json` output file, its
session file (a `role: system` message first), and that session in Harbor's trial layout. The
engine's record of what pi sent is the truth the import must rebuild."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from factory import interaction, minimal
from pi_bare import run_bare_pi
from pytest_tbreplay.analysis.importer import import_trial
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.harnesses.pi.install import PI_VERSION
from pytest_tbreplay.harnesses.pi.session import read_session
from pytest_tbreplay.replay.engine import ReplayEngine
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.run import replay_cassette
from trialgen import trial_result

pytestmark = pytest.mark.needs("pi")
PROMPTS = ["say hi", "say more"]  # two runs of one session: the second request carries the first answer


def answers(tmp: Path, prompts: list[str]) -> cs.Cassette:
    d = minimal(0)
    d["metadata"]["instruction"] = prompts[0]
    d["interactions"] = [interaction(p, ("Hello", " there", f" {i}.")) for i, p in enumerate(prompts)]
    (tmp / "answers.yaml").write_text(yaml.safe_dump(d))
    return cs.load(tmp / "answers.yaml")


@pytest.fixture(scope="module")
def bare_run(tmp_path_factory):
    """pi 1.x's own files of one run, and what it sent (the replay engine's Served entries)."""
    tmp = tmp_path_factory.mktemp("bare-pi")
    engine = ReplayEngine(answers(tmp, PROMPTS))
    with ReplayServer(engine) as server:
        out, session = run_bare_pi(PI_VERSION, server.url, "m", 4096, PROMPTS, tmp / "home")
    engine.check(strict=True)
    return out, session, engine.served


def _text(it: cs.Interaction) -> str:
    return "".join((ch.get("delta") or {}).get("content") or "" for e in it.events[:-1]
                   for ch in json.loads(e).get("choices") or [])


@pytest.mark.parametrize("which", ["json-output", "session"])
def test_pi_1x_output_imports_as_pi_sent_it(bare_run, which):
    out, session, served = bare_run
    c = import_trial(out if which == "json-output" else session, n_ctx=4096)
    calls = [it for it in c.interactions if not it.scripted]
    assert len(calls) == len(served) == len(PROMPTS)
    for got, sent in zip(calls, served):
        assert got.request["messages"] == sent.request["messages"]  # system prompt included: the session keeps it
        assert got.request["tools"] == sent.request["tools"]
    assert [_text(it) for it in calls] == ["Hello there 0.", "Hello there 1."]
    imp = c.metadata["imported"]
    assert imp["pi_version"] == "1.x" and "system message" in imp["pi_version_source"]
    assert c.metadata["system_prompt"] == served[0].request["messages"][0]["content"]
    assert not any("system prompt" in s for s in imp["synthesized"])
    if which == "json-output":  # the delta-only message_update events are the chunks pi got
        assert not any("chunk boundaries" in s for s in imp["synthesized"])


def test_a_bare_json_output_is_read_as_its_session(bare_run):
    out, session, _ = bare_run
    from_events, from_file = read_session(out), read_session(session)
    assert from_events.from_events and not from_file.from_events
    assert [c.message for c in from_events.calls] == [c.message for c in from_file.calls]
    assert from_events.system_prompt() == from_file.system_prompt()


@pytest.mark.parametrize("where", ["result.json agent_info", "config.json agent kwargs"])
def test_a_harbor_trial_of_pi_1x_imports_with_the_version_harbor_recorded(bare_run, tmp_path, where):
    """Harbor's own pi agent keeps the session under agent/pi/sessions, its version in result.json's
    agent_info, and the version it was asked to install (`--ak version=`) in the trial's config."""
    _, session, served = bare_run
    root = tmp_path / "job" / "hi__Pi1x001"
    (root / "agent" / "pi" / "sessions").mkdir(parents=True)
    shutil.copy(session, root / "agent" / "pi" / "sessions" / session.name)
    result = trial_result("hi", root.name, reward=0.0, agent="harbor-pi", n_ctx=None, profile=None)
    if where == "result.json agent_info":
        result["agent_info"] = {"name": "pi", "version": PI_VERSION}
    else:  # Harbor writes `version() or "unknown"`
        result["agent_info"] = {"name": "pi", "version": "unknown"}
        (root / "config.json").write_text(json.dumps({"agent": {"name": "pi", "kwargs": {"version": PI_VERSION}}}))
    (root / "result.json").write_text(json.dumps(result))
    c = import_trial(root, n_ctx=4096)
    imp = c.metadata["imported"]
    assert imp["layout"] == "harbor-pi" and imp["pi_version"] == PI_VERSION
    assert imp["pi_version_source"] == where
    assert [it.request["messages"] for it in c.interactions] == [s.request["messages"] for s in served]


def test_an_imported_pi_1x_session_replays_strictly_with_pi_1x(tmp_path):
    tmp = tmp_path
    engine = ReplayEngine(answers(tmp, PROMPTS[:1]))
    with ReplayServer(engine) as server:
        _, session = run_bare_pi(PI_VERSION, server.url, "m", 4096, PROMPTS[:1], tmp / "home")
    c = cs.load(cs.save(import_trial(session, n_ctx=4096), tmp / "imported.yaml"))
    r = replay_cassette(c, load_profile("baseline"), f"pi@{PI_VERSION}")
    r.engine.check(strict=True)
    # the conversation as the import rebuilt it (the system prompt names the replay's own folder)
    assert r.requests[0]["messages"][1:] == c.interactions[0].request["messages"][1:]
    assert r.trial.outcome == "completed" and r.trial.final_text.strip() == "Hello there 0."
