"""A cached stage's entry (textcnn.cache): the files its step wrote, with their sizes and
MD5s (base64, as GCS stores an object's), and the workflow that wrote them. The step CLI
writes it once the step has succeeded; this module needs nothing beyond the standard
library, so every step can load it."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

# A workflow's name (DNS-1123): an entry's `run` is shown in the DAG's `when` text.
RUN_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class Entry:
    run: str  # the workflow that computed the stage
    files: dict[str, tuple[int, str]]  # path below the entry's folder -> (size, MD5)

    def to_json(self) -> str:
        files = {k: [size, md5] for k, (size, md5) in self.files.items()}
        return json.dumps({"run": self.run, "files": files}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Entry | None:
        """The entry `to_json` wrote, or None for anything else."""
        try:
            data = json.loads(text)
            files = {str(k): (int(v[0]), str(v[1])) for k, v in data["files"].items()}
            entry = cls(str(data["run"]), files)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            return None
        return entry if RUN_NAME.match(entry.run) else None


def md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def write_entry(path: Path, run: str) -> None:
    """The entry of a stage whose step has just succeeded: every file beside `path` (the
    step's output artifacts' folder), with its size and MD5. Argo uploads it after those
    artifacts, though also when one of them failed to upload: read_entry checks them."""
    folder = path.parent
    files = {
        p.relative_to(folder).as_posix(): (p.stat().st_size, md5(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p != path
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(Entry(run, files).to_json())
    tmp.replace(path)
