"""Speed of each stage, each against a baseline measured in the same run on the same data.
Prints figures and writes bench/results/speed.json; not a test.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/speed.py [--glove PATH]

1. the local end-to-end run (`python -m workflows run`, default options, bundled Rotten
   Tomatoes data): wall time split into step compute and orchestration overhead, and each
   step's peak resident memory (from run.json); the same run with `--cold_start` (each
   step process started when its task is ready, as a pod) is its baseline;
2. data preparation in tokens/s against the legacy Keras `Tokenizer` (tf_keras);
3. the embedding-matrix build against a per-word Python loop (GloVe 6B 50d, the run's
   vocabulary);
4. training examples/s against a bare `model.fit` of the identical model and data (the
   run's prepared data, embeddings and model spec);
5. serving latency and throughput of the run's model (bench/serving.py);
6. the lightweight variant (`--lightweight`, same data and options) against the cold run: what
   installing the wheel and checking the pins adds to each step here, where the stock
   image's stand-in has every pin; and a fresh install of some steps' pins into an empty
   folder from this machine's wheels (the unpacking a pod of a stock image does; its
   downloads come on top).
7. step caching: the bundled run into an empty cache, then with only `--epochs` changed,
   then unchanged, each with its wall time and its time before training.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

from textcnn.bootstrap import pip_install
from textcnn.params import PipelineParams

DEFAULTS = PipelineParams()  # the pipeline's defaults, as `make run` uses them
REPEATS = 5
TRAIN_EPOCHS = 2
TRAIN_ROUNDS = 5


def bench_end_to_end(folder: str = "e2e", *options: str) -> dict[str, Any]:
    run = common.run_pipeline(common.SCRATCH / folder, *options)
    split = common.split_wall_time(run)
    training = json.loads((Path(run["artifacts"]["training"]) / "training.json").read_text())
    split["pipeline_examples_per_second"] = training["examples_per_second"]
    split["artifacts"] = run["artifacts"]
    return split


# The tasks before training, the work a run that changes only `--epochs` reuses.
BEFORE_TRAINING = (
    "validate-params",
    "prepare-data",
    "dataset-metadata-train",
    "dataset-metadata-test",
    "embeddings",
    "model-metadata",
)


def bench_cache() -> dict[str, Any]:
    """The bundled run computing every stage into an emptied cache, then again with only
    `--epochs` changed (what comes before training is reused), then unchanged (every
    stage reused): wall time, and the time before training (from validate-params' start
    to the end of the last task before training that ran)."""
    shutil.rmtree(common.SCRATCH / "artifacts" / "cache", ignore_errors=True)
    rows = {}
    for name, options in (
        ("cold", ()),
        ("epochs_changed", ("--epochs", str(DEFAULTS.epochs - 1))),
        ("unchanged", ()),
    ):
        run = common.run_pipeline(common.SCRATCH / f"cache-{name}", *options, cache=True)
        timings = run["timings"]
        ran = [timings[t] for t in BEFORE_TRAINING if t in timings]
        rows[name] = {
            "wall_seconds": run["wall_seconds"],
            "seconds_before_training": max(t["end"] for t in ran)
            - timings["validate-params"]["start"],
            "reused": sorted(
                task
                for task, step in run["steps"].items()
                if "cached from" in step.get("message", "")
            ),
            "gate": f"{run['outputs']['gate_decision']}: {run['outputs']['gate_reason']}",
        }
    return rows


FRESH_STEPS = ("validate-params", "prepare-data", "train", "gate")  # small to largest


def bench_lightweight(images: dict[str, Any]) -> dict[str, Any]:
    """The lightweight variant against `images`, a cold-start run on our images: its steps
    (`python -m textcnn.bootstrap STEP`) start cold too."""
    run = common.run_pipeline(common.SCRATCH / "e2e-lightweight", "--lightweight")
    split = common.split_wall_time(run)
    steps = {}
    for task, step in split["steps"].items():
        if task in images["steps"]:
            base = images["steps"][task]["process_seconds"]
            steps[task] = {
                "seconds": step["process_seconds"],
                "added_seconds": step["process_seconds"] - base,
            }
    table = json.loads((common.ROOT / "containers/textcnn/step_requirements.json").read_text())
    fresh = {}
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("\n".join(table["constraints"]) + "\n")
        for step in FRESH_STEPS:
            # The stock image brings TensorFlow and what it needs; the rest is installed.
            pins = [r for r in table["steps"][step] if not r.startswith("tensorflow==")]
            target = Path(tmp) / step
            seconds, _ = common.best_of(
                1,
                lambda pins=pins, target=target: subprocess.run(
                    pip_install(pins, str(constraints), "--target", str(target)),
                    check=True,
                ),
            )
            files = sum(1 for _ in target.rglob("*"))
            fresh[step] = {"packages": len(pins), "seconds": seconds, "files": files}
            print(f"  fresh install for {step}: {len(pins)} pins, {seconds:.1f} s", flush=True)
    return {
        "wall_seconds": split["wall_seconds"],
        "images_wall_seconds": images["wall_seconds"],
        "accuracy": split["accuracy"],
        "steps": steps,
        "fresh_install": fresh,
    }


def bench_tf_import() -> float:
    """What one step process pays before its run(): a fresh interpreter importing TF."""
    seconds, _ = common.best_of(
        REPEATS,
        lambda: subprocess.run(
            [sys.executable, "-c", "import tensorflow"], check=True, capture_output=True
        ),
    )
    return seconds


def bench_prepare(csv: Path) -> dict[str, Any]:
    """Tokens/s of the legacy Keras Tokenizer and of the whole prepare-data step (CSV in,
    prepared/ out) on the same texts, tokens counted after standardisation; and, to show
    where the step's time goes, three of its parts timed alone: the standardisation (the
    pure-Python form of the rules, as the step runs it), the tokenisation as the step does
    it (standardise once, fit the vocabulary, map the clean texts to ids) and the
    writing of the ids into the shards' int32 records."""
    from tf_keras.preprocessing.sequence import pad_sequences
    from tf_keras.preprocessing.text import Tokenizer

    from textcnn.data import load_csv
    from textcnn.steps import prepare_data as prepare
    from textcnn.tokens import fit_vocabulary, standardize_texts, to_ids, token_counts

    texts = load_csv(str(csv), "text", "label")["text"].tolist()
    counts = token_counts(standardize_texts(texts))
    tokens = int(counts.sum())
    length = int(np.ceil(np.percentile(counts, 95)))  # as prepare-data picks it

    def legacy_keras() -> np.ndarray:
        tokenizer = Tokenizer(num_words=DEFAULTS.num_words, oov_token="[UNK]")
        tokenizer.fit_on_texts(texts)
        return pad_sequences(
            tokenizer.texts_to_sequences(texts), maxlen=length, padding="post", truncating="post"
        )

    def tokenisation() -> np.ndarray:
        clean = standardize_texts(texts)
        return to_ids(clean, fit_vocabulary(clean, DEFAULTS.num_words), length)

    ids = tokenisation()

    def prepare_step() -> None:
        common.SCRATCH.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(dir=common.SCRATCH) as tmp,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            prepare.run(
                str(csv),
                DEFAULTS.column_text_value,
                DEFAULTS.column_target_value,
                DEFAULTS.val_data_pct,
                DEFAULTS.num_words,
                length,
                DEFAULTS.length_percentile,
                DEFAULTS.seed,
                f"{tmp}/prepared",
            )

    calls = {
        "legacy_keras_tokenizer": legacy_keras,
        "prepare_data_step": prepare_step,
        "standardize_only": lambda: standardize_texts(texts),
        "tokenisation": tokenisation,
        "write_ids": lambda: io.BytesIO().write(ids.astype("<i4").tobytes()),
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(REPEATS):  # interleaved, so a busy moment hits every contender alike
        for name, call in calls.items():
            best[name] = min(best[name], common.best_of(1, call)[0])
    return {
        "data": str(csv.relative_to(common.ROOT)),
        "texts": len(texts),
        "tokens": tokens,
        "max_length": length,
        "tokens_per_second": {name: tokens / s for name, s in best.items()},
        "seconds": best,
    }


def per_word_loop(vocabulary: list[str], vectors: Any, seed: int) -> tuple[np.ndarray, int]:
    """The baseline: textcnn.embeddings.build_matrix written as a loop over the words
    (same random rows, same case-insensitive fallback, so the same matrix)."""
    rng = np.random.default_rng(seed)
    matrix = rng.random((len(vocabulary), vectors.vector_size), dtype=np.float32) * 0.5 - 0.25
    matrix[0] = 0.0
    index = vectors.key_to_index
    lowered: dict[str, int] = {}
    if any(w not in index for w in vocabulary[2:]):
        for i, key in enumerate(vectors.index_to_key):  # most frequent spelling first
            lowered.setdefault(key.lower(), i)
    missing = 0
    for i, word in enumerate(vocabulary[2:], start=2):
        row = index.get(word)
        if row is None:
            row = lowered.get(word.lower())
        if row is None:
            missing += 1
        else:
            matrix[i] = vectors.vectors[row]
    return matrix, missing


def bench_embeddings(prepared: Path, glove: Path) -> dict[str, Any]:
    from textcnn.steps.embeddings import build_matrix, load_vectors, read_vocabulary

    vocabulary = read_vocabulary(prepared)
    load_seconds, (vectors, _) = common.best_of(1, lambda: load_vectors(str(glove), 50))
    fast, (matrix, missing) = common.best_of(REPEATS, lambda: build_matrix(vocabulary, vectors, 42))
    slow, (expected, expected_missing) = common.best_of(
        REPEATS, lambda: per_word_loop(vocabulary, vectors, 42)
    )
    if not np.array_equal(matrix, expected) or missing != expected_missing:
        raise RuntimeError("build_matrix and the per-word loop disagree")
    return {
        "vectors": glove.name,
        "vectors_words": len(vectors),
        "vocabulary": len(vocabulary),
        "without_vector": missing,
        "load_seconds": load_seconds,
        "seconds": {"build_matrix": fast, "per_word_loop": slow},
    }


def bench_training(artifacts: dict[str, str]) -> dict[str, Any]:
    """The train step's fit (MirroredStrategy, tf.data, early stopping) against a bare
    `model.fit` on numpy arrays: same model, data, batch size, epochs and validation."""
    import keras

    from textcnn.model import ModelConfig
    from textcnn.prepared import load_split
    from textcnn.training import (
        compile_model,
        fit_mirrored,
        load_embeddings,
        load_splits,
        make_dataset,
    )

    config = ModelConfig.load(artifacts["spec"])
    splits = load_splits(artifacts["prepared"], config)
    (x_train, y_train), (x_val, y_val) = (
        load_split(artifacts["prepared"], split, config) for split in ("train", "val")
    )
    embeddings = load_embeddings(artifacts["embeddings"])
    batch = DEFAULTS.batch_size

    def bare_fit() -> None:
        keras.utils.set_random_seed(42)
        model = compile_model(config, embeddings)
        model.fit(
            x_train,
            y_train,
            batch_size=batch,
            epochs=TRAIN_EPOCHS,
            validation_data=(x_val, y_val),
            shuffle=True,
            verbose=0,
        )

    def tf_data_fit() -> None:
        """The train step's input pipeline without its strategy: the two costs apart."""
        keras.utils.set_random_seed(42)
        model = compile_model(config, embeddings)
        model.fit(
            make_dataset(splits.train, config.max_length, batch, shuffle_seed=42),
            validation_data=make_dataset(splits.val, config.max_length, batch),
            epochs=TRAIN_EPOCHS,
            shuffle=False,
            verbose=0,
        )  # the dataset shuffles

    def train_step_fit() -> None:
        keras.utils.set_random_seed(42)
        # patience = epochs: early stopping watches but cannot end the run sooner.
        with contextlib.redirect_stdout(io.StringIO()):
            fit_mirrored(config, embeddings, splits, TRAIN_EPOCHS, batch, TRAIN_EPOCHS, 42)

    calls = {
        "bare_model_fit": bare_fit,
        "tf_data_fit": tf_data_fit,
        "train_step_fit": train_step_fit,
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(TRAIN_ROUNDS):  # interleaved, as in bench_prepare
        for name, call in calls.items():
            best[name] = min(best[name], common.best_of(1, call)[0])
    examples = splits.train.rows * TRAIN_EPOCHS
    return {
        "train_examples": splits.train.rows,
        "epochs": TRAIN_EPOCHS,
        "rounds": TRAIN_ROUNDS,
        "batch_size": batch,
        "max_length": config.max_length,
        "embedding_dim": config.embedding_dim,
        "examples_per_second": {k: examples / s for k, s in best.items()},
        "seconds": best,
    }


_ROW = re.compile(r"^(\S.*?)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)$")


def bench_serving(model_dir: str) -> dict[str, Any]:
    """bench/serving.py on the run's model, in its own process; its table, parsed."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("serving.py")), "--model_dir", model_dir],
        capture_output=True,
        text=True,
        check=True,
        cwd=common.ROOT,
    )
    rows = []
    for line in proc.stdout.splitlines():
        if m := _ROW.match(line):
            name, requests, p50, p99, rate, texts = m.groups()
            rows.append(
                {
                    "path": name,
                    "requests": int(requests),
                    "p50_ms": float(p50),
                    "p99_ms": float(p99),
                    "requests_per_second": int(rate),
                    "texts_per_second": int(texts),
                }
            )
    if not rows:
        raise RuntimeError(f"bench/serving.py printed no table:\n{proc.stdout}{proc.stderr}")
    return {"rows": rows, "header": proc.stdout.splitlines()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--glove", type=Path, default=common.GLOVE, help="GloVe 50d KeyedVectors (make glove)"
    )
    args = parser.parse_args()
    started = common.environment()
    print(f"load average {started['load_1min']} on {started['cores']} cores", flush=True)
    result: dict[str, Any] = {}
    t0 = time.perf_counter()
    result["end_to_end"] = e2e = bench_end_to_end()
    print(
        f"end to end: {e2e['wall_seconds']:.1f} s wall, {e2e['compute_seconds']:.1f} s "
        f"step compute, overhead {e2e['overhead_share']:.0%}",
        flush=True,
    )
    # The baseline: each step process started when its task is ready, as a pod is.
    result["end_to_end_cold"] = cold = bench_end_to_end("e2e-cold", "--cold_start")
    print(
        f"cold starts: {cold['wall_seconds']:.1f} s wall, overhead {cold['overhead_share']:.0%}",
        flush=True,
    )
    result["tf_import_seconds"] = bench_tf_import()
    result["prepare"] = bench_prepare(common.ROOT / "data/rt/train.csv")
    print(
        "data preparation tokens/s:",
        {k: f"{v / 1e6:.2f}M" for k, v in result["prepare"]["tokens_per_second"].items()},
        flush=True,
    )
    result["embeddings"] = bench_embeddings(Path(e2e["artifacts"]["prepared"]), args.glove)
    print("embedding matrix seconds:", result["embeddings"]["seconds"], flush=True)
    result["training"] = bench_training(e2e["artifacts"])
    print("training examples/s:", result["training"]["examples_per_second"], flush=True)
    result["serving"] = bench_serving(e2e["artifacts"]["model"])
    for row in result["serving"]["rows"]:
        print(
            f"serving {row['path']}: p50 {row['p50_ms']} ms, {row['texts_per_second']} texts/s",
            flush=True,
        )
    result["lightweight"] = light = bench_lightweight(cold)
    print(
        f"lightweight: {light['wall_seconds']:.1f} s wall against {cold['wall_seconds']:.1f} s",
        flush=True,
    )
    result["cache"] = cached = bench_cache()
    for name, row in cached.items():
        print(
            f"cache, {name}: {row['wall_seconds']:.1f} s wall, "
            f"{row['seconds_before_training']:.1f} s before training, "
            f"{len(row['reused'])} tasks reused",
            flush=True,
        )
    result["bench_seconds"] = time.perf_counter() - t0
    common.save("speed", result, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
