"""`harbor run --agent-import-path pytest_tbreplay.harbor:MitigatedPi`: pi 0.73.1 with the
`mitigated` profile inside a Harbor task container.

    harbor run -d terminal-bench@2.0 --agent-import-path pytest_tbreplay.harbor:MitigatedPi \\
        --model openai/local --agent-kwarg api_base=http://host.docker.internal:8080

It installs Node (if the container has none >= 20.6) and pi there, writes models.json, settings.json
and the extensions of pytest_tbreplay/pi_extensions/, and runs pi in print mode the way Harbor's own
pi agent does (`--mode json -p`, stdin /dev/null), plus the mitigation extensions and
print_continue.ts, which turns spare `__PI_NEXT__` prompts into the nudges, verify demands and
overflow retries that print mode would otherwise drop. Harbor is imported only when MitigatedPi is.
"""
from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path

from . import pi
from .harness import TaskSpec
from .profiles import Profile, load_profile

ROOT = "/opt/tbreplay-pi"  # everything this agent puts into the container
LOGS = "/logs/agent"  # Harbor collects this folder

INSTALL = f"""\
set -e
need=20.6
have=$(node --version 2>/dev/null | sed 's/^v//' || true)
if [ -z "$have" ] || [ "$(printf '%s\\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  # No Node >= 20.6 in the task image: nvm's Node 22 (what Harbor's own pi agent installs).
  command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl ca-certificates)
  export NVM_DIR={ROOT}/nvm && mkdir -p "$NVM_DIR"
  curl -fsSL https://raw.githubusercontent.com/nvm-sh/nvm/v0.40.3/install.sh | PROFILE=/dev/null bash
  . "$NVM_DIR/nvm.sh" && nvm install 22 >/dev/null
  ln -sf "$(command -v node)" /usr/local/bin/node && ln -sf "$(command -v npm)" /usr/local/bin/npm
fi
npm install --prefix {ROOT} --no-audit --no-fund --loglevel=error {pi.PI_PACKAGE}@{pi.PI_VERSION}
{ROOT}/node_modules/.bin/pi --version
"""

# The server's n_ctx, asked from inside the container (the server may only be reachable from there).
N_CTX = """node -e 'fetch(process.argv[1] + "/props").then(r => r.json()).then(j => console.log(j.default_generation_settings.n_ctx))' """


