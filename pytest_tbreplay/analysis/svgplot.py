"""Inline SVG plots for the viewer's pages: no script, no asset, readable without a server."""
from __future__ import annotations

from html import escape

W, H, PAD = 720, 180, 44
MARK_COLOR = {"http-400": "#d62728", "compaction": "#ff7f0e", "nudge": "#9467bd", "refused-cut-call": "#9467bd",
              "demand": "#e377c2", "loop-cut": "#17becf", "max-tokens-cut": "#8c564b", "loop-start": "#bcbd22"}


def _scale(n: int, top: float):
    def x(k: float) -> float:
        return PAD + (W - 2 * PAD) * (k / max(n - 1, 1))

    def y(v: float) -> float:
        return H - PAD / 2 - (H - PAD) * (v / top if top else 0)
    return x, y


def _frame(title: str, top: float, body: list[str], cls: str) -> str:
    return (f'<svg class="plot {cls}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f'<text x="{PAD}" y="12" class="ptitle">{escape(title)}</text>'
            f'<line x1="{PAD}" y1="{H - PAD / 2}" x2="{W - PAD}" y2="{H - PAD / 2}" class="axis"/>'
            f'<text x="2" y="{PAD / 2 + 4}" class="tick">{_short(top)}</text>' + "".join(body) + "</svg>")


def _short(v: float) -> str:
    return f"{v / 1000:.0f}k" if v >= 10_000 else f"{v:,.0f}"


def _hline(y: float, label: str, cls: str) -> str:
    return (f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - PAD}" y2="{y:.1f}" class="{cls}"/>'
            f'<text x="{W - PAD + 2}" y="{y + 4:.1f}" class="tick">{escape(label)}</text>')


def lines(title: str, series: list[tuple[str, list[int | None]]], limits: dict[str, int | None], marks=(),
          cls: str = "context") -> str:
    """One polyline per series (context per turn), horizontal lines at the limits, dots at marks
    ((turn, kind) pairs)."""
    n = max((len(v) for _, v in series), default=1)
    top = max([1, *(x or 0 for _, v in series for x in v), *(v for v in limits.values() if v)]) * 1.05
    x, y = _scale(n, top)
    body = [_hline(y(v), name, "limit") for name, v in limits.items() if v]
    for i, (name, values) in enumerate(series):
        pts = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in enumerate(values) if v is not None)
        body.append(f'<polyline points="{pts}" class="series s{i}"><title>{escape(name)}</title></polyline>')
    for k, kind in marks:
        body.append(f'<circle cx="{x(k):.1f}" cy="{PAD / 2 + 2}" r="4" fill="{MARK_COLOR.get(kind, "#333")}">'
                    f'<title>turn {k}: {escape(kind)}</title></circle>')
    return _frame(title, top, body, cls)


def bars(title: str, values: list[int], limit: int | None, marks=(), cls: str = "output") -> str:
    """Output tokens per turn against max tokens."""
    n = max(len(values), 1)
    top = max([1, *values, limit or 0]) * 1.05
    x, y = _scale(n + 1, top)
    width = max((W - 2 * PAD) / (n + 1) * 0.8, 1)
    body = [_hline(y(limit), "max tokens", "limit")] if limit else []
    body += [f'<rect x="{x(k):.1f}" y="{y(v):.1f}" width="{width:.1f}" height="{y(0) - y(v):.1f}" class="bar">'
             f'<title>turn {k}: {v:,} tokens</title></rect>' for k, v in enumerate(values)]
    body += [f'<circle cx="{x(k) + width / 2:.1f}" cy="{PAD / 2 + 2}" r="4" fill="{MARK_COLOR.get(kind, "#333")}">'
             f'<title>turn {k}: {escape(kind)}</title></circle>' for k, kind in marks]
    return _frame(title, top, body, cls)
