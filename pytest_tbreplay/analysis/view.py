"""`tbreplay view`: a static site of trials. index.html is the job page; each trial gets a page
as recorded (or imported), one per replay side asked for (`--replay mitigated`, `--replay
baseline@pi`), and with two sides or more a comparison page of the first against each other."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pytest_tbreplay.analysis import pages, summarize as sm
from pytest_tbreplay.analysis import trialview as tv
from pytest_tbreplay.analysis.importer import TrialImportError, find_trials, import_trial
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.harnesses.pi.session import SessionError
from pytest_tbreplay.replay.tools import ToolReplayError
from pytest_tbreplay.run import HARNESSES, Replayed, replay_cassette


@dataclass(frozen=True)
class Side:
    profile: str
    harness: str = "reference"

    @classmethod
    def parse(cls, text: str) -> "Side":
        profile, _, harness = text.partition("@")
        if harness and harness not in HARNESSES:
            raise ValueError(f"--replay {text}: unknown harness {harness!r}; write PROFILE or PROFILE@HARNESS "
                             f"with HARNESS one of {', '.join(HARNESSES)}")
        return cls(profile, harness or "reference")

    def label(self) -> str:
        return f"{Path(self.profile).stem}@{self.harness}"


@dataclass
class Group:
    """One recorded trial and every page made of it."""
    record: sm.Record
    recorded: tv.TrialView | None = None
    replays: list[tv.TrialView] = field(default_factory=list)


@dataclass
class Site:
    index: Path
    pages: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-")[:80] or "trial"


def groups_from_sources(sources: list[Path], sides: list[Side], n_ctx: int | None = None):
    out, failed, names = [], [], set()
    for source in map(Path, sources):
        try:
            items = [source] if source.suffix in (".yaml", ".yml") else find_trials(source)
        except (TrialImportError, OSError) as e:
            failed.append((str(source), str(e)))
            continue
        for item in items:
            try:
                out.append(_group(Path(item), sides, n_ctx, names))
            except (TrialImportError, SessionError, cs.CassetteError, ToolReplayError, ValueError, OSError) as e:
                failed.append((str(item), str(e)))
    return out, failed


def _unique(name: str, names: set) -> str:
    base, n = slug(name), 2
    name = base
    while name in names:
        name, n = f"{base}-{n}", n + 1
    names.add(name)
    return name


def _group(item: Path, sides: list[Side], n_ctx: int | None, names: set) -> Group:
    record = None
    if item.suffix in (".yaml", ".yml"):
        c = cs.with_n_ctx(cs.load(item), n_ctx)
    else:
        recs, failed = sm.records([item])
        if failed:
            raise TrialImportError(failed[0][1])
        record = recs[0]
        try:
            c = import_trial(item, n_ctx)
        except (TrialImportError, SessionError):
            if record.mode == "E":  # pi never answered: a row on the job page, nothing to show turn by turn
                return Group(record)
            raise
    name = _unique(c.metadata.get("trial", c.metadata["task"]), names)
    recorded = tv.from_cassette(c, name)
    recorded.record = record or recorded.record  # a trial folder's: summarize read its session and result
    replays = []
    for side in sides:
        profile = load_profile(side.profile)
        r = replay_cassette(c, profile, side.harness)
        replays.append(tv.from_replay(r, profile, side.harness, f"{name}--{slug(side.label())}"))
    return Group(recorded.record, recorded, replays)


def groups_from_replays(replayed: list[tuple[Replayed, object, str]]) -> list[Group]:
    """The plugin's: each (Replayed, Profile, harness) the session ran, grouped by cassette."""
    by_cassette: dict[str, Group] = {}
    names: set = set()
    for r, profile, harness in replayed:
        c = r.cassette
        key = str(c.path or id(c))
        name = _unique(f"{c.metadata.get('trial', c.metadata['task'])}--{profile.name}@{harness}", names)
        view = tv.from_replay(r, profile, harness, name)
        g = by_cassette.setdefault(key, Group(view.record))
        if all((v.profile, v.harness) != (view.profile, view.harness) for v in g.replays):
            g.replays.append(view)
    return list(by_cassette.values())


def write_site(groups: list[Group], out: Path, failed: list[tuple[str, str]] = (), title: str = "trials") -> Site:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    site, entries = Site(out / "index.html", failed=list(failed)), []
    for g in groups:
        links = {}
        for v in [g.recorded] * bool(g.recorded) + g.replays:
            links[v.kind if v is g.recorded else f"{v.profile}@{v.harness}"] = _write(
                site, out / f"trial-{v.name}.html", pages.trial_page(v))
        for other in g.replays[1:]:
            a = g.replays[0]
            links[f"compare {a.profile} vs {other.profile}"] = _write(
                site, out / f"compare-{a.name}--vs--{slug(other.profile + '@' + other.harness)}.html",
                pages.compare_page(a, other, (f"trial-{a.name}.html", f"trial-{other.name}.html")))
        entries.append((g.record, links))
    site.index.write_text(pages.job_page(title, entries, site.failed), encoding="utf-8")
    return site


def _write(site: Site, path: Path, html: str) -> str:
    path.write_text(html, encoding="utf-8")
    site.pages.append(path)
    return path.name