class MitigatedPiAgent:
    """Everything MitigatedPi does, on any object with Harbor's environment interface
    (`await exec(command, cwd=None, env=None, timeout_sec=None)` -> .stdout/.stderr/.return_code,
    `await upload_file(source_path, target_path)`)."""

    profile_name = "mitigated"

    def __init__(self, model_name: str | None = None, *, api_base: str = "http://host.docker.internal:8080",
                 n_ctx: int | str | None = None, profile: str | None = None):
        # --agent-kwarg values arrive as strings.
        self.model = (model_name or "local").split("/", 1)[-1]  # Harbor passes provider/model
        self.api_base = api_base.rstrip("/").removesuffix("/v1")
        self.n_ctx = int(n_ctx) if n_ctx else None
        self.profile: Profile = load_profile(profile or self.profile_name)

    @staticmethod
    def name() -> str:
        return "tbreplay-mitigated-pi"

    def version(self) -> str:
        return pi.PI_VERSION

    async def setup(self, environment) -> None:
        await self._exec(environment, INSTALL, timeout_sec=900)
        for ext in self.extensions():
            await environment.upload_file(str(pi.EXTENSIONS / ext), f"{ROOT}/ext/{ext}")
        await environment.upload_file(str(pi.EXTENSIONS / "common.ts"), f"{ROOT}/ext/common.ts")

    def extensions(self) -> list[str]:
        return pi.extensions(self.profile, replay=False) + ["print_continue.ts"]

    async def run(self, instruction: str, environment, context=None) -> None:
        n_ctx = self.n_ctx or int((await self._exec(environment, N_CTX + shlex.quote(self.api_base))).stdout.strip())
        base_url = f"{self.api_base}/v1"
        files = self.files(instruction, base_url, n_ctx)
        with tempfile.TemporaryDirectory() as tmp:
            for target, content in files.items():
                local = Path(tmp) / Path(target).name
                local.write_text(content)
                await environment.upload_file(str(local), target)
        await self._exec(environment, self.command(instruction), env=self.env(), timeout_sec=None, check=False)

    def files(self, instruction: str, base_url: str, n_ctx: int) -> dict[str, str]:
        """The files run() writes into the container, by path."""
        p, task = self.profile, TaskSpec("harbor", instruction)  # Harbor does not pass the criteria
        config = pi.extension_config(p, task, base_url, self.model, Path(f"{LOGS}/extensions.jsonl"), None)
        return {
            f"{ROOT}/agent/models.json": json.dumps(pi.models_json(base_url, self.model, p.window(n_ctx), p.max_tokens)),
            f"{ROOT}/agent/settings.json": json.dumps(pi.settings_json(p, self.model)),
            f"{ROOT}/extensions.json": json.dumps(config),
            f"{ROOT}/slim_updates.mjs": pi.SLIM_UPDATES_JS,
        }

    def env(self) -> dict[str, str]:
        return {"PI_CODING_AGENT_DIR": f"{ROOT}/agent", "PI_OFFLINE": "1", "PI_TELEMETRY": "0",
                "PI_SKIP_VERSION_CHECK": "1", "TBREPLAY_PI_CONFIG": f"{ROOT}/extensions.json",
                "NODE_OPTIONS": f"--import {ROOT}/slim_updates.mjs"}

    def command(self, instruction: str) -> str:
        args = [f"{ROOT}/node_modules/.bin/pi", "--mode", "json", "--session-dir", f"{LOGS}/sessions",
                "--provider", pi.PROVIDER, "--model", self.model,
                "--no-context-files", "--no-extensions", "--no-skills", "--no-prompt-templates", "--no-themes"]
        for ext in self.extensions():
            args += ["-e", f"{ROOT}/ext/{ext}"]
        args += pi.print_args(pi.SPARE_PROMPTS)
        # The instruction on stdin (printf is a shell builtin: no option parsing, no @file): see pi.print_args.
        return (f"mkdir -p {LOGS} && printf %s {shlex.quote(instruction)} | {shlex.join(args)} "
                f"> {LOGS}/pi.jsonl 2> {LOGS}/pi.stderr")

    async def _exec(self, environment, command: str, env: dict | None = None, timeout_sec: int | None = 120,
                    check: bool = True):
        result = await environment.exec(command=command, env=env, timeout_sec=timeout_sec)
        if check and result.return_code:
            raise RuntimeError(f"{self.name()}: `{command[:80]}...` exited {result.return_code}: "
                               f"{(result.stderr or result.stdout or '')[-2000:]}")
        return result


def __getattr__(name: str):
    """`MitigatedPi` is built on first access, so importing this module never needs Harbor."""
    if name != "MitigatedPi":
        raise AttributeError(name)
    try:
        from harbor.agents.base import BaseAgent
    except ImportError as e:
        raise ImportError("pytest_tbreplay.harbor:MitigatedPi is a Harbor agent and needs Harbor: "
                          "pip install harbor (Python >= 3.12)") from e

    def __init__(self, logs_dir, model_name=None, *args, api_base="http://host.docker.internal:8080",
                 n_ctx=None, profile=None, **kwargs):
        BaseAgent.__init__(self, logs_dir, model_name, *args, **kwargs)
        MitigatedPiAgent.__init__(self, model_name, api_base=api_base, n_ctx=n_ctx, profile=profile)

    cls = type("MitigatedPi", (MitigatedPiAgent, BaseAgent), {"__module__": __name__, "__init__": __init__})
    globals()["MitigatedPi"] = cls
    return cls
