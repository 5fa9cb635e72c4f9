"""Comparison pages of two harnesses (the reference one vs pi 1.6.0) and two pi versions (0.73.1 vs
1.6.0), opened in Chromium. On path-tracing-reverse under `baseline`, pi 1.6.0 lowers max tokens
as the context fills, down to 1 token, and leaves the recording there (pi 0.73.1 and the reference
harness follow it to its end): the page shows the turn where the sides part and that reason, as
departure.py (what `tbreplay whatif --harness` prints) computes it."""
import html
import re
from pathlib import Path

import pytest

from browser import dom
from pytest_tbreplay.analysis.whatif import whatif
from pytest_tbreplay.cli import main
from pytest_tbreplay.core import cassette as cs
from pytest_tbreplay.core.profiles import load_profile
from pytest_tbreplay.harnesses.pi.install import PI_VERSION, RECORDED_PI

ROOT = Path(__file__).resolve().parents[2]
CASSETTE = ROOT / "cassettes" / "path-tracing-reverse.yaml"
pytestmark = [pytest.mark.needs("chromium"), pytest.mark.needs("pi")]


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


@pytest.fixture(scope="module")
def newer():
    """whatif's answer for the newer pi: where it leaves the recording and why."""
    w = whatif(cs.load(CASSETTE), load_profile("baseline"), f"pi@{PI_VERSION}")
    assert w.course.first is not None and w.first is not None
    return w


def compare(tmp_path_factory, first: str, second: str) -> str:
    out = tmp_path_factory.mktemp("site")
    assert main(["view", str(CASSETTE), "-o", str(out), "--replay", first, "--replay", second]) == 0
    [page] = out.glob("compare-*.html")
    index = dom(out / "index.html")
    assert f'href="{page.name}"' in index, "the job page links the comparison"
    return dom(page)


@pytest.mark.parametrize("first", ["baseline", f"baseline@pi@{RECORDED_PI}"], ids=["harnesses", "pi-versions"])
def test_the_page_shows_where_the_newer_pi_parts_and_why(tmp_path_factory, newer, first):
    rendered = compare(tmp_path_factory, first, f"baseline@pi@{PI_VERSION}")
    summary = text(re.search(r'<p id="part-summary">.*?</p>', rendered, re.S).group(0))
    assert f"part at turn {newer.first.turn}" in summary and newer.first.mitigation in summary
    assert re.findall(r'<div class="parting" id="parting">turn (\d+)</div>', rendered) == [str(newer.first.turn)]
    old, new = (text(m) for m in re.findall(r'<li data-side="\d">.*?</li>', rendered, re.S))
    assert "follows the recording to its end" in old
    departure = newer.course.first
    assert departure.kind == "max_tokens" and departure.value == 1  # what this cassette shows of pi 1.6.0
    assert f"baseline@pi@{PI_VERSION}: leaves the recording at interaction {departure.interaction} " \
           f"({departure.label})" in new
    assert " ".join(departure.text.split()) in new


def test_the_labels_name_the_harnesses(tmp_path_factory):
    rendered = compare(tmp_path_factory, f"baseline@pi@{RECORDED_PI}", f"baseline@pi@{PI_VERSION}")
    title = text(re.search(r"<h1>.*?</h1>", rendered, re.S).group(0))
    assert f"baseline@pi@{RECORDED_PI} vs baseline@pi@{PI_VERSION}" in title
