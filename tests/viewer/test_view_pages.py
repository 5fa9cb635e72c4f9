"""`tbreplay view`'s pages, opened in headless Chromium: the DOM it renders (after the page's own
script ran) shows the turn where the 400 came, the loop cut's token count, the verify demand's
text, the filtered job table and the turn where two replays part. Screenshots go to
docs/screenshots/ (one per page kind, for the README)."""
import html
import re
from pathlib import Path

import pytest

from browser import dom, screenshot
from pytest_tbreplay.analysis import view
from pytest_tbreplay.analysis.whatif import whatif
from pytest_tbreplay.cli import main
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.run import replay_cassette
from trialgen import make_job

ROOT = Path(__file__).resolve().parents[2]
CASSETTES = sorted((ROOT / "cassettes").glob("*.yaml"))
SHOTS = ROOT / "docs" / "screenshots"
pytestmark = pytest.mark.needs("chromium")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert main(["view", *map(str, CASSETTES), "-o", str(out), "--replay", "baseline", "--replay", "mitigated"]) == 0
    return out


def section(rendered: str, turn: int) -> str:
    m = re.search(rf'<section[^>]*id="turn-{turn}"[^>]*>.*?</section>', rendered, re.S)
    assert m, f"turn {turn} is not on the page"
    return m.group(0)


def text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def replayed(name: str, profile: str):
    return replay_cassette(cs.load(ROOT / "cassettes" / f"{name}.yaml"), load_profile(profile))


def test_the_turn_where_the_400_came_is_marked(site):
    r = replayed("path-tracing-reverse", "baseline")
    k = next(i for i, s in enumerate(s for s in r.served if s.request.get("tools")) if s.status == 400)
    rendered = dom(site / "trial-path-tracing-reverse__reconstructed--baseline-reference.html")
    turn = section(rendered, k)
    assert 'data-marks="http-400"' in turn and "exceeds" in text(turn)
    assert f"{r.trial.turns[k].prompt_tokens:,}" in text(turn)
    assert all("http-400" not in section(rendered, j) for j in range(k))  # only there


def test_the_loop_cut_shows_the_token_it_cut_at(site):
    r = replayed("polyglot-rust-c", "mitigated")
    k = next(t.index for t in r.trial.turns if t.cut_by == "loop_detector")
    turn = section(dom(site / "trial-polyglot-rust-c__reconstructed--mitigated-reference.html"), k)
    assert "loop-cut" in turn and f"at {r.trial.turns[k].completion_tokens:,} tokens" in text(turn)
    assert r.trial.turns[k].completion_tokens < 32000  # the recording ran to the length stop


def test_the_baseline_page_has_no_cut_where_the_mitigated_one_has(site):
    rendered = dom(site / "trial-polyglot-rust-c__reconstructed--baseline-reference.html")
    assert "loop-cut" not in rendered and "32,000 / 32,000" in text(rendered)


def test_the_verify_demand_is_shown_with_its_text(site):
    r = replayed("db-wal-recovery", "mitigated")
    [demand] = r.trial.verify_demands
    rendered = dom(site / "trial-db-wal-recovery__reconstructed--mitigated-reference.html")
    marked = [m.group(0) for m in re.finditer(r'<section[^>]*data-marks="demand"[^>]*>.*?</section>', rendered, re.S)]
    assert marked, "no turn carries the demand mark"
    assert " ".join(demand.split()[:12]) in " ".join(text(rendered).split())


def test_the_comparison_page_names_where_the_sides_part_and_which_mitigation(site):
    first = whatif(cs.load(ROOT / "cassettes" / "path-tracing-reverse.yaml"), load_profile("mitigated")).first
    page = next(site.glob("compare-path-tracing-reverse*.html"))
    rendered = dom(page)
    summary = text(re.search(r'<p id="part-summary">.*?</p>', rendered, re.S).group(0))
    assert f"part at turn {first.turn}" in summary and first.mitigation in summary
    parting = re.findall(r'<div class="parting" id="parting">turn (\d+)</div>', rendered)
    assert parting == [str(first.turn)]


def test_the_job_page_filters_by_failure_mode_in_the_browser(site):
    rendered = dom(site / "index.html", "#mode=B")
    rows = re.findall(r'<tr data-modes="([^"]*)"( hidden="")?>', rendered)
    assert len(rows) == 3
    assert [hidden == "" for modes, hidden in rows] == ["B" in modes.split() for modes, _ in rows]
    assert re.search(r'<span id="shown">1</span>', rendered)
    everything = dom(site / "index.html")
    assert "hidden" not in "".join(re.findall(r"<tr data-modes[^>]*>", everything))


def test_an_imported_harbor_job_gets_its_reward_and_verifier_output(tmp_path):
    out = tmp_path / "site"
    groups, failed = view.groups_from_sources([make_job(tmp_path)], [])
    site = view.write_site(groups, out, failed)
    assert not failed and len(groups) == 9
    rendered = dom(site.index)
    assert text(rendered).count("never got a model answer") == 2  # the unstarted trial has a row, no page
    page = next(out.glob("trial-polyglot-rust-c*.html"))
    trial = text(dom(page))
    assert "reward 0.0" in trial and "FAILED test_outputs.py::test_answer" in trial


def test_pages_fetch_nothing(site):
    for page in site.glob("*.html"):
        source = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', source), page.name
        assert "<link" not in source and "@import" not in source and "url(" not in source


def test_screenshots_one_per_page_kind(site, tmp_path):
    job = make_job(tmp_path)
    imported = view.write_site(*view.groups_from_sources([job], [])[:1], tmp_path / "imported")
    shots = {"job-page.png": (imported.index, "1300,900"),
             "trial-page.png": (site / "trial-polyglot-rust-c__reconstructed--mitigated-reference.html", "1300,1700"),
             "comparison-page.png": (next(site.glob("compare-db-wal-recovery*.html")), "1300,1000")}
    for name, (page, size) in shots.items():
        assert screenshot(page, SHOTS / name, size).stat().st_size > 10_000
