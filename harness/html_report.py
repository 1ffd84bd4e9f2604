"""report.html: one self-contained page with a chart of every case's gates.

The page has no script, no external style sheet, font or image, and no URL, so it opens
offline and from a CI artifact store. Each case gets one inline SVG chart (class
`case-chart`) with one row per checked metric: the score as a dot, its confidence interval
as a bar, the threshold as a dashed line and the baseline score as a diamond, on an axis
shared by the case's rows. A table below the chart gives the numbers.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness import __version__
from harness.outputs import inside, write_atomic
from harness.results import CaseResult

WIDTH = 1000
LABEL_WIDTH = 190
VALUES_WIDTH = 300
ROW_HEIGHT = 46
TOP = 14
AXIS_HEIGHT = 30
COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#9a6700", "predicted": "#57606a"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1040px; color: #1f2328; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin: 28px 0 6px; }
.status { font-size: 12px; padding: 2px 8px; border-radius: 10px; color: #fff; }
.pass { background: #1a7f37; } .fail { background: #cf222e; }
.error { background: #9a6700; } .predicted { background: #57606a; }
table { border-collapse: collapse; font-size: 13px; margin-top: 6px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; }
th:nth-child(-n+2), td:nth-child(-n+2) { text-align: left; }
.message { font-size: 13px; color: #cf222e; margin: 4px 0; }
.meta { font-size: 13px; color: #57606a; }
svg text { font-family: system-ui, sans-serif; font-size: 12px; fill: #1f2328; }
"""


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _format(value: Any, signed: bool = False) -> str:
    number = _finite(value)
    if number is None:
        return "—"
    return f"{number:+.4f}" if signed else f"{number:.4f}"


