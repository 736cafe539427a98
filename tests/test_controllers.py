"""The local cluster's controllers over the object store (workflows.kube.controllers): the
manager's loop and claims bound to folders, driven through the store as the API server
would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflows.kube.controllers import Claims, Manager, wait_for
from workflows.kube.controllers.kinds import PVC
from workflows.kube.objects import Objects

pytestmark = pytest.mark.usefixtures("no_orphans")

NS = "default"


def _claim(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }


# --- the manager --------------------------------------------------------------------------


class Broken:
    """A controller that raises the same error while `failing`."""

    def __init__(self) -> None:
        self.failing, self.calls, self.closed = True, 0, False

    def reconcile(self) -> None:
        self.calls += 1
        if self.failing:
            raise RuntimeError("broken")

    def close(self) -> None:
        self.closed = True


def test_a_failing_reconcile_is_logged_once_and_the_loop_goes_on(tmp_path: Path) -> None:
    objects, logged = Objects(), []
    broken = Broken()

    def bind(name: str) -> None:  # each pass reconciles `broken` first, then the claims
        objects.create(PVC, NS, _claim(name))
        phase = lambda o: o.get(PVC, NS, name).get("status", {}).get("phase")  # noqa: E731
        wait_for(objects, lambda o: phase(o) == "Bound", 10, f"claim {name} bound")

    with Manager(objects, [broken, Claims(objects, tmp_path)], logged.append):
        bind("a")
        bind("b")
        assert len(logged) == 1  # the same error, again and again: logged once
        broken.failing = False
        bind("c")
        broken.failing = True
        bind("d")  # failing again after a success: logged again
    assert broken.closed
    assert [m.splitlines()[0] for m in logged] == ["Broken.reconcile failed:"] * 2
    assert logged[0].rstrip().endswith("RuntimeError: broken")


def test_wait_for_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="not so after 0.2 s: the claim"):
        wait_for(Objects(), lambda o: o.list_of(PVC), 0.2, "the claim")


# --- claims -------------------------------------------------------------------------------


def test_a_claim_is_bound_to_a_folder_of_the_run(tmp_path: Path) -> None:
    """pv_controller.go: a provisioned volume `pvc-<uid>`, the bind annotations, Bound with
    the claim's access modes and capacity; the folder is the runner's claim_dir."""
    objects = Objects()
    claims = Claims(objects, tmp_path)
    uid = objects.create(PVC, NS, _claim("work"))["metadata"]["uid"]
    claims.reconcile()
    claim = objects.get(PVC, NS, "work")
    assert claim["status"] == {
        "phase": "Bound",
        "accessModes": ["ReadWriteMany"],
        "capacity": {"storage": "1Gi"},
    }
    assert claim["spec"]["volumeName"] == f"pvc-{uid}"
    assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert (tmp_path / "volumes" / "work").is_dir() and claims.path("work").is_dir()
    version = objects.version
    claims.reconcile()  # a bound claim is left alone: no event, so no busy loop
    assert objects.version == version
