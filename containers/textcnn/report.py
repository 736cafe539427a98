"""A self-contained HTML report of a trained model: test metrics, confusion matrix and the
training curves, as inline SVG (no plotting library, no external assets), so the Argo UI
and a browser show it straight from the artifact store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from textcnn.drift import Drift, bin_label, shares

_W, _H, _PAD = 420, 220, 36
_COLOURS = {
    "loss": "#1f77b4",
    "val_loss": "#ff7f0e",
    "accuracy": "#1f77b4",
    "val_accuracy": "#ff7f0e",
}


def _curve_svg(title: str, series: Mapping[str, Sequence[float]]) -> str:
    values = [v for s in series.values() for v in s]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    epochs = max(len(s) for s in series.values())

    def point(i: int, v: float) -> str:
        x = _PAD + (_W - 2 * _PAD) * (i / max(epochs - 1, 1))
        y = _H - _PAD - (_H - 2 * _PAD) * ((v - lo) / span)
        return f"{x:.1f},{y:.1f}"

    lines = [
        f'<polyline fill="none" stroke="{_COLOURS.get(name, "#555")}" stroke-width="2" '
        f'points="{" ".join(point(i, v) for i, v in enumerate(s))}"><title>{escape(name)}'
        "</title></polyline>"
        for name, s in series.items()
    ]
    legend = " ".join(
        f'<tspan fill="{_COLOURS.get(name, "#555")}">&#9632; {escape(name)}</tspan>'
        for name in series
    )
    axes = (
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f'<text x="{_PAD}" y="{_PAD - 8}" font-size="12">{legend}</text>'
        f'<text x="2" y="{_PAD + 4}" font-size="10">{hi:.3g}</text>'
        f'<text x="2" y="{_H - _PAD}" font-size="10">{lo:.3g}</text>'
        f'<text x="{_W - _PAD}" y="{_H - 10}" font-size="10" text-anchor="end">'
        f"epoch {epochs}</text>"
    )
    return (
        f'<figure><figcaption>{escape(title)}</figcaption><svg width="{_W}" '
        f'height="{_H}" role="img">{axes}{"".join(lines)}</svg></figure>'
    )


def _confusion_table(confusion: Mapping[str, Any]) -> str:
    labels, matrix = confusion["labels"], confusion["matrix"]
    peak = max((v for row in matrix for v in row), default=0) or 1
    head = "".join(f"<th>{escape(str(c))}</th>" for c in labels)
    rows = []
    for label, row in zip(labels, matrix, strict=True):
        cells = "".join(
            f'<td style="background:rgba(31,119,180,{0.1 + 0.8 * v / peak:.2f})">{v}</td>'
            for v in row
        )
        rows.append(f"<tr><th>{escape(str(label))}</th>{cells}</tr>")
    return f"<table><tr><th>true \\ predicted</th>{head}</tr>{''.join(rows)}</table>"


def render_report(
    metrics: Mapping[str, Any],
    history: Mapping[str, Sequence[float]],
    training: Mapping[str, Any] | None = None,
) -> str:
    """The report as one HTML page."""
    per_class = "".join(
        f"<tr><th>{escape(name)}</th><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
        f"<td>{m['f1']:.3f}</td><td>{m['support']}</td></tr>"
        for name, m in metrics["per_class"].items()
    )
    facts = {
        "test accuracy": f"{metrics['accuracy']:.4f}",
        "macro F1": f"{metrics['macro_f1']:.4f}",
        "test examples": str(metrics["num_examples"]),
    }
    for key in ("epochs_run", "best_epoch", "duration_seconds", "examples_per_second"):
        if training and key in training:
            value = training[key]
            facts[key.replace("_", " ")] = (
                f"{value:.4g}" if isinstance(value, float) else str(value)
            )
    summary = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts.items()
    )
    curves = _curve_svg("loss", {k: history[k] for k in ("loss", "val_loss") if k in history})
    curves += _curve_svg(
        "accuracy", {k: history[k] for k in ("accuracy", "val_accuracy") if k in history}
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
        "figure{display:inline-block;margin:0 1em 1em 0}"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>textcnn report</title>'
        f"<style>{style}</style></head><body><h1>textcnn model report</h1>"
        f"<table>{summary}</table><h2>Per class</h2><table><tr><th></th><th>precision</th>"
        f"<th>recall</th><th>F1</th><th>support</th></tr>{per_class}</table>"
        f"<h2>Confusion matrix</h2>{_confusion_table(metrics['confusion_matrix'])}"
        f"<h2>Training curves</h2>{curves}</body></html>\n"
    )


def _insert(report: str, section: str) -> str:
    """`section` before the training curves (or at the end)."""
    at = report.find("<h2>Training curves</h2>")
    if at < 0:
        at = report.rfind("</body>")
    return report[:at] + section + report[at:] if at >= 0 else report + section


def _bars_svg(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]) -> str:
    """Shares per bin of each series, overlaid as outlined bars (one colour each)."""
    peak = max((v for s in series.values() for v in s), default=0.0) or 1.0
    width = (_W - 2 * _PAD) / max(len(labels), 1)
    colours = ("#1f77b4", "#ff7f0e")
    bars = []
    for (name, values), colour in zip(series.items(), colours, strict=False):
        for i, v in enumerate(values):
            h = (_H - 2 * _PAD) * v / peak
            bars.append(
                f'<rect x="{_PAD + i * width:.1f}" y="{_H - _PAD - h:.1f}" '
                f'width="{width:.1f}" height="{h:.1f}" fill="{colour}" fill-opacity="0.35" '
                f'stroke="{colour}"><title>{escape(name)}: {escape(labels[i])} tokens, '
                f"{v:.2%}</title></rect>"
            )
    ticks = "".join(
        f'<text x="{_PAD + (i + 0.5) * width:.1f}" y="{_H - _PAD + 14}" font-size="9" '
        f'text-anchor="middle">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % 4 == 0
    )
    legend = " ".join(
        f'<tspan fill="{colour}">&#9632; {escape(name)}</tspan>'
        for name, colour in zip(series, colours, strict=False)
    )
    return (
        f'<figure><figcaption>{escape(title)}</figcaption><svg width="{_W}" height="{_H}" '
        f'role="img"><text x="{_PAD}" y="{_PAD - 8}" font-size="12">{legend}</text>'
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f"{''.join(bars)}{ticks}</svg></figure>"
    )


def with_data_checks(report: str, checks: Mapping[str, Any], drift: Drift) -> str:
    """The report with check-data's findings and the gate's data comparison: the class
    shares of the reference and the current data side by side, their length histograms
    overlaid, the test rows found in the training data."""
    reference, current = drift.profiles
    ref_shares, cur_shares = shares(reference.classes), shares(current.classes)
    classes = sorted({*ref_shares, *cur_shares})
    class_rows = "".join(
        f"<tr><th>{escape(c)}</th>"
        + "".join(
            f"<td>{side[c]:.2%}</td>" if c in side else "<td>absent</td>"
            for side in (ref_shares, cur_shares)
        )
        + "</tr>"
        for c in classes
    )
    t = drift.thresholds
    figures = "".join(
        f"<tr><th>{escape(name)}</th><td>{value:.4f}</td><td>{limit:g}</td></tr>"
        for name, value, limit in (
            ("label drift (total variation)", drift.label_drift, t.max_label_drift),
            ("length drift (Kolmogorov-Smirnov)", drift.length_drift, t.max_length_drift),
            (f"OOV rate (against {drift.oov_against})", drift.oov_rate, t.max_oov_rate),
        )
    )
    verdict = (
        "<ul>" + "".join(f"<li>{escape(b)}</li>" for b in drift.blocks) + "</ul>"
        if drift.blocks
        else "<p>No drift beyond the thresholds.</p>"
    )
    overlap = checks["overlap"]
    examples = "".join(
        f'<tr><th>{e["row"]}</th><td style="text-align:left">{escape(e["text"])}</td></tr>'
        for e in overlap["examples"]
    )
    dropped = checks.get("dropped_by_prepare_data", {})
    # Short legend names: the sides are named in full in the caption.
    lengths = {
        "reference": _normalised(reference.lengths),
        "current": _normalised(current.lengths),
    }
    used = [i for i in range(len(reference.lengths)) if reference.lengths[i] or current.lengths[i]]
    last = max(used, default=0) + 1
    section = (
        f"<h2>Data checks: {'deploy withheld' if drift.blocks else 'passed'}</h2>"
        f"<p>{escape(drift.current)} against {escape(drift.reference)}.</p>{verdict}"
        f"<table><tr><th></th><th>figure</th><th>threshold</th></tr>{figures}</table>"
        f"<table><tr><th>class</th><th>{escape(drift.reference)}</th>"
        f"<th>{escape(drift.current)}</th></tr>{class_rows}</table>"
        + _bars_svg(
            f"text length in tokens, share of texts: reference {drift.reference}, "
            f"current {drift.current}",
            [bin_label(i) for i in range(last)],
            {name: values[:last] for name, values in lengths.items()},
        )
        + f"<p>Test rows also in the training data: {overlap['rows']} "
        f"({overlap['share']:.2%} of the test rows; at most {overlap['max_test_overlap']:g}; "
        f"{overlap['compared']} of {overlap['min_words']} words or more compared, "
        f"{overlap['short_texts']} shorter not), "
        f"{overlap['dropped']} dropped. Test OOV rate against this run's vocabulary: "
        f"{checks['test_oov_rate']:.4f}. prepare-data dropped {dropped.get('empty_texts', 0)} "
        f"empty and {dropped.get('duplicate_texts', 0)} duplicate training texts.</p>"
        + (f"<table><tr><th>row</th><th>text</th></tr>{examples}</table>" if examples else "")
    )
    return _insert(report, section)


def _normalised(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def with_gate(report: str, decision: str, reason: str, figures: Mapping[str, float]) -> str:
    """The report with the deploy gate's verdict added before the training curves (or at
    the end): the decision, the figures compared and why."""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{v:.4f}</td></tr>" for k, v in figures.items())
    section = (
        f"<h2>Deploy gate: {escape(decision)}</h2><p>{escape(reason)}</p><table>{rows}</table>"
    )
    return _insert(report, section)
