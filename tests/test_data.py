"""data.load_csv / check_trainable: clean input loads, every kind of bad input is named."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from textcnn import data, storage
from textcnn.data import check_trainable, load_csv
from textcnn.errors import InputError


def _write(tmp_path: Path, content: bytes | str, name: str = "in.csv") -> str:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def _load(uri: str, **kwargs: bool) -> pd.DataFrame:
    return load_csv(uri, "text", "label", **kwargs)


def test_loads_synthetic_csv(make_csv: Callable[..., Path]) -> None:
    path = make_csv(rows=60, classes=3)
    with path.open(newline="") as f:
        expected = list(csv.DictReader(f))
    df = _load(str(path))
    assert list(df.columns) == ["text", "label"]
    assert df["text"].tolist() == [r["text"] for r in expected]
    assert df["label"].tolist() == [r["label"] for r in expected]
    assert df.index[0] == 2 and df.index[-1] == 61  # spreadsheet rows: header is row 1
    report = df.attrs["load_report"]
    assert report["rows_read"] == 60 and report["columns"] == ["text", "label"]
    check_trainable(df["label"], str(path))  # three classes: fine


def test_other_column_names_and_order(tmp_path: Path) -> None:
    uri = _write(tmp_path, "id,sentiment,review\n1,pos,good film\n2,neg,bad film\n")
    df = load_csv(uri, "review", "sentiment")
    assert df.to_dict("list") == {"text": ["good film", "bad film"], "label": ["pos", "neg"]}


def test_quoted_newlines_commas_and_quotes_are_one_text(tmp_path: Path) -> None:
    buf = io.StringIO()
    texts = ['first line\nsecond, line\r\nthird "quoted" line', "plain"]
    writer = csv.writer(buf)
    writer.writerows([("text", "label"), (texts[0], "pos"), (texts[1], "")])
    uri = _write(tmp_path, buf.getvalue())
    df = _load(uri, require_labels=False)
    assert df["text"].tolist() == texts
    assert df.index.tolist() == [2, 3]  # one row each, however many lines the text spans
    with pytest.raises(InputError, match=r"rows 3 \(spreadsheet numbering"):
        _load(uri)


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    uri = _write(tmp_path, content)
    with pytest.raises(InputError, match="is empty") as e:
        _load(uri)
    assert uri in str(e.value)


def test_header_without_rows(tmp_path: Path) -> None:
    uri = _write(tmp_path, "text,label\n\n")
    with pytest.raises(InputError, match="no data rows") as e:
        _load(uri)
    assert uri in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found") as e:
        _load(str(tmp_path / "nope.csv"))
    assert "nope.csv" in str(e.value)


@pytest.mark.parametrize(
    ("text_column", "label_column", "missing", "option"),
    [
        ("review", "label", "review", "--column_text_value"),
        ("text", "target", "target", "--column_target_value"),
    ],
)
def test_missing_column(
    make_csv: Callable[..., Path], text_column: str, label_column: str, missing: str, option: str
) -> None:
    path = make_csv(rows=10, columns=("text", "label"))
    with pytest.raises(InputError) as e:
        load_csv(str(path), text_column, label_column)
    msg = str(e.value)
    assert str(path) in msg and f"no column {missing!r}" in msg and option in msg
    assert "columns found: 'text', 'label'" in msg
    assert "\n" not in msg


def test_same_column_for_text_and_label(make_csv: Callable[..., Path]) -> None:
    with pytest.raises(InputError, match="--column_text_value and --column_target_value"):
        load_csv(str(make_csv(rows=10)), "text", "text")


def test_undecodable_bytes_name_offset_and_line(tmp_path: Path) -> None:
    content = "text,label\ngood,pos\ncaf\xe9 bad,neg\n".encode("latin-1")
    uri = _write(tmp_path, content)
    with pytest.raises(InputError) as e:
        _load(uri)
    msg = str(e.value)
    offset = content.index(b"\xe9")
    assert uri in msg and f"byte offset {offset}" in msg
    assert "line 3" in msg and "re-save the file as UTF-8" in msg


def test_bom_header_whitespace_and_labels_are_fixed(tmp_path: Path) -> None:
    uri = _write(tmp_path, "\ufefftext , label\ngood, pos \nbad,neg\n")
    df = _load(uri)
    assert df["label"].tolist() == ["pos", "neg"]
    report = df.attrs["load_report"]
    assert report["utf8_bom_removed"] is True and report["labels_stripped"] == 1


def test_literal_nan_and_null_stay_text(tmp_path: Path) -> None:
    df = _load(_write(tmp_path, "text,label\nnan,NA\nnull,None\n"))
    assert df.to_dict("list") == {"text": ["nan", "null"], "label": ["NA", "None"]}


def test_missing_labels_named_by_spreadsheet_row(tmp_path: Path) -> None:
    rows = "".join(f"text {i},{'' if i in (3, 7) else 'pos'}\n" for i in range(10))
    uri = _write(tmp_path, "text,label\n" + rows)
    with pytest.raises(InputError) as e:
        _load(uri)
    msg = str(e.value)
    # Data rows 3 and 7 (0-based) are spreadsheet rows 5 and 9: header row 1, data from 2.
    assert uri in msg and "2 row(s) with no value in the label column 'label': rows 5, 9" in msg
    assert "the header is row 1, the first data row is row 2" in msg
    df = _load(uri, require_labels=False)
    assert df.loc[[5, 9], "label"].tolist() == ["", ""]
    assert df.attrs["load_report"]["missing_labels"] == 2


def test_many_missing_labels_are_summarised(tmp_path: Path) -> None:
    uri = _write(tmp_path, "text,label\n" + "".join(f"t{i},\n" for i in range(25)))
    with pytest.raises(InputError, match=r"rows 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 15 more"):
        _load(uri)


def test_blank_rows_skipped_and_numbering_kept(tmp_path: Path) -> None:
    df = _load(_write(tmp_path, "text,label\na,pos\n\n,\nb,neg\n\n\n"))
    assert df.index.tolist() == [2, 5]
    assert df.attrs["load_report"]["blank_rows_skipped"] == 4


def test_empty_text_is_kept_not_an_error(tmp_path: Path) -> None:
    df = _load(_write(tmp_path, 'text,label\n"",pos\n   ,neg\nfine,pos\n'))
    assert df["text"].tolist() == ["", "   ", "fine"]


@pytest.mark.parametrize(
    ("content", "row"),
    [
        ("text,label\ngood,pos\nbad, really bad,neg\nok,pos\n", 3),
        # A longer first data row must not turn the first column into an index.
        ("text,label\nbad, really bad,neg\nok,pos\n", 2),
        ('text,label\n"multi\nline",pos\n"a","b","c"\n', 3),
    ],
)
def test_ragged_row_is_named(tmp_path: Path, content: str, row: int) -> None:
    uri = _write(tmp_path, content)
    with pytest.raises(InputError) as e:
        _load(uri)
    msg = str(e.value)
    assert uri in msg and f"row {row} has 3 fields but the header has 2" in msg
    assert "double quotes" in msg


@pytest.mark.parametrize(
    ("content", "row"),
    [
        ('text,label\ngood,pos\n"never closed,neg\nok,pos\n', 3),
        # After a field the csv module's strict mode already refuses ("ab"c).
        ('text,label\ngood,pos\n"ab"c,"never closed\nok,pos\n', 3),
        ('"text,label\ngood,pos\nok,pos\n', 1),  # the header: not a missing column
        ('text,label\ngood,"pos', 2),  # no line end at all
    ],
)
def test_unclosed_quote_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, row: int
) -> None:
    uri = _write(tmp_path, content)
    monkeypatch.setattr(data, "BLOCK_BYTES", 4)
    with pytest.raises(InputError, match=rf"row {row} opens a double quote that is never closed"):
        _load(uri)


def test_closed_quote_at_the_end_without_line_end_is_fine(tmp_path: Path) -> None:
    df = _load(_write(tmp_path, 'text,label\n"good, really",pos\n"ok","neg"'))
    assert df.to_dict("list") == {"text": ["good, really", "ok"], "label": ["pos", "neg"]}


def test_blank_header_row_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="row 1 is blank, but it is the header"):
        _load(_write(tmp_path, "\ntext,label\ngood,pos\n"))


def test_carriage_returns_only_are_line_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a spreadsheet's "CSV (Macintosh)" writes; read in blocks that end anywhere."""
    uri = _write(tmp_path, "text,label\r" + "".join(f"text {i},c{i % 2}\r" for i in range(50)))
    monkeypatch.setattr(data, "BLOCK_BYTES", 7)
    df = _load(uri)
    assert df["text"].tolist() == [f"text {i}" for i in range(50)] and df.index[-1] == 51


