"""Progress: the steps' lines and ARGO_PROGRESS_FILE (textcnn.progress), the runner's live
display of them (workflows.local.display), and the runner reading them as a step runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from textcnn import progress
from workflows.hooks import project_hooks
from workflows.local.display import Display
from workflows.local.execute import run_workflow


def test_a_report_is_a_log_line_and_argo_s_progress_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "var" / "run" / "argo" / "progress"
    monkeypatch.setenv(progress.PROGRESS_FILE, str(target))
    progress.report(3, 11, "epoch 3/10: loss 0.4000")
    assert capsys.readouterr().out == "progress: 3/11 epoch 3/10: loss 0.4000\n"
    assert target.read_text() == "3/11"
    progress.report(12, 11)  # Argo refuses N > M: clamped
    assert target.read_text() == "11/11"
    progress.report(0, 0)  # nothing to do (fit-ngrams with the plain CNN): Argo refuses M = 0
    assert target.read_text() == "0/1"
    assert progress.parse("progress: 3/11 epoch 3/10") == (3, 11, "epoch 3/10")
    assert progress.parse("progress: 2/4\n") == (2, 4, "")
    assert progress.parse("Epoch 3/10 - loss: 0.4") is None
    monkeypatch.setenv(progress.PROGRESS_FILE, str(tmp_path / "a-file" / "x"))
    (tmp_path / "a-file").write_text("")  # its folder cannot be made: the step goes on
    progress.report(1, 2)


def test_on_a_terminal_one_line_per_running_task_is_redrawn() -> None:
    out = io.StringIO()
    shown = Display(out, tty=True)
    shown.live([("train ", "1/3 epoch 1/2", 2.0, ("1/3 epoch 1/2",)), ("side  ", "", 1.0, ())])
    shown.line("prep    Succeeded      1.0s")
    shown.live([("train ", "2/3 epoch 2/2", 4.0, ("2/3 epoch 2/2",))])
    text = out.getvalue()
    # Drawn, erased (2 lines up, cleared) under a settled line, drawn again, then redrawn.
    assert text.startswith("train   Running        2.0s  1/3 epoch 1/2\nside    Running")
    assert "\x1b[2F\x1b[Jprep    Succeeded      1.0s\ntrain   Running        2.0s" in text
    assert text.endswith("\x1b[2F\x1b[Jtrain   Running        4.0s  2/3 epoch 2/2\n")


def test_elsewhere_a_plain_line_per_progress_line_and_quiet_prints_nothing() -> None:
    out = io.StringIO()
    shown = Display(out, tty=False)
    shown.live([("train", "1/3 epoch 1/2", 1.0, ("1/3 epoch 1/2",)), ("side", "", 1.0, ())])
    shown.live([("train", "1/3 epoch 1/2", 1.5, ())])  # nothing new: nothing printed
    shown.live([("train", "3/3 done", 9.0, ("2/3 epoch 2/2", "3/3 done"))])
    assert out.getvalue() == (
        "train  1/3 epoch 1/2  (1 s)\ntrain  2/3 epoch 2/2  (9 s)\ntrain  3/3 done  (9 s)\n"
    )
    quiet = io.StringIO()
    silent = Display(quiet, quiet=True, tty=True)
    silent.line("prep    Succeeded")
    silent.live([("train", "1/3", 1.0, ("1/3",))])
    assert quiet.getvalue() == ""


def test_the_runner_shows_a_step_s_progress_while_it_runs(tmp_path: Path) -> None:
    """The step writes progress lines (and the file Argo's executor would read); while it
    runs the live display gets them; run.json keeps the last N/M."""
    code = (
        "import time\n"
        "from textcnn.progress import report\n"
        "report(1, 2, 'half way')\n"
        "time.sleep(1.5)\n"
        "report(2, 2, 'done')\n"
    )
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "progress"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "long", "template": "long"}]}},
                {
                    "name": "long",
                    "container": {"image": "python:3.11", "command": ["python", "-c", code]},
                },
            ],
        },
    }
    seen: list[list[tuple[str, str, float, tuple[str, ...]]]] = []
    result = run_workflow(
        template,
        {},
        tmp_path / "run",
        hooks=project_hooks(),
        on_progress=lambda _: None,
        on_live=seen.append,
    )
    assert result.status == "Succeeded"
    notes = [note for states in seen for name, note, _, _ in states if name.strip() == "long"]
    assert "1/2 half way" in notes
    lines = [line for states in seen for name, _, _, new in states for line in new]
    assert lines == ["1/2 half way", "2/2 done"]  # each line once, none lost
    assert seen[-1] == []  # the settled task left the live block
    assert result.steps["long"]["progress"] == "2/2"
