"""The run's account: each task's status and step record (what run.json keeps), and the
scope the tasks after it see (its output parameters and artifact keys)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workflows.local.outcome import ERRORED, FAILED, SUCCEEDED, Outcome


class Ledger:
    def __init__(self, scope: Mapping[str, str], uri: Any) -> None:
        self.status: dict[str, str] = {}
        self.steps: dict[str, dict[str, Any]] = {}
        self.params: dict[str, str] = dict(scope)  # `tasks.T.outputs.parameters.P` too
        self.keys: dict[str, str] = {}  # `tasks.T.outputs.artifacts.A` -> key
        self.artifacts: dict[str, str] = {}  # artifact name -> URI
        self._uri = uri  # key -> URI in the artifact repository

    def settle(self, name: str, outcome: Outcome, log: Path | None) -> None:
        self.status[name] = outcome.status
        step: dict[str, Any] = {
            "status": outcome.status,
            "seconds": round(outcome.seconds, 3),
            "log": str(log) if log else None,
            "outputs": outcome.outputs,
        }
        optional: dict[str, Any] = {
            "message": outcome.message,
            "retries": outcome.retries,
            "artifacts": outcome.artifacts,  # name -> key, for --resume
            "max_rss_mib": None if outcome.max_rss_mib is None else round(outcome.max_rss_mib, 1),
            "warm_start": outcome.warm_start,  # its first attempt's process imported ahead
            "progress": outcome.progress,
            "metrics": outcome.metrics,  # what Argo's controller would export
        }
        step.update({k: v for k, v in optional.items() if v})
        if outcome.exit_code >= 0:  # its container's, as the pod reports it
            step["exit_code"] = outcome.exit_code
        self.steps[name] = step
        if outcome.status == SUCCEEDED:
            self._take(name, outcome.outputs, outcome.artifacts)

    def take_over(self, name: str, step: Mapping[str, Any]) -> None:
        """An earlier run's task, as it ended (`--resume`)."""
        self.status[name] = step["status"]
        self.steps[name] = {**step, "resumed": True}
        self._take(name, step.get("outputs", {}), step.get("artifacts", {}))

    def _take(self, name: str, outputs: Mapping[str, str], artifacts: Mapping[str, str]) -> None:
        for key, value in outputs.items():
            self.params[f"tasks.{name}.outputs.parameters.{key}"] = value
        for art, key in artifacts.items():
            self.keys[f"tasks.{name}.outputs.artifacts.{art}"] = key
            self.artifacts[art] = self._uri(key)

    def failed(self) -> list[str]:
        return [n for n, s in self.status.items() if s in (FAILED, ERRORED)]
