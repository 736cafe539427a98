"""`python -m textcnn.bootstrap STEP`: in a pod of a stock TensorFlow image (the
lightweight variant), install the pinned packages STEP needs before it runs.

The list is `step_requirements.json` (derived from the step's imports by
workflows/packaging.py and shipped in this package); every pin of requirements.txt
constrains what pip picks for their dependencies. In a pod, packages go to the user site
(`PYTHONUSERBASE`, on the pod's scratch volume); in a virtual environment (the local
runner's stand-in for the image) into it. What is there at the pinned version already is
not downloaded. The index is `PIP_INDEX_URL` (the --pip_index_url option). A
failed install exits 1, which the step's retryStrategy retries, with the step's name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import textcnn

TABLE = Path(__file__).with_name("step_requirements.json")


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
    # Where the step will import textcnn from, which should be the wheel, not a checkout.
    print(
        f"bootstrap: {step}: {len(requirements)} pinned packages ready in "
        f"{time.perf_counter() - start:.1f} s; textcnn from {Path(textcnn.__file__).parent}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
