"""The viewer's HTML: a job page (summarize's table and totals, filterable by failure mode), a
trial page (turn by turn) and a comparison page (two sides of one recorded trial). Plain HTML
with the CSS, the SVG and the one small script inline: a page opens from disk with nothing fetched."""
from __future__ import annotations

from html import escape

from pytest_tbreplay.analysis import summarize as sm
from pytest_tbreplay.analysis.svgplot import MARK_COLOR, bars, lines
from pytest_tbreplay.analysis.trialview import Row, TrialView, parting

LONG = 6000  # characters of one text or tool result kept on a page (head and tail)

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.15em;margin-top:1.4em}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.mode{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:600}
.turn{border:1px solid #ccc;border-radius:4px;margin:.5em 0;padding:.4em .6em}
.turn.marked{border-left:5px solid #d62728}
.head{display:flex;gap:1em;flex-wrap:wrap;align-items:center}.head b{min-width:4em}
.meter{display:inline-block;width:160px;height:9px;background:#eee;border-radius:2px;vertical-align:middle;
position:relative}.meter i{display:block;height:100%;background:#1f77b4;border-radius:2px}
.meter.over i{background:#d62728}.meter s{position:absolute;top:-2px;bottom:-2px;border-left:2px solid #333}
.mark{margin:.3em 0;padding:2px 6px;border-radius:3px;color:#fff;font-weight:500}
pre{white-space:pre-wrap;word-break:break-word;background:#f7f7f7;padding:4px 6px;margin:.2em 0;font-size:12px;
max-height:30em;overflow:auto}details{margin:.2em 0}summary{cursor:pointer}
.plot{display:block;margin:.4em 0;background:#fff;border:1px solid #ddd}
.plot .axis{stroke:#999}.plot .limit{stroke:#d62728;stroke-dasharray:4 3}.plot .tick,.plot .ptitle{font-size:11px}
.plot .series{fill:none;stroke-width:2}.plot .s0{stroke:#1f77b4}.plot .s1{stroke:#ff7f0e}.plot .bar{fill:#1f77b4}
.cmp{display:grid;grid-template-columns:4em 1fr 1fr;gap:2px 8px}.cmp>div{border-bottom:1px solid #eee;padding:2px}
.cmp .parting{background:#fff3cd}.said{color:#555;font-style:italic}.note{color:#555}
"""

FILTER_JS = """
function applyFilter(mode){document.querySelectorAll('tr[data-modes]').forEach(function(tr){
 tr.hidden=!!mode&&tr.dataset.modes.split(' ').indexOf(mode)<0;});
 var s=document.getElementById('mode-filter');if(s)s.value=mode;
 var n=document.querySelectorAll('tr[data-modes]:not([hidden])').length;
 document.getElementById('shown').textContent=n;}
document.getElementById('mode-filter').addEventListener('change',function(e){
 location.hash=e.target.value?'mode='+encodeURIComponent(e.target.value):'';applyFilter(e.target.value);});
var m=/mode=([^&]*)/.exec(location.hash);applyFilter(m?decodeURIComponent(m[1]):'');
"""


def page(title: str, body: str, script: str = "") -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<style>{CSS}</style></head><body>{body}'
            + (f"<script>{script}</script>" if script else "") + "</body></html>")


def _clip(text: str) -> str:
    if len(text) <= 2 * LONG:
        return escape(text)
    return (escape(text[:LONG]) + f'\n<span class="note">… {len(text) - 2 * LONG:,} characters left out …</span>\n'
            + escape(text[-LONG:]))


def _mode(mode: str) -> str:
    return f'<span class="mode" style="background:{sm.COLORS.get(mode, sm.COLORS["?"])}">{escape(mode)}</span>'


def _n(v) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else escape(str(v))


# -- job page ------------------------------------------------------------------------------------
def job_page(title: str, entries: list[tuple[sm.Record, dict[str, str]]], failed: list[tuple[str, str]]) -> str:
    """entries: each trial's Record and its pages (label -> href)."""
    recs = [r for r, _ in entries]
    t = sm.totals(recs)
    modes = [m for m in [*sm.MODES, "pass", "?"] if any(m in r.modes for r in recs)]
    options = "".join(f'<option value="{escape(m)}">{escape(m)}: {escape(sm.MODES.get(m, m))}</option>' for m in modes)
    head = ("<tr><th>task</th><th>trial</th><th>reward</th><th>turns</th><th>stops s/l/t/e</th><th>think</th>"
            "<th>text</th><th>cmp</th><th>peak ctx</th><th>n_ctx</th><th>chk</th><th>wall s</th><th>mode</th>"
            "<th>rule</th><th>pages</th></tr>")
    rows = "".join(_job_row(r, links) for r, links in entries)
    by_mode = "".join(f"<tr><td>{_mode(m)}</td><td>{escape(d)}</td><td class=n>{t['by_mode'][m]}</td>"
                      f"<td class=n>{t['primary_mode'][m]}</td></tr>" for m, d in sm.MODES.items())
    bad = "".join(f"<li>{escape(str(p))}: {escape(why)}</li>" for p, why in failed)
    body = (f"<h1>{escape(title)}</h1><p id=totals>{t['trials']} trials: {t['passed']} passed, {t['failed']} failed, "
            f"{t['infra']} infra; pass rate {_n(t['pass_rate'])}</p>"
            f'<p>failure mode <select id="mode-filter"><option value="">all</option>{options}</select> '
            f'showing <span id="shown">{len(recs)}</span> of {len(recs)}</p>'
            f'<table id="trials">{head}{rows}</table><h2>Failure modes</h2><table id="modes"><tr><th>mode</th>'
            f"<th>description</th><th>trials</th><th>as main mode</th></tr>{by_mode}</table>"
            + (f"<h2>Not read</h2><ul id=failed>{bad}</ul>" if bad else ""))
    return page(title, body, FILTER_JS)


def _job_row(r: sm.Record, links: dict[str, str]) -> str:
    s = r.stop_reasons
    stops = f"{s.get('stop', 0)}/{s.get('length', 0)}/{s.get('toolUse', 0)}/{s.get('error', 0)}"
    cmp_ = f"{r.compactions.get('threshold', 0) + r.compactions.get('summary', 0)}/{r.compactions.get('overflow', 0)}"
    first = next(iter(links.values()), None)
    trial = f'<a href="{escape(first)}">{escape(r.trial)}</a>' if first else escape(r.trial)
    pages = " ".join(f'<a href="{escape(h)}">{escape(label)}</a>' for label, h in links.items())
    cells = [escape(r.task), trial, _n(r.reward), _n(r.turns), stops, _n(r.max_thinking_tokens),
             _n(r.max_text_tokens), cmp_, _n(r.peak_prompt_tokens), _n(r.n_ctx), "yes" if r.checked else "-",
             "-" if r.wall_s is None else f"{r.wall_s:.0f}", _mode(r.mode), escape(r.rule), pages]
    return (f'<tr data-modes="{escape(" ".join(r.modes))}">'
            + "".join(f"<td{' class=n' if i in (2, 3, 5, 6, 8, 9, 11) else ''}>{c}</td>" for i, c in enumerate(cells))
            + "</tr>")


# -- trial page ----------------------------------------------------------------------------------
def trial_page(v: TrialView, back: str | None = "index.html") -> str:
    r = v.record
    facts = (f"<p>{escape(v.kind)} · profile <b>{escape(v.profile)}</b> · harness {escape(v.harness)} · "
             f"n_ctx {_n(v.n_ctx)} · window {_n(v.window)} · max tokens {_n(v.max_tokens)}</p>"
             f"<p>mode {_mode(r.mode)} {escape(r.rule)} · turns {len(v.rows)} · peak context "
             f"{_n(r.peak_prompt_tokens)} · reward {_n(v.reward)}"
             + (" (the recording's: a replay is not graded)" if v.kind == "replay" else "") + "</p>")
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in v.notes)
    body = ((f'<p><a href="{escape(back)}">← all trials</a></p>' if back else "")
            + f"<h1>{escape(v.trial)}</h1>{facts}{notes}"
            + f"<details><summary>instruction</summary><pre>{_clip(v.instruction)}</pre></details>"
            + plots(v) + "<h2>Turns</h2>" + "".join(turn_html(row, v) for row in v.rows)
            + f'<h2>Final text</h2><pre id="final-text">{_clip(v.final_text)}</pre>'
            + f'<h2>Verifier</h2><p id="reward">reward {_n(v.reward)}</p>'
            + (f'<pre id="verifier-output">{_clip(v.verifier_output)}</pre>' if v.verifier_output else
               '<p class="note">no verifier output in this source</p>'))
    return page(f"{v.trial} ({v.profile})", body)


def plots(v: TrialView, other: TrialView | None = None) -> str:
    sides = [v] + ([other] if other else [])
    marks = [(row.index, m.kind) for row in v.rows for m in row.marks]
    ctx = lines("context tokens per turn", [(f"{s.profile} ({s.harness})", [row.prompt_tokens for row in s.rows])
                                            for s in sides],
                {"n_ctx": v.n_ctx, "window": v.window}, marks)
    out = bars("output tokens per turn", [row.completion_tokens for row in v.rows], v.max_tokens, marks)
    return ctx + ("" if other else out)


def _meter(value: int | None, limit: int | None, tick: int | None = None) -> str:
    if not value or not limit:
        return ""
    share = min(value / limit, 1.0)
    t = f'<s style="left:{min(tick / limit, 1) * 100:.1f}%"></s>' if tick else ""
    return f'<span class="meter{" over" if value > (tick or limit) else ""}"><i style="width:{share * 100:.1f}%"></i>{t}</span>'


def turn_html(row: Row, v: TrialView) -> str:
    kinds = " ".join(m.kind for m in row.marks)
    head = (f'<div class="head"><b>turn {row.index}</b><span class="stop">{escape(row.stop_reason)}</span>'
            f'<span>context {_n(row.prompt_tokens)} / {_n(v.n_ctx)} {_meter(row.prompt_tokens, v.n_ctx, v.window)}'
            f'</span><span>output {_n(row.completion_tokens)} / {_n(v.max_tokens)} '
            f'{_meter(row.completion_tokens, v.max_tokens)}</span>'
            + (f"<span>HTTP {row.status}</span>" if row.status != 200 else "") + "</div>")
    parts = [head, _marks(row)]
    if row.thinking:
        parts.append(f"<details><summary>thinking ({len(row.thinking):,} chars)</summary>"
                     f"<pre>{_clip(row.thinking)}</pre></details>")
    if row.text:
        parts.append(f'<pre class="text">{_clip(row.text)}</pre>')
    for c in row.calls:
        res = ("<i>no result</i>" if c.result is None else
               f'<pre class="result{" error" if c.is_error else ""}">{_clip(c.result)}</pre>')
        parts.append(f'<details class="call"><summary>{escape(c.name)}({escape(c.arguments[:100])}'
                     f'{"…" if len(c.arguments) > 100 else ""})</summary><pre class="args">{_clip(c.arguments)}</pre>'
                     f"{res}</details>")
    parts += [f'<p class="said">harness: {escape(s[:600])}</p>' for s in row.said_after]
    return (f'<section class="turn{" marked" if row.marks else ""}" id="turn-{row.index}" '
            f'data-marks="{escape(kinds)}">' + "".join(parts) + "</section>")


# -- comparison page -----------------------------------------------------------------------------
def compare_page(a: TrialView, b: TrialView, links: tuple[str, str]) -> str:
    turn, acted = parting(a, b)
    where = ("the two sides never part: every turn is the same" if turn is None else
             f"they part at turn {turn}" + (": " + "; ".join(f"{e.mitigation}: {e.text}" for e in acted)
                                             if acted else ": the turns differ there (no mitigation acted)"))
    head = "".join(f'<div><b><a href="{escape(h)}">{escape(s.profile)} · {escape(s.harness)}</a></b><br>'
                   f"{_mode(s.record.mode)} {len(s.rows)} turns, peak {_n(s.record.peak_prompt_tokens)}, "
                   f"final stop {escape(s.rows[-1].stop_reason if s.rows else '-')}</div>" for s, h in zip((a, b), links))
    cells = []
    for k in range(max(len(a.rows), len(b.rows))):
        cls = ' class="parting" id="parting"' if k == turn else ""
        cells.append(f"<div{cls}>turn {k}</div>" + "".join(
            f"<div{cls} data-side=\"{i}\">{_cell(s.rows[k], s) if k < len(s.rows) else '—'}</div>"
            for i, s in enumerate((a, b))))
    body = (f'<p><a href="index.html">← all trials</a></p><h1>{escape(a.trial)}: {escape(a.side)} vs '
            f'{escape(b.side)}</h1><p id="part-summary">{escape(where)}</p>{_courses(a, b)}' + plots(a, b)
            + f'<div class="cmp"><div></div>{head}{"".join(cells)}</div>')
    return page(f"{a.trial}: {a.side} vs {b.side}", body)


def _courses(a: TrialView, b: TrialView) -> str:
    """Where each side left the recording and why (departure.py's answer, as `whatif` prints it):
    two pi versions part where the newer one lowers max tokens, compacts or refuses a cut call."""
    items = "".join(f'<li data-side="{i}"><b>{escape(s.side)}</b>: '
                    + (escape(f"leaves the recording at interaction {s.course.first.interaction} "
                              f"({s.course.first.label}): {s.course.why}") if s.course.first else
                       "follows the recording to its end")
                    + "</li>" for i, s in enumerate((a, b)) if s.course is not None)
    return f'<ul id="departures">{items}</ul>' if items else ""


def _cell(row: Row, v: TrialView) -> str:
    calls = ", ".join(escape(c.name) for c in row.calls) or "-"
    return (f"{escape(row.stop_reason)} · ctx {_n(row.prompt_tokens)} · out {_n(row.completion_tokens)} · "
            f"calls {calls}{_marks(row)}")


def _marks(row: Row) -> str:
    return "".join(f'<div class="mark mark-{escape(m.kind)}" style="background:{MARK_COLOR.get(m.kind, "#333")}">'
                   f"{escape(m.kind)}: {escape(m.text)}</div>" for m in row.marks)
