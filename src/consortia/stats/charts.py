"""Charts of the reports, drawn on the server with matplotlib (Agg) as SVG.

Line charts for the monthly and yearly series, bars for the service table and turnaround,
diverging bars for net lending, the series with its fitted segments for before/after, and a heat
map for collection overlap. Text stays text in the SVG (``svg.fonttype: none``) in a CJK font
when one is installed (Noto Sans CJK, as ``make test`` installs), so labels are searchable and
small; every plotted series carries an id (``series-<key>``) for tests and styling.

Rendering is serialised (matplotlib's state is not thread-safe) and cached by the report, its
parameters, the language and the newest event the roll-ups have read: a chart is drawn once
until new events arrive.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")

from matplotlib import font_manager
from matplotlib.figure import Figure

from consortia.i18n import gettext
from consortia.stats.service import Report

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei")
PALETTE = ("#1f5f8b", "#d9822b", "#3c8d5a", "#8e44ad", "#c0392b", "#7f8c8d")
CACHE_SIZE = 256

_lock = threading.Lock()
_cache: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()


def _font_family() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [name for name in CJK_FONTS if name in installed]
    # Without a CJK font the Chinese labels fall back to the viewer's fonts (the SVG keeps text).
    return [*cjk, "DejaVu Sans", "sans-serif"]


_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "consortia",  # stable ids: the same chart gives the same bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _t(lang: str, text: str) -> str:
    return gettext(lang, text)


def _thin(labels: Sequence[str], most: int = 24) -> list[int]:
    step = max(1, (len(labels) + most - 1) // most)
    return list(range(0, len(labels), step))


def _title(report: Report, lang: str) -> str:
    p = report.params
    title = _t(lang, report.title)
    who = p.get("member") or _t(lang, "the consortium")
    return f"{title} · {who} · {p.get('from')} – {p.get('to')}"


def _figure(width: float = 8.0, height: float = 4.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    fig.set_layout_engine("constrained")
    return fig


def _label(lang: str, chart: dict[str, Any], label: str) -> str:
    return label if chart.get("literal_labels") else _t(lang, label)


def _lines(fig: Figure, chart: dict[str, Any], lang: str) -> None:
    ax = fig.add_subplot()
    cats = list(chart["categories"])
    x = list(range(len(cats)))
    for i, (key, label, values) in enumerate(chart["series"]):
        xs = [xi for xi, v in zip(x, values, strict=True) if v is not None]
        ys = [v for v in values if v is not None]
        (line,) = ax.plot(
            xs,
            ys,
            marker="o",
            markersize=3,
            color=PALETTE[i % len(PALETTE)],
            label=_label(lang, chart, label),
        )
        line.set_gid(f"series-{key}")
    ticks = _thin(cats)
    ax.set_xticks([x[i] for i in ticks], [cats[i] for i in ticks], rotation=45, ha="right")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", frameon=False)


def _bars(fig: Figure, chart: dict[str, Any], lang: str, *, diverging: bool = False) -> None:
    ax = fig.add_subplot()
    cats = list(chart["categories"])
    if chart.get("translate_categories"):
        cats = [_t(lang, c) for c in cats]
    series = list(chart["series"])
    k = max(len(series), 1)
    width = 0.8 / (1 if diverging else k)
    for i, (key, label, values) in enumerate(series):
        offset = 0.0 if diverging else (i - (k - 1) / 2) * width
        xs = [j + offset for j in range(len(cats))]
        heights = [float(v) if v is not None else 0.0 for v in values]
        bars = ax.bar(
            xs,
            heights,
            width=width,
            color=PALETTE[i % len(PALETTE)],
            label=_label(lang, chart, label),
        )
        for j, patch in enumerate(bars.patches):
            patch.set_gid(f"series-{key}-{j}")
    ax.set_xticks(
        list(range(len(cats))),
        cats,
        rotation=45 if len(cats) > 6 else 0,
        ha="right" if len(cats) > 6 else "center",
    )
    if diverging:
        ax.axhline(0, color="#333333", linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)
    if series:
        ax.legend(loc="best", frameon=False)


def _impact(fig: Figure, chart: dict[str, Any], lang: str) -> None:
    ax = fig.add_subplot()
    cats = list(chart["categories"])
    x = list(range(len(cats)))
    styles: dict[str, dict[str, Any]] = {
        "value": {"marker": "o", "markersize": 3, "linestyle": "none"},
        "fitted": {"linewidth": 2},
        "without_change": {"linestyle": "--", "linewidth": 1.5},
    }
    for i, (key, label, values) in enumerate(chart["series"]):
        pts = [(xi, v) for xi, v in zip(x, values, strict=True) if v is not None]
        if not pts:
            continue
        if key == "fitted":
            # Two segments: before and after the intervention.
            t0 = int(chart["marker"])
            for part, seg in (
                ("before", [p for p in pts if p[0] < t0]),
                ("after", [p for p in pts if p[0] >= t0]),
            ):
                if seg:
                    (line,) = ax.plot(
                        [p[0] for p in seg],
                        [p[1] for p in seg],
                        color=PALETTE[1],
                        label=_t(lang, label) if part == "before" else None,
                        **styles[key],
                    )
                    line.set_gid(f"series-fitted-{part}")
            continue
        (line,) = ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            color=PALETTE[i % len(PALETTE)],
            label=_t(lang, label),
            **styles.get(key, {}),
        )
        line.set_gid(f"series-{key}")
    marker = int(chart["marker"])
    line = ax.axvline(marker - 0.5, color="#c0392b", linewidth=1)
    line.set_gid("intervention")
    ticks = _thin(cats)
    ax.set_xticks([x[i] for i in ticks], [cats[i] for i in ticks], rotation=45, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", frameon=False)


def _heatmap(fig: Figure, chart: dict[str, Any], lang: str) -> None:
    ax = fig.add_subplot()
    rows, cols, values = chart["rows"], chart["columns"], chart["values"]
    if not rows or not cols:
        ax.text(0.5, 0.5, _t(lang, "No data for this period and these filters"), ha="center")
        ax.set_axis_off()
        return
    # A member's own titles (where a row meets its own column) would swamp the scale: they are
    # shown grey with their number, the colours are the titles two members share.
    grid = np.ma.masked_array(
        np.asarray(values, dtype=float),
        mask=[[rows[i] == cols[j] for j in range(len(cols))] for i in range(len(rows))],
    )
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#dddddd")
    image = ax.imshow(grid, cmap=cmap, aspect="auto")
    image.set_gid("series-overlap")
    ax.set_xticks(list(range(len(cols))), cols, rotation=45, ha="right")
    ax.set_yticks(list(range(len(rows))), rows)
    if len(rows) * len(cols) <= 400:
        low = float(grid.min()) if grid.count() else 0.0
        span = (float(grid.max()) - low) if grid.count() else 1.0
        for i, r in enumerate(values):
            for j, v in enumerate(r):
                dark = rows[i] != cols[j] and (v - low) > 0.55 * (span or 1.0)
                ax.text(
                    j,
                    i,
                    str(v),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "#222222",
                )
    fig.colorbar(image, ax=ax, label=_t(lang, "Titles held by both members"))


def render(report: Report, lang: str) -> bytes:
    """The report's chart as SVG bytes (cached)."""
    key = (
        report.name,
        tuple(sorted((k, str(v)) for k, v in report.params.items())),
        lang,
        report.extra.get("as_of"),
    )
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
        svg = _draw(report, lang)
        _cache[key] = svg
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return svg


def _draw(report: Report, lang: str) -> bytes:
    chart = report.chart
    kind = chart.get("kind", "bars")
    rc: dict[str, Any] = dict(_RC)
    rc["font.family"] = _font_family()
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig = _figure(8.0, 5.5 if kind == "heatmap" else 4.0)
        if kind == "lines":
            _lines(fig, chart, lang)
        elif kind == "impact":
            _impact(fig, chart, lang)
        elif kind == "heatmap":
            _heatmap(fig, chart, lang)
        else:
            _bars(fig, chart, lang, diverging=kind == "diverging")
        fig.suptitle(_title(report, lang), fontsize=10)
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": "Consortia"})
    return out.getvalue()
