"""`python -m textcnn.bootstrap STEP`: in a pod of a stock TensorFlow image (the
lightweight variant), install the pinned packages STEP needs before it runs.

The list is `step_requirements.json` (derived from the step's imports by
workflows/packaging.py and shipped in this package); every pin of requirements.txt
constrains what pip picks for their dependencies. In a pod, packages go to the user site
(`PYTHONUSERBASE`, on the pod's scratch volume); in a virtual environment (the local
runner's stand-in for the image) into it. What is there at the pinned version already is
not downloaded. The index is `PIP_INDEX_URL` (the --pip_index_url option). A
failed install exits 1, which the step's retryStrategy retries, with the step's name.

GPU pods (`TEXTCNN_CUDA=true`, set by the GPU templates) install TensorFlow with its
`and-cuda` extra, which pins every CUDA and cuDNN wheel it was built against. TensorFlow
finds those libraries only beside itself: its shared objects look for them through RUNPATH
entries relative to their own folder (`$ORIGIN/../nvidia/<library>/lib`; XLA's
`cuda_rpath_flags`), so a TensorFlow in the user site does not see the CUDA wheels of
another site folder; and `tensorflow/tensorflow:2.19.0-gpu` takes CUDA from apt with cuDNN
8 (tensorflow/build, tensorflow_runtime_dockerfiles/gpu.Dockerfile), where 2.19 is built
for cuDNN 9. Wheels the image already has at the pinned versions are
not downloaded again; `link_cuda_libraries` links them into the user site.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import textcnn

TABLE = Path(__file__).with_name("step_requirements.json")
CUDA_ENV = "TEXTCNN_CUDA"  # "true" in the pods of GPU templates
_TENSORFLOW_PIN = re.compile(r"^tensorflow==")


def with_cuda(requirements: list[str]) -> list[str]:
    """The pins with TensorFlow's `and-cuda` extra: its CUDA and cuDNN wheels, pinned."""
    return [_TENSORFLOW_PIN.sub("tensorflow[and-cuda]==", r) for r in requirements]


def site_folders() -> list[Path]:
    """Where this Python imports packages from: the user site first (made by the install
    just now, so maybe not yet on sys.path), then sys.path's folders."""
    found = [Path(site.getusersitepackages())] if site.ENABLE_USER_SITE else []
    return [*found, *(Path(p) for p in sys.path if p and Path(p).is_dir())]


def link_cuda_libraries(sites: Iterable[Path], writable: Path) -> list[Path]:
    """Make the CUDA wheels (`nvidia/<package>`) of every site folder visible beside the
    TensorFlow that will be imported (the first in `sites` order), if that one is in
    `writable` (the user site the install wrote): link each one its folder lacks. Returns
    the links made. An image's own TensorFlow has the image's CUDA beside it, or none
    (then training's GPU check says so)."""
    sites = list(sites)
    spec = importlib.machinery.PathFinder.find_spec("tensorflow", [str(p) for p in sites])
    if spec is None or spec.origin is None:
        return []
    home = Path(spec.origin).parent.parent  # <site>/tensorflow/__init__.py
    if home.resolve() != writable.resolve():
        return []
    made = []
    for folder in sites:
        if folder.resolve() == home.resolve():
            continue
        for package in sorted(p for p in (folder / "nvidia").glob("*") if p.is_dir()):
            link = home / "nvidia" / package.name
            if not (link.is_symlink() or link.exists()):
                link.parent.mkdir(exist_ok=True)
                link.symlink_to(package, target_is_directory=True)
                made.append(link)
    return made


def pip_install(requirements: list[str], constraints: str, *where: str) -> list[str]:
    """The pip command that installs `requirements` under `constraints` (a file): `where`
    (e.g. --target DIR), or else a virtual environment itself, or else the user site."""
    if not where:
        where = () if sys.prefix != sys.base_prefix else ("--user",)  # a venv takes no --user
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        *where,
        "--quiet",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "-c",
        constraints,
        *requirements,
    ]


def main(argv: list[str]) -> int:
    table = json.loads(TABLE.read_text())
    if len(argv) != 1 or argv[0] not in table["steps"]:
        print(f"usage: python -m textcnn.bootstrap {{{','.join(table['steps'])}}}", file=sys.stderr)
        return 2
    step = argv[0]
    requirements = table["steps"][step]
    cuda = os.environ.get(CUDA_ENV) == "true"
    if cuda:
        requirements = with_cuda(requirements)
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as constraints:
        constraints.write("\n".join(table["constraints"]) + "\n")
        constraints.flush()
        command = pip_install(requirements, constraints.name)
        code = subprocess.run(command).returncode
    if code != 0:
        print(
            f"error: {step}: installing its {len(requirements)} pinned packages failed (pip "
            f"exit code {code}, its lines above); check --pip_index_url",
            file=sys.stderr,
        )
        return 1
    if cuda:
        try:
            links = link_cuda_libraries(site_folders(), Path(site.getusersitepackages()))
        except OSError as e:
            print(f"error: {step}: linking the CUDA libraries failed: {e}", file=sys.stderr)
            return 1
        for link in links:
            print(f"bootstrap: {step}: CUDA libraries at {link} -> {link.resolve()}", flush=True)
    # Where the step will import textcnn from, which should be the wheel, not a checkout.
    print(
        f"bootstrap: {step}: {len(requirements)} pinned packages ready in "
        f"{time.perf_counter() - start:.1f} s; textcnn from {Path(textcnn.__file__).parent}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
