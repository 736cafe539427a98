"""`python -m workflows` (workflows/cli.py): what its commands say when they cannot go on.

A user's mistake is one `error:` line on stderr naming the file or option and what to do,
and exit code 2; never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workflows.cli import main


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err, (out, err)
    (line,) = err.splitlines()
    assert line.startswith("error: "), line
    return line


def test_serve_a_missing_model_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "model"
    assert main(["serve", "--model_dir", str(missing)]) == 2
    line = _one_error(capsys)
    assert str(missing) in line and "point --model_dir at the exported model folder" in line


RUN_JSONS = {
    "no run.json": (None, "not found: run the pipeline first (make run), or give --model_dir"),
    "a run without a model": (
        '{"status": "Failed", "outputs": {"accuracy": "0.5"}}',
        "the run (Failed) has no model",
    ),
    "a run.json cut short": ('{"status": "Succeeded", "artif', "is not a run's JSON"),
    "not a run's JSON": ('["model"]', "is not a run's JSON"),
}


@pytest.mark.parametrize("case", list(RUN_JSONS))
def test_serve_a_run_with_no_model_to_serve_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    text, words = RUN_JSONS[case]
    if text is not None:
        (tmp_path / "run.json").write_text(text)
    assert main(["serve", "--run_dir", str(tmp_path)]) == 2
    line = _one_error(capsys)
    assert f"{tmp_path / 'run.json'}" in line and words in line and "--model_dir" in line
