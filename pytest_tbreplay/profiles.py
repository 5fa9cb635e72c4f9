"""Harness profiles: which mitigations are on. Shipped as YAML; a user may pass their own file."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

PROFILE_DIR = Path(__file__).parent / "profiles"
MARGIN = 1024  # tokens a window keeps free beyond one full turn


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    context_window: int | str
    max_tokens: int
    headroom: int = 0
    proactive_compaction: bool = False
    overflow_retry: bool = False
    loop_detector: bool = False
    length_nudge: bool = False
    verify_before_done: bool = False
    anchored_summary: bool = False
    dry: dict | None = None
    telemetry: bool = True  # (h) on in every profile
    reserve_tokens: int = 16384  # pi's compaction.reserveTokens: summary budget is 0.8 of it
    keep_recent_tokens: int = 20000  # pi's compaction.keepRecentTokens
    max_turns: int = 200

    def window(self, n_ctx: int | None) -> int:
        """The context window the harness plans with, given the server's n_ctx."""
        if self.context_window != "auto":
            return int(self.context_window)
        if n_ctx is None:
            raise ProfileError(f"profile {self.name}: context_window is auto but the server's n_ctx is unknown")
        return n_ctx - self.headroom

    def replace(self, **changes) -> "Profile":
        """A variant with some policies switched (tests switch one mitigation off at a time)."""
        name = self.name + "".join(f" {k}={v}" for k, v in changes.items())
        return dataclasses.replace(self, name=name, **changes)


def _is(value, kind: str) -> bool:
    # YAML's `off`/`no` are strings under the safe loader and bools are ints in Python: be exact.
    checks = {"int": int, "bool": bool, "str": str, "dict": dict, "None": type(None)}
    return kind not in checks or type(value) is checks[kind]  # a kind not listed here is not checked


def check_field_types(data: dict, path: Path | str) -> None:
    """Every field of a profile YAML against the type Profile declares, reported all at once."""
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a YAML mapping of fields, found {type(data).__name__}")
    hints = {f.name: f.type for f in dataclasses.fields(Profile)}
    problems = []
    for key, value in data.items():
        kinds = [k.strip() for k in str(hints.get(key, "")).split("|")] if key in hints else []
        if kinds and not any(_is(value, k) for k in kinds):
            problems.append(f"{key} must be {' or '.join(kinds)}, found {value!r} ({type(value).__name__})")
        elif key == "context_window" and isinstance(value, str) and value != "auto":
            problems.append(f"context_window must be a number of tokens or auto, found {value!r}")
        elif key == "dry" and isinstance(value, dict):
            problems += [f"dry.{k} must be a number, found {v!r}" for k, v in value.items()
                         if type(v) not in (int, float)]
    if problems:
        raise ProfileError(f"{path}: " + "; ".join(problems))


def load_profile(name_or_path: str | Path) -> Profile:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ProfileError(f"profile {name_or_path!r} not found: give a YAML file or one of {shipped}")
    data = yaml.safe_load(path.read_text()) or {}
    check_field_types(data, path)
    known = {f.name for f in dataclasses.fields(Profile)}
    if unknown := sorted(set(data) - known):
        raise ProfileError(f"{path}: unknown profile keys {unknown}; known: {sorted(known)}")
    try:
        profile = Profile(**data)
    except TypeError as e:
        raise ProfileError(f"{path}: {e}") from None
    if profile.context_window == "auto" and profile.headroom < profile.max_tokens + MARGIN:
        raise ProfileError(f"{path}: headroom {profile.headroom} must be at least max_tokens + {MARGIN} "
                           f"= {profile.max_tokens + MARGIN} so a full turn fits under the server's n_ctx")
    return profile
