"""What a local run reports: run.json (and what `--resume` reads back from it)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunResult:
    """The run's outcome; `write()` saves it as run.json (with `extra` merged in)."""

    status: str
    workflow_name: str
    steps: dict[str, dict[str, Any]]
    outputs: dict[str, str]
    artifacts: dict[str, str]
    message: str = ""
    parameters: dict[str, str] = field(default_factory=dict)  # the workflow's, for --resume
    artifact_root: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "workflow_name": self.workflow_name,
            "message": self.message,
            "steps": self.steps,
            "outputs": self.outputs,
            "artifacts": self.artifacts,
            "parameters": self.parameters,
            "artifact_root": self.artifact_root,
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path: Path) -> None:
        """Write `to_json()` atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(self.to_json() + "\n")
        os.replace(tmp, path)
