"""The HTML report: metrics, confusion matrix and training curves, self-contained."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np

from textcnn.drift import LENGTH_EDGES, Profile, Thresholds, compare, length_histogram
from textcnn.report import render_report, with_data_checks, with_gate

METRICS = {
    "accuracy": 0.75,
    "macro_f1": 0.74,
    "num_examples": 40,
    "per_class": {
        "fresh": {"precision": 0.8, "recall": 0.7, "f1": 0.746, "support": 20},
        "<rotten>": {"precision": 0.7, "recall": 0.8, "f1": 0.747, "support": 20},
    },
    "confusion_matrix": {"labels": ["fresh", "<rotten>"], "matrix": [[14, 6], [4, 16]]},
}
HISTORY = {
    "loss": [0.7, 0.5, 0.4],
    "val_loss": [0.6, 0.55, 0.58],
    "accuracy": [0.6, 0.7, 0.8],
    "val_accuracy": [0.65, 0.7, 0.69],
}


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.tags: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_cell = tag in ("td", "th")

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)


def parse(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    return parser


def test_report_shows_metrics_matrix_and_one_curve_per_series() -> None:
    html = render_report(METRICS, HISTORY, {"epochs_run": 3, "best_epoch": 2})
    page = parse(html)
    for value in ("0.7500", "0.7400", "14", "6", "4", "16", "0.800", "0.700", "3", "2"):
        assert value in page.cells, value
    assert page.tags.count("polyline") == 4
    assert page.tags.count("svg") == 2
    # Class names are escaped, and nothing is loaded from elsewhere.
    assert "&lt;rotten&gt;" in html and "<rotten>" not in html
    assert not re.search(r"(src|href)=", html)


def test_curves_scale_to_the_series_and_missing_ones_are_left_out() -> None:
    html = render_report(METRICS, {"loss": [2.0, 1.0]})
    assert html.count("<polyline") == 1
    (points,) = re.findall(r'points="([^"]+)"', html)
    ys = [float(p.split(",")[1]) for p in points.split()]
    assert ys[0] < ys[1]  # the higher loss is drawn higher up


def test_the_gate_s_verdict_goes_before_the_curves() -> None:
    page = "<html><body><h1>r</h1><h2>Training curves</h2><svg/></body></html>"
    out = with_gate(page, "skip", "worse: 0.70 < 0.75 & <b>", {"candidate accuracy": 0.7})
    assert out.index("<h2>Deploy gate: skip</h2>") < out.index("<h2>Training curves</h2>")
    assert "worse: 0.70 &lt; 0.75 &amp; &lt;b&gt;" in out  # escaped
    assert "<th>candidate accuracy</th><td>0.7000</td>" in out


def test_the_data_checks_show_both_sides_and_why() -> None:
    reference = Profile(
        {"fresh": 60, "rotten": 30, "<meh>": 10}, length_histogram(np.array([20] * 100))
    )
    current = Profile({"fresh": 50, "rotten": 50}, length_histogram(np.array([3] * 100)))
    drift = compare(
        reference,
        current,
        names=("the serving model's data", "this run's data"),
        oov_rate=0.05,
        oov_against="the serving model's vocabulary",
        thresholds=Thresholds(0.1, 0.25, 0.3),
    )
    checks = {
        "overlap": {
            "rows": 1,
            "share": 0.01,
            "max_test_overlap": 0.05,
            "dropped": 0,
            "compared": 95,
            "short_texts": 5,
            "min_words": 5,
            "examples": [{"row": 7, "text": "a <b>leaked</b> text"}],
        },
        "test_oov_rate": 0.04,
        "dropped_by_prepare_data": {"empty_texts": 2, "duplicate_texts": 3},
    }
    page = "<html><body><h2>Deploy gate: skip</h2><h2>Training curves</h2></body></html>"
    out = with_data_checks(page, checks, drift)
    assert out.index("<h2>Data checks: deploy withheld</h2>") < out.index("Training curves")
    cells = parse(out).cells
    # Class shares side by side; the class the new data lacks reads "absent".
    assert "<tr><th>&lt;meh&gt;</th><td>10.00%</td><td>absent</td></tr>" in out
    assert "<tr><th>fresh</th><td>60.00%</td><td>50.00%</td></tr>" in out
    # Every block is listed; the figures stand beside their thresholds.
    for block in drift.blocks:
        assert f"<li>{html.escape(block)}</li>" in out
    at = cells.index("length drift (Kolmogorov-Smirnov)")
    assert cells[at + 1 : at + 3] == ["1.0000", "0.25"]
    # The length histograms overlaid in one figure: a bar per side for every bin up to the
    # last one either side uses.
    assert out.count("<rect") == 2 * (LENGTH_EDGES.index(20) + 1)
    assert "<title>current: 3 tokens, 100.00%</title>" in out
    assert "reference the serving model&#x27;s data, current this run&#x27;s data" in out
    assert "1 (1.00% of the test rows; at most 0.05; 95 of 5 words or more compared, 5" in out
    # The leaked row, escaped.
    assert "<th>7</th>" in out and "a &lt;b&gt;leaked&lt;/b&gt; text" in out
