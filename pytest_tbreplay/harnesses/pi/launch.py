"""How pi is started for a profile: the command line, models.json, settings.json and the
extension config, one builder for the local harness and the Harbor agent."""
from __future__ import annotations

from pathlib import Path

from pytest_tbreplay.core.profiles import Budget, Profile
from pytest_tbreplay.core.trial import TaskSpec
from pytest_tbreplay.policies.gate import SUCCESS_CLAIM, VERIFY_CONTRACT, rules
from pytest_tbreplay.policies.loopdetect import LoopDetector
from pytest_tbreplay.policies.stuck import STUCK_NUDGE, STUCK_STOP, stuck_config
from pytest_tbreplay.policies.texts import (
    MAX_NUDGES,
    MAX_VERIFY_DEMANDS,
    NUDGE,
    SUMMARY_ASK,
    SUMMARY_SYSTEM,
)
from pytest_tbreplay.harnesses.pi.contract import ExtensionConfig, TaskConfig
from pytest_tbreplay.harnesses.pi.install import _parse
from pytest_tbreplay.replay.tools import CUT_CALL

EXTENSIONS = Path(__file__).parent / "extensions"
LIBRARIES = EXTENSIONS / "lib"  # modules the extensions import (not extensions)
PROVIDER = "tbreplay"
# Preloaded into pi to slim its stdout (the why is in the file).
SLIM_UPDATES_JS = (Path(__file__).parent / "slim_updates.mjs").read_text()

# Print mode's spare prompts (print_continue.ts): one per message the extensions may ask for, plus
# one per possible overflow retry.
PLACEHOLDER = "__PI_NEXT__"


def print_args(spare_prompts: int) -> list[str]:
    """pi's print-mode arguments; the instruction itself goes to pi's stdin. On the command line
    pi's parser reads a message starting with `-` as an option and one starting with `@` as a file
    to include (cli/args.js); piped stdin is taken as it is (main.js readPipedStdin, only trimmed).
    The empty message after -p is the one pi joins to the stdin text (cli/initial-message.js), so
    the spare prompts stay whole prompts."""
    return ["-p", ""] + [PLACEHOLDER] * spare_prompts
SPARE_PROMPTS = MAX_NUDGES + MAX_VERIFY_DEMANDS + 2


# -- configuration --------------------------------------------------------------------------------
def uses_rpc(p: Profile) -> bool:
    """RPC mode when a policy has to continue a run that pi itself would end."""
    return p.overflow_retry or p.loop_detector or p.length_nudge or p.verify_before_done


# Load order matters for before_provider_request: replay_tools.ts logs the payload after dry.ts
# changed it. A fresh pi loads its profile's extensions only; a kept pi loads them all, and each
# acts only when the trial's config turns it on (`on`, common.ts), so one pi serves every profile.
ALL_EXTENSIONS = ("dry.ts", "loop_detector.ts", "length_nudge.ts", "verify_before_done.ts", "stuck_guard.ts",
                  "auto_compaction.ts", "proactive_compaction.ts", "full_turn.ts", "replay_tools.ts")


def pi_compacts_in_run(version: str) -> bool:
    """pi >= 0.84.4 checks its compaction threshold (contextTokens > contextWindow - reserveTokens)
    between a tool result and the next request, inside a run (docs/compaction.md): what
    proactive_compaction.ts does for 0.73.1, which checks only between runs."""
    return _parse(version) >= (0, 84, 4)


def lowers_max_tokens(version: str) -> bool:
    """pi >= 0.75 lowers each request's max tokens to what its estimate leaves of the window, down
    to 1 (pi-ai clampMaxTokensToContext)."""
    return _parse(version) >= (0, 75, 0)


def extensions(p: Profile, replay: bool, version: str) -> list[str]:
    """The extension files a profile turns on for pi `version`, in load order (ALL_EXTENSIONS)."""
    on = {
        "dry.ts": bool(p.dry),
        "loop_detector.ts": p.loop_detector,
        "length_nudge.ts": p.length_nudge,
        "verify_before_done.ts": p.verify_before_done,
        # Its nudge is a steering message inside the run and its stop an abort: print mode too.
        "stuck_guard.ts": bool(p.stuck_guard),
        # pi's own compaction, shaped: it keeps the last step, cancels an unwanted kind (pi has one
        # switch for both), starts the summary with the task (anchored if asked).
        "auto_compaction.ts": p.compacts,
        # Proactive compaction inside a run (before the request that would pass the window), which
        # pi 0.73.1 does only between runs; a newer pi does it itself (settings_json's threshold).
        "proactive_compaction.ts": p.proactive_compaction and not pi_compacts_in_run(version),
        # ... and a pi that lowers max tokens to fit its window gets the profile's back (full_turn.ts)
        "full_turn.ts": p.proactive_compaction and lowers_max_tokens(version),
        "replay_tools.ts": replay,
    }
    return [name for name in ALL_EXTENSIONS if on[name]]


