"""One run per output folder, held with an OS file lock.

A run holds an exclusive `flock` on `<output_dir>/run.lock` while it runs; the kernel
drops it when the process ends, however it ends, so a crashed run leaves no stale lock.
The lock file names the workflow that holds it, for the message a second run gets, and
marks the folder as a run folder: only such a folder is ever emptied.

The rule (`--help` of `python -m workflows run`): a new or empty folder is used as it is;
a folder in use by a running workflow is refused; a folder holding an earlier run is
refused unless it is overwritten (emptied first) or resumed; a folder holding anything
else is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from workflows.errors import WorkflowError

LOCK = "run.lock"
WORKFLOW = "workflow.json"  # the template the run ran, which `--resume` runs again
RULE = (
    "An output folder holds one run: a new or empty folder is used; a folder in use by "
    "a running workflow is refused; one holding an earlier run is refused unless "
    "--overwrite (it is emptied first) or --resume; one holding anything else is refused."
)


def holder(lock: IO[str]) -> str:
    """Who holds a lock file of a run (its folder's, or a mutex): what its holder wrote."""
    lock.seek(0)
    try:
        info = json.loads(lock.read() or "{}")
    except json.JSONDecodeError:
        info = {}
    if not info:
        return "another run"
    return f"workflow {info.get('workflow_name')!r} (pid {info.get('pid')})"


def _in_use(folder: Path, lock: IO[str]) -> WorkflowError:
    return WorkflowError(
        f"--output_dir {folder} is in use by {holder(lock)}: wait for it to end, "
        "or choose another folder"
    )


def check_not_running(folder: Path) -> None:
    """Raise the message a second run gets when a run holds `folder` now."""
    try:
        lock = (folder / LOCK).open()
    except OSError:  # no lock file: no run ever held it
        return
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(folder, lock) from None


def _unwritable(folder: Path, e: OSError) -> WorkflowError:
    return WorkflowError(
        f"--output_dir {folder}: cannot write there ({e.strerror}); choose a writable "
        "folder with free space"
    )


@contextlib.contextmanager
def run_folder(
    folder: Path, workflow_name: str, *, overwrite: bool = False, resume: bool = False
) -> Iterator[None]:
    """Hold `folder` for one run of `workflow_name` (see the module's rule); raise
    WorkflowError, before anything is written, when it may not be used."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / LOCK).open("a+")
    except OSError as e:
        raise _unwritable(folder, e) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _in_use(folder, lock) from None
        others = sorted(p.name for p in folder.iterdir() if p.name != LOCK)
        is_run = (folder / "run.json").is_file() or os.fstat(lock.fileno()).st_size > 0
        if others and not resume:
            if not is_run:
                raise WorkflowError(
                    f"--output_dir {folder} is not empty and holds no run "
                    f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): "
                    "choose a new or empty folder"
                )
            if not overwrite:
                raise WorkflowError(
                    f"--output_dir {folder} holds an earlier run: pass --overwrite to "
                    "replace it, --resume to go on with it, or choose another folder"
                )
            for name in others:
                path = folder / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        try:
            lock.seek(0)
            lock.truncate()
            lock.write(
                json.dumps(
                    {"workflow_name": workflow_name, "pid": os.getpid(), "started": time.time()}
                )
            )
            lock.flush()
        except OSError as e:
            raise _unwritable(folder, e) from None
        yield
