"""What outlives a run of an InferenceService, as a cluster keeps it: the object itself (its
spec, generation and status), its predictor's Deployment or Knative Service, and the pod or
revision that serves for good, in `<state_dir>/<name>.json`. The next run's controller
puts the objects back in its store and starts that pod again, so the endpoint keeps
serving while the next model rolls out.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    isvc: dict[str, Any]
    predictor: dict[str, Any]  # the Deployment or Knative Service
    pod: str  # the serving pod's ReplicaSet, or revision
    template: dict[str, Any]  # its pod template
    made: int  # Knative: revisions made so far (the Configuration's generation)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)


class Endpoints:
    """The endpoints kept in `state_dir` (None: nothing is kept)."""

    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = state_dir
        self._written: dict[str, str] = {}

    def _path(self, name: str) -> Path | None:
        return None if self.state_dir is None else self.state_dir / f"{name}.json"

    def save(self, name: str, endpoint: Endpoint) -> None:
        """Keep `endpoint` (atomically; nothing is written if it did not change)."""
        path, text = self._path(name), endpoint.to_json()
        if path is None or self._written.get(name) == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        self._written[name] = text

    def forget(self, name: str) -> None:
        """The InferenceService was deleted: nothing of it outlives the run."""
        path = self._path(name)
        if path is not None:
            path.unlink(missing_ok=True)
        self._written.pop(name, None)

    def kept(self) -> list[Endpoint]:
        if self.state_dir is None or not self.state_dir.is_dir():
            return []
        found = []
        for path in sorted(self.state_dir.glob("*.json")):
            text = path.read_text()
            try:
                found.append(Endpoint(**json.loads(text)))
            except (ValueError, TypeError):  # not ours (the stand-in's older format): left
                continue
            self._written[path.stem] = text
        return found
