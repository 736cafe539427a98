"""Local stand-ins for the cluster objects that resource templates create, for
`python -m workflows run`: each does the real work on this machine and returns the
template's output parameters.

- claims.py: a PersistentVolumeClaim is a folder of the run;
- tfjob.py: a TFJob's Chief and Workers run as local processes with a real TF_CONFIG;
- kserve.py: an InferenceService is served by the project's KServe server on loopback.
"""

from __future__ import annotations

from workflows.local.plan import StandIn
from workflows.local.stand_ins.claims import create_claim
from workflows.local.stand_ins.kserve import LocalKServe
from workflows.local.stand_ins.tfjob import run_tfjob, wait_tfjob

# Template name -> stand-in, for `run_workflow(stand_ins=...)`.
STAND_INS: dict[str, StandIn] = {
    "workdir-claim": create_claim,
    "tfjob": run_tfjob,
    "tfjob-gpu": run_tfjob,
    "wait-tfjob": wait_tfjob,
}

__all__ = ["STAND_INS", "LocalKServe"]
