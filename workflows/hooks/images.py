"""What runs a container's command on this machine: the local stand-in for its image.

Our images hold this checkout's pinned stack, as the runner's own interpreter (`.venv`)
does, so a `python` command runs that interpreter. A stock TensorFlow image (the
lightweight variant) is stood in for by a virtual environment of the run (made once, from
the interpreter the `.venv` was made from) that sees the `.venv`'s packages through a
`.pth` line: TensorFlow and every pinned package are there, as TensorFlow is in the
image, but this checkout is not (its editable install is a `.pth` hook of the `.venv`'s
own, which a path line does not run). So a lightweight step imports `textcnn` only from
the wheel it installs, and pip finds every pin satisfied: no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Mapping
from pathlib import Path

STOCK_PREFIXES = ("tensorflow/tensorflow:", "docker.io/tensorflow/tensorflow:")
STOCK = "images/tensorflow"  # the stand-in environment, in the run folder
_making = threading.Lock()


def is_stock(image: str) -> bool:
    return image.startswith(STOCK_PREFIXES)


def _stock_python(run_dir: Path) -> Path:
    return run_dir / STOCK / "bin" / "python"


def pull(image: str, run_dir: Path) -> None:
    """Make the stand-in of `image` ready before a container of it starts, as a node pulls
    an image (once per run; `run_dir`: the run folder)."""
    if not is_stock(image):
        return
    env = _stock_python(run_dir).parents[1]
    with _making:
        if env.exists():
            return
        # Made aside and renamed: a run stopped half-way leaves no half-made image.
        tmp = env.with_name(f".{env.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        base = Path(sys._base_executable).resolve()  # type: ignore[attr-defined]
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(tmp)], check=True)
        site = subprocess.run(
            [
                str(tmp / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        (Path(site) / "textcnn-image.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        os.replace(tmp, env)


def command_and_env(
    image: str, command: list[str], env: Mapping[str, str], run_dir: Path
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `command` of `image` here, once `pull`ed
    (`run_dir`: the run folder, which holds the stock image's stand-in)."""
    # The image's `python` first on PATH, for a script's `python` too.
    python = _stock_python(run_dir) if is_stock(image) else Path(sys.executable)
    if command and command[0] in ("python", "python3"):
        command = [str(python), *command[1:]]
    return command, {**env, "PATH": f"{python.parent}:{env.get('PATH', '/usr/bin:/bin')}"}


def run_here(
    image: str, command: list[str], env: Mapping[str, str], run_dir: Path
) -> tuple[list[str], dict[str, str]]:
    """`pull`, then `command_and_env`: for a container the local cluster starts itself (a
    TFJob replica)."""
    pull(image, run_dir)
    return command_and_env(image, command, env, run_dir)
