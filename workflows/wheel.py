"""The project's wheel for the lightweight variant: built from this checkout, keyed by its
content in the artifact repository (`packages/textcnn-<version>-<hash>.whl`), uploaded
once per content.

The hash is of the sources that go into the wheel (the `textcnn` and `workflows` packages
and pyproject.toml), not of the wheel file, whose zip timestamps change on every build.
The wheel is built from a copy of exactly those sources, so no stale file of an in-tree
build/ folder slips into it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from textcnn import storage
from workflows.dag.lightweight import Package

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("containers/textcnn", "workflows", "pyproject.toml")  # what the wheel is made of


def _version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise RuntimeError("pyproject.toml has no version")


def content_hash(root: Path = ROOT) -> str:
    """A digest of the wheel's sources under `root`: their paths and bytes, not times."""
    digest = hashlib.sha256()
    for source in (root / s for s in SOURCES):
        files = [source] if source.is_file() else sorted(source.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def snapshot(folder: Path) -> Path:
    """A copy of this checkout's wheel sources in `folder`: what is hashed is what is built."""
    for source in SOURCES:
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, folder / source, ignore=_CACHES)
        else:
            shutil.copy2(ROOT / source, folder / source)
    return folder


def build(src: Path, folder: Path) -> Path:
    """`pip wheel` of the sources at `src` into `folder` (no dependencies, no network)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(folder),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = folder.glob("textcnn_argo-*.whl")
    return wheel


_CACHES = shutil.ignore_patterns("__pycache__")


def _key(version: str, digest: str) -> str:
    return f"packages/textcnn-{version}-{digest}.whl"


def package() -> Package:
    """Where this checkout's wheel lives in an artifact repository, and its file name."""
    version = _version()
    return Package(
        key=_key(version, content_hash()),
        filename=f"textcnn_argo-{version}-py3-none-any.whl",
    )


class WheelError(Exception):
    """The wheel could not be built or uploaded; the message says why and where."""


def publish(package: Package, artifact_root: str) -> str:
    """Put this checkout's wheel at `package.key` of the artifact repository at
    `artifact_root` (a folder or gs://bucket), unless its content is there already; its URI.
    WheelError if it cannot be built or uploaded, or the sources changed since `package`
    was keyed (OSError for a local folder's own trouble)."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    uri = storage.join(artifact_root, package.key)
    try:
        if storage.exists(uri):
            return uri
        with tempfile.TemporaryDirectory() as tmp:
            src = snapshot(Path(tmp) / "src")
            if package.key != _key(_version(), content_hash(src)):
                raise WheelError(
                    "the checkout changed while the workflow was rendered; run the command again"
                )
            try:
                wheel = build(src, Path(tmp))
            except subprocess.CalledProcessError as e:
                raise WheelError(f"pip wheel failed: {e.stderr.strip() or e}") from None
            assert wheel.name == package.filename, wheel.name
            storage.write_bytes(uri, wheel.read_bytes())
    except (GoogleAPIError, GoogleAuthError) as e:
        raise WheelError(
            f"cannot upload to {uri}: {e}; check the bucket and this machine's Google credentials"
        ) from None
    return uri
