"""Read a text/label CSV (local or gs://) as clean two-column frames, or say what is wrong.

`iter_csv` streams the file in chunks of rows (a step's memory holds one chunk, whatever
the file's size); `load_csv` joins them for what is small. Rows are named as a spreadsheet
numbers them: the header is row 1, the first data row is row 2, and a text with line
breaks inside quotes is still one row. A frame's index holds those row numbers, so later
checks can name rows the same way. The csv module splits the records (pandas' chunked C
reader miscounts the fields of a blank line that starts a chunk).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import BinaryIO

import numpy as np
import pandas as pd

from textcnn import storage
from textcnn.errors import InputError

ROW_NUMBERS = "spreadsheet numbering: the header is row 1, the first data row is row 2"
_MAX_LISTED = 10
# A chunk of rows ends at whichever comes first; the characters bound a chunk of long texts.
CHUNK_ROWS = 50_000
CHUNK_CHARS = 32 << 20
BLOCK_BYTES = 1 << 20


def _rows(numbers: list[int], total: int) -> str:
    shown = ", ".join(str(n) for n in numbers[:_MAX_LISTED])
    more = total - min(len(numbers), _MAX_LISTED)
    return f"{shown} and {more} more" if more > 0 else shown


@dataclass
class LoadReport:
    """What reading a CSV fixed and found, filled in as `iter_csv` streams it."""

    file: str
    columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    blank_rows_skipped: int = 0
    utf8_bom_removed: bool = False
    labels_stripped: int = 0
    missing_labels: int = 0


def _line_ends(data: bytes) -> int:
    """Where the last whole line of `data` ends: after its last \n, or after a \r that is
    not its last byte (that one may be the first half of \r\n); 0 when there is none."""
    return max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1


def _lines(uri: str, stream: BinaryIO, report: LoadReport) -> Iterator[str]:
    """The decoded lines of a binary stream, with their endings (as `open(newline="")` gives
    them to the csv module), read a block at a time. Only whole lines are decoded, so no
    character is cut: no byte of a line end is ever part of a UTF-8 sequence."""
    offset, line = 0, 1  # bytes and lines before `parts`
    parts: list[bytes] = []  # read, not yet decoded: no line end among them
    while True:
        block = stream.read(BLOCK_BYTES)
        if block and not _line_ends(block):  # a long line: joined once it ends
            parts.append(block)
            continue
        data = b"".join([*parts, block])
        if offset == 0 and data.startswith(codecs.BOM_UTF8):
            report.utf8_bom_removed = True
            data, offset = data[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8)
        cut = _line_ends(data) if block else len(data)
        try:
            text = data[:cut].decode("utf-8")
        except UnicodeDecodeError as e:
            bad = data[e.start : e.start + 4].hex(" ")
            at_line = line + data.count(b"\n", 0, e.start)
            raise InputError(
                f"{uri}: not valid UTF-8 at byte offset {offset + e.start} (line {at_line} "
                f"of the file, bytes {bad}): re-save the file as UTF-8 (CSV UTF-8 in a "
                "spreadsheet)"
            ) from None
        yield from io.StringIO(text, newline="")  # splits at \n, \r\n and a lone \r
        if not block:
            return
        offset, line = offset + cut, line + data.count(b"\n", 0, cut)
        parts = [data[cut:]]


_MARK = "x"  # after a record: a record of its own, unless a quote is still open


def _quote_left_open(lines: list[str]) -> bool:
    """Whether the record made of `lines` ends inside a quoted field: the csv module (not
    strict, as pandas) would then take a line added after it into that field."""
    return len(list(csv.reader([*lines, "\n", _MARK]))) == 1


def _records(uri: str, lines: Iterator[str]) -> Iterator[list[str]]:
    """CSV records (a quoted text may span lines), split as pandas' C reader splits them.
    A quote never closed swallows the rest of the file into one record: an error, raised
    before that record is used."""
    tail: list[str] = []  # the lines of the record being read
    ended = False

    def feed() -> Iterator[str]:
        nonlocal ended
        for line in lines:
            tail.append(line)
            yield line
        ended = True

    row = 0
    try:
        for row, fields in enumerate(csv.reader(feed()), start=1):  # noqa: B007
            if ended and _quote_left_open(tail):  # only the file's last record can
                raise InputError(
                    f"{uri}: row {row} opens a double quote that is never closed, so the rest "
                    f"of the file runs into it ({ROW_NUMBERS}): close the quote; a quote "
                    "inside a quoted text is written twice"
                )
            tail.clear()
            yield fields
    except csv.Error as e:
        raise InputError(
            f"{uri}: row {row + 1} is not readable CSV ({e}; {ROW_NUMBERS}): re-save the "
            "file as comma-separated UTF-8"
        ) from None


def iter_csv(
    uri: str,
    text_column: str,
    label_column: str,
    *,
    require_labels: bool = True,
    report: LoadReport | None = None,
) -> Generator[pd.DataFrame, None, None]:
    """The CSV streamed as frames of at most CHUNK_ROWS rows (and CHUNK_CHARS characters of
    text), with columns `text` and `label` (strings), indexed by spreadsheet row number.

    Blank rows are skipped, a UTF-8 byte-order mark and spaces around labels and column
    names are removed; `report` counts these fixes once the stream is read. Texts are kept
    as written (empty ones included: prepare-data drops them). Missing labels are an
    InputError, raised at the end of the file so that it names every row, unless
    `require_labels` is false, when they are kept as "" and counted.
    """
    if text_column == label_column:
        raise InputError(
            f"{uri}: the text and label columns are both {text_column!r}: set "
            "--column_text_value and --column_target_value to two different columns"
        )
    report = report if report is not None else LoadReport(uri)
    csv.field_size_limit(2**31 - 1)  # a text may be longer than the csv module's 128 KiB
    try:
        with storage.open_read(uri) as stream:
            yield from _frames(
                uri,
                _records(uri, _lines(uri, stream, report)),
                report,
                text_column,
                label_column,
                require_labels,
            )
    except FileNotFoundError:
        raise InputError(
            f"{uri}: file not found: check --train_data_path / --test_data_path"
        ) from None


def _frames(
    uri: str,
    records: Iterator[list[str]],
    report: LoadReport,
    text_column: str,
    label_column: str,
    require_labels: bool,
) -> Iterator[pd.DataFrame]:
    header = next(records, None)
    if header is None or not any(c.strip() for c in header):
        if all(not "".join(r).strip() for r in records):
            raise InputError(f"{uri}: the file is empty: expected a header row and data rows")
        raise InputError(
            f"{uri}: row 1 is blank, but it is the header ({ROW_NUMBERS}): put the column "
            "names on the first line (for example text,label)"
        )
    columns = report.columns = [c.strip() for c in header]
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
    width, at_text, at_label = len(columns), columns.index(text_column), columns.index(label_column)
    missing: list[int] = []
    rows: list[int] = []
    texts: list[str] = []
    labels: list[str] = []
    chars = 0
    for row, fields in enumerate(records, start=2):
        if len(fields) > width:
            raise InputError(
                f"{uri}: row {row} has {len(fields)} fields but the header has {width} "
                f"({ROW_NUMBERS}): put the text in double quotes if it contains commas"
            )
        if not any(fields):  # a blank row
            report.blank_rows_skipped += 1
            continue
        fields += [""] * (width - len(fields))
        label = fields[at_label].strip()
        report.labels_stripped += label != fields[at_label]
        if not label:
            report.missing_labels += 1
            if len(missing) < _MAX_LISTED:
                missing.append(row)
        rows.append(row)
        texts.append(fields[at_text])
        labels.append(label)
        chars += len(texts[-1])
        if len(rows) == CHUNK_ROWS or chars >= CHUNK_CHARS:
            yield _frame(rows, texts, labels)
            report.rows_read += len(rows)
            rows, texts, labels, chars = [], [], [], 0
    if rows:
        yield _frame(rows, texts, labels)
        report.rows_read += len(rows)
    if not report.rows_read:
        raise InputError(f"{uri}: the file has a header but no data rows")
    if report.missing_labels and require_labels:
        raise InputError(
            f"{uri}: {report.missing_labels} row(s) with no value in the label column "
            f"{label_column!r}: rows {_rows(missing, report.missing_labels)} ({ROW_NUMBERS}): "
            "fill in or delete them"
        )


def _frame(rows: list[int], texts: list[str], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"text": texts, "label": labels}, index=pd.Index(rows, name="row"), dtype=object
    )


def load_csv(
    uri: str, text_column: str, label_column: str, *, require_labels: bool = True
) -> pd.DataFrame:
    """The whole CSV in one frame (see `iter_csv`), for what is small (a test set, a
    canary); `df.attrs["load_report"]` holds the LoadReport's fields."""
    report = LoadReport(uri)
    df = pd.concat(
        list(iter_csv(uri, text_column, label_column, require_labels=require_labels, report=report))
    )
    df.attrs["load_report"] = asdict(report)
    return df


