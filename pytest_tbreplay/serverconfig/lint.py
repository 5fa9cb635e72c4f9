"""`tbreplay lint-config`: check a llama-swap config (or a llama-server command line, or a running
server) against a harness profile and the failure analysis' server recommendations (§6).

Each finding has a severity (error: the server will not start, or a trial will fail the way the
analysis saw; warning: a setting the analysis found costly; info: a recommendation to act on or
measure), a code, the exact reason, and the analysis section it comes from."""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import asdict, dataclass

import httpx

from pytest_tbreplay.serverconfig import serverargs
from pytest_tbreplay.serverconfig.llamaswap import ModelConfig, SwapConfig, split_command
from pytest_tbreplay.core.profiles import BASE_PROMPT, Profile, ProfileError
from pytest_tbreplay.core.props import BadAnswer, check_props
from pytest_tbreplay.serverconfig.serverargs import ServerArgs, falsey, truthy

SEVERITIES = ("error", "warning", "info")
LONG_CONTEXT = 131072  # the analysis' "long context": its trajectories live at 100k-260k tokens
Q4_KV = ("q4_0", "q4_1", "iq4_nl")
FLOAT_KV = ("f32", "f16", "bf16")
DRY_RECOMMENDED = "--dry-multiplier 0.8 --dry-base 1.75 --dry-allowed-length 2"
HARNESS_FIELDS = {  # request fields a harness profile relies on, and what stripping them costs
    "max_tokens": "the turn cap (§5.2): a runaway turn runs to the server's limit",
    "max_completion_tokens": "the turn cap (§5.2): a runaway turn runs to the server's limit",
    "reasoning_budget_tokens": "the per-request reasoning budget (§6.3)",
}
# Findings that mean llama-server 11434.0.0 exits at startup, whatever their severity (an unknown flag
# is a warning: the desktop's newer build may know it). tests/test_lint_config.py starts it to prove it.
STARTUP_ERRORS = ("removed-flag", "flag-eats-flag", "missing-value", "fa-value", "flag-equals-value", "bad-value",
                  "stray-value", "unknown-flag", "kv-type", "quantized-v-without-fa", "spec-type")
DRAFT_MODEL_TYPES = ("draft-simple", "draft-eagle3", "draft-dflash", "draft-dspark")  # common/speculative.cpp
THINKING_MODEL = re.compile(r"qwen3|qwq|deepseek-?r1|thinking|gpt-oss|glm-4\.[5-9]|magistral|phi-4-reasoning", re.I)


@dataclass
class Finding:
    severity: str
    code: str
    message: str
    model: str | None = None
    ref: str | None = None  # the failure-analysis section behind it

    def line(self) -> str:
        ref = f"  [{self.ref}]" if self.ref else ""
        return f"{self.severity.upper():7} {self.code}: {self.message}{ref}"


@dataclass
class Slots:
    """How llama-server sizes its slots from -c, -np and the unified-KV flags."""
    n_ctx: int | None  # the KV pool (None: the model's training context, unknown here)
    slots: int
    unified: bool
    per_slot: int | None


