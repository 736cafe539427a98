"""How a task ended, in Argo's node phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, ERRORED = "Succeeded", "Failed", "Errored"
SKIPPED, OMITTED = "Skipped", "Omitted"
DEADLINE_EXCEEDED = "Pod was active on the node longer than the specified deadline"  # Argo


@dataclass
class Outcome:
    status: str
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # artifact name -> key
    message: str = ""
    ran: bool = False  # whether it has a log
    max_rss_mib: float | None = None  # peak resident memory of the task's process
    exit_code: int = -1  # of the process; -1 when there was none (an error before it ran)
    retries: int = 0
    progress: str | None = None  # the last N/M the step wrote to ARGO_PROGRESS_FILE
    metrics: list[dict[str, Any]] = field(default_factory=list)  # as the controller emits them
    warm_start: bool = False  # its first attempt ran in a process started ahead

    @property
    def failed(self) -> bool:
        return self.status in (FAILED, ERRORED)
