"""`tbreplay view`: a static site of trials. index.html is the job page; each trial gets a page
as recorded (or imported), one per replay side asked for (`--replay mitigated`, `--replay
baseline@pi`), and with two sides or more a comparison page of the first against each other."""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pytest_tbreplay.analysis import pages, summarize as sm
from pytest_tbreplay.analysis import trialview as tv
from pytest_tbreplay.analysis.importer import TrialImportError, find_trials, import_trial
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.harnesses.pi.session import SessionError
from pytest_tbreplay.replay.tools import ToolReplayError
from pytest_tbreplay.harnesses import harness_name
from pytest_tbreplay.harnesses.pi.install import RECORDED_PI
from pytest_tbreplay.run import Replayed, replay_cassette


@dataclass(frozen=True)
class Side:
    profile: str
    harness: str = "reference"

    @classmethod
    def parse(cls, text: str) -> "Side":
        """PROFILE or PROFILE@HARNESS; the harness may itself hold an @ (pi@1.6.0), so the profile
        ends at the first @ (a profile file's path with an @ in it: give it without a harness)."""
        profile, at, harness = text.partition("@")
        if not profile or (at and not harness):
            raise ValueError(f"--replay {text}: write PROFILE or PROFILE@HARNESS (e.g. baseline@pi@{RECORDED_PI})")
        try:
            return cls(profile, harness_name(harness) if at else "reference")
        except ValueError as e:
            raise ValueError(f"--replay {text}: {e}") from None

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
    entries: list[tuple[sm.Record, dict[str, str]]] = field(default_factory=list)  # the job page's rows


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
    site = write_pages(groups, out, failed)
    write_index(site, title)
    return site


def write_pages(groups: list[Group], out: Path, failed: list[tuple[str, str]] = ()) -> Site:
    """Every trial and comparison page; the job page's rows wait in site.entries (write_index)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    site = Site(out / "index.html", failed=list(failed))
    for g in groups:
        links = {}
        for v in [g.recorded] * bool(g.recorded) + g.replays:
            links[v.kind if v is g.recorded else v.side] = _write(
                site, out / f"trial-{v.name}.html", pages.trial_page(v))
        for other in g.replays[1:]:
            a = g.replays[0]
            links[f"compare {a.side} vs {other.side}"] = _write(
                site, out / f"compare-{a.name}--vs--{slug(other.profile + '@' + other.harness)}.html",
                pages.compare_page(a, other, (f"trial-{a.name}.html", f"trial-{other.name}.html")))
        site.entries.append((g.record, links))
    return site


def write_index(site: Site, title: str) -> Path:
    site.index.write_text(pages.job_page(title, site.entries, site.failed), encoding="utf-8")
    return site.index


# -- a site written by several processes (pytest-xdist workers) ----------------------------------
# Each process writes its pages and leaves its job-page rows in PARTS; the process that outlives
# them (xdist's controller, or the only one) writes index.html from every part, so no worker's
# index overwrites another's.
PARTS = ".tbreplay-view"


def clear_parts(out: Path) -> None:
    """A new run: forget the rows an earlier run left (its pages stay, unlinked)."""
    for part in (Path(out) / PARTS).glob("*.json"):
        part.unlink()


def save_part(site: Site, who: str) -> Path:
    folder = site.index.parent / PARTS
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{slug(who)}.json"
    data = {"entries": [[asdict(r), links] for r, links in site.entries], "failed": site.failed}
    tmp = part.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(part)  # whole or absent: the index never reads half a part
    return part


def index_from_parts(out: Path, title: str) -> Site | None:
    """index.html from every part in OUT (None when no process left one)."""
    site = Site(Path(out) / "index.html")
    parts = sorted((Path(out) / PARTS).glob("*.json"))
    for part in parts:
        data = json.loads(part.read_text(encoding="utf-8"))
        site.entries += [(sm.Record(**r), links) for r, links in data["entries"]]
        site.failed += [tuple(f) for f in data["failed"]]
    if not parts:
        return None
    site.entries.sort(key=lambda e: (e[0].task, e[0].trial, list(e[1].values())))
    write_index(site, title)
    return site


def _write(site: Site, path: Path, html: str) -> str:
    path.write_text(html, encoding="utf-8")
    site.pages.append(path)
    return path.name
