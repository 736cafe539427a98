"""The DAG: the `textcnn-pipeline` WorkflowTemplate and the `textcnn-retrain` CronWorkflow.

This is the single definition of the pipeline: Argo runs the compiled YAML, and the
local runner executes the same compiled dict (`render()`). Nothing is built at import:
`workflows/dag/hera_script.py` is the Hera script, with the module-level objects.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hera.workflows import (
    DAG,
    Container,
    CronWorkflow,
    Parameter,
    Resource,
    Task,
    WorkflowTemplate,
)
from hera.workflows.models import (
    ArtifactRepositoryRef,
    DAGTask,
    Mutex,
    PodGC,
    PodSecurityContext,
    Synchronization,
    TTLStrategy,
    ValueFrom,
    WorkflowMetadata,
    WorkflowTemplateRef,
)

from textcnn.cache import RUN
from textcnn.params import DNS_SUBDOMAIN, PipelineParams
from workflows.dag import caching, lightweight, security
from workflows.dag import templates as t
from workflows.dag.inference_service import RUNTIMES
from workflows.dag.lightweight import IMAGES, Launch, Package
from workflows.dag.parameters import workflow_parameters, wp
from workflows.dag.trainjob import training_runtime

TEMPLATE_NAME = "textcnn-pipeline"
CRON_NAME = "textcnn-retrain"
ENTRYPOINT = "pipeline"
# One run at a time per endpoint (a workflow-level mutex, which Argo holds from the first
# task to the end of the exit handler): a run's gate compares with what serves, and its
# deploy replaces it, with no other run's deploy in between. Argo substitutes the global
# parameters in the name; the mutex lives in the workflow's namespace, the endpoint's.
DEPLOY_MUTEX = "textcnn-endpoint-{{workflow.parameters.isvc_name}}"
# Tasks whose outcome depends on the world outside the run (what serves the endpoint now):
# a resumed local run takes them again, with every task after them.
RERUN_ON_RESUME = ("gate",)
SERVICE_ACCOUNT = "textcnn-workflow"  # manifests/rbac.yaml: Workload Identity and executor rights

# Annotations Argo reads on a template (not on its pod); see hoist_template_annotations.
TEMPLATE_ANNOTATIONS = (t.DISPLAY_NAME,)
UI_ANNOTATIONS = {
    "workflows.argoproj.io/title": "**textcnn**: train a word2vec CNN text classifier",
    "workflows.argoproj.io/description": (
        "Validate options, check the data (leakage, drift), prepare and embed it, build "
        "the Kim (2014) CNN, train it (one pod on CPU or GPU, or a Kubeflow TFJob or "
        "TrainJob) beside the wide n-gram branch, "
        "assemble both into one serving model, evaluate it on the test set "
        "and record lineage in ML Metadata; deploy it with KServe only if it is at least as "
        "good as the model that serves (the gate), checking that it serves (and a canary)."
    ),
}


# --- what renders, besides the parameters ---------------------------------------------


@dataclass(frozen=True)
class Rendering:
    """What changes the compiled templates themselves, besides the parameter defaults:
    fields of the workflow spec that Argo reads as numbers (no parameter can stand there)
    and the choice of an existing claim. Options of `compile`, `run` and `submit`."""

    existing_claim: str = ""
    workflow_deadline_seconds: int = 86_400  # a day: the whole run, retries included
    ttl_after_success_seconds: int = 86_400  # then the Workflow (and what it owns) goes
    ttl_after_failure_seconds: int = 7 * 86_400  # a week to read a failed run's pods
    # The lightweight variant: steps on stock TensorFlow images, installing this wheel.
    package: Package | None = None

    @property
    def suffix(self) -> str:
        """Of the objects' names: the lightweight variant's live beside ours on a cluster,
        so trying it replaces neither the template nor the scheduled retrain."""
        return "" if self.package is None else "-lightweight"

    def parameters(self, params: PipelineParams) -> PipelineParams:
        """The values a run of this rendering gets: in the lightweight variant, the stock
        images (and the TF Serving runtime) where `params` keeps our defaults."""
        return params if self.package is None else lightweight.defaults(params)

    def to_dict(self) -> dict[str, Any]:
        """What a local run keeps in run.json, so that `--resume` compiles it again."""
        return {
            "existing_claim": self.existing_claim,
            "workflow_deadline_seconds": self.workflow_deadline_seconds,
            "ttl_after_success_seconds": self.ttl_after_success_seconds,
            "ttl_after_failure_seconds": self.ttl_after_failure_seconds,
            "lightweight": self.package is not None,
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Rendering:
        """The rendering `to_dict()` gave, checked as the options are (ValueError)."""
        from workflows import wheel

        try:
            return cls(
                claim_name(str(saved["existing_claim"])),
                _seconds(str(saved["workflow_deadline_seconds"])),
                _seconds(str(saved["ttl_after_success_seconds"])),
                _seconds(str(saved["ttl_after_failure_seconds"])),
                wheel.package() if saved["lightweight"] is True else None,
            )
        except (KeyError, TypeError, argparse.ArgumentTypeError) as e:
            raise ValueError(f"rendering: {e}") from None

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> Rendering:
        from workflows import wheel  # only the lightweight variant needs its wheel

        return cls(
            args.pvc_existing_claim,
            args.workflow_deadline_seconds,
            args.ttl_after_success_seconds,
            args.ttl_after_failure_seconds,
            wheel.package() if args.lightweight else None,
        )


DEFAULTS = Rendering()


def _seconds(text: str) -> int:
    if not text.isdigit() or int(text) < 60:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of seconds, at least 60")
    return int(text)


def claim_name(text: str) -> str:
    """An existing PersistentVolumeClaim's name (a DNS-1123 subdomain), or empty."""
    if text and not DNS_SUBDOMAIN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a Kubernetes object name")
    return text


