"""`harbor run -a pytest_tbreplay.harbor:MitigatedPi`: pi (the current pin, or `--ak pi_version=X.Y.Z`)
with a tbreplay profile inside a Harbor task container (Harbor 0.26).

    harbor run -d terminal-bench@2.0 -i regex-log -a pytest_tbreplay.harbor:MitigatedPi \\
        -m openai/MODEL --ak api_base=http://host.docker.internal:8080 [--ak n_ctx=N] \\
        [--ak profile=mitigated] -n 1 -k 1 -o jobs -y -q

Options (`--ak key=value`, checked by a pydantic model with extra keys forbidden, so a mistyped key
is an error; `harbor agent schema pytest_tbreplay.harbor:MitigatedPi` prints them): `api_base` (the
server as the container reaches it; `--base-url` is not accepted), `n_ctx` (skip asking the server),
`profile` (a shipped profile name, or a YAML file on the machine running Harbor; default
`mitigated`), `pi_version` (default the current pin; 0.73.1 is the pi of the recorded trials).

setup() installs Node (only if the image has none new enough for that pi: >= 22.19 from pi 0.75,
>= 20.6 before; nvm's Node 22, as Harbor's own pi agent does) and pi (`@earendil-works` from 0.74,
`@mariozechner` before) under /opt/tbreplay-pi, and uploads the extensions of pytest_tbreplay/harnesses/pi/extensions/.
run() asks the server for its per-slot n_ctx (`default_generation_settings.n_ctx` of `/props`;
behind llama-swap `/props?model=M`, else `/upstream/M/props`, else bare `/props`), refuses a profile
whose window does not fit it before pi starts (Harbor's UnsupportedModelParametersError: not
retried, no valid reward), writes models.json, settings.json and the extension config, and runs pi
in print mode the way Harbor's own pi agent does (`--mode json -p`, stdin /dev/null) plus the
mitigation extensions and print_continue.ts, which turns spare `__PI_NEXT__` prompts into the
nudges, verify demands and overflow retries that print mode would otherwise drop. pi >= 1.2's exit 1
after an answer cut by the output-token limit is the trial's outcome (graded), not a crash; any other non-zero exit
of pi raises Harbor's NonZeroAgentExitCodeError with the tail of pi's stderr; so does a session that
ends on a failed request (pi exits 0 then), and one that ends on the server's context 400 raises
ContextWindowExceededError naming both sizes (both graded as a failure). After the run,
Harbor's own pi converter turns the session into agent/trajectory.json (ATIF) and fills the token
counts of result.json.

What the trial folder's agent/ holds (= /logs/agent in the container; `tbreplay import` reads it):
    pi.jsonl                 pi's print-mode JSON events; message_update slimmed to
                             {"type","assistantMessageEvent":{"type","contentIndex","delta"}}:
                             one line per streamed delta, in order
    pi.stderr                pi's stderr
    pi/sessions/*.jsonl      pi's session file (where Harbor's own pi agent keeps it)
    extensions.jsonl         the extensions' decisions (nudges, compactions, ...), one JSON a line
    trajectory.json          ATIF, written by Harbor's pi converter after the run
    tbreplay.json            the manifest, written before pi starts, keys:
        format (1), agent, pi_version, model, api_base, base_url (what pi calls, api_base + /v1),
        profile (the full Profile as a dict), n_ctx (per slot), n_ctx_source ("agent kwarg n_ctx"
        or the URL it came from), window (the contextWindow pi was given),
        props (the server's /props JSON, or null when n_ctx was given and /props was unreachable),
        props_url, models_json, settings_json, extension_config (TBREPLAY_PI_CONFIG's content),
        extensions (the -e files in load order), argv (pi's command line; the instruction goes to its stdin)
    tbreplay-request.json    the first chat request pi sent, as it went out (after every extension),
                             with `messages` cut to its leading system message(s): the system prompt,
                             tools, max_completion_tokens, sampling and DRY fields, stream and
                             stream_options (written by extensions/manifest.ts)
Harbor's built-in pi agent writes pi.txt (stdout without message_update lines), pi/sessions/,
trajectory.json and setup/ instead: no manifest and no request.

Harbor is imported only when MitigatedPi is.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import tempfile
from pathlib import Path, PurePosixPath

from pytest_tbreplay.core.profiles import (
    BASE_PROMPT,
    Budget,
    Profile,
    ProfileError,
    load_profile,
)
from pytest_tbreplay.core.trial import TaskSpec
from pytest_tbreplay.core.wire import OVERFLOW_TEXT
from pytest_tbreplay.harnesses import pi as pi

ROOT = "/opt/tbreplay-pi"  # everything this agent puts into the container
LOGS = "/logs/agent"  # Harbor collects this folder
SESSIONS = f"{LOGS}/pi/sessions"  # where Harbor's own pi agent keeps them: its converter reads them
MANIFEST = f"{LOGS}/tbreplay.json"
REQUEST_MANIFEST = f"{LOGS}/tbreplay-request.json"
# Harbor's default is 360 s; nvm + Node 22 + npm install of pi on a slow image can take longer.
SETUP_TIMEOUT_SEC = 900.0
DEFAULT_API_BASE = "http://host.docker.internal:8080"

def install_script(version: str) -> str:
    """The setup script for pi `version`: its npm package (the scope changed at 0.74.0) and the Node
    it needs (>= 22.19 from 0.75.0, else >= 20.6; pi.release()). A task image without that Node
    gets nvm's Node 22, as Harbor's own pi agent installs it."""
    r = pi.release(version)
    need = ".".join(map(str, r.node_min))
    return f"""\
