"""Harness profiles: which mitigations are on, and how a trial's token budget fits the server.

Shipped as YAML; a user may pass their own file. The token sizes (`context_window`, `headroom`,
`max_tokens`, `reserve_tokens`, `keep_recent_tokens`) may each be `auto`: then they are derived
from the server's n_ctx per slot (llama-server's /props `default_generation_settings.n_ctx`), so
one profile fits every server from 8,192 to 262,144 tokens. `Profile.budget(n_ctx)` resolves them
and refuses, with one error, a profile whose compaction cannot work on that server."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from pytest_tbreplay.core import boundedyaml

PROFILE_DIR = Path(__file__).parents[1] / "profiles"
AUTO = "auto"
SIZES = ("context_window", "headroom", "max_tokens", "reserve_tokens", "keep_recent_tokens")
# What every request carries before any conversation: pi's system prompt and its four tool
# schemas (~960 tokens at 3.2 chars/token).
BASE_PROMPT = 1024


class ProfileError(ValueError):
    pass


# (j) The stuck-turn guard's settings (policies/stuck.py): OpenHands stops at 4 identical
# action/observation pairs and a 6-step ping-pong; here the first time is a nudge.
STUCK_DEFAULTS = {"repeats": 4, "alternation": 3, "after_nudge": 2}


def stuck_config(value: dict | bool | None) -> dict | None:
    """A profile's `stuck_guard` with the defaults filled in (None: off). Refuses unknown keys and
    values that are not positive integers, naming them."""
    if value is None or value is False:
        return None
    given = {} if value is True else dict(value)
    problems = []
    if unknown := sorted(set(given) - set(STUCK_DEFAULTS)):
        problems.append(f"stuck_guard: unknown keys {unknown}; known: {sorted(STUCK_DEFAULTS)}")
    problems += [f"stuck_guard.{k} must be a positive integer, found {v!r}" for k, v in given.items()
                 if k in STUCK_DEFAULTS and (type(v) is not int or v < 1)]
    if given.get("repeats") == 1:
        problems.append("stuck_guard.repeats must be at least 2 (one step is not a repeat)")
    if problems:
        raise ProfileError("; ".join(problems))
    return STUCK_DEFAULTS | given


@dataclass(frozen=True)
class Budget:
    """A profile's token sizes resolved for one server. The harness declares `window` (pi's
    contextWindow) and compacts when a request's estimate plus `max_tokens` would pass it: max
    tokens are counted once, `headroom` is only the margin for the estimate's error."""
    n_ctx: int | None
    window: int
    headroom: int
    max_tokens: int
    reserve_tokens: int  # pi's compaction.reserveTokens: the summary may use 0.8 of it
    keep_recent_tokens: int  # pi's compaction.keepRecentTokens

    @property
    def prompt_limit(self) -> int:
        """The largest request estimate that still leaves a full turn inside the window."""
        return self.window - self.max_tokens

    @property
    def summary_tokens(self) -> int:
        return int(0.8 * self.reserve_tokens)

    def sizes(self) -> dict[str, int]:
        """The sizes under the profile's own keys (what a recording states was sent, not `auto`)."""
        return {"context_window": self.window, "headroom": self.headroom, "max_tokens": self.max_tokens,
                "reserve_tokens": self.reserve_tokens, "keep_recent_tokens": self.keep_recent_tokens}


