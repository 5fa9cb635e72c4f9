"""`pytest --replay --tbreplay-view DIR` in a user's project (an inner pytest session, pytester):
DIR gets a job page linking a page per trial the session replayed, opened in Chromium. Under
pytest-xdist every worker writes the pages of its own trials and the controller writes the index
from all of them (before, each worker wrote an index of its own trials and the last one won)."""
import re
from pathlib import Path

import pytest

from browser import dom

pytestmark = pytest.mark.needs("chromium")

# Two cassettes under two profiles, a test each: under `-n 2` they spread over both workers.
USER_TESTS = """
import pytest

@pytest.mark.parametrize("profile", ["baseline", "mitigated"])
def test_polyglot(replay, profile):
    assert replay("polyglot-rust-c", profile).trial.turns

@pytest.mark.parametrize("profile", ["baseline", "mitigated"])
def test_db_wal(replay, profile):
    assert replay("db-wal-recovery", profile).trial.turns
"""
PAGES = {f"{task}__reconstructed--{profile}-reference"
         for task in ("polyglot-rust-c", "db-wal-recovery") for profile in ("baseline", "mitigated")}


def linked_trial_pages(index: Path) -> set[str]:
    """The trial pages the rendered job page links to, each checked to exist and render."""
    rendered = dom(index)
    hrefs = set(re.findall(r'href="(trial-[^"]+\.html)"', rendered))
    for href in hrefs:
        assert (index.parent / href).is_file(), f"the index links {href}, which is not there"
    return hrefs


def run_user_session(pytester, *args) -> Path:
    pytester.makepyfile(test_user=USER_TESTS)
    site = pytester.path / "site"
    result = pytester.runpytest_subprocess("--replay", "--tbreplay-view", str(site), *args)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"tbreplay view: open {site / 'index.html'}"])
    return site


def names(hrefs: set[str]) -> set[str]:
    return {h.removeprefix("trial-").removesuffix(".html") for h in hrefs}


def test_the_site_links_a_page_per_trial(pytester):
    site = run_user_session(pytester)
    hrefs = linked_trial_pages(site / "index.html")
    assert names(hrefs) == PAGES
    page = dom(site / "trial-polyglot-rust-c__reconstructed--mitigated-reference.html")
    assert "loop-cut" in page  # the page is the replay's: the mitigated profile cut the loop
    assert len(list(site.glob("compare-*.html"))) == 2  # one cassette, two profiles, one process


def test_under_xdist_the_index_links_every_workers_trials(pytester):
    site = run_user_session(pytester, "-n", "2")
    assert names(linked_trial_pages(site / "index.html")) == PAGES
    parts = sorted(p.stem for p in (site / ".tbreplay-view").glob("*.json"))
    assert parts == ["gw0", "gw1"], "both workers replayed trials (else this test shows nothing)"


def test_a_new_run_forgets_the_last_runs_rows(pytester):
    site = run_user_session(pytester)
    pytester.makepyfile(test_user="""
        def test_one(replay):
            assert replay("db-wal-recovery", "baseline").trial.turns
    """)
    pytester.runpytest_subprocess("--replay", "--tbreplay-view", str(site)).assert_outcomes(passed=1)
    assert names(linked_trial_pages(site / "index.html")) == {"db-wal-recovery__reconstructed--baseline-reference"}
