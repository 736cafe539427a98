"""How far one data set has moved from another: classes, text lengths, unknown words.

A data set is seen through its `Profile`, which dataset-metadata computes for every CSV
and ML Metadata keeps on its `Dataset` artifact, so the data a serving model learned
from can be compared with a new run's long after its files are gone.

The class distance is the total variation distance, half the L1 distance between the
two class distributions: the share of rows that would have to change class for one set
to look like the other. It is bounded by [0, 1] whatever the number of classes, needs no
smoothing when a class is absent on one side (PSI, as in evidently's `psi.py`, is
infinite there: a vanished class would read as infinite drift), and is at least TFDV's
L-infinity distance (`anomalies/metrics.cc`, `LInftyDistance`, the largest single
move), so a TFDV threshold is a lenient setting of this one.

The length distance is the Kolmogorov-Smirnov distance: the largest difference between
the shares of texts of at most k tokens, over every bin edge k. Lengths are ordered, and
a text one token longer has hardly moved; the total variation over bins would count it
as a whole move, and its sampling noise grows with the number of bins (0.3 between 200
and 50 rows of the same data, against KS's 0.2). A cut to three words moves it to 0.95.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from textcnn.rules import OOV, PAD

# Token-count bins: [1, 2), ..., [8, 10), then four bins per doubling up to 1024, then
# [1024, inf). Fine where short texts differ (a cut to three words), coarse in the tail.
LENGTH_EDGES: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112,
    128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
)  # fmt: skip


def length_histogram(lengths: np.ndarray) -> list[int]:
    """Counts of the (positive) token counts `lengths` in the bins of LENGTH_EDGES."""
    bins = np.searchsorted(LENGTH_EDGES, lengths[lengths > 0], side="right") - 1
    return np.bincount(bins, minlength=len(LENGTH_EDGES)).astype(int).tolist()


def bin_label(i: int) -> str:
    """A bin's tokens, as the report shows it: `3`, `8-9`, `1024+`."""
    low = LENGTH_EDGES[i]
    if i + 1 == len(LENGTH_EDGES):
        return f"{low}+"
    high = LENGTH_EDGES[i + 1] - 1
    return str(low) if high == low else f"{low}-{high}"


def shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: (v / total if total else 0.0) for k, v in counts.items()}


def total_variation(p: Mapping[str, int], q: Mapping[str, int]) -> float:
    """Half the L1 distance between the distributions of counts `p` and `q` (keys missing
    on one side count 0 there); 0 when either is empty."""
    if not sum(p.values()) or not sum(q.values()):
        return 0.0
    sp, sq = shares(p), shares(q)
    return 0.5 * sum(abs(sp.get(k, 0.0) - sq.get(k, 0.0)) for k in {*sp, *sq})


def kolmogorov_smirnov(p: list[int], q: list[int]) -> float:
    """The largest difference between the cumulative shares of two histograms over the
    same bins; 0 when either is empty."""
    if not sum(p) or not sum(q):
        return 0.0
    cp, cq = np.cumsum(p) / sum(p), np.cumsum(q) / sum(q)
    return float(np.abs(cp - cq).max())


@dataclass(frozen=True)
class Profile:
    """What the drift checks compare of one data set."""

    classes: dict[str, int]  # rows per class
    lengths: list[int]  # texts per LENGTH_EDGES bin (texts with tokens)

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> Profile:
        """From dataset-metadata's report.json."""
        return cls(dict(report["classes"]), list(report["token_length_histogram"]))

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> Profile | None:
        """From a Dataset artifact's properties in ML Metadata (None: recorded before the
        length histogram was, or with other bins, so it cannot be compared)."""
        if "token_length_histogram" not in props or "classes" not in props:
            return None
        lengths = json.loads(props["token_length_histogram"])
        if len(lengths) != len(LENGTH_EDGES):  # binned otherwise: cannot be compared
            return None
        return cls(json.loads(props["classes"]), lengths)


@dataclass(frozen=True)
class Thresholds:
    max_label_drift: float
    max_length_drift: float
    max_oov_rate: float


@dataclass(frozen=True)
class Drift:
    """The comparison of `current` with `reference` (each a description, such as "this
    run's test data"), and the reasons it blocks a deploy (none: it does not)."""

    reference: str
    current: str
    appeared: list[str]
    vanished: list[str]
    label_drift: float
    length_drift: float
    oov_rate: float
    oov_against: str  # whose vocabulary
    thresholds: Thresholds
    profiles: tuple[Profile, Profile]  # reference, current
    blocks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line of the figures, for the UI and the logs."""
        t = self.thresholds
        parts = [
            f"label drift {self.label_drift:.4f} (max {t.max_label_drift:g})",
            f"length drift {self.length_drift:.4f} (max {t.max_length_drift:g})",
            f"OOV rate {self.oov_rate:.4f} (max {t.max_oov_rate:g}, against {self.oov_against})",
        ]
        if self.vanished:
            parts.append(f"vanished classes {self.vanished}")
        if self.appeared:
            parts.append(f"new classes {self.appeared}")
        return f"{self.current} against {self.reference}: " + ", ".join(parts)


def compare(
    reference: Profile,
    current: Profile,
    *,
    names: tuple[str, str],
    oov_rate: float,
    oov_against: str,
    thresholds: Thresholds,
    vanished_blocks: bool = True,
) -> Drift:
    """`current` against `reference` (`names`: how each is described). A vanished class
    blocks (the new model cannot predict it) unless `vanished_blocks` is false (a test
    set without a training class: the model knows it, the test cannot measure it); a new
    one is reported, and blocks only through the label drift it brings. A figure blocks
    when strictly above its threshold, as TFDV's comparators do."""
    vanished = sorted(set(reference.classes) - set(current.classes))
    appeared = sorted(set(current.classes) - set(reference.classes))
    label = total_variation(reference.classes, current.classes)
    length = kolmogorov_smirnov(reference.lengths, current.lengths)
    blocks = []
    if vanished and vanished_blocks:
        blocks.append(f"class{'es' if len(vanished) > 1 else ''} {vanished} vanished")
    for what, figure, limit, option in (
        ("label drift", label, thresholds.max_label_drift, "max_label_drift"),
        ("length drift", length, thresholds.max_length_drift, "max_length_drift"),
        ("OOV rate", oov_rate, thresholds.max_oov_rate, "max_oov_rate"),
    ):
        if figure > limit:
            blocks.append(f"{what} {figure:.4f} > --{option} {limit:g}")
    return Drift(
        reference=names[0],
        current=names[1],
        appeared=appeared,
        vanished=vanished,
        label_drift=label,
        length_drift=length,
        oov_rate=oov_rate,
        oov_against=oov_against,
        thresholds=thresholds,
        profiles=(reference, current),
        blocks=blocks,
    )


def known_words(vocabulary: Iterable[str]) -> set[str]:
    """A vocabulary's words: not its padding or out-of-vocabulary entries."""
    return set(vocabulary) - {PAD, OOV}


def unknown_words(texts: Iterable[str], known: set[str]) -> tuple[int, int]:
    """How many tokens of standardised `texts` (space-separated) are not `known`, and how
    many tokens there are."""
    total = unknown = 0
    for text in texts:
        tokens = text.split()
        total += len(tokens)
        unknown += sum(t not in known for t in tokens)
    return unknown, total


def oov_rate(texts: Iterable[str], vocabulary: Iterable[str]) -> float:
    """The share of the tokens of standardised `texts` outside `vocabulary`'s words."""
    unknown, total = unknown_words(texts, known_words(vocabulary))
    return unknown / total if total else 0.0
