"""A training job's verdict (succeeded, failed and why, or on its way), and the wait for
it: the same for a TFJob (tfjob.py) and a TrainJob (trainjob.py), each judged by its own
controller's conditions."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from textcnn.errors import FinalError

State = Literal["succeeded", "failed", "waiting"]


@dataclass(frozen=True)
class Verdict:
    state: State
    message: str


Judge = Callable[[Mapping[str, Any]], Verdict]


def observed(job: Mapping[str, Any]) -> tuple[str, Mapping[str, Any], dict[Any, Any]]:
    """A job object's `namespace/name`, its status, and its True conditions by type."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    true = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}", status, true


def tally(groups: Mapping[str, Any], keys: tuple[str, ...], none: str, sep: str = " ") -> str:
    """`name<sep>2 active, 1 succeeded; ...`: each group's nonzero counts of `keys`
    (`none` for a group with none), as a status summary a person reads."""
    parts = []
    for name, counts in groups.items():
        shown = [f"{counts[k]} {k}" for k in keys if (counts or {}).get(k)]
        parts.append(f"{name}{sep}{', '.join(shown) or none}")
    return "; ".join(parts)


def wait_for(
    get: Callable[[], Mapping[str, Any]], judge: Judge, timeout_s: float, poll_s: float
) -> str:
    """Poll `get()` (the job object) until `judge` says it succeeded: returns its message.

    FinalError when it failed, TimeoutError after `timeout_s`; both say what was seen last.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        verdict = judge(get())
        if verdict.state == "succeeded":
            return verdict.message
        if verdict.state == "failed":
            raise FinalError(verdict.message)
        if time.monotonic() + poll_s > deadline:
            raise TimeoutError(f"not finished after {timeout_s:g} s; last seen: {verdict.message}")
        time.sleep(poll_s)
