"""A session of several user prompts replays every prompt (issue 21 item 5): pi itself makes the
session (RPC mode, two prompts, against the replay server), `tbreplay import` reads it, and both
harnesses replay the import sending each prompt when their run ends, up to a 400 on the second
prompt (an imported overflow session reaching its 400)."""
import json

import pytest

import factory
from pytest_tbreplay.analysis.importer import import_trial
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.core.wire import exceed_body
from pytest_tbreplay.harnesses.pi.adapter import PiHarness
from pytest_tbreplay.harnesses.pi.install import PI_VERSION
from pytest_tbreplay.replay.engine import ReplayEngine
from pytest_tbreplay.replay.server import ReplayServer
from pytest_tbreplay.run import replay_cassette

pytestmark = pytest.mark.needs("pi")
BASELINE = load_profile("baseline")


def two_prompts() -> cs.Cassette:
    """What pi is answered: 'say hi 0' then 'say hi 1'."""
    data = factory.minimal(2)
    data["metadata"]["prompts"] = ["say hi 1"]
    return cs.parse(data, "two-prompts.yaml")


def overflow_on_the_second(c: cs.Cassette) -> None:
    """The second prompt answered by llama-server's context 400 (n_ctx 4096, the prompt said to be
    5000 tokens): an overflow session. (pi itself cannot record one here: both pis retry the 400.)"""
    it = c.interactions[1]
    it.status, it.body, it.chunk_offsets = 400, json.dumps(exceed_body(5000, 4096)), None
    it.headers = {"Content-Type": ["application/json"]}


def pi_session(c: cs.Cassette, tmp_path):
    """pi's own session file of the two prompts, as a Harbor run or `pi` at a terminal keeps it."""
    engine = ReplayEngine(c)
    with ReplayServer(engine) as server:
        PiHarness(BASELINE, version=PI_VERSION, mode="rpc", logs_dir=tmp_path / "agent").run(
            TaskSpec.from_cassette(c), Endpoint(server.url, cassette=c, model="m"))
    engine.check(strict=True)
    return next((tmp_path / "agent").glob("pi/sessions/*.jsonl"))


@pytest.mark.parametrize("second_overflows", [False, True], ids=["two-answers", "overflow-on-the-second"])
def test_an_imported_session_of_two_prompts_replays_both_in_both_harnesses(tmp_path, second_overflows):
    session = pi_session(two_prompts(), tmp_path)
    users = [json.loads(line)["message"]["content"] for line in session.read_text().splitlines()
             if '"role":"user"' in line.replace(" ", "")]
    assert len(users) == 2  # pi's session really holds two prompts
    imported = import_trial(session, n_ctx=4096)
    if second_overflows:
        overflow_on_the_second(imported)
    imported = cs.load(cs.save(imported, tmp_path / "imported.yaml"))
    assert (imported.metadata["instruction"], imported.metadata["prompts"]) == ("say hi 0", ["say hi 1"])
    for harness in ("reference", f"pi@{PI_VERSION}"):
        replayed = replay_cassette(imported, BASELINE, harness)
        assert 1 in replayed.engine.played and len(replayed.served) >= 2  # the second prompt's answer served
        assert replayed.requests[1]["messages"][-1]["content"] in ("say hi 1", [{"type": "text", "text": "say hi 1"}])
        if not second_overflows:
            replayed.engine.check(strict=True)
            assert replayed.trial.outcome == "completed" and len(replayed.trial.turns) == 2
        elif harness == "reference":  # the 400 ends the trial
            replayed.engine.check(strict=True)
            assert [s.status for s in replayed.served] == [200, 400] and replayed.trial.stop_reason == "error"
        else:  # pi reaches the 400, then recovers its own way (a retry the recording does not hold)
            assert replayed.served[1].status == 400
