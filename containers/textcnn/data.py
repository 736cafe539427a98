"""Read a text/label CSV (local or gs://) into a clean two-column frame, or say what is wrong.

Rows are named as a spreadsheet numbers them: the header is row 1, the first data row is
row 2, and a text with line breaks inside quotes is still one row. The frame's index holds
those row numbers, so later checks can name rows the same way.
"""

from __future__ import annotations

import codecs
import csv
import io

import pandas as pd

from textcnn import storage
from textcnn.errors import InputError

ROW_NUMBERS = "spreadsheet numbering: the header is row 1, the first data row is row 2"
_MAX_LISTED = 10


def _rows(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LISTED])
    more = len(numbers) - _MAX_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _decode(uri: str, data: bytes) -> tuple[str, bool]:
    bom = data.startswith(codecs.BOM_UTF8)
    body = data[len(codecs.BOM_UTF8) :] if bom else data
    try:
        return body.decode("utf-8"), bom
    except UnicodeDecodeError as e:
        offset = e.start + (len(codecs.BOM_UTF8) if bom else 0)
        line = data.count(b"\n", 0, offset) + 1
        bad = data[offset : offset + 4].hex(" ")
        raise InputError(
            f"{uri}: not valid UTF-8 at byte offset {offset} (line {line} of the file, "
            f"bytes {bad}): re-save the file as UTF-8 (CSV UTF-8 in a spreadsheet)"
        ) from None


def _parse_problem(uri: str, text: str, error: pd.errors.ParserError) -> str:
    """Find what pandas choked on, record by record, with the stdlib reader (slow path).

    Both readers split fields alike; a quote never closed swallows the rest of the file
    into the last record.
    """
    width = None
    row = 0
    for row, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if width is None:
            width = len(fields)
        elif len(fields) > width:
            return (
                f"{uri}: row {row} has {len(fields)} fields but the header has {width} "
                f"({ROW_NUMBERS}): put the text in double quotes if it contains commas"
            )
    if "EOF inside string" not in str(error):
        return f"{uri}: not a readable CSV file ({error}): re-save it as comma-separated UTF-8"
    return (
        f"{uri}: row {row} opens a double quote that is never closed, so the rest of the "
        f"file runs into it ({ROW_NUMBERS}): close the quote; a quote inside a quoted text "
        "is written twice"
    )


def load_csv(
    uri: str, text_column: str, label_column: str, *, require_labels: bool = True
) -> pd.DataFrame:
    """Columns `text` and `label` (strings), indexed by spreadsheet row number.

    Blank rows are skipped, a UTF-8 byte-order mark and spaces around labels and column
    names are removed; `df.attrs["load_report"]` counts these fixes. Texts are kept as
    written (empty ones included: prepare-data drops them). Every missing label is an
    InputError unless `require_labels` is false, when it is kept as "" and counted.
    """
    if text_column == label_column:
        raise InputError(
            f"{uri}: the text and label columns are both {text_column!r}: set "
            "--column_text_value and --column_target_value to two different columns"
        )
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError:
        raise InputError(
            f"{uri}: file not found: check --train_data_path / --test_data_path"
        ) from None
    text, bom = _decode(uri, data)
    if not text.strip():
        raise InputError(f"{uri}: the file is empty: expected a header row and data rows")
    try:
        # header=None: the header row sets the width, so a longer data row is an error
        # rather than silently becoming an index column.
        raw = pd.read_csv(
            io.StringIO(text),
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            engine="c",
        ).fillna("")
    except pd.errors.ParserError as e:
        raise InputError(_parse_problem(uri, text, e)) from None

    columns = [str(c).strip() for c in raw.iloc[0]]
    body = raw.iloc[1:]
    body.index = pd.RangeIndex(2, 2 + len(body), name="row")
    for column, option in (
        (text_column, "--column_text_value"),
        (label_column, "--column_target_value"),
    ):
        if column not in columns:
            found = ", ".join(repr(c) for c in columns)
            raise InputError(
                f"{uri}: no column {column!r} (columns found: {found}): set {option} to the "
                "name of the column to use"
            )
    blank = (body == "").all(axis=1)
    body = body[~blank]
    if body.empty:
        raise InputError(f"{uri}: the file has a header but no data rows")

    df = pd.DataFrame(
        {
            "text": body[columns.index(text_column)],
            "label": body[columns.index(label_column)].str.strip(),
        }
    )
    missing = df.index[df["label"] == ""].tolist()
    if missing and require_labels:
        raise InputError(
            f"{uri}: {len(missing)} row(s) with no value in the label column "
            f"{label_column!r}: rows {_rows(missing)} ({ROW_NUMBERS}): fill in or delete them"
        )
    df.attrs["load_report"] = {
        "file": uri,
        "columns": columns,
        "rows_read": len(df),
        "blank_rows_skipped": int(blank.sum()),
        "utf8_bom_removed": bom,
        "labels_stripped": int((body[columns.index(label_column)] != df["label"]).sum()),
        "missing_labels": len(missing),
    }
    return df


def check_trainable(df: pd.DataFrame, uri: str) -> None:
    """Training needs rows of at least two classes; say so clearly instead of failing in Keras."""
    if df.empty:
        raise InputError(
            f"{uri}: no training rows are left once empty texts are dropped: check "
            "--column_text_value and the file"
        )
    counts = df["label"].value_counts()
    if len(counts) < 2:
        raise InputError(
            f"{uri}: the training data has a single class {counts.index[0]!r} "
            f"({counts.iloc[0]} rows): a classifier needs at least two classes; check "
            "--column_target_value and the file"
        )


def check_known_labels(df: pd.DataFrame, classes: list[str], uri: str, label_column: str) -> None:
    """InputError naming the rows whose label is none of the training `classes`."""
    unseen = sorted(set(df["label"]) - set(classes))
    if unseen:
        rows = df.index[df["label"].isin(unseen)].tolist()
        raise InputError(
            f"{uri}: labels {unseen} in column {label_column!r} (rows "
            f"{', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}; "
            f"{ROW_NUMBERS}) are not among the training classes {classes}: fix or drop these "
            "rows, or retrain on data that has them"
        )


def cut_texts(texts: pd.Series, max_chars: int) -> tuple[pd.Series, int]:
    """Each text cut to its first `max_chars` characters (code points, as the served
    model's `tf.strings.substr(..., unit="UTF8_CHAR")` cuts: textcnn.export), and how many
    were longer."""
    longer = int((texts.str.len() > max_chars).sum())
    return (texts.str.slice(0, max_chars) if longer else texts), longer