set -e
need={need}
have=$(node --version 2>/dev/null | sed 's/^v//' || true)
if [ -z "$have" ] || [ "$(printf '%s\\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
  # No Node >= {need} in the task image: nvm's Node 22 (what Harbor's own pi agent installs).
  command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl ca-certificates)
  export NVM_DIR={ROOT}/nvm && mkdir -p "$NVM_DIR"
  curl -fsSL https://raw.githubusercontent.com/nvm-sh/nvm/v0.40.3/install.sh | PROFILE=/dev/null bash
  . "$NVM_DIR/nvm.sh" && nvm install 22 >/dev/null
  ln -sf "$(command -v node)" /usr/local/bin/node && ln -sf "$(command -v npm)" /usr/local/bin/npm
fi
npm install --prefix {ROOT} --no-audit --no-fund --loglevel=error {r.spec}
{ROOT}/node_modules/.bin/pi --version
"""


# The server's /props, asked from inside the container (the server may only be reachable from
# there). llama-swap answers /props only with ?model= (or under /upstream/M/); a plain
# llama-server ignores the query. Prints {"url", "props"}; exits 1 listing what each URL said.
PROPS = r"""node -e '
const [base, model] = process.argv.slice(1), m = encodeURIComponent(model), errors = [];
(async () => {
  for (const url of [`${base}/props?model=${m}`, `${base}/upstream/${m}/props`, `${base}/props`]) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(30000) });
      const text = await r.text();
      if (!r.ok) { errors.push(`${url}: HTTP ${r.status} ${text.slice(0, 200)}`); continue; }
      const props = JSON.parse(text);
      if (!(props?.default_generation_settings?.n_ctx > 0)) { errors.push(`${url}: no default_generation_settings.n_ctx`); continue; }
      console.log(JSON.stringify({ url, props }));
      return;
    } catch (e) { errors.push(`${url}: ${e.cause?.message ?? e.message}`); }
  }
  console.error(errors.join("\n"));
  process.exit(1);
})();' """


class PiExitError(RuntimeError):
    """pi exited non-zero or never reached the model (Harbor's NonZeroAgentExitCodeError in MitigatedPi)."""




def ends_on_length_stop(entries: list[dict]) -> bool:
    """Whether pi's session (its last entries) ends on an answer the output-token limit cut: pi
    >= 1.2.0 exits 1 after such an answer in print mode (warning on stderr). That is the trial's
    outcome, graded like any other, not an agent crash."""
    m = next((e.get("message") for e in reversed(entries) if e.get("type") == "message"), None) or {}
    return m.get("role") == "assistant" and m.get("stopReason") == "length"


