"""The PersistentVolumeClaim stand-in: a claim is a folder of the run, `<run>/volumes/<claim>`,
which every task and TFJob replica that mounts the claim sees."""

from __future__ import annotations

import yaml

from workflows.checks.kubernetes import kubernetes_problems
from workflows.errors import WorkflowError
from workflows.local.plan import StandInContext
from workflows.local.stand_ins.objects import created


def create_claim(ctx: StandInContext) -> dict[str, str]:
    """Create the PersistentVolumeClaim of `ctx.manifest`: checked as the API server would,
    then its folder in the run (`<run>/volumes/<claim>`); returns its name as `claim`."""
    if not ctx.manifest:
        raise WorkflowError(f"task {ctx.task!r}: the resource template has no manifest")
    doc = yaml.safe_load(ctx.manifest)
    name, _ = created(doc)
    problems = kubernetes_problems(doc)
    if problems:
        raise WorkflowError(f"PersistentVolumeClaim {name} rejected: " + "; ".join(problems))
    ctx.claim_path(name).mkdir(parents=True)
    with ctx.log_path.open("a") as log:
        log.write(f"persistentvolumeclaim/{name} created: {ctx.claim_path(name)}\n")
    return {"claim": name}
