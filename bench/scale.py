"""Scale: the local pipeline on 100,000 and 1,000,000 training rows; each step's time and
peak memory, the ratios between the sizes, and a 2-worker TFJob against one pod at
100,000 rows. Prints figures and writes bench/results/scale.json; not a test.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/scale.py [--sizes 100000,1000000]

The data are real sentences: the bundled training texts (data/rt/train.csv), resampled
with replacement, each copy with 10% of its words dropped (never all of them) and one rare
token appended (`x` and the row number in base 36), so that every row is distinct and the
vocabulary, the n-grams and Word2Vec's corpus all grow with the data. The test set is the
bundled one, unchanged. Every run has `--epochs 1 --patience 1 --deploy no`, the rest the
defaults; the TFJob run adds `--dist_training yes --workers 1` (a chief and one worker).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np
import pandas as pd

OPTIONS = ("--epochs", "1", "--patience", "1", "--deploy", "no")
DROPOUT, SEED = 0.1, 0
SIZES = (100_000, 1_000_000)
TARGETS = {"rss_mib": 3 * 1024, "step_ratio": 11.0, "tfjob_ratio": 1.5}
FOLDER = common.SCRATCH / "scale"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def resample(source: pd.DataFrame, rows: int, seed: int = SEED) -> pd.DataFrame:
    """`rows` copies of random source rows, each with about DROPOUT of its words dropped
    and a token of its own appended."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(source), rows)
    texts, labels = source["text"].to_numpy(), source["label"].to_numpy()
    out = []
    for i, j in enumerate(picks):
        words = texts[j].split()
        kept = [w for w, u in zip(words, rng.random(len(words)), strict=True) if u >= DROPOUT]
        out.append(" ".join([*(kept or words[:1]), "x" + _base36(i)]))
    return pd.DataFrame({"text": out, "label": labels[picks]})


def write_set(rows: int) -> Path:
    """FOLDER/<rows>/train.csv (kept between runs: the set depends on nothing else)."""
    folder = FOLDER / str(rows)
    path = folder / "train.csv"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        source = pd.read_csv(common.ROOT / "data" / "rt" / "train.csv")
        resample(source, rows).to_csv(folder / "train.tmp", index=False)
        (folder / "train.tmp").replace(path)
    return path


def replica_timings(run_dir: Path) -> dict[str, dict[str, float]]:
    """Each TFJob replica's own training time and CPU seconds, from its log's timing line
    (the replicas are the local training operator's processes, not steps)."""
    out = {}
    for log in sorted((run_dir / "logs").glob("*-tfjob-*-*-[0-9]*.log")):
        found = common.TIMING.findall(log.read_text(errors="replace"))
        if found:
            _, seconds, _, _, cpu, _ = found[-1]
            replica = log.stem.rsplit("-", 2)[-2:]
            out["-".join(replica)] = {"seconds": float(seconds), "cpu": float(cpu)}
    return out


def run_size(rows: int, *extra: str) -> dict[str, Any]:
    train = write_set(rows)
    name = "-".join(["run", *(e.strip("-") for e in extra)])
    folder = train.parent / name
    run = common.run_pipeline(
        folder,
        "--train_data_path",
        str(train),
        "--test_data_path",
        str(common.ROOT / "data" / "rt" / "test.csv"),
        *OPTIONS,
        *extra,
    )
    return {"rows": rows, **common.split_wall_time(run), "replicas": replica_timings(folder)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default=",".join(map(str, SIZES)), help="training rows, comma-separated"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = common.environment()
    print(f"load average {started['load_1min']} on {started['cores']} cores", flush=True)
    start = time.perf_counter()
    runs = {str(rows): run_size(rows) for rows in sizes}
    small, large = runs[str(sizes[0])], runs[str(sizes[-1])]
    ratios = {
        step: large["steps"][step]["process_seconds"] / small["steps"][step]["process_seconds"]
        for step in large["steps"]
        if step in small["steps"]
    }
    tfjob = run_size(sizes[0], "--dist_training", "yes", "--workers", "1")
    result = {
        "data": {"source": "data/rt/train.csv", "dropout": DROPOUT, "seed": SEED},
        "options": " ".join(OPTIONS),
        "sizes": sizes,
        "runs": runs,
        "step_ratios": ratios,
        "max_step_rss_mib": {
            size: max(s["max_rss_mib"] for s in run["steps"].values()) for size, run in runs.items()
        },
        "tfjob": tfjob,
        "tfjob_ratio": tfjob["wall_seconds"] / small["wall_seconds"],
        "targets": TARGETS,
    }
    result["bench_seconds"] = time.perf_counter() - start
    for size, run in runs.items():
        top = max(run["steps"].items(), key=lambda kv: kv[1]["max_rss_mib"])
        print(
            f"{int(size):,} rows: {run['wall_seconds']:.0f} s, accuracy {run['accuracy']:.4f}, "
            f"largest peak {top[1]['max_rss_mib']:,.0f} MiB ({top[0]})",
            flush=True,
        )
    worst = max(ratios.items(), key=lambda kv: kv[1])
    print(
        f"largest step time ratio {worst[1]:.1f}x ({worst[0]}); 2-worker TFJob / one pod at "
        f"{sizes[0]:,} rows: {result['tfjob_ratio']:.2f}x wall",
        flush=True,
    )
    common.save("scale", result, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
