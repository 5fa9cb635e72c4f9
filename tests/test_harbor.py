"""The Harbor agent, against a fake Harbor environment: the commands it runs and the files it
writes into the task container (Harbor itself is not installed here)."""
import asyncio
import json
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_tbreplay import cassette as cs
from pytest_tbreplay import harbor, pi
from pytest_tbreplay.harness import NUDGE
from pytest_tbreplay.replay import ReplayEngine, ReplayServer

ROOT = Path(__file__).resolve().parent.parent


class FakeEnvironment:
    """Harbor's environment interface, recording instead of running."""

    def __init__(self, props_n_ctx: int = 262144):
        self.execs, self.files, self.n_ctx = [], {}, props_n_ctx

    async def exec(self, command, cwd=None, env=None, timeout_sec=None):
        self.execs.append({"command": command, "env": env, "timeout_sec": timeout_sec})
        stdout = f"{self.n_ctx}\n" if "/props" in command else pi.PI_VERSION
        return SimpleNamespace(stdout=stdout, stderr="", return_code=0)

    async def upload_file(self, source_path, target_path):
        with open(source_path) as f:
            self.files[target_path] = f.read()


def run_agent(instruction="Fix the bug in /app/x.py.", **kwargs):
    env, agent = FakeEnvironment(), harbor.MitigatedPiAgent("openai/qwen3.6-35b-a3b", **kwargs)
    asyncio.run(agent.setup(env))
    asyncio.run(agent.run(instruction, env, context=None))
    return env, agent


def test_setup_installs_node_and_pi_and_uploads_the_extensions():
    env, agent = run_agent()
    install = env.execs[0]["command"]
    assert "nvm install 22" in install and "need=20.6" in install
    assert f"npm install --prefix {harbor.ROOT} " in install and "@mariozechner/pi-coding-agent@0.73.1" in install
    uploaded = {path.rsplit("/", 1)[1] for path in env.files if "/ext/" in path}
    assert uploaded == {"payload.ts", "loop_guard.ts", "length_nudge.ts", "verify.ts", "compaction.ts",
                        "run_compaction.ts", "print_continue.ts", "common.ts", "gate.ts", "summary.ts"}
    assert env.files[f"{harbor.ROOT}/ext/length_nudge.ts"] == (pi.EXTENSIONS / "length_nudge.ts").read_text()


def test_run_writes_the_mitigated_config_from_the_servers_n_ctx():
    env, _ = run_agent(api_base="http://10.0.0.5:8080/v1")
    assert env.execs[1]["command"] == harbor.N_CTX + "http://10.0.0.5:8080"
    models = json.loads(env.files[f"{harbor.ROOT}/agent/models.json"])["providers"]["tbreplay"]
    assert models["baseUrl"] == "http://10.0.0.5:8080/v1"
    assert models["models"] == [{"id": "qwen3.6-35b-a3b", "contextWindow": 262144 - 8192, "maxTokens": 16384,
                                 "reasoning": False}]
    settings = json.loads(env.files[f"{harbor.ROOT}/agent/settings.json"])
    assert settings["defaultProvider"] == "tbreplay" and settings["compaction"]["enabled"] is True
    config = json.loads(env.files[f"{harbor.ROOT}/extensions.json"])
    assert config["nudge"] == NUDGE and config["dry"]["dry_multiplier"] == 0.8
    assert config["task"] == {"instruction": "Fix the bug in /app/x.py.", "acceptance": []}
    assert config["tool_results"] is None  # tools run for real in the container
    assert "JSON.stringify" in env.files[f"{harbor.ROOT}/slim_updates.mjs"]


def test_run_starts_pi_in_print_mode_with_spare_prompts_and_the_instruction_on_stdin():
    env, agent = run_agent(n_ctx="131072")
    assert not any("/props" in e["command"] for e in env.execs)  # n_ctx given: no need to ask
    command = env.execs[-1]["command"]
    assert command.endswith(f"> {harbor.LOGS}/pi.jsonl 2> {harbor.LOGS}/pi.stderr")
    feed, pi_command = command.split(" && ", 1)[1].split(" | ", 1)
    assert feed == "printf %s " + shlex.quote("Fix the bug in /app/x.py.")
    args = shlex.split(pi_command.split(" > ")[0])
    assert args[:3] == [f"{harbor.ROOT}/node_modules/.bin/pi", "--mode", "json"]
    assert args[args.index("-p") + 1] == ""  # see pi.print_args
    assert args[-pi.SPARE_PROMPTS:] == ["__PI_NEXT__"] * pi.SPARE_PROMPTS
    assert [args[i + 1].rsplit("/", 1)[1] for i, a in enumerate(args) if a == "-e"] == agent.extensions()
    assert env.execs[-1]["env"]["PI_CODING_AGENT_DIR"] == f"{harbor.ROOT}/agent"
    assert json.loads(env.files[f"{harbor.ROOT}/agent/models.json"])["providers"]["tbreplay"]["models"][0][
        "contextWindow"] == 131072 - 4096


def test_a_failed_install_says_what_failed():
    class Broken(FakeEnvironment):
        async def exec(self, command, cwd=None, env=None, timeout_sec=None):
            return SimpleNamespace(stdout="", stderr="npm ERR! network", return_code=1)

    with pytest.raises(RuntimeError, match="exited 1: npm ERR! network"):
        asyncio.run(harbor.MitigatedPiAgent().setup(Broken()))


@pytest.mark.skipif(bool(pi.pi_problem()), reason=pi.pi_problem() or "")
def test_the_n_ctx_command_reads_llama_servers_props():
    engine = ReplayEngine(cs.load(ROOT / "tests" / "cassettes" / "sentinel.yaml"))
    with ReplayServer(engine) as server:
        out = subprocess.run(["bash", "-c", harbor.N_CTX + server.url], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "262144"


def test_mitigated_pi_needs_harbor_and_says_so():
    try:
        import harbor as _  # noqa: F401
        pytest.skip("Harbor is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="needs Harbor: pip install harbor"):
        harbor.MitigatedPi  # noqa: B018