def auto_sizes(n_ctx: int) -> dict[str, int]:
    """The sizes `auto` stands for. At 262,144 they are the analysis' numbers (§5.1-5.2): a 16,384
    turn cap and a prompt limit of 237,568; smaller servers scale down with n_ctx."""
    max_tokens = min(16384, n_ctx // 8)
    headroom = min(8192, max(256, n_ctx // 32))
    return {"context_window": n_ctx - headroom, "headroom": headroom, "max_tokens": max_tokens,
            "reserve_tokens": max_tokens, "keep_recent_tokens": min(20000, n_ctx // 8)}


@dataclass(frozen=True)
class Profile:
    name: str
    context_window: int | str
    max_tokens: int | str
    headroom: int | str = 0
    proactive_compaction: bool = False
    overflow_retry: bool = False
    loop_detector: bool = False
    length_nudge: bool = False
    verify_before_done: bool = False
    anchored_summary: bool = False
    dry: dict | None = None
    stuck_guard: dict | None = None  # (j) {repeats, alternation, after_nudge}; policies/stuck.py
    telemetry: bool = True  # (h) on in every profile
    reserve_tokens: int | str = 16384
    keep_recent_tokens: int | str = 20000
    # A turn cap is a mitigation like the others: off (None) unless a profile sets it, so baseline
    # replays every recorded turn (the failing run had none: build-pov-ray ran 296 turns).
    max_turns: int | None = None

    @property
    def compacts(self) -> bool:
        return self.proactive_compaction or self.overflow_retry

    def budget(self, n_ctx: int | None) -> Budget:
        """The sizes for a server of `n_ctx` tokens per slot (None: unknown, e.g. behind a proxy
        without /props). Raises ProfileError when the profile cannot fit that server."""
        auto = [k for k in SIZES if getattr(self, k) == AUTO]
        if auto and n_ctx is None:
            raise ProfileError(f"profile {self.name}: {', '.join(auto)} {'is' if len(auto) == 1 else 'are'} auto "
                               "but the server's n_ctx is unknown (no /props): give fixed sizes in the profile")
        derived = auto_sizes(n_ctx) if auto else {}
        sizes = {k: derived[k] if getattr(self, k) == AUTO else int(getattr(self, k)) for k in SIZES}
        if self.context_window == AUTO:
            sizes["context_window"] = n_ctx - sizes["headroom"]
        b = Budget(n_ctx, sizes["context_window"], sizes["headroom"], sizes["max_tokens"],
                   sizes["reserve_tokens"], sizes["keep_recent_tokens"])
        if self.compacts and n_ctx is not None:
            self._check_fit(b)
        return b

    def _check_fit(self, b: Budget) -> None:
        """A profile that compacts plans with its window: it must be the server's, and a compacted
        conversation (base prompt, summary, the kept recent steps) plus a full turn must fit in it.
        (A profile that never compacts only declares its window, as the failing run did: baseline
        reproduces that run on any server.)"""
        fix = "use `auto` for the sizes (the shipped `mitigated` does) or smaller fixed ones"
        if b.window > b.n_ctx:
            raise ProfileError(f"profile {self.name} does not fit a server with n_ctx {b.n_ctx} per slot: its "
                               f"context window {b.window} is larger than the server's; {fix}")
        need = BASE_PROMPT + b.summary_tokens + b.keep_recent_tokens + b.max_tokens
        if need > b.window:
            raise ProfileError(f"profile {self.name} does not fit a server with n_ctx {b.n_ctx} per slot: a compacted "
                               f"conversation needs {need} tokens (base prompt {BASE_PROMPT} + summary "
                               f"{b.summary_tokens} + keep_recent_tokens {b.keep_recent_tokens} + max_tokens "
                               f"{b.max_tokens}) but the window is {b.window}; {fix}, or a server with a larger -c")

    def window(self, n_ctx: int | None) -> int:
        """The context window the harness declares, given the server's n_ctx."""
        return self.budget(n_ctx).window

    def replace(self, **changes) -> "Profile":
        """A variant with some policies switched (tests switch one mitigation off at a time)."""
        name = self.name + "".join(f" {k}={v}" for k, v in changes.items())
        return dataclasses.replace(self, name=name, **changes)


def _is(value, kind: str) -> bool:
    # YAML's `off`/`no` are strings under the safe loader and bools are ints in Python: be exact.
    checks = {"int": int, "bool": bool, "str": str, "dict": dict, "None": type(None)}
    return kind not in checks or type(value) is checks[kind]  # a kind not listed here is not checked


def check_field_types(data: dict, path: Path | str) -> None:
    """Every field of a profile YAML against the type Profile declares, missing and unknown keys
    too, all reported in one message."""
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping of fields, found {type(data).__name__}")
    hints = {f.name: f.type for f in dataclasses.fields(Profile)}
    required = [f.name for f in dataclasses.fields(Profile)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    problems = [f"{key} is missing (every profile names it)" for key in required if key not in data]
    if unknown := sorted(str(k) for k in set(data) - set(hints)):
        problems.append(f"unknown keys {unknown} (known: {sorted(hints)})")
    for key, value in data.items():
        kinds = [k.strip() for k in str(hints.get(key, "")).split("|")] if key in hints else []
        if kinds and not any(_is(value, k) for k in kinds):
            problems.append(f"{key} must be {' or '.join(kinds)}, found {value!r} ({type(value).__name__})")
        elif key in SIZES and not (value == AUTO or (type(value) is int and value >= 0)):
            problems.append(f"{key} must be a number of tokens or auto, found {value!r}")
        elif key == "max_turns" and type(value) is int and value <= 0:
            problems.append(f"max_turns must be a positive integer, found {value!r}")
        elif key == "stuck_guard" and isinstance(value, dict):
            try:
                stuck_config(value)
            except ProfileError as e:
                problems.append(str(e))
        elif key == "dry" and isinstance(value, dict):
            problems += [f"dry.{k} must be a number, found {v!r}" for k, v in value.items()
                         if type(v) not in (int, float)]
    if problems:
        raise ProfileError(f"{path}: " + "; ".join(problems))


def _read_yaml(path: Path):
    """The profile file's YAML, bounded (core/boundedyaml.py); anything unreadable is a ProfileError
    naming the file (and the line, for a syntax error)."""
    try:
        return boundedyaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except IsADirectoryError:
        raise ProfileError(f"{path}: a folder, not a profile file") from None
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except boundedyaml.BoundedYAMLError as e:
        raise ProfileError(f"{path}: refused: the YAML {' '.join(str(e).split())}") from None
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None


def load_profile(name_or_path: str | Path) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ProfileError(f"profile {name_or_path!r} not found: give a YAML file or one of {shipped}")
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a mapping of keys to values, not {type(data).__name__}")
    if "alias" in data:  # a shipped old name kept working: the same profile under its old name
        if set(data) - {"alias", "name"} or not isinstance(data["alias"], str) or not isinstance(data.get("name", ""), str):
            raise ProfileError(f"{path}: an alias profile holds only `alias` (and `name`), both names")
        return dataclasses.replace(load_profile(data["alias"]), name=data.get("name", path.stem))
    data.setdefault("name", path.stem)  # a profile file is named by its file unless it says otherwise
    check_field_types(data, path)
    try:
        profile = Profile(**data)
    except TypeError as e:
        raise ProfileError(f"{path}: {e}") from None
    return profile
