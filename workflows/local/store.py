"""The artifact repository of a local run: a folder, or a gs:// prefix (GCS or its emulator)."""

from __future__ import annotations

import abc
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class ArtifactStore(abc.ABC):
    """Key-only artifacts under a root: `<root>/<key>`, each a file or a folder of files.

    Inputs are loaded as Argo's GCS driver loads them (`workflow/artifacts/gcs/gcs.go`):
    the object named `key` alone if it exists, else every object whose name starts with
    `key`, with no `/` added, each saved at `dest` + the rest of its name. So key `x/model`
    also brings `x/model-2/...`, as on a cluster; keys must not be prefixes of one another.
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    @abc.abstractmethod
    def names(self, prefix: str) -> list[str]:
        """The keys of every object (file) whose key starts with `prefix`."""

    @abc.abstractmethod
    def fetch(self, key: str, dest: Path) -> None:
        """Copy the object (one file) at `key` to `dest`."""

    @abc.abstractmethod
    def upload(self, src: Path, key: str) -> None:
        """Store a file or folder at `key`, replacing what was there."""

    def download(self, key: str, dest: Path) -> None:
        """Load an input artifact at `key` into `dest`; FileNotFoundError when the key
        holds nothing."""
        names = self.names(key)
        if not names:
            raise FileNotFoundError(self.uri(key))
        if key in names:
            names = [key]
        for name in names:
            target = dest / name[len(key) :].lstrip("/") if name != key else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fetch(name, target)


class LocalStore(ArtifactStore):
    """A folder; uploads are atomic (a temporary sibling, then a rename)."""

    def names(self, prefix: str) -> list[str]:
        base = Path(self.root)
        folder = (base / prefix).parent
        if not folder.is_dir():
            return []
        keys = (p.relative_to(base) for p in folder.rglob("*") if p.is_file())
        # Not the temporary folders of an upload in progress.
        return sorted(
            k.as_posix()
            for k in keys
            if k.as_posix().startswith(prefix)
            and not any(part.startswith(".") and part.endswith(".tmp") for part in k.parts)
        )

    def fetch(self, key: str, dest: Path) -> None:
        shutil.copy2(self.uri(key), dest)

    def upload(self, src: Path, key: str) -> None:
        target = Path(self.uri(key))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            staged = tmp / target.name
            if src.is_dir():
                shutil.copytree(src, staged)
            else:
                shutil.copy2(src, staged)
            if target.exists():
                # rename() cannot replace a non-empty folder: move the old one aside first.
                os.replace(target, tmp / ".old")
            os.replace(staged, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class GcsStore(ArtifactStore):
    """`gs://BUCKET/PREFIX` through the GCS client, as Argo's GCS driver; with
    `STORAGE_EMULATOR_HOST` set, that emulator with anonymous credentials."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.bucket, _, prefix = root.removeprefix("gs://").partition("/")
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    @functools.cached_property
    def _bucket(self) -> Any:
        from google.cloud import storage

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(project="local", credentials=AnonymousCredentials())
        else:
            client = storage.Client()
        return client.bucket(self.bucket)

    def names(self, prefix: str) -> list[str]:
        blobs = self._bucket.client.list_blobs(self.bucket, prefix=self.prefix + prefix)
        return [b.name.removeprefix(self.prefix) for b in blobs if not b.name.endswith("/")]

    def fetch(self, key: str, dest: Path) -> None:
        self._bucket.blob(self.prefix + key).download_to_filename(str(dest))

    def upload(self, src: Path, key: str) -> None:
        files = (
            [(src, key)]
            if src.is_file()
            else [
                (f, f"{key}/{f.relative_to(src).as_posix()}")
                for f in sorted(src.rglob("*"))
                if f.is_file()
            ]
        )
        for path, name in files:
            self._bucket.blob(self.prefix + name).upload_from_filename(str(path))


def open_store(root: str) -> ArtifactStore:
    return GcsStore(root) if root.startswith("gs://") else LocalStore(str(Path(root).resolve()))
