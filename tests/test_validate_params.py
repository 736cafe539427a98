"""validate-params: the options, and the local files they name, before anything runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from textcnn.errors import InputError
from textcnn.params import PipelineParams
from textcnn.steps.validate_params import check_files

pytestmark = pytest.mark.usefixtures("no_orphans")


def _step(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "textcnn", "validate-params", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("fifo", "is a FIFO (named pipe), not a regular file"),
        ("folder", "is a folder, not a regular file"),
        ("device", "is a device or special file, not a regular file"),
        ("missing", "no such file"),
    ],
)
def test_an_input_that_is_no_regular_file_is_refused_naming_the_option(
    tmp_path: Path, kind: str, message: str
) -> None:
    path = {"folder": tmp_path, "device": Path("/dev/null"), "missing": tmp_path / "no.csv"}.get(
        kind, tmp_path / "pipe.csv"
    )
    if kind == "fifo":
        os.mkfifo(path)
    params = PipelineParams.parse({"train_data_path": str(path)})
    expected = re.escape(f"--train_data_path {path}: {message}; give a regular file")
    with pytest.raises(InputError, match=expected):
        check_files(params)


def test_an_output_path_may_be_new_but_not_a_fifo(tmp_path: Path) -> None:
    check_files(PipelineParams.parse({"json_tokenizer_path": str(tmp_path / "new.json")}))
    os.mkfifo(tmp_path / "vocab.json")
    params = PipelineParams.parse({"json_tokenizer_path": str(tmp_path / "vocab.json")})
    with pytest.raises(InputError, match="--json_tokenizer_path .*: is a FIFO"):
        check_files(params)


def test_the_step_says_which_option_in_one_line_and_exits_2(tmp_path: Path) -> None:
    # Row: the train CSV is a folder. Before: `IsADirectoryError` with a traceback.
    proc = _step(f"--train_data_path={tmp_path}")
    assert proc.returncode == 2
    assert f"--train_data_path {tmp_path}: is a folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_full_disk_is_one_error_line(tmp_path: Path) -> None:
    """Writing the step's output where the disk is full (/dev/full answers ENOSPC)."""
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "params").symlink_to("/dev/full")
    proc = _step("--outputs", str(outputs))
    assert proc.returncode == 1  # retried, as on a node with space
    assert "error: validate-params:" in proc.stderr
    assert "No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
