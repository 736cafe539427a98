"""The PersistentVolumeClaim controller: what Kubernetes' PV controller and a dynamic
provisioner do for a claim, with a folder of the run as its volume.

A new claim is provisioned and bound as `pkg/controller/volume/persistentvolume/
pv_controller.go` does it: `syncUnboundClaim` finds no volume, so the claim's storage class
provisions one, named `pvc-<claim uid>` (`getProvisionedVolumeNameForClaim`); `bind`
(`bindClaimToVolume`) points the claim at it (`spec.volumeName`) with the annotations
`pv.kubernetes.io/bind-completed` and `pv.kubernetes.io/bound-by-controller`, and
`updateClaimStatus` sets `phase: Bound` with the volume's access modes and capacity,
which for a provisioned volume are what the claim asked for. The volume here is the
folder `workflows.local.substitution.claim_dir` names (`<run>/volumes/<claim>`), where the
runner's tasks mount the same claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from workflows.kube.controllers.kinds import PVC
from workflows.kube.objects import NotFound, Objects
from workflows.local.substitution import claim_dir

BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"


class Claims:
    """Binds every claim in `objects` to a folder of `run_dir`."""

    def __init__(self, objects: Objects, run_dir: Path) -> None:
        self.objects, self.run_dir = objects, run_dir

    def path(self, claim: str) -> Path:
        """The folder that is claim `claim`'s volume."""
        return claim_dir(self.run_dir, claim)

    def reconcile(self) -> None:
        for claim in self.objects.list_of(PVC):
            if (claim.get("status") or {}).get("phase") != "Bound":
                self._bind(claim)

    def _bind(self, claim: dict[str, Any]) -> None:
        meta, spec = claim["metadata"], claim.get("spec") or {}
        self.path(meta["name"]).mkdir(parents=True, exist_ok=True)
        bound = self.objects.patch(
            PVC,
            meta["namespace"],
            meta["name"],
            {
                "metadata": {"annotations": {BIND_COMPLETED: "yes", BOUND_BY_CONTROLLER: "yes"}},
                "spec": {"volumeName": f"pvc-{meta['uid']}"},
            },
        )
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        self.objects.write_status(
            PVC,
            meta["namespace"],
            meta["name"],
            {
                **(bound.get("status") or {}),
                "phase": "Bound",
                "accessModes": spec.get("accessModes") or [],
                **({"capacity": {"storage": storage}} if storage else {}),
            },
        )

    def close(self) -> None:
        """Nothing runs: the folders stay, as a claim's volume outlives its pods."""


def all_bound(objects: Objects, namespace: str, pods: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every claim the pod specs mount is Bound: a pod with an unbound (or
    missing) claim stays Pending, so a controller starts none of them before."""
    for pod in pods:
        for volume in pod.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is None:
                continue
            try:
                found = objects.get(PVC, namespace, claim)
            except NotFound:
                return False
            if (found.get("status") or {}).get("phase") != "Bound":
                return False
    return True