def test_single_class_rejected_for_training(tmp_path: Path) -> None:
    uri = _write(tmp_path, "text,label\na,pos\nb,pos\nc,pos\n")
    df = _load(uri)  # loading is fine: only training needs two classes
    with pytest.raises(InputError) as e:
        check_trainable(df["label"], uri)
    msg = str(e.value)
    assert uri in msg and "single class 'pos' (3 rows)" in msg and "at least two classes" in msg


def test_loads_from_gcs(gcs_root: str, make_csv: Callable[..., Path]) -> None:
    path = make_csv(rows=20)
    uri = storage.join(gcs_root, "train.csv")
    storage.write_bytes(uri, path.read_bytes())
    assert _load(uri).equals(_load(str(path)))
    with pytest.raises(InputError, match="not found") as e:
        _load(storage.join(gcs_root, "missing.csv"))
    assert "missing.csv" in str(e.value)


def test_streamed_in_small_blocks_and_chunks_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where blocks and chunks end changes nothing: texts spanning lines, CRLF and lone CR
    line ends, a byte-order mark, blank rows and multi-byte characters cut by a block."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["text", "label"])
    expected = []
    for i in range(40):
        text = f"café {i}, déjà vu\nsecond line {'é' * (i % 5)}" if i % 3 else f"plain {i}"
        writer.writerow([text, f" c{i % 4}"])
        expected.append((text, f"c{i % 4}"))
        if i % 7 == 0:
            buf.write("\r\n")
    uri = _write(tmp_path, ("\ufeff" + buf.getvalue() + "last,c0\rcr,c1").encode())
    expected += [("last", "c0"), ("cr", "c1")]
    monkeypatch.setattr(data, "BLOCK_BYTES", 5)
    monkeypatch.setattr(data, "CHUNK_ROWS", 3)
    report = data.LoadReport(uri)
    chunks = list(data.iter_csv(uri, "text", "label", report=report))
    assert len(chunks) == 14
    df = pd.concat(chunks)
    assert list(zip(df["text"], df["label"], strict=True)) == expected
    assert df.index.is_monotonic_increasing and df.index[-1] == 2 + 40 + 6 + 1
    assert report.utf8_bom_removed and report.labels_stripped == 40
    assert report.blank_rows_skipped == 6 and report.rows_read == 42


def test_undecodable_byte_in_a_later_block_is_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = ("text,label\n" + "".join(f"text {i},pos\n" for i in range(50))).encode()
    content += b"caf\xe9,neg\n"
    uri = _write(tmp_path, content)
    monkeypatch.setattr(data, "BLOCK_BYTES", 16)
    with pytest.raises(InputError, match=rf"byte offset {len(content) - 6} \(line 52 of"):
        _load(uri)
