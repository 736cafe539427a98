"""A cached stage's entry (textcnn.cache): the files its step wrote, with their sizes, and
the workflow that wrote them. The step CLI writes it once the step has succeeded; this
module needs nothing beyond the standard library, so every step can load it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    run: str  # the workflow that computed the stage
    files: dict[str, int]  # path below the entry's folder -> size

    def to_json(self) -> str:
        return json.dumps({"run": self.run, "files": self.files}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Entry | None:
        """The entry `to_json` wrote, or None for anything else."""
        try:
            data = json.loads(text)
            return cls(str(data["run"]), {str(k): int(v) for k, v in data["files"].items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def write_entry(path: Path, run: str) -> None:
    """The entry of a stage whose step has just succeeded: every file beside `path` (the
    step's output artifacts' folder), with its size. Argo uploads it after those artifacts."""
    folder = path.parent
    files = {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p != path
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(Entry(run, files).to_json())
    tmp.replace(path)
