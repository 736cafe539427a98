"""Progress of a long step, where people look: its log, the local runner, the Argo UI.

`report(done, total, note)` prints `progress: N/M note` to the step's log (stdout, flushed),
which `kubectl logs`, `argo logs` and the local runner show as the step runs. When
`ARGO_PROGRESS_FILE` is set (Argo's executor sets it in every pod and reads the file every
few seconds; the local runner does the same) the file holds `N/M`, so the Argo UI shows
the step's progress and sums it into the workflow's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROGRESS_FILE = "ARGO_PROGRESS_FILE"
LINE = re.compile(r"^progress: (\d+)/(\d+)(?: (.*))?$")


def report(done: int, total: int, note: str = "") -> None:
    # Argo takes N/M only with 0 <= N <= M and M > 0 (argo-workflows
    # pkg/apis/workflow/v1alpha1/progress.go, Progress.IsValid): a step with nothing to do
    # reports 0/1 and 1/1, not 0/0.
    total = max(total, 1)
    done = max(0, min(done, total))
    print(f"progress: {done}/{total}" + (f" {note}" if note else ""), flush=True)
    path = os.environ.get(PROGRESS_FILE)
    if path:
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(f"{done}/{total}")
            os.replace(partial, target)  # the reader never sees half a value
        except OSError:
            pass  # progress is a courtesy: it never fails the step


def parse(line: str) -> tuple[int, int, str] | None:
    """(N, M, note) of a progress line, or None for any other line."""
    m = LINE.match(line.rstrip("\n"))
    return None if m is None else (int(m.group(1)), int(m.group(2)), m.group(3) or "")
