"""The pipeline as a Hera script, as Hera's examples are.

`PIPELINE` and `RETRAIN` are the module-level objects Hera's CLI looks for
(`hera generate yaml workflows/dag/hera_script.py`), built at import by the factory that
`render()` uses (workflows.dag.pipeline, which builds nothing at import).
`python workflows/dag/hera_script.py` prints them as YAML; with `ARGO_SERVER` (and
`ARGO_TOKEN`, `ARGO_NAMESPACE`: the argo CLI's variables) set, it creates or updates both
on that Argo Server through Hera's `WorkflowsService`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from workflows.dag.pipeline import build, to_yaml

PIPELINE, RETRAIN = build()


def main(environ: Mapping[str, str] = os.environ) -> int:
    """Print both objects as YAML; with ARGO_SERVER set, create or update them there."""
    from hera.workflows.service import WorkflowsService

    if not environ.get("ARGO_SERVER"):
        print("---\n".join(to_yaml(wf.to_dict()) for wf in (PIPELINE, RETRAIN)), end="")
        return 0
    service = WorkflowsService(
        host=environ["ARGO_SERVER"],
        token=environ.get("ARGO_TOKEN"),
        namespace=environ.get("ARGO_NAMESPACE") or PIPELINE.namespace,
    )
    for wf in (PIPELINE, RETRAIN):
        wf.workflows_service = service  # the objects were built before the config was known
        wf.update()  # creates it when it does not exist yet
        print(f"{wf.kind} {service.namespace}/{wf.name} created or updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
