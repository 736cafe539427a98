"""Argo's workflow-level mutexes (`spec.synchronization.mutexes`), on one machine.

On a cluster the controller holds a workflow's mutexes from before its first task until
it has completed, exit handler included (argo-workflows `workflow/controller/operator.go`:
`operate` calls `syncManager.TryAcquire` for `execWf.Spec.Synchronization` before any
node runs, and releases once `wf.Status.Fulfilled()`); a workflow that cannot take one
waits, Pending. Its name is substituted with the global parameters first
(`substituteGlobalVariables`), and its key is `<namespace>/Mutex/<name>`, the namespace
defaulting to the workflow's.

Here a mutex is an exclusive flock on a file in `locks_dir`, shared by the runs that use
that folder (the CLI's: the parent of the run folders, as the endpoint's state). The
kernel releases it when the runner ends, however it ends, as the controller releases a
deleted workflow's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

from workflows.local.folder import holder


def _file(locks_dir: Path, key: str) -> IO[str]:
    locks_dir.mkdir(parents=True, exist_ok=True)
    return (locks_dir / f"{quote(key, safe='')}.lock").open("a+")


@contextlib.contextmanager
def holding(
    locks_dir: Path,
    keys: list[str],
    workflow_name: str,
    say: Callable[[str], None],
) -> Iterator[None]:
    """Hold every mutex in `keys` (`<namespace>/Mutex/<name>`) until the block ends,
    waiting for each (and saying so through `say`) while another run holds it. Taken
    in sorted order, so two runs wanting the same two never wait on each other."""
    with contextlib.ExitStack() as held:
        for key in sorted(set(keys)):
            lock = held.enter_context(_file(locks_dir, key))
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say(f"waiting for mutex {key}, held by {holder(lock)}")
                fcntl.flock(lock, fcntl.LOCK_EX)  # a signal still interrupts the wait
                say(f"took mutex {key}")
            lock.seek(0)
            lock.truncate()
            lock.write(json.dumps({"workflow_name": workflow_name, "pid": os.getpid()}))
            lock.flush()
            held.callback(lock.truncate, 0)  # before the kernel drops the lock with the file
            held.callback(lock.seek, 0)
        yield