def slots_of(args: ServerArgs) -> Slots:
    n_ctx = args.int("--ctx-size")
    n_ctx = None if n_ctx == 0 else n_ctx
    np_ = args.int("--parallel", -1)
    unified = bool(args.get("--kv-unified", False))
    if np_ < 0:  # tools/server/server.cpp: auto = 4 slots and a unified pool
        np_, unified = 4, True
    per_cap = args.int("--kv-unified-per-slot", 0) or 0
    if n_ctx is None and per_cap > 0:
        n_ctx = np_ * per_cap
    if n_ctx is None:
        return Slots(None, np_, unified, None)
    padded = _pad(n_ctx)  # src/llama-context.cpp: GGML_PAD(n_ctx, 256)
    per_slot = padded if unified else _pad(padded // np_)
    if per_cap > 0:
        per_slot = min(per_slot, per_cap)
    return Slots(n_ctx, np_, unified, per_slot)


def _pad(n: int) -> int:
    return math.ceil(n / 256) * 256


# -- the checks --------------------------------------------------------------------------------
def lint_config(cfg: SwapConfig, profile: Profile | None, model: str | None = None,
                agent_timeout: int = 3600) -> list[Finding]:
    """Findings for every model of the config (or the one `model` names or aliases)."""
    findings: list[Finding] = []
    models = list(cfg.models.values())
    if model:
        harbor_id = model.removeprefix("openai/")  # Harbor's -m openai/<id>
        hit = cfg.resolve(harbor_id)
        if hit is None:
            close = difflib.get_close_matches(harbor_id, cfg.names, n=1)
            hint = f"; closest: {close[0]}" if close else f"; known: {', '.join(cfg.names)}"
            return [Finding("error", "unknown-model", f"{harbor_id!r} is not a model ID or alias of {cfg.source}: "
                            f"llama-swap answers the harness's requests with 404{hint}", harbor_id)]
        if harbor_id in hit.set_params_by_id:  # that alias's requests get these params too
            hit = dataclasses.replace(hit, set_params=hit.set_params | hit.set_params_by_id[harbor_id])
        models = [hit]
    for m in models:
        findings += lint_model(m, profile, agent_timeout, swap=cfg.kind == "llama-swap")
    return findings


def lint_model(m: ModelConfig, profile: Profile | None, agent_timeout: int = 3600, swap: bool = True) -> list[Finding]:
    args = serverargs.parse(m.argv, m.env)
    out = [Finding(sev, code, msg) for sev, code, msg in args.problems]
    if args.program is not None:
        slots = slots_of(args)
        out += _context(args, slots, profile)
        out += _dry(args, m, profile)
        out += _reasoning(args, m)
        out += _kv_and_fa(args, slots)
        out += _speculative(args)
        if swap:
            out += _llama_swap(args, m, slots, agent_timeout)
    for f in out:
        f.model = m.id
    return sorted(out, key=lambda f: SEVERITIES.index(f.severity))


def _context(args: ServerArgs, slots: Slots, profile: Profile | None) -> list[Finding]:
    out = []
    if slots.n_ctx is None:
        out.append(Finding("warning", "context-implicit", "no -c (or -c 0): the server takes the model's training "
                           "context, and --fit (on by default) may shrink an unset context to fit VRAM, so the "
                           "harness cannot know n_ctx from the config: set -c explicitly", ref="§6.4"))
    if args.get("--context-shift"):
        out.append(Finding("error", "context-shift", "--context-shift is on: an overflowing context is shifted "
                           "silently instead of the 400 exceed_context_size the harness compacts and retries on",
                           ref="§5.1"))
    if slots.slots > 1 and slots.unified:
        out.append(Finding("warning", "shared-kv-pool", f"{slots.slots} slots share one unified KV pool of "
                           f"{slots.n_ctx or 'the training context'} tokens (-np auto or -kvu): concurrent trials "
                           "(Harbor -n > 1) take context from each other and one may hit the 400 early; use -np 1 "
                           "for Harbor -n 1"))
    if slots.slots > 1 and not slots.unified and slots.per_slot:
        out.append(Finding("warning", "split-slots", f"-np {slots.slots} without -kvu splits the context: each slot "
                           f"holds {slots.per_slot} tokens (n_ctx {slots.n_ctx} / {slots.slots}, padded to 256), and "
                           "a trial sees only its slot's; use -np 1 to give one trial the whole context", ref="§6.4"))
    out += check_window(slots.per_slot, profile, f"-c {slots.n_ctx}, {slots.slots} slot(s)"
                        f"{', unified KV' if slots.unified else ''}")
    return out


def check_window(per_slot: int | None, profile: Profile | None, how: str) -> list[Finding]:
    """Does the profile's plan fit a slot? The harness keeps prompt + max_tokens within its window
    and the headroom covers its token estimate's error, so window + headroom must fit a slot."""
    if profile is None:
        return []
    try:
        b = profile.budget(per_slot)
    except ProfileError as e:
        return [Finding("error", "profile", str(e), ref="§5.1")]
    out = []
    if per_slot is not None:
        need = b.window + b.headroom
        if need > per_slot:
            out.append(Finding("error", "window-overflow", f"profile {profile.name} plans a {b.window}-token window "
                               f"+ {b.headroom} headroom = {need} tokens but each slot holds {per_slot} "
                               f"({how}): requests past {per_slot} get HTTP 400 exceed_context_size; use "
                               f"`context_window: auto` or raise -c", ref="§5.1"))
        elif profile.context_window == "auto":
            out.append(Finding("info", "context-aligned", f"each slot holds {per_slot} tokens ({how}); profile "
                               f"{profile.name} plans a {b.window}-token window (n_ctx - {b.headroom} headroom, "
                               f"turns of up to {b.max_tokens}): keep -c at the model's maximum", ref="§6.4"))
        elif b.window + b.max_tokens < 0.75 * per_slot:
            out.append(Finding("info", "window-small", f"profile {profile.name} declares a {b.window}-token window "
                               f"against a {per_slot}-token slot: keep -c at the model's maximum and align the "
                               f"client with `context_window: auto` (window = n_ctx - headroom)", ref="§6.4"))
    if b.prompt_limit < BASE_PROMPT:
        out.append(Finding("error", "window-too-small", f"profile {profile.name}: a {b.window}-token window cannot "
                           f"hold pi's base prompt ({BASE_PROMPT} tokens) beside one {b.max_tokens}-token turn"))
    if not profile.proactive_compaction:
        out.append(Finding("warning", "no-compaction", f"profile {profile.name} never compacts before the "
                           "server's limit: the context grows until the 400 (path-tracing-reverse)", ref="§5.1"))
    elif not profile.overflow_retry:
        out.append(Finding("warning", "no-overflow-retry", f"profile {profile.name}: a 400 exceed_context_size "
                           "ends the trial instead of compaction and a retry", ref="§5.1"))
    return out


def _request_dry(m: ModelConfig, profile: Profile | None) -> tuple[bool, list[Finding]]:
    out = []
    sent = bool(profile and profile.dry and float(profile.dry.get("dry_multiplier", 0)) > 0)
    stripped = [p for p in m.strip_params if p.startswith("dry_")]
    if sent and stripped:
        out.append(Finding("error", "dry-stripped", f"filters.stripParams removes {', '.join(stripped)}: the DRY "
                           f"fields profile {profile.name} sends never reach llama-server", ref="§6.1"))
        sent = False
    for p in m.strip_params:
        if p in HARNESS_FIELDS:
            out.append(Finding("warning", "field-stripped", f"filters.stripParams removes {p}: {HARNESS_FIELDS[p]}"))
    return sent, out


def _dry(args: ServerArgs, m: ModelConfig, profile: Profile | None) -> list[Finding]:
    sent, out = _request_dry(m, profile)
    base = args.number("--dry-base")
    if base is not None and base < 1:
        out.append(Finding("warning", "dry-base-ignored", f"--dry-base {args.get('--dry-base')} is below 1: "
                           "llama-server silently keeps its default 1.75", ref="§6.1"))
    if args.int("--dry-penalty-last-n") == 0:
        out.append(Finding("warning", "dry-window-off", "--dry-penalty-last-n 0 turns DRY off whatever the "
                           "multiplier", ref="§6.1"))
        return out
    server = (args.number("--dry-multiplier") or 0) > 0
    forced = m.set_params.get("dry_multiplier")
    if forced is not None and float(forced) <= 0:
        out.append(Finding("error", "dry-forced-off", f"filters.setParams sets dry_multiplier {forced}: it "
                           "overrides the harness's DRY fields on every request", ref="§6.1"))
        return out
    return out + dry_verdict([name for name, on in (("server flags", server),
                                                    ("llama-swap filters.setParams", forced is not None)) if on],
                             sent, profile)


def dry_verdict(server_side: list[str], sent: bool, profile: Profile | None) -> list[Finding]:
    if server_side:
        via = " and ".join(server_side + ([f"profile {profile.name}'s requests"] if sent else []))
        return [Finding("info", "dry-on", f"DRY sampling on via {via}", ref="§6.1")]
    if sent:
        return [Finding("info", "dry-request-only", f"DRY sampling only via profile {profile.name}'s requests: a "
                        f"client without it (Harbor's built-in pi) gets none; put {DRY_RECOMMENDED} on the server",
                        ref="§6.1")]
    return [Finding("warning", "dry-off", "no DRY sampling (not on the server, not in llama-swap's filters.setParams, "
                    "not in the profile's requests): plain-text loops run to the turn cap; add "
                    f"{DRY_RECOMMENDED} to the server (and A/B it: `tbreplay sweep --sweep dry_multiplier=0,0.8`)",
                    ref="§6.1")]


def _reasoning(args: ServerArgs, m: ModelConfig) -> list[Finding]:
    mode = str(args.get("--reasoning", "auto"))
    if falsey(mode):
        return []
    budget = args.int("--reasoning-budget")
    named = " ".join([m.id, str(args.get("--model", "")), str(args.get("--alias", "")), *m.aliases])
    thinking = truthy(mode) or bool(THINKING_MODEL.search(named))
    sweep = "`tbreplay sweep --sweep reasoning_budget_tokens=2000,4000,8000` (not visible in /props)"
    if budget is None or budget < 0:
        if thinking:
            return [Finding("warning", "reasoning-unbounded", "a thinking model without --reasoning-budget thinks "
                            f"without limit: set --reasoning-budget 4000 (the analysed run's) and sweep {sweep}",
                            ref="§6.3")]
        return []
    if budget == 0:
        return [Finding("warning", "reasoning-zero", "--reasoning-budget 0 ends every thinking block at once",
                        ref="§6.3")]
    if not 1000 <= budget <= 8192:
        return [Finding("warning", "reasoning-range", f"--reasoning-budget {budget} is outside 1000-8192, the range "
                        f"the analysis measured (max think 3.9-4.5k at 4000); sweep {sweep}", ref="§6.3")]
    return [Finding("info", "reasoning-sweep", f"--reasoning-budget {budget} (the analysed run used 4000, never "
                    f"swept for breadth): pair it with the DRY A/B and sweep {sweep}", ref="§6.3")]


def _kv_and_fa(args: ServerArgs, slots: Slots) -> list[Finding]:
    out = []
    table = serverargs.flag_table()
    types = {}
    for flag in ("--cache-type-k", "--cache-type-v"):
        value = args.get(flag)
        if value is None:
            continue
        if value not in table.kv_cache_types:
            out.append(Finding("error", "kv-type", f"{flag} {value!r} is not a KV cache type of llama.cpp "
                               f"{table.version} ({', '.join(table.kv_cache_types)}): the server refuses to start"))
        types[flag] = value
    q4 = sorted({v for v in types.values() if v in Q4_KV})
    if q4 and (slots.n_ctx or 0) >= LONG_CONTEXT:
        out.append(Finding("warning", "kv-q4-long-context", f"KV cache {'/'.join(q4)} at a {slots.n_ctx}-token "
                           "context: 4-bit KV is known to degrade long-context recall and reasoning, where these "
                           "trajectories live (100k-260k); test -ctk q8_0 -ctv q8_0 (or K q8_0 / V q4_0) on the "
                           "long-context tasks, as two llama-swap variants: `tbreplay sweep --server-url URL --sweep "
                           "model=<q8_0 variant>,<q4_0 variant> --task path-tracing`", ref="§6.2"))
    fa = args.get("--flash-attn")
    if fa is not None and not (truthy(fa) or falsey(fa) or fa in ("auto", "-1")):
        out.append(Finding("error", "fa-value", f"-fa {fa!r}: --flash-attn takes on, off or auto; llama-server "
                           "refuses to start (a bare -fa takes the next flag as its value)"))
    v = types.get("--cache-type-v")
    if fa is not None and falsey(fa) and v and v not in FLOAT_KV:
        out.append(Finding("error", "quantized-v-without-fa", f"-ctv {v} with -fa {fa}: llama.cpp refuses a "
                           "quantized V cache without flash attention and the model fails to load"))
    if fa is None or fa in ("auto", "-1"):
        out.append(Finding("info", "fa-auto", "flash attention is left on auto: confirm it is active in the server "
                           "log or pass -fa on; it raises tok/s on the long generations that time out", ref="§6.5"))
    return out


def _speculative(args: ServerArgs) -> list[Finding]:
    out = []
    table = serverargs.flag_table()
    types = [t for t in args.get("--spec-type", []) if t]
    for t in types:
        if t not in table.spec_types:
            out.append(Finding("error", "spec-type", f"--spec-type {t!r} is not one of {', '.join(table.spec_types)}"
                               ": the server refuses to start"))
    needs_draft = [t for t in types if t in DRAFT_MODEL_TYPES]
    if needs_draft and not args.has("--spec-draft-model"):
        out.append(Finding("warning", "spec-needs-draft", f"--spec-type {','.join(needs_draft)} drafts with a "
                           "second model: without --spec-draft-model (-md) llama-server fails to create the draft "
                           "context and runs without speculative decoding (/props: speculative.types none)"))
    if "draft-mtp" in types:
        out.append(Finding("info", "spec-mtp", "--spec-type draft-mtp needs a model with MTP layers (Qwen3.5/3.6 "
                           "MoE): llama-server exits with \"model doesn't contain MTP layers\" otherwise"))
    n_max = args.int("--spec-draft-n-max")
    if n_max is not None:
        if not [t for t in types if t != "none"]:
            out.append(Finding("info", "spec-n-max-unused", f"--spec-draft-n-max {n_max} without --spec-type "
                               "has no effect"))
        else:
            out.append(Finding("info", "spec-draft-n-max", f"--spec-draft-n-max {n_max} with {','.join(types)}: if "
                               "timeouts stay common, test 3-4 draft tokens per step (MoE + MTP usually accepts them); "
                               "decode tok/s per variant: `tbreplay sweep --server-url URL --sweep model=<n_max 2>,"
                               "<n_max 3>,<n_max 4>` (embedded: --sweep=--spec-draft-n-max=2,3,4)", ref="§6.5"))
    if args.get("--jinja") is False:
        out.append(Finding("error", "no-jinja", "--no-jinja: the chat template is not run through jinja and tool "
                           "calls (the agent's every action) are not parsed"))
    if (n := args.int("--n-predict")) is not None and n >= 0:
        out.append(Finding("info", "n-predict", f"-n {n}: a request's max_tokens wins over it; the harness's "
                           "turn cap is what bounds a runaway turn", ref="§5.2"))
    return out


def _llama_swap(args: ServerArgs, m: ModelConfig, slots: Slots, agent_timeout: int) -> list[Finding]:
    out = []
    if m.send_loading_state:
        out.append(Finding("warning", "send-loading-state", "sendLoadingState: true streams llama-swap's loading "
                           "text as reasoning_content: pi stores it as a thinking block and sends it back"))
    if 0 < m.ttl < agent_timeout:
        out.append(Finding("warning", "ttl-short", f"ttl {m.ttl}s is shorter than the agent timeout "
                           f"({agent_timeout}s): the model unloads mid-trial while a long tool runs, and the next "
                           "turn pays a cold load and a full prefill", ref="§6.5"))
    need = 60 + (slots.n_ctx or 0) // 2048
    if slots.n_ctx and m.health_check_timeout < need:
        out.append(Finding("warning", "health-check-timeout", f"healthCheckTimeout {m.health_check_timeout}s for a "
                           f"{slots.n_ctx}-token context: a cold load of the weights plus the KV allocation can take "
                           f"longer and llama-swap then fails the request; allow >= {need}s (rule of thumb: 60s + "
                           "1s per 2048 tokens of context)"))
    port = args.get("--port")
    proxy_port = re.search(r":(\d+)(/|$)", m.proxy)
    if port is None:
        out.append(Finding("error", "port-missing", f"the command sets no --port: llama-server listens on 8080 "
                           f"while llama-swap proxies to {m.proxy}; add --port ${{PORT}}"))
    elif proxy_port and proxy_port[1] != str(port):
        out.append(Finding("error", "port-mismatch", f"llama-server listens on --port {port} but llama-swap "
                           f"proxies to {m.proxy}: use --port ${{PORT}}"))
    return out


# -- live mode: what a running server reports -----------------------------------------------------
def fetch_live(url: str, model: str | None, timeout: float = 30) -> tuple[dict, str | None]:
    """/props of the server (llama-swap: /props?model=ID, then /upstream/ID/props) and, from
    llama-swap's /running, the resolved command line of the model (None when not llama-swap)."""
    url = url.rstrip("/")
    tried = []
    candidates = [f"{url}/props"] if not model else [f"{url}/props?model={model}", f"{url}/upstream/{model}/props",
                                                      f"{url}/props"]
    props = None
    with httpx.Client(timeout=timeout) as client:
        for u in candidates:
            try:
                r = client.get(u)
            except httpx.TransportError as e:
                raise ConnectionError(f"{url}: cannot connect ({e}); is the server running?") from None
            tried.append(f"{u} -> {r.status_code}")
            if r.status_code == 200 and "default_generation_settings" in r.text:
                props = check_props(_json(r, u), u)
                break
        if props is None:
            raise ConnectionError(f"{url}: no llama-server /props answered ({'; '.join(tried)}); for llama-swap "
                                  "pass --model ID")
        try:
            r = client.get(f"{url}/running")
        except httpx.TransportError:
            return props, None
        # 200 only from llama-swap; anything else: a plain llama-server, no command line to read
        return props, _running_cmd(_json(r, f"{url}/running"), f"{url}/running", model) if r.status_code == 200 else None


def _json(r: httpx.Response, url: str):
    try:
        return r.json()
    except ValueError:
        raise BadAnswer(f"{url}: the answer is not JSON ({r.text[:60]!r}), not what llama-server or "
                        "llama-swap answers") from None


def _running_cmd(data, url: str, model: str | None) -> str | None:
    """The command line of `model` (else the first) in llama-swap's /running answer:
    {"running": [{"model": ..., "cmd": ...}, ...]}."""
    running = data.get("running") if isinstance(data, dict) else data
    if not isinstance(data, dict) or not isinstance(running or [], list):
        raise BadAnswer(f"{url}: expected {{\"running\": [...]}} as llama-swap answers, found {str(data)[:80]!r}")
    for k, p in enumerate(running or []):
        if not (isinstance(p, dict) and isinstance(p.get("model", ""), str) and isinstance(p.get("cmd") or "", str)):
            raise BadAnswer(f"{url}: running[{k}] must be an object with model and cmd as text, found {str(p)[:80]!r}")
    hit = [p for p in running or [] if p.get("model") == model] if model else (running or [])[:1]
    return (hit[0].get("cmd") or None) if hit else None


# what /props already answered: the command line's own estimate of these is not repeated
LIVE_KNOWS = ("window-overflow", "window-small", "context-aligned", "no-compaction", "no-overflow-retry", "profile",
              "dry-on", "dry-off", "dry-request-only", "shared-kv-pool", "split-slots")


def lint_live(url: str, model: str | None, profile: Profile | None, agent_timeout: int = 3600) -> list[Finding]:
    props, cmd = fetch_live(url, model)
    gen = props.get("default_generation_settings", {})
    params = gen.get("params", {})
    per_slot, slots = gen.get("n_ctx"), props.get("total_slots", 1)
    name = model or props.get("model_alias") or "server"
    out = check_window(per_slot, profile, f"/props n_ctx per slot, {slots} slot(s)")
    if slots and slots > 1:
        out.append(Finding("info", "slots", f"the server runs {slots} slots; /props n_ctx {per_slot} is per slot"))
    dry = round(float(params.get("dry_multiplier") or 0), 6)  # the server holds float32
    sent = bool(profile and profile.dry and float(profile.dry.get("dry_multiplier", 0)) > 0)
    out += dry_verdict([f"the server's default (dry_multiplier {dry})"] if dry > 0 else [], sent, profile)
    spec = params.get("speculative.types")
    if spec is not None:
        out.append(Finding("info", "speculative", f"speculative types {spec}", ref="§6.5"))
    if cmd:
        m = ModelConfig(name, split_command(cmd, f"{url}/running cmd"), ttl=0, proxy=url)
        out += [f for f in lint_model(m, profile, agent_timeout, swap=False)
                if f.code not in LIVE_KNOWS]
    else:
        out.append(Finding("info", "not-visible", "/props cannot show the reasoning budget, KV cache types, flash "
                           "attention, draft n max or context shift: lint the config (or use llama-swap, whose "
                           "/running gives the command line)"))
    for f in out:
        f.model = name
    return sorted(out, key=lambda f: SEVERITIES.index(f.severity))


# -- output ----------------------------------------------------------------------------------
def report(findings: list[Finding], source: str) -> str:
    lines = []
    for model in dict.fromkeys(f.model for f in findings):
        mine = [f for f in findings if f.model == model]
        counts = ", ".join(f"{sum(f.severity == s for f in mine)} {s}s" for s in SEVERITIES)
        lines.append(f"{source}: model {model} ({counts})")
        lines += [f"  {f.line()}" for f in mine]
    return "\n".join(lines) if lines else f"{source}: nothing to report"


def as_json(findings: list[Finding]) -> list[dict]:
    return [asdict(f) for f in findings]


def exit_status(findings: list[Finding]) -> int:
    return 1 if any(f.severity == "error" for f in findings) else 0
