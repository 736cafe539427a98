"""check-data: leakage between the training and test data, the test rows later steps
score, and the statistics the gate weighs (the real steps before it, on real files)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO, check_data, run_pipeline

from textcnn.errors import InputError
from textcnn.steps import check_data as step
from textcnn.steps.check_data import overlap_key
from textcnn.tokens import standardize


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_texts_that_differ_only_in_case_spacing_or_punctuation_overlap() -> None:
    quoted = "'Stock up on silver bullets for director Neil Marshall's intense film.'"
    plain = "Stock up on silver bullets for director  neil marshall's intense film"
    assert overlap_key(standardize(quoted)) == overlap_key(standardize(plain))
    assert overlap_key(standardize("a good film")) != overlap_key(standardize("a good films"))


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """check-data on the bundled data, as the DAG runs it (and its store)."""
    root = tmp_path_factory.mktemp("bundled")
    store = f"sqlite:{root / 'md.sqlite'}"
    data = REPO / "data" / "rt"
    return store, check_data(store, root, data / "train.csv", data / "test.csv")


def test_the_bundled_data_has_one_test_row_from_the_training_data(
    bundled: tuple[str, Path],
) -> None:
    _, out = bundled
    checks = json.loads((out / "checks.json").read_text())
    overlap = checks["overlap"]
    # Row 1914 is a training review quoted in '...': the same review.
    assert (overlap["rows"], overlap["listed_rows"], overlap["dropped"]) == (1, [1914], 0)
    # Only texts of 5 words or more are compared; the share is of every test row.
    assert overlap["compared"] + overlap["short_texts"] == 2551 and overlap["short_texts"] > 0
    assert overlap["share"] == pytest.approx(1 / 2551)
    assert overlap["examples"][0]["text"].startswith("'Stock up on silver bullets")
    # Kept: the test set later steps score is the whole file.
    assert checks["test_rows"] == checks["test_rows_kept"] == 2551
    assert len(_rows(out / "test.csv")) == 1 + 2551
    assert set(checks["classes"]["train"]) == set(checks["classes"]["test"]) == {"fresh", "rotten"}
    # The words of the test texts that the vocabulary lacks, counted here independently.
    vocabulary = set(json.loads((out.parent / "prepared" / "vocab.json").read_text())["vocabulary"])
    words = [w for row in _rows(out / "test.csv")[1:] for w in standardize(row[0]).split()]
    unknown = sum(w not in vocabulary for w in words)
    assert checks["test_oov_rate"] == pytest.approx(unknown / len(words))
    assert 0 < checks["test_oov_rate"] < 0.1  # as the default --num_words 20000 leaves it
    assert checks["dropped_by_prepare_data"] == {
        "rows_read": 10201,
        "empty_texts": 0,
        "duplicate_texts": 2,
    }


def test_dropping_the_overlap_removes_that_row_from_the_test_set(
    bundled: tuple[str, Path], tmp_path: Path
) -> None:
    _, out = bundled
    root = out.parent
    result = step.run(
        prepared_dir=str(root / "prepared"),
        train_report_dir=str(root / "train-report"),
        test_report_dir=str(root / "test-report"),
        test_path=str(REPO / "data" / "rt" / "test.csv"),
        text_column="text",
        label_column="label",
        max_text_chars=10_000,
        output_dir=str(tmp_path / "dropped"),
        drop_test_overlap=True,
    )
    assert result["test_rows"] == 2550
    rows = _rows(tmp_path / "dropped" / "test.csv")
    original = _rows(REPO / "data" / "rt" / "test.csv")
    assert rows == original[:1913] + original[1914:]  # spreadsheet row 1914 is index 1913
    assert json.loads((tmp_path / "dropped" / "checks.json").read_text())["overlap"]["dropped"] == 1


def test_a_test_file_that_is_the_training_file_fails_before_training(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    train = make_csv(rows=120, name="train.csv")
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    with pytest.raises(InputError) as failed:
        check_data(store, tmp_path, train, train)
    message = str(failed.value)
    assert f"{train}: 120 of 120 test rows (100.00%) also occur in the training" in message
    assert "0 rows of fewer than 5 words not compared" in message
    assert "(rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 ...;" in message
    assert "--max_test_overlap 0.05" in message
    assert not (tmp_path / "data-checks").exists()  # nothing half-written
    # Dropping cannot rescue it: with the threshold at 1, nothing would be left to test.
    with pytest.raises(InputError, match="leaves no test row"):
        check_data(store, tmp_path, train, train, max_test_overlap=1.0, drop_test_overlap=True)


STREAMED = """
import re, resource, sys
from textcnn import data
from textcnn.steps import check_data
data.CHUNK_ROWS, data.CHUNK_CHARS = 2_000, 2 << 20
status = open("/proc/self/status").read()
used = int(re.search(r"VmData:\\s+(\\d+) kB", status).group(1)) * 1024
limit = used + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
root = sys.argv[2]
check_data.run(
    prepared_dir=root + "/prepared",
    train_report_dir=root + "/train-report",
    test_report_dir=root + "/test-report",
    test_path=root + "/big.csv",
    text_column="text",
    label_column="label",
    max_text_chars=10_000,
    output_dir=root + "/out",
    max_test_overlap=0.5,
)
"""


def test_a_test_set_too_large_for_memory_in_one_piece_is_streamed(
    make_csv: Callable[..., Path], tmp_path: Path
) -> None:
    """Over 48 MB of test texts, checked by a process that may allocate 24 MB beyond what its
    imports took: the figures are those of the whole file."""
    train = make_csv(rows=200, name="train.csv")
    small = make_csv(rows=40, name="small.csv", seed=5)
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    check_data(store, tmp_path, train, small)  # prepared/ and the reports
    leaked = _rows(train)[1:11]
    long_text = " ".join(["filler words of a long review"] * 90)  # 2,700 characters
    with (tmp_path / "big.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(20_000):
            writer.writerow([f"{long_text} {i}", "negative" if i % 2 else "positive"])
        writer.writerows(leaked)
    assert (tmp_path / "big.csv").stat().st_size > 48 << 20
    proc = subprocess.run(
        [sys.executable, "-c", STREAMED, str(24 << 20), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    checks = json.loads((tmp_path / "out" / "checks.json").read_text())
    assert (checks["test_rows"], checks["overlap"]["rows"]) == (20_010, 10)
    assert checks["overlap"]["listed_rows"] == list(range(20_002, 20_012))
    assert (tmp_path / "out" / "test.csv").stat().st_size == (tmp_path / "big.csv").stat().st_size
    # The same program, allowed too little to hold one chunk, fails: the limit binds.
    starved = subprocess.run(
        [sys.executable, "-c", STREAMED, str(1 << 20), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert starved.returncode != 0 and "MemoryError" in starved.stderr


def test_a_run_whose_test_file_is_its_training_file_fails_in_check_data(
    data_slice: tuple[Path, Path], tmp_path: Path
) -> None:
    """As `make run` runs it: the run stops at check-data, before anything trains, and says
    how much of the test set the training data holds."""
    train, _ = data_slice
    out = tmp_path / "run"
    proc = run_pipeline(out, "--train_data_path", str(train), "--test_data_path", str(train))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = re.search(
        r"(\d+) of 800 test rows \((\d+\.\d\d)%\) also occur in the training data .*; "
        r"(\d+) rows of fewer than 5 words not compared\)",
        proc.stdout,
    )
    assert found, proc.stdout
    assert int(found[1]) + int(found[3]) == 800  # every text compared is found
    assert float(found[2]) > 90.0
    assert "--max_test_overlap 0.05" in proc.stdout
    run = json.loads((out / "run.json").read_text())
    steps = run["steps"]
    assert steps["check-data"]["status"] == "Failed"
    assert "retries" not in steps["check-data"]  # a user error: not retried
    for later in ("model-metadata", "train", "fit-ngrams", "evaluate", "gate"):
        assert steps[later]["status"] == "Omitted", later


def test_a_test_set_of_short_texts_is_not_compared_and_says_so(tmp_path: Path) -> None:
    """Texts of fewer than 5 words recur by chance: none counts as leaked, even in a test
    file that is the training file, and the figures say how many were not compared."""
    rows = [(f"{w} movie", "pos" if i % 2 else "neg") for i, w in enumerate("abcdefghijklmnopqrst")]
    data = tmp_path / "short.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *rows])
    store = f"sqlite:{tmp_path / 'md.sqlite'}"
    out = check_data(store, tmp_path, data, data)
    overlap = json.loads((out / "checks.json").read_text())["overlap"]
    assert (overlap["rows"], overlap["compared"], overlap["short_texts"]) == (0, 0, 20)
    assert overlap["share"] == 0.0