def add_render_arguments(parser: argparse.ArgumentParser) -> None:
    """What changes the compiled templates themselves, besides the parameter defaults."""
    parser.add_argument(
        "--pvc_existing_claim",
        type=claim_name,
        default="",
        help="an existing ReadWriteMany claim for distributed training, instead of the "
        "claim the distributed branch makes per run (runs use <workdir>/<workflow>/ on it)",
    )
    for name, about in (
        ("workflow_deadline_seconds", "seconds a run may take, retries included"),
        ("ttl_after_success_seconds", "seconds a succeeded Workflow is kept"),
        ("ttl_after_failure_seconds", "seconds a failed Workflow is kept"),
    ):
        default = getattr(DEFAULTS, name)
        parser.add_argument(
            f"--{name}", type=_seconds, default=default, help=f"{about} (default: {default})"
        )
    parser.add_argument(
        "--lightweight",
        action="store_true",
        help="every step on a stock TensorFlow image that installs this checkout's wheel and "
        "the step's pinned packages at pod start (nothing to build; see README)",
    )


# --- conditions ----------------------------------------------------------------------


def param_is(name: str, value: bool) -> str:
    """`when` clause on a boolean workflow parameter. Argo substitutes the string `true` or
    `false` and evaluates with govaluate, where both are boolean literals."""
    return f"{wp(name)} == {'true' if value else 'false'}"


def param_equals(name: str, value: str) -> str:
    """`when` clause on a string (enum) workflow parameter; both sides quoted, since a bare
    word is a variable to govaluate."""
    return f"'{wp(name)}' == '{value}'"


def all_of(*clauses: str) -> str:
    return " && ".join(clauses)


def output_equals(task: Task, name: str, value: str) -> str:
    """`when` clause on a task's output parameter (a string: both sides quoted)."""
    return f"'{task.get_parameter(name).value}' == '{value}'"


def join_branches(branches: Sequence[str]) -> str:
    """`depends` of the task after exclusive branches: it runs once one branch succeeded.
    (A bare `a || b` would also fire when a branch was skipped.)"""
    return " || ".join(f"{name}.Succeeded" for name in branches)


def after(*tasks: Task) -> str:
    """`depends` on unconditional tasks: run once all of them have finished well."""
    return " && ".join(task.name for task in tasks)


CPU_TRAIN_WHEN = all_of(param_is("gpu_support", False), param_is("dist_training", False))
GPU_TRAIN_WHEN = all_of(param_is("gpu_support", True), param_is("dist_training", False))
DIST_WHEN = param_is("dist_training", True)
# The distributed jobs, one resource template each: (backend, gpu) -> when it runs.
DIST_JOBS = {
    (backend, gpu): all_of(
        param_is("gpu_support", gpu), DIST_WHEN, param_equals("dist_backend", backend)
    )
    for backend in ("tfjob", "trainjob")
    for gpu in (False, True)
}