def _domain(rows: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Return the axis range of a case's chart: every plotted value, padded a little."""
    values = [
        _finite(row.get(name))
        for row in rows
        for name in ("score", "low", "high", "threshold", "baseline")
    ]
    values = [value for value in values if value is not None]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    span = high - low
    pad = max(span * 0.15, abs(high) * 0.02, 0.01)
    return low - pad, high + pad


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return about `count` round tick values inside [low, high]."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _chart(case_id: str, rows: Sequence[dict[str, Any]], message: str | None) -> str:
    """Return one case's SVG chart: a row per checked metric on a shared axis."""
    plot_left = LABEL_WIDTH
    plot_right = WIDTH - VALUES_WIDTH
    plotted = [row for row in rows if _finite(row.get("score")) is not None]
    height = TOP + ROW_HEIGHT * max(1, len(rows)) + AXIS_HEIGHT
    parts = [
        f'<svg class="case-chart" data-case="{escape(case_id)}" role="img" '
        f'aria-label="{escape(case_id)}: score, interval, threshold and baseline" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">'
    ]
    if not plotted:
        text = message or "no score: this case only predicts (hidden labels)"
        parts.append(f'<text x="10" y="{TOP + 20}">{escape(text[:150])}</text>')
        parts.append("</svg>")
        return "".join(parts)

    low, high = _domain(plotted)

    def x(value: float) -> float:
        return plot_left + (value - low) / (high - low) * (plot_right - plot_left)

    axis_y = TOP + ROW_HEIGHT * len(rows)
    parts.append(
        f'<line x1="{plot_left}" y1="{axis_y}" x2="{plot_right}" y2="{axis_y}" stroke="#57606a"/>'
    )
    for tick in _ticks(low, high):
        position = x(tick)
        parts.append(
            f'<line x1="{position:.1f}" y1="{TOP}" x2="{position:.1f}" y2="{axis_y + 4}" '
            'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{position:.1f}" y="{axis_y + 18}" text-anchor="middle">{tick:g}</text>'
        )

    for index, row in enumerate(rows):
        middle = TOP + ROW_HEIGHT * index + ROW_HEIGHT / 2
        colour = COLOURS.get(row["status"], "#57606a")
        label = f"{row['metric']} · {row.get('gate') or 'min'}"
        parts.append(f'<text x="10" y="{middle + 4:.1f}">{escape(label)}</text>')
        score = _finite(row.get("score"))
        if score is None:
            parts.append(f'<text x="{plot_left}" y="{middle + 4:.1f}">score undefined</text>')
            continue
        row_low, row_high = _finite(row.get("low")), _finite(row.get("high"))
        if row_low is not None and row_high is not None:
            parts.append(
                f'<rect class="interval" x="{x(row_low):.1f}" y="{middle - 5:.1f}" '
                f'width="{max(1.0, x(row_high) - x(row_low)):.1f}" height="10" rx="3" '
                f'fill="{colour}" fill-opacity="0.25"/>'
            )
        threshold = _finite(row.get("threshold"))
        if threshold is not None:
            parts.append(
                f'<line class="threshold" x1="{x(threshold):.1f}" y1="{middle - 16:.1f}" '
                f'x2="{x(threshold):.1f}" y2="{middle + 16:.1f}" stroke="#1f2328" '
                'stroke-width="2" stroke-dasharray="4 3"/>'
            )
        parts.append(
            f'<circle class="score" cx="{x(score):.1f}" cy="{middle:.1f}" r="5.5" fill="{colour}"/>'
        )
        baseline = _finite(row.get("baseline"))
        if baseline is not None:
            # A hollow diamond drawn after the dot, so both show when the scores are equal.
            left = x(baseline)
            parts.append(
                f'<polygon class="baseline" points="{left:.1f},{middle - 9:.1f} '
                f"{left + 8:.1f},{middle:.1f} {left:.1f},{middle + 9:.1f} "
                f'{left - 8:.1f},{middle:.1f}" fill="none" stroke="#0969da" stroke-width="2"/>'
            )
        summary = f"{score:.4f}"
        if row_low is not None and row_high is not None:
            summary += f" [{row_low:.4f}, {row_high:.4f}]"
        if _finite(row.get("delta")) is not None:
            summary += f"  Δ {row['delta']:+.4f}"
        if _finite(row.get("p_value")) is not None:
            summary += f"  p {row['p_value']:.3g}"
        parts.append(
            f'<text x="{plot_right + 12}" y="{middle + 4:.1f}" fill="{colour}">'
            f"{escape(summary)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend() -> str:
    return (
        '<svg class="legend" width="720" height="24" viewBox="0 0 720 24" role="img" '
        'aria-label="legend">'
        '<circle cx="10" cy="12" r="5.5" fill="#1a7f37"/><text x="22" y="16">score</text>'
        '<rect x="80" y="7" width="40" height="10" rx="3" fill="#1a7f37" fill-opacity="0.25"/>'
        '<text x="126" y="16">confidence interval</text>'
        '<line x1="270" y1="2" x2="270" y2="22" stroke="#1f2328" stroke-width="2" '
        'stroke-dasharray="4 3"/><text x="278" y="16">threshold</text>'
        '<polygon points="370,3 378,12 370,21 362,12" fill="none" stroke="#0969da" '
        'stroke-width="2"/>'
        '<text x="384" y="16">baseline score</text>'
        '<text x="500" y="16">green: pass, red: fail</text></svg>'
    )


def _table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "metric",
        "gate",
        "score",
        "interval",
        "threshold",
        "baseline",
        "delta",
        "delta interval",
        "p",
        "result",
    )
    lines = ["<table><tr>" + "".join(f"<th>{name}</th>" for name in header) + "</tr>"]
    for row in rows:
        interval = "—"
        if _finite(row.get("low")) is not None and _finite(row.get("high")) is not None:
            interval = (
                f"[{_format(row['low'])}, {_format(row['high'])}] {row.get('interval') or ''}"
            )
        delta_interval = "—"
        if _finite(row.get("delta_low")) is not None and _finite(row.get("delta_high")) is not None:
            delta_interval = (
                f"[{_format(row['delta_low'], True)}, {_format(row['delta_high'], True)}]"
            )
        p_value = _finite(row.get("p_value"))
        cells = (
            row["metric"],
            row.get("gate") or "—",
            _format(row.get("score")),
            interval,
            _format(row.get("threshold")),
            _format(row.get("baseline")),
            _format(row.get("delta"), True),
            delta_interval,
            "—" if p_value is None else f"{p_value:.4g}",
            row["status"].upper(),
        )
        lines.append("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in cells) + "</tr>")
    lines.append("</table>")
    return "".join(lines)


def _case_status(result: CaseResult) -> str:
    if result.error:
        return "error"
    if not result.metrics and not result.failures:
        return "predicted"
    return "pass" if result.passed else "fail"


def render_html(results: Sequence[CaseResult], rows: Sequence[dict[str, Any]]) -> str:
    """Render the page for `results` and their report rows (harness.reports.report_rows)."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    passed = sum(1 for result in results if result.passed)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>CLUE gate report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>CLUE gate report</h1>",
        f'<p class="meta">{len(results)} cases, {passed} passed; harness {escape(__version__)}; '
        f"created {escape(created)}</p>",
        _legend(),
    ]
    for result in results:
        status = _case_status(result)
        case_rows = by_case.get(result.case_id, [])
        parts.append(f'<section class="case" id="case-{escape(result.case_id)}">')
        parts.append(
            f"<h2>{escape(result.case_id)} "
            f'<span class="status {status}">{status.upper()}</span></h2>'
        )
        parts.append(
            f'<p class="meta">model {escape(result.model)}, {result.n_scored} examples scored, '
            f"tier {escape(result.tier)}, data sha256 {escape(result.data_sha256[:12] or '—')}</p>"
        )
        parts.append(_chart(result.case_id, case_rows, result.error))
        for message in [result.error] if result.error else result.failures:
            parts.append(f'<p class="message">{escape(message)}</p>')
        if result.repeats:
            spread = result.repeats["metrics"].get(result.main_metric, {})
            parts.append(
                f'<p class="meta">{result.repeats["count"]} repeats: {escape(result.main_metric)} '
                f"mean {_format(spread.get('mean'))}, min {_format(spread.get('min'))}, max "
                f"{_format(spread.get('max'))}, stdev {_format(spread.get('stdev'))}; pass rate "
                f"{result.repeats['pass_rate']:.0%}</p>"
            )
        if case_rows:
            parts.append(_table(case_rows))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html_report(
    results: Sequence[CaseResult], rows: Sequence[dict[str, Any]], output_dir: Path
) -> Path:
    """Write report.html into the output folder and return its path."""
    path = inside(output_dir, "report.html")
    write_atomic(path, render_html(results, rows))
    return path
