"""Model quality: test accuracy of the pipeline's model and of the plain Kim CNN against
TF-IDF + logistic regression on the same split, over several seeds; CNN-rand / CNN-static /
CNN-non-static next to Kim (2014) on MR; the TFJob and the TrainJob next to one pod. Prints
figures and
writes bench/results/quality.json (quality_cv.json with --folds); not a test.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/quality.py [--glove PATH] [--folds 10]

Every model figure is the product's own: each is a `python -m workflows run` of the whole
pipeline, and its accuracy is the evaluate step's (the exported serving model on the test
CSV).

- default: the pipeline as `make run` runs it: the Kim CNN (Word2Vec trained on the
  training texts) averaged with the wide n-gram branch (`--architecture cnn_ngrams`).
- cnn: the same with `--architecture cnn`, the plain Kim CNN.
- CNN-rand: every word vector drawn from U(-0.25, 0.25), as in Kim (2014). The run gets a
  vectors file with no words at all, so the embeddings step draws every row.
- CNN-static: GloVe 6B 50d, frozen (`--static_embeddings yes`).
- CNN-non-static: GloVe 6B 50d, fine-tuned.
- Baseline: TF-IDF of word 1-2 grams + logistic regression, its C chosen by 5-fold
  cross-validation on the training rows only.
- Distributed: the default options on the local TFJob (`--dist_training yes`: a chief and
  two workers, three replicas in sync) and on the local Trainer v2 TrainJob
  (`--dist_backend trainjob --workers 2`: two nodes, each building its TF_CONFIG from its
  JobSet names) next to the same options on one pod, on the bundled split and on a
  2,000-row slice with `--epochs 4`.

Without --folds: the bundled split (data/rt, 80/20), each model for every seed of SEEDS
(the Kim variants for the first only). With --folds K: the bundled train and test rows
pooled and cut into K stratified folds, the default and the plain CNN trained on K-1 and
tested on the held-out fold, as Kim's MR figures are (10-fold cross-validation); mean and
standard deviation over the folds.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np
import pandas as pd

DATA = common.ROOT / "data" / "rt"
KIM_MR = {"cnn-rand": 76.1, "cnn-static": 81.0, "cnn-non-static": 81.5}
SEEDS = (42, 43, 44)
# Quality only: the gate and the deploy tasks would add time, not figures.
RUN_OPTIONS = ("--deploy", "no")
PLAIN = ("--architecture", "cnn")
# Kim's options where the pipeline has them (filters 3,4,5 x 100, dropout 0.5, batch 50 are
# the defaults); 50 dimensions because GloVe 6B 50d is the pretrained set shipped in a wheel.
# GloVe models peak at epoch 6-9: room to get there, early stopping for the rest.
KIM_OPTIONS = (*PLAIN, "--embbeding_dim", "50", "--epochs", "25", "--patience", "4")
RANDOM, GLOVE = "{random}", "{glove}"  # stand for the vectors files in the options below
# name: (what it is, options, whether every seed runs it)
VARIANTS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "default": (
        "the pipeline's defaults (`make run`): the Kim CNN on Word2Vec trained on the "
        "training texts (128 dimensions, fine-tuned, 10 epochs, patience 3) averaged with "
        "the wide n-gram branch",
        (),
        True,
    ),
    "cnn": ("the plain Kim CNN, otherwise the defaults (`--architecture cnn`)", PLAIN, True),
    "cnn-rand": (
        "random U(-0.25, 0.25) vectors, trained",
        ("--w2v_model_path", RANDOM, *KIM_OPTIONS),
        False,
    ),
    "cnn-static": (
        "GloVe 6B 50d, frozen",
        ("--w2v_model_path", GLOVE, "--static_embeddings", "yes", *KIM_OPTIONS),
        False,
    ),
    "cnn-non-static": (
        "GloVe 6B 50d, fine-tuned",
        ("--w2v_model_path", GLOVE, *KIM_OPTIONS),
        False,
    ),
}
CV_VARIANTS = ("default", "cnn")
DISTRIBUTED = {
    "tfjob": ("--dist_training", "yes"),
    "trainjob": ("--dist_training", "yes", "--dist_backend", "trainjob", "--workers", "2"),
}
SLICE_ROWS, SLICE_OPTIONS = 2000, ("--epochs", "4")
TFIDF_CS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
REMEMBERED = common.SCRATCH / "results"


def random_vectors(path: Path) -> Path:
    """A 50-dimensional KeyedVectors file holding no words (CNN-rand's 'pretrained' set)."""
    from gensim.models import KeyedVectors

    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        KeyedVectors(50).save(buffer)
        path.write_bytes(buffer.getvalue())
    return path


@functools.cache
def code_digest() -> str:
    """Of the code a pipeline run executes and its pins: a changed step measures anew."""
    digest = hashlib.sha256((common.ROOT / "requirements.txt").read_bytes())
    for folder in ("containers", "workflows"):
        for path in sorted((common.ROOT / folder).rglob("*.py")):
            digest.update(path.relative_to(common.ROOT).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def remembered(key: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """compute(), kept in .cache/bench/results under `key` and the code's digest, so a
    crashed or interrupted benchmark (an hour on a shared machine) picks up where it
    stopped, and changed code or data is measured anew. Delete the folder to redo all."""
    name = json.dumps({**key, "code": code_digest()}, sort_keys=True)
    path = REMEMBERED / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.json"
    if path.is_file():
        print(f"  (remembered: {path.name})", flush=True)
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)
    return value


def tfidf_accuracy(train_csv: Path, test_csv: Path) -> dict[str, Any]:
    key = {"tfidf": TFIDF_CS, "train": file_digest(train_csv), "test": file_digest(test_csv)}
    return remembered(key, lambda: _tfidf_accuracy(train_csv, test_csv))


def _tfidf_accuracy(train_csv: Path, test_csv: Path) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    from textcnn.data import load_csv

    train = load_csv(str(train_csv), "text", "label")
    test = load_csv(str(test_csv), "text", "label")

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegressionCV(
            Cs=list(TFIDF_CS),
            cv=5,
            scoring="accuracy",
            l1_ratios=(0,),
            use_legacy_attributes=False,
            max_iter=5000,
        ),
    )
    start = time.perf_counter()
    model.fit(train["text"], train["label"])
    seconds = time.perf_counter() - start
    accuracy = float((model.predict(test["text"]) == test["label"].to_numpy()).mean())
    return {"accuracy": accuracy, "C": float(model[-1].C_), "fit_seconds": seconds}


def embeddings_frozen(run: dict[str, Any]) -> bool:
    """Whether the trained model's embedding layer still holds the initial matrix."""
    import keras

    model = keras.saving.load_model(
        Path(run["artifacts"]["training"]) / "model.keras", compile=False
    )
    initial = np.load(Path(run["artifacts"]["embeddings"]) / "embeddings.npy")
    return bool(np.array_equal(model.get_layer("embedding").get_weights()[0], initial))


def pipeline_run(
    train_csv: Path, test_csv: Path, run_dir: Path, options: tuple[str, ...]
) -> dict[str, Any]:
    """One pipeline run's figures (remembered; its folder is deleted: the figures are kept,
    not the models)."""
    key = {"run": options, "train": file_digest(train_csv), "test": file_digest(test_csv)}
    return remembered(key, lambda: _pipeline_run(train_csv, test_csv, run_dir, options))


def _pipeline_run(
    train_csv: Path, test_csv: Path, run_dir: Path, options: tuple[str, ...]
) -> dict[str, Any]:
    run = common.run_pipeline(
        run_dir,
        "--train_data_path",
        str(train_csv),
        "--test_data_path",
        str(test_csv),
        *RUN_OPTIONS,
        *options,
    )
    info = json.loads((Path(run["artifacts"]["training"]) / "training.json").read_text())
    out = {
        "accuracy": float(run["outputs"]["accuracy"]),
        "macro_f1": float(run["outputs"]["macro_f1"]),
        "epochs_run": info["epochs_run"],
        "best_epoch": info["best_epoch"],
        "replicas": info["replicas"],
        "strategy": info["strategy"],
        "ngrams": info.get("ngrams"),
        "wall_seconds": run["wall_seconds"],
        "frozen": embeddings_frozen(run),
    }
    shutil.rmtree(run_dir, ignore_errors=True)
    return out


def cnn_runs(
    train_csv: Path,
    test_csv: Path,
    glove: Path,
    folder: Path,
    names: tuple[str, ...],
    seeds: tuple[int, ...],
) -> dict[str, Any]:
    """Each named variant through the pipeline, for each seed (the Kim variants for the
    first); per seed and the mean."""
    vectors = {RANDOM: str(random_vectors(common.SCRATCH / "random-50d.kv")), GLOVE: str(glove)}
    out = {}
    for name in names:
        _, options, every_seed = VARIANTS[name]
        runs = {}
        for seed in seeds if every_seed else seeds[:1]:
            run = pipeline_run(
                train_csv,
                test_csv,
                folder / name,
                (*(vectors.get(o, o) for o in options), "--seed", str(seed)),
            )
            if run["frozen"] != (name == "cnn-static"):
                raise RuntimeError(
                    f"{name}: the embedding layer was {'' if run['frozen'] else 'not '}left "
                    "as initialised"
                )
            runs[str(seed)] = run
        out[name] = {
            "seeds": runs,
            "accuracy": float(np.mean([r["accuracy"] for r in runs.values()])),
            "macro_f1": float(np.mean([r["macro_f1"] for r in runs.values()])),
        }
    return out


def distributed(
    train_csv: Path,
    test_csv: Path,
    folder: Path,
    options: tuple[str, ...] = (),
    single: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The local TFJob and TrainJob next to one pod with the same options (`single` if
    already run)."""
    if single is None:
        single = pipeline_run(train_csv, test_csv, folder / "single", options)
    return {
        "single": single,
        **{
            backend: pipeline_run(train_csv, test_csv, folder / backend, (*options, *given))
            for backend, given in DISTRIBUTED.items()
        },
    }


def bundled_split(glove: Path) -> dict[str, Any]:
    from sklearn.model_selection import train_test_split

    from textcnn.data import load_csv

    train_csv, test_csv = DATA / "train.csv", DATA / "test.csv"
    train = load_csv(str(train_csv), "text", "label")
    test = load_csv(str(test_csv), "text", "label")
    result = {
        "split": "data/rt train.csv / test.csv (80/20)",
        "train_rows": len(train),
        "test_rows": len(test),
        "seeds": list(SEEDS),
        "tfidf": tfidf_accuracy(train_csv, test_csv),
    }
    print(f"TF-IDF + LR: {result['tfidf']['accuracy']:.4f}", flush=True)
    folder = common.SCRATCH / "quality"
    result["cnn"] = cnn_runs(train_csv, test_csv, glove, folder, tuple(VARIANTS), SEEDS)
    same = result["cnn"]["default"]["seeds"][str(SEEDS[0])]  # the default options, seed 42
    result["distributed"] = {"bundled": distributed(train_csv, test_csv, folder, single=same)}
    # A stratified slice, written where the runs can read it.
    part = folder / "slice"
    part.mkdir(parents=True, exist_ok=True)
    sliced, _ = train_test_split(
        train, train_size=SLICE_ROWS, stratify=train["label"], random_state=0
    )
    sliced[["text", "label"]].to_csv(part / "train.csv", index=False)
    result["distributed"]["slice"] = {
        "rows": len(sliced),
        "options": " ".join(SLICE_OPTIONS),
        **distributed(part / "train.csv", test_csv, part, SLICE_OPTIONS),
    }
    return result


def cross_validation(glove: Path, folds: int) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    from textcnn.data import load_csv

    pooled = pd.concat(
        [load_csv(str(DATA / f"{s}.csv"), "text", "label") for s in ("train", "test")],
        ignore_index=True,
    )[["text", "label"]]
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=42)
    per_fold: list[dict[str, Any]] = []
    for k, (train_pos, test_pos) in enumerate(splitter.split(pooled, pooled["label"])):
        folder = common.SCRATCH / "cv" / f"fold-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        train, test = pooled.iloc[train_pos], pooled.iloc[test_pos]
        train.to_csv(folder / "train.csv", index=False)
        test.to_csv(folder / "test.csv", index=False)
        fold = {"tfidf": tfidf_accuracy(folder / "train.csv", folder / "test.csv")["accuracy"]}
        runs = cnn_runs(
            folder / "train.csv", folder / "test.csv", glove, folder, CV_VARIANTS, SEEDS[:1]
        )
        fold |= {name: r["accuracy"] for name, r in runs.items()}
        print(f"fold {k + 1}/{folds}: {fold}", flush=True)
        per_fold.append(fold)
    summary = {
        name: {
            "mean": float(np.mean([f[name] for f in per_fold])),
            "std": float(np.std([f[name] for f in per_fold])),
        }
        for name in per_fold[0]
    }
    return {"folds": folds, "rows": len(pooled), "per_fold": per_fold, "summary": summary}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--glove", type=Path, default=common.GLOVE, help="GloVe 50d KeyedVectors (make glove)"
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="K-fold cross-validation over the pooled bundled data (Kim: 10)",
    )
    args = parser.parse_args()
    if not args.glove.is_file():
        parser.error(f"{args.glove}: not found: run `make glove` first")
    started = common.environment()
    print(f"load average {started['load_1min']} on {started['cores']} cores", flush=True)
    start = time.perf_counter()
    folds = args.folds
    result = cross_validation(args.glove, folds) if folds else bundled_split(args.glove)
    result |= {
        "kim_options": " ".join(KIM_OPTIONS),
        "variants": {name: about for name, (about, _, _) in VARIANTS.items()},
        "kim_mr": KIM_MR,
        "tfidf_model": "TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True) + "
        f"LogisticRegressionCV(Cs={list(TFIDF_CS)}, cv=5, scoring='accuracy')",
        "bench_seconds": time.perf_counter() - start,
    }
    common.save("quality_cv" if args.folds else "quality", result, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