# --- the DAG -------------------------------------------------------------------------


def _task(template: Container | Resource, **kwargs: Any) -> Task:
    """A task named after the template it runs."""
    assert template.name is not None
    return Task(name=template.name, template=template, **kwargs)


def cache_when(validate: Task, stage: str) -> str:
    """`when` of a cached stage's tasks: validate-params found no entry for its key. Argo
    shows a skipped task's `when` as substituted (workflow/controller/dag.go,
    executeDAGTask: "when '%s' evaluated false"), so the UI reads `'cached from <run>'`."""
    return output_equals(validate, stage, RUN)


def _spec(template: Container | Resource) -> dict[str, Any]:
    """The template as it compiles (Hera's own types are too loose to read)."""
    return template._build_template().model_dump(by_alias=True, exclude_none=True)


def _written(template: Container | Resource) -> list[str]:
    """The artifacts a template writes, besides a cached stage's entry."""
    outputs = _spec(template).get("outputs", {}).get("artifacts", [])
    return [a["name"] for a in outputs if a["name"] != caching.ENTRY]


def wire_cache(tasks: Sequence[Task], validate: Task) -> None:
    """Give every task the cache keys its template takes, from validate-params' outputs."""
    for task in tasks:
        template = task.template
        assert isinstance(template, Container | Resource)
        inputs = _spec(template).get("inputs", {}).get("parameters", [])
        names = [str(p["name"]) for p in inputs]
        wired = [
            validate.get_parameter(name).with_name(name)
            for name in sorted(names)
            if name.startswith(caching.key_parameter(""))
        ]
        stage = caching.stage_of(_written(template))
        if caching.ENTRY in names and stage is not None:
            wired.append(
                validate.get_parameter(caching.entry_parameter(stage)).with_name(caching.ENTRY)
            )
        given = task.arguments if isinstance(task.arguments, list) else []
        task.arguments = [*given, *wired]


def distributed_branch(
    after_task: Task, existing_claim: str, launch: Launch, cached: str
) -> tuple[list[Task], Task]:
    """[workdir-claim ->] stage-data -> one of tfjob, tfjob-gpu, trainjob, trainjob-gpu ->
    its wait -> collect-model, when dist_training and the `train` stage is not reused
    (`cached`, its `when`).

    The shared volume is claimed by this branch alone (or is `existing_claim`); its claim
    name reaches every template that mounts it as the input `claim`. A resource manifest
    is one string, so each backend's CPU and GPU jobs are templates chosen by `when`:
    nothing of the backend not chosen, and nothing GPU-related without gpu_support, is
    ever sent to the cluster. Each job has its own wait task (one template per backend),
    since a task cannot read the output of a skipped one; collect-model joins them.
    Returns the tasks and collect-model.
    """
    tasks: list[Task] = []
    first = after_task
    claim: Any = Parameter(name=t.CLAIM, value=existing_claim)
    branch_when = all_of(DIST_WHEN, cached)
    if not existing_claim:
        first = _task(t.workdir_claim(), depends=after(after_task), when=branch_when)
        claim = first.get_parameter(t.CLAIM)
        tasks.append(first)
    stage = _task(t.stage_data(launch), depends=after(first), when=branch_when, arguments=[claim])
    waits = {
        "tfjob": t.wait_job(launch, "wait-tfjob", "TFJob"),
        "trainjob": t.wait_job(launch, "wait-trainjob", "TrainJob"),
    }
    builders = {"tfjob": t.tfjob, "trainjob": t.trainjob}
    tasks.append(stage)
    joined = []
    for (backend, gpu), when in DIST_JOBS.items():
        job = _task(
            builders[backend](launch, gpu),
            depends=after(stage),
            when=all_of(when, cached),
            arguments=[claim],
        )
        wait = Task(
            name=f"wait-{job.name}",
            template=waits[backend],
            depends=join_branches([job.name]),
            arguments=[job.get_parameter(t.JOB_NAME)],
        )
        tasks += [job, wait]
        joined.append(wait.name)
    collect = _task(t.collect_model(launch), depends=join_branches(joined), arguments=[claim])
    return [*tasks, collect], collect