def text_hashes(texts: list[str]) -> np.ndarray:
    """A 64-bit hash (uint64) of each text: what dedup and duplicate counts compare, so
    no step keeps the texts themselves."""
    return pd.util.hash_pandas_object(pd.Series(texts, dtype=object), index=False).to_numpy()


def check_trainable(labels: pd.Series, uri: str) -> None:
    """Training needs rows of at least two classes (`labels`, one a row); say so clearly
    instead of failing in Keras."""
    if labels.empty:
        raise InputError(
            f"{uri}: no training rows are left once empty texts are dropped: check "
            "--column_text_value and the file"
        )
    counts = labels.value_counts()
    if len(counts) < 2:
        raise InputError(
            f"{uri}: the training data has a single class {counts.index[0]!r} "
            f"({counts.iloc[0]} rows): a classifier needs at least two classes; check "
            "--column_target_value and the file"
        )


def check_known_labels(
    chunks: Iterable[pd.DataFrame], classes: list[str], uri: str, label_column: str
) -> None:
    """InputError naming the rows (of frames `chunks`, as `iter_csv` streams them) whose
    label is none of the training `classes`."""
    unseen: set[str] = set()
    rows: list[int] = []
    count = 0
    for chunk in chunks:
        bad = ~chunk["label"].isin(classes).to_numpy()
        if bad.any():
            unseen.update(chunk["label"][bad])
            count += int(bad.sum())
            rows += chunk.index[bad][: _MAX_LISTED - len(rows)].tolist()
    if unseen:
        raise InputError(
            f"{uri}: labels {sorted(unseen)} in column {label_column!r} (rows "
            f"{_rows(rows, count)}; {ROW_NUMBERS}) are not among the training classes "
            f"{classes}: fix or drop these rows, or retrain on data that has them"
        )


def cut_texts(texts: Iterable[str], max_chars: int) -> tuple[list[str], int]:
    """Each text cut to its first `max_chars` characters (code points, as the served
    model's `tf.strings.substr(..., unit="UTF8_CHAR")` cuts: textcnn.export), and how many
    were longer. In Python: pandas' .str methods leave the process larger after each call
    on a chunk."""
    cut, longer = [], 0
    for text in texts:
        longer += len(text) > max_chars
        cut.append(text[:max_chars])
    return cut, longer
