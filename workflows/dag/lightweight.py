"""The lightweight variant: every step on a stock TensorFlow image, which installs the
project's wheel and the step's pinned packages when the pod starts.

The DAG is the same; only how a step's process starts differs (`Launch`). With a
`Package` (the wheel's key in the artifact repository) each step pod gets the wheel as an
input artifact, installs it with `--no-deps` beside the image's packages, runs
`python -m textcnn.bootstrap STEP` (the step's pins, textcnn/step_requirements.json) and
then `python -m textcnn STEP ...` as the images of ours do. The TFJob's replicas are not
Argo pods: stage-data copies the wheel onto the shared volume, where they install it.

No option value reaches the script's text: the step and its arguments are the script's
positional parameters, the wheel's path an environment variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from textcnn import bootstrap
from textcnn.params import PipelineParams
from workflows.dag import security

# TensorFlow's own images of our pin's minor release. 2.19.0 and 2.19.0-gpu are published;
# TensorFlow publishes no images for most patch releases (none for 2.12.1, 2.14.1, 2.15.1,
# 2.17.1 or 2.18.1), and Docker Hub is out of reach here to check 2.19.1. The pin
# (tensorflow==2.19.1) is still met: the bootstrap of a step that may load TF installs it
# into the user site, ahead of the image's 2.19.0, on GPU pods with its `and-cuda` extra
# (textcnn.bootstrap says why). With --image/--gpu_image of a 2.19.1 image it installs
# nothing.
IMAGE = "tensorflow/tensorflow:2.19.0"
GPU_IMAGE = "tensorflow/tensorflow:2.19.0-gpu"
PACKAGE_DIR = f"{security.SCRATCH}/packages"  # where a pod's input artifact puts the wheel
INSTALL_DIR = f"{security.SCRATCH}/textcnn"  # the wheel and the user site, on scratch
WHEEL_ENV, TARGET_ENV = "TEXTCNN_WHEEL", "TEXTCNN_TARGET"

# Paths come from the environment (the pod's, remapped by the local runner), never from
# the text; "$1" is the step.
SCRIPT = f"""set -eu
python -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-deps \\
  --target "${TARGET_ENV}" "${WHEEL_ENV}" \\
  || {{ echo "error: $1: cannot install the textcnn wheel ${WHEEL_ENV}" >&2; exit 1; }}
export PYTHONPATH="${TARGET_ENV}${{PYTHONPATH:+:$PYTHONPATH}}"
python -m textcnn.bootstrap "$1"
exec python -m textcnn "$@"
"""


@dataclass(frozen=True)
class Package:
    """The project's wheel in the artifact repository."""

    key: str  # packages/textcnn-<version>-<content hash>.whl
    filename: str  # the wheel's own name, which pip needs: textcnn_argo-<version>-....whl

    @property
    def path(self) -> str:
        return f"{PACKAGE_DIR}/{self.filename}"


@dataclass(frozen=True)
class Launch:
    """How a step's process starts: on our images, or on a stock one with `package`."""

    package: Package | None = None

    def command(self, step: str, args: list[str]) -> tuple[list[str], list[str]]:
        if self.package is None:
            return ["python", "-m", "textcnn", step], args
        return ["sh", "-c", SCRIPT, "textcnn"], [step, *args]

    def env(
        self, pip_index_url: str, wheel_dir: str = PACKAGE_DIR, cuda: bool = False
    ) -> dict[str, str]:
        """The environment the script needs, with the wheel in `wheel_dir`; with `cuda`
        (a GPU pod) TensorFlow comes with its CUDA libraries. None on our images."""
        if self.package is None:
            return {}
        return {
            **({bootstrap.CUDA_ENV: "true"} if cuda else {}),
            WHEEL_ENV: f"{wheel_dir}/{self.package.filename}",
            TARGET_ENV: f"{INSTALL_DIR}/wheel",
            "PIP_INDEX_URL": pip_index_url,
            "PYTHONUSERBASE": f"{INSTALL_DIR}/user",
            "HOME": security.SCRATCH,  # pip's own files; the root filesystem is read-only
        }


def step_arguments(container: Mapping[str, Any]) -> list[str]:
    """A step container's own arguments (those after the step's name), however it starts."""
    args = [str(a) for a in container.get("args", [])]
    return args[1:] if list(container.get("command", []))[:2] == ["sh", "-c"] else args


IMAGES = Launch()
_DEFAULTS = PipelineParams()


def defaults(params: PipelineParams) -> PipelineParams:
    """The lightweight variant's parameter defaults: the stock images where `params` keeps
    ours, and the TF Serving runtime, which needs no image of ours either."""
    stock = {"image": IMAGE, "gpu_image": GPU_IMAGE, "serving_runtime": "tensorflow"}
    return params.model_copy(
        update={k: v for k, v in stock.items() if getattr(params, k) == getattr(_DEFAULTS, k)}
    )