def build_dag(
    existing_claim: str = "", launch: Launch = IMAGES
) -> tuple[DAG, list[Container | Resource]]:
    """The `pipeline` DAG and the templates its tasks run; `existing_claim` replaces the
    distributed branch's own volume claim by an existing ReadWriteMany claim, and `launch` says
    how the steps start (on our images, or the lightweight variant's stock ones).

    The tasks of a cached stage (workflows/dag/caching.py) run only when validate-params
    found no entry for the stage's key; the tasks after them read the stage's artifacts
    at its key whether they ran or not."""
    steps = {
        "ds-train": t.dataset_metadata(launch, "train"),
        "ds-test": t.dataset_metadata(launch, "test"),
        "prepare": t.prepare_data(launch),
        "check": t.check_data(launch),
        "embed": t.embeddings(launch),
        "spec": t.model_metadata(launch),
        "train": t.train(launch, gpu=False),
        "train-gpu": t.train(launch, gpu=True),
        "collect": t.collect_model(launch),
        "wide": t.fit_ngrams(launch),
        "export": t.export(launch),
        "evaluate": t.evaluate(launch),
    }
    plan = caching.plan_json([_spec(c) for c in steps.values()])
    validate = _task(t.validate_params(launch, plan))

    def cached(template: Container, depends: str, when: str = "") -> Task:
        stage = caching.stage_of(_written(template))
        assert stage is not None, template.name
        reused = cache_when(validate, stage)
        return _task(template, depends=depends, when=all_of(when, reused) if when else reused)

    prepare = cached(steps["prepare"], after(validate))
    ds_train = cached(steps["ds-train"], after(validate))
    ds_test = cached(steps["ds-test"], after(prepare))
    check = cached(steps["check"], after(prepare, ds_train, ds_test))
    embed = cached(steps["embed"], after(prepare))
    # After the data's checks too: a test file with unknown labels, or one that leaks the
    # training data, stops the run before anything trains.
    spec = cached(steps["spec"], after(embed, check))
    # Exclusive training branches of the CNN; each writes `cnn` at the same key. The wide
    # branch is fitted once beside them, and export assembles the serving model.
    branches = [
        cached(steps["train"], after(spec), CPU_TRAIN_WHEN),
        cached(steps["train-gpu"], after(spec), GPU_TRAIN_WHEN),
    ]
    distributed, collect = distributed_branch(
        spec, existing_claim, launch, cache_when(validate, "train")
    )
    wide = cached(steps["wide"], after(spec))
    # One branch trained, or (the stage reused) each branch's first task was skipped.
    firsts = [*branches, distributed[0]]
    trained = " || ".join(
        [
            *(f"{b.name}.Succeeded" for b in (*branches, collect)),
            "(" + " && ".join(f"{b.name}.Skipped" for b in firsts) + ")",
        ]
    )
    export = cached(steps["export"], f"({trained}) && {wide.name}")
    evaluate = cached(steps["evaluate"], after(export))
    # Passing another task's output does not make Hera add a dependency: list each one.
    lineage = _task(
        t.log_training_metadata(launch),
        depends=after(evaluate, ds_train, ds_test, check, spec, validate),
        arguments=[
            validate.get_parameter(t.PARAMS).with_name("hyperparameters"),
            validate.get_parameter(caching.LINEAGE),
        ],
    )
    gate = _task(
        t.gate(launch),
        depends=after(lineage),
        arguments=[lineage.get_parameter(t.MODEL_ID), lineage.get_parameter(t.MODEL_URI)],
    )
    # One deploy template per serving runtime, if the gate says so; the wait joins
    # whichever ran.
    deploys = [
        _task(
            t.deploy(runtime),
            depends=after(gate),
            when=all_of(
                output_equals(gate, t.DECISION, t.DEPLOY), param_equals("serving_runtime", runtime)
            ),
            arguments=[lineage.get_parameter(t.MODEL_URI)],
        )
        for runtime in RUNTIMES
    ]
    deploy_wait = _task(
        t.deploy_wait(launch),
        depends=f"({join_branches([d.name for d in deploys])}) && {lineage.name}",
        arguments=[lineage.get_parameter(t.MODEL_ID), lineage.get_parameter(t.MODEL_URI)],
    )
    # Serverless canary: probe it, then promote it or roll it back.
    canary = _task(
        t.canary_check(launch),
        depends=after(deploy_wait),
        when=f"{wp('canary_traffic_percent')} < 100",
        arguments=[lineage.get_parameter(t.MODEL_ID), lineage.get_parameter(t.MODEL_URI)],
    )
    tasks = [
        validate,
        ds_train,
        ds_test,
        prepare,
        check,
        embed,
        spec,
        *branches,
        *distributed,
        wide,
        export,
        evaluate,
        lineage,
        gate,
        *deploys,
        deploy_wait,
        canary,
    ]
    wire_cache(tasks, validate)
    dag = DAG(
        name=ENTRYPOINT,
        annotations={t.DISPLAY_NAME: "textcnn pipeline"},
        tasks=list[Task | DAGTask](tasks),  # Hera's list is invariant
        outputs=[
            Parameter(name=key, value_from=ValueFrom(parameter=task.get_parameter(key).value))
            for task, key in (
                (lineage, t.ACCURACY),
                (lineage, t.MACRO_F1),
                (lineage, t.MODEL_URI),
            )
        ]
        + [
            # Shown in the Argo UI: deployed or not, and why.
            Parameter(
                name=f"gate_{key}",
                value_from=ValueFrom(parameter=gate.get_parameter(key).value),
            )
            for key in (t.DECISION, t.REASON)
        ]
        + [
            # The data's figures against the reference, and where the report is.
            Parameter(name=key, value_from=ValueFrom(parameter=gate.get_parameter(key).value))
            for key in (t.DATA_CHECKS, t.REPORT)
        ]
        + [
            # Empty when deploy is off (the wait task is omitted).
            Parameter(
                name=t.ENDPOINT,
                value_from=ValueFrom(
                    parameter=deploy_wait.get_parameter(t.ENDPOINT).value, default=""
                ),
            ),
        ],
    )
    # One template per name (the wait tasks of a backend share theirs).
    templates = {
        t.name: t for t in (task.template for task in tasks) if isinstance(t, Container | Resource)
    }
    return dag, list(templates.values())


