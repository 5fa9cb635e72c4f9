"""pi run as a user runs it: `pi --mode json -p PROMPT...` (no extensions, nothing preloaded), its
stdout kept as the file a user would hand to `tbreplay import`, its session in a folder of its own.
Used against the loopback replay server, on answers without tool calls (pi executes tools)."""
import json
import os
import subprocess
from pathlib import Path

from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.harnesses.pi.install import pi_binary, pi_env
from pytest_tbreplay.harnesses.pi.launch import PROVIDER, models_json, settings_json


def run_bare_pi(version: str, url: str, model: str, n_ctx: int, prompts: list[str], home: Path) -> tuple[Path, Path]:
    """(the `--mode json` output file, the session file) of one pi run."""
    profile = load_profile("baseline")
    budget = profile.budget(n_ctx)
    agent, sessions, work = home / "agent", home / "sessions", home / "work"
    for d in (agent, sessions, work):
        d.mkdir(parents=True, exist_ok=True)
    (agent / "models.json").write_text(json.dumps(models_json(f"{url}/v1", model, budget.window, budget.max_tokens)))
    (agent / "settings.json").write_text(json.dumps(settings_json(profile, model, budget)))
    out = home / "pi-json-output.jsonl"
    env = dict(pi_env(version, dict(os.environ)), PI_CODING_AGENT_DIR=str(agent), PI_OFFLINE="1",
               PI_TELEMETRY="0", PI_SKIP_VERSION_CHECK="1")
    args = [str(pi_binary(version)), "--mode", "json", "--provider", PROVIDER, "--model", model,
            "--session-dir", str(sessions), "--no-context-files", "--no-extensions", "--no-skills",
            "--no-prompt-templates", "--no-themes", "-p", *prompts]
    with open(out, "wb") as stdout:
        done = subprocess.run(args, cwd=work, env=env, stdout=stdout, stderr=subprocess.PIPE, timeout=120,
                              stdin=subprocess.DEVNULL)
    [session] = sorted(sessions.glob("*.jsonl")) or [None]
    assert session is not None, f"pi wrote no session (exit {done.returncode}): {done.stderr.decode()[-2000:]}"
    return out, session