class MitigatedPiAgent:
    """Everything MitigatedPi does, on any object with Harbor's environment interface
    (`await exec(command, cwd=None, env=None, timeout_sec=None)` -> .stdout/.stderr/.return_code,
    `await upload_file(source_path, target_path)`)."""

    profile_name = "mitigated"
    exit_error: type[Exception] = PiExitError  # MitigatedPi: Harbor's types, graded by its policy
    overflow_error: type[Exception] = PiExitError
    refusal_error: type[Exception] = ProfileError

    def __init__(self, model_name: str | None = None, *, api_base: str = DEFAULT_API_BASE,
                 n_ctx: int | str | None = None, profile: str | None = None, pi_version: str | None = None):
        self.model = (model_name or "local").split("/", 1)[-1]  # Harbor passes provider/model
        self.pi_version = pi.release(pi_version or pi.PI_VERSION).version  # ValueError for a malformed one
        self.api_base = api_base.rstrip("/").removesuffix("/v1")
        self.n_ctx = int(n_ctx) if n_ctx else None
        self.profile: Profile = load_profile(profile or self.profile_name)
        if self.n_ctx:
            self.fit(self.n_ctx)  # refuse a given n_ctx before any trial starts

    @staticmethod
    def name() -> str:
        return "tbreplay-mitigated-pi"

    def version(self) -> str:
        return self.pi_version

    async def setup(self, environment) -> None:
        await self._exec(environment, f"mkdir -p {ROOT}/ext {ROOT}/ext/lib {ROOT}/agent {SESSIONS}")
        await self._exec(environment, install_script(self.pi_version), timeout_sec=int(SETUP_TIMEOUT_SEC))
        for path in sorted(pi.EXTENSIONS.rglob("*.ts")):  # the extensions and the modules they import (lib/)
            await environment.upload_file(str(path), f"{ROOT}/ext/{path.relative_to(pi.EXTENSIONS).as_posix()}")

    def extensions(self) -> list[str]:
        # print mode, continued by print_continue.ts, with manifest.ts: the order is launch.extension_files'
        return pi.extension_files(self.profile, self.pi_version, replay=False, print_continue=True, manifest=True)

    def fit(self, n_ctx: int) -> Budget:
        """The profile's sizes for this n_ctx; refuses a profile that cannot fit the server."""
        try:
            budget = self.profile.budget(n_ctx)
            if budget.prompt_limit < BASE_PROMPT:
                raise ProfileError(f"profile {self.profile.name}: window {budget.window} for the server's per-slot "
                                   f"n_ctx {n_ctx} cannot hold pi's base prompt beside one turn of max_tokens "
                                   f"{budget.max_tokens}")
        except ProfileError as e:
            raise self.refusal_error(f"{e}. Pick a profile that fits this server (`mitigated` sizes itself from "
                                     f"n_ctx) or start the server with a larger -c.") from None
        return budget

    async def server_props(self, environment) -> tuple[dict | None, str | None, str]:
        """(props, url, errors): the server's /props as the container sees it."""
        r = await self._exec(environment, PROPS + shlex.join([self.api_base, self.model]), timeout_sec=120,
                             check=False)
        if r.return_code:
            return None, None, (r.stderr or r.stdout or "").strip()
        found = json.loads(r.stdout.strip().splitlines()[-1])
        return found["props"], found["url"], ""

    async def run(self, instruction: str, environment, context=None) -> None:
        props, url, errors = await self.server_props(environment)
        if self.n_ctx is None and props is None:
            raise self.exit_error(f"{self.name()}: cannot read the server's n_ctx from {self.api_base} "
                                  f"(give --ak n_ctx=N, or check --ak api_base):\n{errors}")
        n_ctx = self.n_ctx or props["default_generation_settings"]["n_ctx"]
        budget = self.fit(n_ctx)
        window = budget.window
        files = self.files(instruction, f"{self.api_base}/v1", budget)
        files[MANIFEST] = json.dumps(self.manifest(instruction, n_ctx, budget, props, url, files), indent=1)
        await self._exec(environment, "mkdir -p " + shlex.join(sorted({str(PurePosixPath(t).parent) for t in files})))
        with tempfile.TemporaryDirectory() as tmp:
            for i, (target, content) in enumerate(files.items()):
                local = Path(tmp) / f"{i}-{PurePosixPath(target).name}"
                local.write_text(content)
                await environment.upload_file(str(local), target)
        done = await self._exec(environment, self.command(instruction), env=self.env(), timeout_sec=None, check=False)
        last = await self._exec(environment, f'tail -n 4 "$(ls -t {SESSIONS}/*.jsonl | head -1)"', check=False)
        entries = [json.loads(line) for line in (last.stdout or "").strip().splitlines()] if not last.return_code else []
        if done.return_code and not (done.return_code == 1 and ends_on_length_stop(entries)):
            raise self.exit_error(f"pi exited {done.return_code}; the end of its stderr ({LOGS}/pi.stderr):\n"
                                  f"{await self._stderr_tail(environment)}")
        if last.return_code or not (last.stdout or "").strip():
            raise self.exit_error(f"pi exited 0 without a session: it never got an answer from {self.api_base}. "
                                  f"The end of its stderr:\n{await self._stderr_tail(environment)}")
        self.check_ending(entries, n_ctx, window)

    def check_ending(self, entries: list[dict], n_ctx: int, window: int) -> None:
        """Raise when pi's session ends on a failed request (pi exits 0 then), or on the compaction
        after one whose retry was never sent: never a silent 0. `entries`: the session's last ones."""
        # The last message: a compaction entry after it (0.73.1: the retry was never sent) or pi 1.x's
        # context_edit that drops the failed answer from the context change nothing about how it ended.
        messages = [e for e in entries if e.get("type") == "message"]
        m = (messages[-1].get("message") or {}) if messages else {}
        if m.get("role") != "assistant" or m.get("stopReason") != "error":
            return
        error = m.get("errorMessage") or "(no message)"
        if OVERFLOW_TEXT.search(error):
            raise self.overflow_error(f"the server refused pi's last request, and no compaction and retry got past "
                                      f"it: {error} (per-slot n_ctx {n_ctx}; pi's window {window}, profile "
                                      f"{self.profile.name})")
        raise self.exit_error(f"pi's last request failed: {error}")

    async def _stderr_tail(self, environment) -> str:
        tail = await self._exec(environment, f"tail -c 3000 {LOGS}/pi.stderr", check=False)
        return (tail.stdout or "").strip() or "(empty)"

    def files(self, instruction: str, base_url: str, budget: Budget) -> dict[str, str]:
        """The files run() writes into the container, by path."""
        p, task = self.profile, TaskSpec("harbor", instruction)  # Harbor does not pass the criteria
        config = pi.extension_config(p, budget, task, base_url, self.model, Path(f"{LOGS}/extensions.jsonl"), None,
                                     self.pi_version)
        config["request_manifest"] = REQUEST_MANIFEST
        return {
            f"{ROOT}/agent/models.json": json.dumps(pi.models_json(base_url, self.model, budget.window, budget.max_tokens)),
            f"{ROOT}/agent/settings.json": json.dumps(pi.settings_json(p, self.model, budget)),
            f"{ROOT}/extensions.json": json.dumps(config),
            f"{ROOT}/slim_updates.mjs": pi.launch.SLIM_UPDATES_JS,
        }

    def manifest(self, instruction: str, n_ctx: int, budget: Budget, props: dict | None, url: str | None,
                 files: dict[str, str]) -> dict:
        """tbreplay.json (keys in the module docstring)."""
        return {"format": 1, "agent": self.name(), "pi_version": self.pi_version, "model": self.model,
                "api_base": self.api_base, "base_url": f"{self.api_base}/v1",
                "profile": dataclasses.asdict(self.profile) | budget.sizes(), "n_ctx": n_ctx,
                "n_ctx_source": "agent kwarg n_ctx" if self.n_ctx else url, "window": budget.window,
                "props": props, "props_url": url,
                "models_json": json.loads(files[f"{ROOT}/agent/models.json"]),
                "settings_json": json.loads(files[f"{ROOT}/agent/settings.json"]),
                "extension_config": json.loads(files[f"{ROOT}/extensions.json"]),
                "extensions": self.extensions(), "argv": self.argv()}

    def env(self) -> dict[str, str]:
        return {"PI_CODING_AGENT_DIR": f"{ROOT}/agent", "PI_OFFLINE": "1", "PI_TELEMETRY": "0",
                "PI_SKIP_VERSION_CHECK": "1", "TBREPLAY_PI_CONFIG": f"{ROOT}/extensions.json",
                "NODE_OPTIONS": f"--import {ROOT}/slim_updates.mjs"}

    def argv(self) -> list[str]:
        return pi.command(f"{ROOT}/node_modules/.bin/pi", f"{ROOT}/ext", self.model, self.extensions(), rpc=False,
                          spare_prompts=pi.SPARE_PROMPTS, session_dir=SESSIONS)

    def command(self, instruction: str) -> str:
        # The instruction on stdin (printf is a shell builtin: no option parsing, no @file): see pi.print_args.
        return (f"mkdir -p {LOGS} {SESSIONS} && printf %s {shlex.quote(instruction)} | {shlex.join(self.argv())} "
                f"> {LOGS}/pi.jsonl 2> {LOGS}/pi.stderr")

    async def _exec(self, environment, command: str, env: dict | None = None, timeout_sec: int | None = 120,
                    check: bool = True):
        result = await environment.exec(command=command, env=env, timeout_sec=timeout_sec)
        if check and result.return_code:
            raise RuntimeError(f"{self.name()}: `{command[:80]}...` exited {result.return_code}: "
                               f"{(result.stderr or result.stdout or '')[-2000:]}")
        return result