class _TemplateAnnotations:
    """Hera 7.1 puts a template's annotations on its pod; `build()`, which `to_dict()`,
    `create()` and `update()` all go through, moves them to the template."""

    def build(self) -> Any:
        model = super().build()  # type: ignore[misc]
        doc = model.model_dump(by_alias=True, exclude_none=True, mode="json")
        return type(model).model_validate(hoist_template_annotations(doc))


class PipelineTemplate(_TemplateAnnotations, WorkflowTemplate):
    """The WorkflowTemplate, with template-level annotations where Argo reads them."""


def build_workflow_template(
    params: PipelineParams | None = None, rendering: Rendering = DEFAULTS
) -> WorkflowTemplate:
    """The `textcnn-pipeline` WorkflowTemplate; `params` gives the parameter defaults."""
    params = rendering.parameters(params or PipelineParams())
    values = params.to_strings()
    launch = Launch(rendering.package)
    dag, containers = build_dag(rendering.existing_claim, launch)
    exit_handler = t.record_status(launch)
    return PipelineTemplate(
        kind="WorkflowTemplate",  # Hera would take the class name
        name=TEMPLATE_NAME + rendering.suffix,
        namespace=params.namespace,
        annotations=dict(UI_ANNOTATIONS),
        # Workflows created from the template (UI, CLI, cron) get the title as well.
        workflow_metadata=WorkflowMetadata(annotations=dict(UI_ANNOTATIONS)),
        entrypoint=ENTRYPOINT,
        on_exit=exit_handler.name,  # records the final status in ML Metadata
        synchronization=Synchronization(mutexes=[Mutex(name=DEPLOY_MUTEX)]),
        service_account_name=SERVICE_ACCOUNT,
        security_context=PodSecurityContext.model_validate(security.POD),
        arguments=[
            Parameter(**{**spec, "value": values[spec["name"]]}) for spec in workflow_parameters()
        ],
        # The cluster's ConfigMap `artifact-repositories` (key `gcs`) names the bucket.
        artifact_repository_ref=ArtifactRepositoryRef(
            config_map="artifact-repositories",
            key="gcs",
        ),
        templates=[dag, *containers, exit_handler],
        active_deadline_seconds=rendering.workflow_deadline_seconds,
        # Succeeded pods go at once; failed ones stay for `kubectl logs` until the TTL
        # removes the run, and with it what it owns (TFJob or TrainJob, claim).
        pod_gc=PodGC(strategy="OnPodSuccess"),
        ttl_strategy=TTLStrategy(
            seconds_after_success=rendering.ttl_after_success_seconds,
            seconds_after_failure=rendering.ttl_after_failure_seconds,
        ),
    )