def extension_files(p: Profile, version: str, *, replay: bool, print_continue: bool = False,
                    manifest: bool = False, keep: bool = False) -> list[str]:
    """The -e files of one pi, in load order, for the local harness and the Harbor agent alike:
    - print_continue.ts (print mode's stand-in for the RPC driver) first: its
      session_before_compact handler must run before auto_compaction.ts's, which awaits the
      summary request; loaded after it, the spare prompts run out during a slow summary and print
      mode ends the session mid-compaction ("extension ctx is stale"; no retry is sent);
    - then the profile's extensions (ALL_EXTENSIONS order), or all of them for a kept pi, which
      serves trials of any profile (each acts only when the trial's config turns it on);
    - manifest.ts (the Harbor agent's record of the first request) last: it records the request as
      the other extensions left it."""
    files = list(ALL_EXTENSIONS) if keep else extensions(p, replay, version)
    return ["print_continue.ts"] * print_continue + files + ["manifest.ts"] * manifest


def command(binary: str, extension_dir: str, model: str, files: list[str], *, rpc: bool, spare_prompts: int = 0,
            session_dir: str | None = None) -> list[str]:
    """pi's command line: RPC mode (the local harness' driver), or print mode with JSON events as
    Harbor runs pi, its instruction on stdin (print_args). Everything in it is fixed for the life
    of the process (a kept pi is found by it): per-trial files are named in the environment."""
    args = [binary, "--mode", "rpc" if rpc else "json"]
    if session_dir:
        args += ["--session-dir", session_dir]
    args += ["--provider", PROVIDER, "--model", model,
             # A reproducible prompt: nothing from the machine's ~/.pi, AGENTS.md files or skills.
             "--no-context-files", "--no-extensions", "--no-skills", "--no-prompt-templates", "--no-themes"]
    for name in files:
        args += ["-e", f"{extension_dir}/{name}"]
    return args if rpc else args + print_args(spare_prompts)


def models_json(base_url: str, model: str, window: int, max_tokens: int) -> dict:
    # No compat overrides: pi then sends max_completion_tokens = min(maxTokens, 32000), as it did
    # in the failing run.
    return {"providers": {PROVIDER: {
        "baseUrl": base_url, "api": "openai-completions", "apiKey": "none",
        "models": [{"id": model, "contextWindow": window, "maxTokens": max_tokens, "reasoning": False}]}}}


def settings_json(p: Profile, model: str, budget: Budget) -> dict:
    return {"defaultProvider": PROVIDER, "defaultModel": model, "quietStartup": True,
            "enableInstallTelemetry": False,
            # Off in baseline: there the overflow compaction would only start after print mode
            # stopped printing (the trial is lost either way), and its summary request would reach
            # the server unseen.
            "compaction": {"enabled": p.compacts,
                           "reserveTokens": budget.reserve_tokens, "keepRecentTokens": budget.keep_recent_tokens}}


def extension_config(p: Profile, budget: Budget, task: TaskSpec, base_url: str, model: str, log: Path,
                     tool_results: Path | None, pi_version: str) -> dict:
    """What the extensions read (TBREPLAY_PI_CONFIG, contract.ExtensionConfig): texts, patterns and
    rules come from the Python modules, so both harnesses apply the same policies."""
    return ExtensionConfig(
        pi_version=pi_version, log=str(log), on=extensions(p, tool_results is not None, pi_version),
        tool_results=str(tool_results) if tool_results else None, base_url=base_url, model=model, dry=p.dry or {},
        task=TaskConfig(task.instruction, list(task.acceptance)), nudge=NUDGE, max_nudges=MAX_NUDGES,
        verify_contract=VERIFY_CONTRACT, max_verify_demands=MAX_VERIFY_DEMANDS,
        verify_rules={k: v for k, v in rules().items() if k != "_re"}, success_pattern=SUCCESS_CLAIM.pattern,
        summary_system=SUMMARY_SYSTEM, summary_ask=SUMMARY_ASK, cut_call=CUT_CALL,
        max_tokens=budget.max_tokens, summary_tokens=budget.summary_tokens, keep_recent_tokens=budget.keep_recent_tokens,
        proactive_compaction=p.proactive_compaction, overflow_retry=p.overflow_retry,
        anchored_summary=p.anchored_summary, loop=LoopDetector().params(), stuck_guard=stuck_config(p.stuck_guard),
        stuck_nudge=STUCK_NUDGE, stuck_stop=STUCK_STOP).to_json()