def _build():
    """MitigatedPi: MitigatedPiAgent as a Harbor BaseAgent (needs Harbor, Python >= 3.12)."""
    try:
        from harbor.agents.base import BaseAgent
        from harbor.agents.installed.base import (
            ContextWindowExceededError,
            NonZeroAgentExitCodeError,
            UnsupportedModelParametersError,
        )
        from harbor.agents.installed.pi import Pi
        from harbor.agents.options import AgentOptions
        from pydantic import Field
    except ImportError as e:
        raise ImportError("pytest_tbreplay.harbor:MitigatedPi is a Harbor agent and needs Harbor: "
                          "pip install harbor==0.26.0 (Python >= 3.12)") from e

    class MitigatedPiOptions(AgentOptions):
        api_base: str = Field(DEFAULT_API_BASE, description="llama-server or llama-swap as the container reaches it")
        n_ctx: int | None = Field(None, ge=1, description="the server's per-slot n_ctx (default: asked from /props)")
        profile: str = Field(MitigatedPiAgent.profile_name, description="tbreplay profile name or YAML file")
        pi_version: str = Field(pi.PI_VERSION, pattern=r"^\d+\.\d+\.\d+$",
                                description=f"the pi to install (npm scope and Node floor by version; "
                                            f"{pi.RECORDED_PI} is the pi of the recorded trials)")

    class Converter(Pi):
        """Harbor's own pi session -> ATIF converter, naming this agent."""
        name = staticmethod(MitigatedPiAgent.name)

        def version(self) -> str:
            return getattr(self, "pi_version", pi.PI_VERSION)

    class MitigatedPi(MitigatedPiAgent, BaseAgent):
        __doc__ = __doc__
        options_model = MitigatedPiOptions
        DEFAULT_SETUP_TIMEOUT_SEC = SETUP_TIMEOUT_SEC
        exit_error = NonZeroAgentExitCodeError
        overflow_error = ContextWindowExceededError
        refusal_error = UnsupportedModelParametersError

        def __init__(self, logs_dir, model_name=None, *args, **kwargs):
            BaseAgent.__init__(self, logs_dir, model_name, *args, **kwargs)
            o = self.options
            MitigatedPiAgent.__init__(self, model_name, api_base=o.api_base, n_ctx=o.n_ctx, profile=o.profile,
                                      pi_version=o.pi_version)

        def populate_context_post_run(self, context) -> None:
            converter = Converter(logs_dir=self.logs_dir, model_name=self.model_name)
            converter.pi_version = self.pi_version
            converter.populate_context_post_run(context)

    MitigatedPi.__module__, MitigatedPi.__qualname__ = __name__, "MitigatedPi"
    return MitigatedPi


def __getattr__(name: str):
    """`MitigatedPi` is built on first access, so importing this module never needs Harbor."""
    if name != "MitigatedPi":
        raise AttributeError(name)
    cls = globals()["MitigatedPi"] = _build()
    return cls
