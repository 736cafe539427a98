"""One run per output folder: an OS file lock, and a rule for folders already in use."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workflows.errors import WorkflowError
from workflows.local.folder import LOCK, run_folder

pytestmark = pytest.mark.usefixtures("no_orphans")


def claim(folder: Path, workflow: str, **options: bool) -> None:
    with run_folder(folder, workflow, **options):
        pass


def test_a_new_folder_is_made_and_held_with_the_workflow_s_name(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    with run_folder(out, "wf-1"):
        info = json.loads((out / LOCK).read_text())
        assert info["workflow_name"] == "wf-1" and info["pid"] == os.getpid()
        # A second holder (a separate open file, as another process would have) is refused.
        with pytest.raises(WorkflowError, match=r"in use by workflow 'wf-1' \(pid \d+\)"):
            claim(out, "wf-2")
    with run_folder(out, "wf-3", overwrite=True):  # released at the end
        pass


def test_a_crashed_run_leaves_no_stale_lock(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from workflows.local.folder import run_folder\n"
            "with run_folder(Path(sys.argv[1]), 'wf-crash'):\n"
            "    (Path(sys.argv[1]) / 'logs').mkdir(); print('held', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    with pytest.raises(WorkflowError, match="in use by workflow 'wf-crash'"):
        claim(out, "wf-next")
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    # The kernel dropped the lock; what the crashed run left counts as an earlier run.
    with pytest.raises(WorkflowError, match="holds an earlier run: pass --overwrite"):
        claim(out, "wf-next")
    with run_folder(out, "wf-resumed", resume=True):
        assert (out / "logs").is_dir()  # resuming keeps what is there
    with run_folder(out, "wf-new", overwrite=True):
        assert sorted(p.name for p in out.iterdir()) == [LOCK]


def test_a_folder_of_other_files_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(WorkflowError, match=r"not empty and holds no run \(notes.txt\)"):
        claim(tmp_path, "wf", overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