def build_cron_workflow(
    params: PipelineParams | None = None,
    rendering: Rendering = DEFAULTS,
    schedule: str = "0 3 * * 1",
    timezone: str = "Etc/UTC",
) -> CronWorkflow:
    """`textcnn-retrain`: runs the template on a schedule with `params` as its arguments."""
    params = rendering.parameters(params or PipelineParams())
    return CronWorkflow(
        name=CRON_NAME + rendering.suffix,
        namespace=params.namespace,
        schedules=[schedule],
        timezone=timezone,
        concurrency_policy="Forbid",  # skips a run due while the last one still runs
        starting_deadline_seconds=3600,
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=3,
        workflow_template_ref=WorkflowTemplateRef(name=TEMPLATE_NAME + rendering.suffix),
        arguments=[Parameter(name=k, value=v) for k, v in params.to_strings().items()],
    )


# --- compile -------------------------------------------------------------------------


def hoist_template_annotations(
    doc: dict[str, Any],
    keys: Iterable[str] = TEMPLATE_ANNOTATIONS,
) -> dict[str, Any]:
    """Move template-level annotations (e.g. the UI display name) from each template's pod
    `metadata.annotations`, where Hera 7.1 puts them, to the template's `annotations`."""
    spec = doc.get("spec", {})
    for template in spec.get("templates", []) + spec.get("workflowSpec", {}).get("templates", []):
        pod_annotations = template.get("metadata", {}).get("annotations", {})
        moved = {k: pod_annotations.pop(k) for k in keys if k in pod_annotations}
        if moved:
            template["annotations"] = {**template.get("annotations", {}), **moved}
        if "metadata" in template and not pod_annotations:
            template["metadata"].pop("annotations", None)
            if not template["metadata"]:
                del template["metadata"]
    return doc


def build(
    params: PipelineParams | None = None, rendering: Rendering = DEFAULTS
) -> tuple[WorkflowTemplate, CronWorkflow]:
    """The WorkflowTemplate and the CronWorkflow, as Hera objects: the one factory."""
    return build_workflow_template(params, rendering), build_cron_workflow(params, rendering)


def render(
    params: PipelineParams | None = None, rendering: Rendering = DEFAULTS
) -> list[dict[str, Any]]:
    """The WorkflowTemplate and the CronWorkflow as plain dicts, ready to dump or run."""
    return [wf.to_dict() for wf in build(params, rendering)]


def to_yaml(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, width=1_000_000)


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


RUNTIME_FILE = Path("manifests/trainer/training-runtime.yaml")


def write_runtime(path: Path = RUNTIME_FILE, params: PipelineParams | None = None) -> Path:
    """Write the ClusterTrainingRuntime that the TrainJob branch runs on."""
    params = params or PipelineParams()
    doc = training_runtime(params.training_runtime, params.image)
    header = (
        "# The Kubeflow Trainer v2 runtime of `--dist_backend trainjob`, cluster-scoped:\n"
        "# `kubectl apply -f manifests/trainer/training-runtime.yaml` (see README). Generated by\n"
        "# `python -m workflows compile` from workflows/dag/trainjob.py; kept in sync by a test.\n"
    )
    _write(path, header + to_yaml(doc))
    return path


def write_manifests(
    output_dir: Path = Path("manifests/workflows"),
    params: PipelineParams | None = None,
    rendering: Rendering = DEFAULTS,
) -> list[Path]:
    """Write NAME.yaml of the template and the cron (textcnn-pipeline.yaml and
    textcnn-retrain.yaml); return their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc in render(params, rendering):
        path = output_dir / f"{doc['metadata']['name']}.yaml"
        _write(path, to_yaml(doc))
        paths.append(path)
    return paths
