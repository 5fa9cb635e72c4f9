"""pi gets the instruction as it is (d17): on the command line pi 0.73.1 read an instruction starting
with `-` as an option and one starting with `@` as a file to include. Runs the real pi."""
import shlex
import subprocess

import pytest

from factory import minimal
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.harnesses import pi as pi
from pytest_tbreplay.harbor.agent import MitigatedPiAgent
from pytest_tbreplay.core.trial import Endpoint, TaskSpec
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.replay.engine import ReplayEngine
from pytest_tbreplay.replay.server import ReplayServer

needs_node = pytest.mark.needs("pi")
TRICKY = ["- do X first", "--version", "-p", "@/etc/hostname", "@nonexistent-file", "--- a yaml fence"]


def cassette_for(instruction: str) -> cs.Cassette:
    data = minimal(1)
    data["metadata"]["instruction"] = instruction
    body = cs.json.loads(data["interactions"][0]["request"]["body"])
    body["messages"][-1]["content"] = instruction
    data["interactions"][0]["request"]["body"] = cs.json.dumps(body)
    return cs.parse(data, f"instruction {instruction!r}")


@needs_node
@pytest.mark.parametrize("instruction", TRICKY)
def test_pi_sends_an_instruction_that_looks_like_an_option_or_a_file_verbatim(instruction, tmp_path):
    c = cassette_for(instruction)
    engine = ReplayEngine(c)
    with ReplayServer(engine) as server:
        trial = pi.PiHarness(load_profile("baseline")).run(TaskSpec.from_cassette(c),
                                                          Endpoint(server.url, cassette=c, workdir=tmp_path))
    engine.check(strict=True)  # pi's one request ended in exactly the instruction
    assert trial.outcome == "completed", trial.error
    first_user = [m for m in engine.served[0].request["messages"] if m["role"] == "user"][0]
    assert pi_text(first_user) == instruction


def pi_text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


@pytest.mark.parametrize("instruction", TRICKY + ["it's \"quoted\" $HOME `x` \\ \n next line"])
def test_the_harbor_command_pipes_the_instruction_through_the_shell_unchanged(instruction):
    # The command Harbor's environment.exec runs: the shell's printf must hand pi the exact text.
    line = MitigatedPiAgent("m").command(instruction)
    pipe = line.split(" && ", 1)[1].split(" | ", 1)[0]
    assert subprocess.run(["bash", "-c", pipe], capture_output=True, text=True).stdout == instruction
    assert shlex.quote(instruction) in line and " -p '' " in line
