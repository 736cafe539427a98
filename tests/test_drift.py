"""textcnn.drift: the distances, and which findings block a deploy."""

from __future__ import annotations

import numpy as np
import pytest

from textcnn.drift import (
    LENGTH_EDGES,
    Profile,
    Thresholds,
    bin_label,
    compare,
    kolmogorov_smirnov,
    length_histogram,
    oov_rate,
    total_variation,
)

LOOSE = Thresholds(max_label_drift=1.0, max_length_drift=1.0, max_oov_rate=1.0)
NAMES = ("before", "now")


def profile(classes: dict[str, int], lengths: list[int]) -> Profile:
    return Profile(classes, length_histogram(np.array(lengths)))


def test_length_bins_hold_every_positive_count() -> None:
    counts = length_histogram(np.array([0, 1, 1, 8, 9, 10, 1023, 1024, 10**6]))
    assert len(counts) == len(LENGTH_EDGES) and sum(counts) == 8  # no bin for 0 tokens
    assert counts[0] == 2 and counts[LENGTH_EDGES.index(8)] == 2  # 8 and 9 share [8, 10)
    assert counts[-1] == 2 and counts[-2] == 1
    assert [bin_label(i) for i in (0, LENGTH_EDGES.index(8), len(LENGTH_EDGES) - 1)] == [
        "1",
        "8-9",
        "1024+",
    ]


def test_total_variation_is_the_share_of_rows_that_would_change_class() -> None:
    assert total_variation({"a": 50, "b": 50}, {"a": 500, "b": 500}) == 0.0
    assert total_variation({"a": 60, "b": 40}, {"a": 40, "b": 60}) == pytest.approx(0.2)
    assert total_variation({"a": 1}, {"b": 7}) == 1.0  # disjoint
    assert total_variation({"a": 3, "b": 1}, {"a": 1}) == pytest.approx(0.25)  # b vanished
    assert total_variation({}, {"a": 1}) == 0.0


def test_kolmogorov_smirnov_is_the_largest_gap_between_cumulative_shares() -> None:
    assert kolmogorov_smirnov([1, 1, 0], [2, 2, 0]) == 0.0
    assert kolmogorov_smirnov([1, 0, 1], [0, 1, 1]) == pytest.approx(0.5)
    assert kolmogorov_smirnov([1, 0], [0, 1]) == 1.0
    assert kolmogorov_smirnov([0, 0], [1, 0]) == 0.0


def test_oov_rate_counts_tokens_outside_the_vocabulary() -> None:
    assert oov_rate(["a b c", "a d"], ["", "[UNK]", "a", "b"]) == pytest.approx(2 / 5)
    assert oov_rate([], ["a"]) == 0.0
    # The padding and out-of-vocabulary entries are no words.
    assert oov_rate(["[UNK] a"], ["", "[UNK]", "a"]) == pytest.approx(1 / 2)


def test_a_class_a_test_set_lacks_is_reported_without_blocking_when_asked() -> None:
    train = profile({"a": 10, "b": 10, "rare": 1}, [5] * 21)
    test = profile({"a": 10, "b": 10}, [5] * 20)
    drift = compare(
        train,
        test,
        names=NAMES,
        oov_rate=0.0,
        oov_against="x",
        thresholds=LOOSE,
        vanished_blocks=False,
    )
    assert drift.vanished == ["rare"] and drift.blocks == []


def test_a_vanished_class_blocks_whatever_the_thresholds() -> None:
    before = profile({"a": 10, "b": 10, "c": 1}, [5] * 21)
    now = profile({"a": 10, "b": 10}, [5] * 20)
    drift = compare(before, now, names=NAMES, oov_rate=0.0, oov_against="x", thresholds=LOOSE)
    assert drift.vanished == ["c"] and drift.appeared == []
    assert drift.blocks == ["class ['c'] vanished"]


def test_a_new_class_is_reported_and_blocks_only_by_its_drift() -> None:
    before = profile({"a": 10, "b": 10}, [5] * 20)
    now = profile({"a": 10, "b": 10, "c": 1}, [5] * 21)
    drift = compare(before, now, names=NAMES, oov_rate=0.0, oov_against="x", thresholds=LOOSE)
    assert drift.appeared == ["c"] and drift.blocks == []
    strict = Thresholds(0.01, 1.0, 1.0)
    found = compare(before, now, names=NAMES, oov_rate=0.0, oov_against="x", thresholds=strict)
    assert found.blocks == [f"label drift {1 / 21:.4f} > --max_label_drift 0.01"]


def test_each_figure_blocks_strictly_above_its_threshold() -> None:
    before = profile({"a": 50, "b": 50}, [20] * 100)
    now = profile({"a": 60, "b": 40}, [3] * 50 + [20] * 50)
    exact = Thresholds(max_label_drift=0.1, max_length_drift=0.5, max_oov_rate=0.3)
    at = compare(before, now, names=NAMES, oov_rate=0.3, oov_against="x", thresholds=exact)
    assert (at.label_drift, at.length_drift, at.oov_rate) == pytest.approx((0.1, 0.5, 0.3))
    assert at.blocks == []
    below = Thresholds(max_label_drift=0.09, max_length_drift=0.49, max_oov_rate=0.29)
    over = compare(before, now, names=NAMES, oov_rate=0.3, oov_against="x", thresholds=below)
    assert over.blocks == [
        "label drift 0.1000 > --max_label_drift 0.09",
        "length drift 0.5000 > --max_length_drift 0.49",
        "OOV rate 0.3000 > --max_oov_rate 0.29",
    ]
    assert over.summary().startswith("now against before: label drift 0.1000 (max 0.09)")


def test_a_profile_recorded_before_histograms_or_with_other_bins_cannot_be_compared() -> None:
    assert Profile.from_properties({"classes": '{"a": 1}'}) is None
    bins = [0] * len(LENGTH_EDGES)
    found = Profile.from_properties({"classes": '{"a": 1}', "token_length_histogram": str(bins)})
    assert found == Profile({"a": 1}, bins)
    other = {"classes": '{"a": 1}', "token_length_histogram": "[0, 1]"}
    assert Profile.from_properties(other) is None
