"""Argo templates of the pipeline steps: one Hera `Container` per step of `textcnn.cli`.

Every step runs `python -m textcnn STEP --name=value ...`. Values come from workflow
parameters, input parameters and artifact paths. Artifacts are key-only GCS artifacts,
resolved against the workflow's artifact repository and left unarchived, so every
producer of an artifact (CPU or GPU training, the TFJob branch) writes the same key and
its consumers read it without knowing which branch ran. The key of a cached stage's
artifact (workflows/dag/caching.py) is the template's input parameter `key-<artifact>`,
which validate-params gives (`cache/<key>/<artifact>`, or `<workflow>/<artifact>` with
cache off); other artifacts are at `{{workflow.name}}/<artifact>`. A cached stage's
template writes the stage's entry last, once the step has succeeded.

The TFJob branch shares one ReadWriteMany volume, mounted at the `workdir` parameter, in
a folder per run: stage-data writes the trainers' inputs there, the TFJob's replicas read
them and the chief writes the CNN next to them, and collect-model publishes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hera.workflows import (
    Container,
    Counter,
    Env,
    Gauge,
    GCSArtifact,
    Label,
    NoneArchiveStrategy,
    Parameter,
    Resource,
    ResourceEnv,
)
from hera.workflows.models import (
    ArtifactGC,
    Backoff,
    IntOrString,
    Quantity,
    ResourceRequirements,
    RetryStrategy,
    SecurityContext,
    Toleration,
    ValueFrom,
    Volume,
    VolumeMount,
)

from textcnn.cli import step_parameters
from textcnn.cpus import REQUEST_ENV as CPU_REQUEST_ENV
from textcnn.errors import NOT_RETRIED
from textcnn.params import PipelineParams
from workflows.dag import caching, security
from workflows.dag.gpu import GpuScheduling
from workflows.dag.inference_service import (
    build_inference_service,
    inference_service_yaml,
)
from workflows.dag.lightweight import Launch
from workflows.dag.manifest import manifest_yaml as resource_manifest
from workflows.dag.parameters import RUN_NAME, inputs_parameter, wp
from workflows.dag.tfjob import WORKDIR_VOLUME, build_tfjob
from workflows.dag.tfjob import manifest_yaml as tfjob_yaml
from workflows.dag.trainjob import build_trainjob
from workflows.dag.trainjob import manifest_yaml as trainjob_yaml
from workflows.dag.workload import WORKFLOW_LABEL, Workload

DISPLAY_NAME = "workflows.argoproj.io/display-name"
ARTIFACT_IN = "/tmp/artifacts/in"
ARTIFACT_OUT = "/tmp/artifacts/out"
OUTPUTS_DIR = "/tmp/outputs/params"

# Output parameters the DAG passes on (keys of the steps' returned dicts).
PARAMS = "params"
DATASET_ID = "dataset_id"
MODEL_SPEC_ID = "model_spec_id"
ACCURACY = "accuracy"
MACRO_F1 = "macro_f1"
MODEL_URI = "model_uri"
MODEL_ID = "model_id"
ENDPOINT = "endpoint"
DECISION, REASON = "decision", "reason"  # the gate's outputs
DATA_CHECKS, REPORT = "data_checks", "report"  # the gate's: the data's figures, the report
# The gate's figures of the data, each an output and a Prometheus gauge textcnn_data_<name>.
DRIFT_GAUGES = {
    "label_drift": "Total variation distance of the class shares from the reference data.",
    "length_drift": "Kolmogorov-Smirnov distance of the text lengths from the reference data.",
    "oov_rate": "Share of words outside the reference vocabulary.",
    "test_overlap": "Share of test rows whose text is also in the training data.",
}
DEPLOY = "deploy"  # the gate's decision to deploy (textcnn.steps.gate.DEPLOY)
VERDICT = "verdict"  # the canary check's: promoted (a rollback fails the step)
SERVING_ACCOUNT = "textcnn-serving"  # manifests/rbac.yaml: reads the model bucket
JOB_NAME = "name"  # a created TFJob's or TrainJob's name, read back by its resource template
TRAINJOB_PREFIX = "textcnn-trainjob-"
CLAIM = "claim"  # the shared volume's claim name, an input of the distributed branch's templates

# Step parameters named otherwise than the option they take: the original CLI's spellings.
RENAMES = {
    "train_path": "train_data_path",
    "test_path": "test_data_path",
    "text_column": "column_text_value",
    "label_column": "column_target_value",
    "embedding_dim": "embbeding_dim",
    "poll_s": "cluster_poll_seconds",
}
# Step parameters every step that has them takes the same way. $(ARTIFACT_ROOT) is
# expanded by Kubernetes from the container's env.
RUN_VALUES = {"run_name": RUN_NAME, "artifact_root": "$(ARTIFACT_ROOT)"}


# Steps retry bad luck (any failure or error), never a user error (exit code NOT_RETRIED),
# with backoff 10 s, 20 s, 40 s, ... up to 10 minutes.
STEP_RETRIES = RetryStrategy(
    limit=IntOrString(wp("retry_limit")),
    retry_policy="Always",
    expression=f"asInt(lastRetry.exitCode) != {NOT_RETRIED}",
    backoff=Backoff(duration="10s", factor=IntOrString("2"), max_duration="10m"),
)
# A resource template's kubectl call retries API errors (Argo: Errors), not verdicts.
API_RETRIES = RetryStrategy(
    limit=IntOrString(wp("retry_limit")),
    retry_policy="OnError",
    backoff=Backoff(duration="10s", factor=IntOrString("2"), max_duration="5m"),
)


PACKAGE = "package"  # the wheel's input artifact (lightweight variant)


def input_path(artifact: str) -> str:
    return f"{{{{inputs.artifacts.{artifact}.path}}}}"


def output_path(artifact: str) -> str:
    return f"{{{{outputs.artifacts.{artifact}.path}}}}"


def artifact_key(artifact: str) -> str:
    if artifact in caching.ARTIFACTS:
        return inputs_parameter(caching.key_parameter(artifact))
    return f"{RUN_NAME}/{artifact}"


def _output_artifact(name: str, path: str, key: str) -> GCSArtifact:
    # A cached stage's artifacts outlive the workflow: never collected, whatever the
    # workflow-level artifactGC says (Argo's default strategy is Never as well).
    cached = name in caching.ARTIFACTS or name == caching.ENTRY
    return GCSArtifact(
        name=name,
        path=path,
        key=key,
        archive=NoneArchiveStrategy(),
        artifact_gc=ArtifactGC(strategy="Never") if cached else None,
    )


def run_dir(folder: str) -> str:
    """A folder of this run on the shared volume."""
    return f"{wp('workdir')}/{RUN_NAME}/{folder}"


def step_args(step: str, **given: str) -> list[str]:
    """`--name=value` for each parameter of the step's function, in its order: the value
    `given`, else the option of that name (or of its RENAMES spelling), else RUN_VALUES;
    an optional parameter with none of these keeps the step's default."""
    out, unused = [], set(given)
    for name, required in step_parameters(step):
        option = RENAMES.get(name, name)
        if name in given:
            value = given[name]
            unused.discard(name)
        elif option in PipelineParams.model_fields:
            value = wp(option)
        elif name in RUN_VALUES:
            value = RUN_VALUES[name]
        elif required:
            raise TypeError(f"step {step!r}: parameter {name!r} is no option; give its value")
        else:
            continue
        out.append(f"--{name}={value}")
    if unused:
        raise TypeError(f"step {step!r} has no parameter(s) {', '.join(sorted(unused))}")
    return out


def pod_resources(cpu: str, memory: str, memory_limit: str) -> dict[str, dict[str, str]]:
    # No CPU limit: throttling a TensorFlow step only makes it slower.
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def step_template(
    launch: Launch,
    name: str,
    step: str,
    args: Sequence[str],
    *,
    display_name: str,
    resources: Mapping[str, Mapping[str, str]],
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    input_parameters: Sequence[str] = (),
    output_parameters: Sequence[str] = (),
    image: str = wp("image"),
    gpu: GpuScheduling | None = None,
    workdir: bool = False,
    metrics: Sequence[Gauge | Counter] = (),
) -> Container:
    """The Container template of one step.

    `inputs`/`outputs` name artifacts mounted at /tmp/artifacts/{in,out}/NAME;
    `output_parameters` are keys of the step's returned dict, read back from
    /tmp/outputs/params/KEY; `workdir` mounts the shared volume, whose claim name is the
    template's input parameter `claim`. The display name travels
    as a pod annotation, the only annotation Hera 7.1 can express;
    `pipeline.hoist_template_annotations` moves it to the template, where Argo >= 3.7
    reads it. Every step reports its duration to Argo's Prometheus endpoint
    (`textcnn_step_duration_seconds{step=...}`), beside its own `metrics`.
    """
    args = list(args)
    if output_parameters:
        args.append(f"--outputs={OUTPUTS_DIR}")
    mounts = [
        security.SCRATCH_MOUNT,
        *(gpu.volume_mounts if gpu else []),
        *([{"name": WORKDIR_VOLUME, "mountPath": wp("workdir")}] if workdir else []),
    ]
    volumes = [
        security.SCRATCH_VOLUME,
        *(gpu.volumes if gpu else []),
        *([workdir_volume()] if workdir else []),
    ]
    keyed = [caching.key_parameter(a) for a in (*inputs, *outputs) if a in caching.ARTIFACTS]
    stage = caching.stage_of(outputs) if outputs else None
    entry_path = f"{ARTIFACT_OUT}/{caching.ENTRY}"
    if stage is not None:
        args += [f"--cache_entry={entry_path}", f"--cache_run={RUN_NAME}"]
    input_parameters = [
        *input_parameters,
        *([CLAIM] if workdir else []),
        *keyed,
        *([caching.ENTRY] if stage is not None else []),
    ]
    command, args = launch.command(step, args)
    package = launch.package
    launch_env = launch.env(wp("pip_index_url"), cuda=gpu is not None)
    return Container(
        name=name,
        annotations={DISPLAY_NAME: display_name},
        image=image,
        command=command,
        args=args,
        env=[
            Env(name="ARTIFACT_ROOT", value=f"gs://{wp('gcp_bucket')}"),
            *(Env(name=k, value=v) for k, v in {**security.SCRATCH_ENV, **launch_env}.items()),
            # The threads a step starts follow the CPUs it requested (textcnn.cpus).
            ResourceEnv(name=CPU_REQUEST_ENV, resource="requests.cpu", divisor=Quantity("1")),
        ],
        security_context=SecurityContext.model_validate(security.CONTAINER),
        resources=ResourceRequirements.model_validate(resources),
        pod_spec_patch=gpu.pod_spec_patch() if gpu else None,
        retry_strategy=STEP_RETRIES,
        active_deadline_seconds=wp("step_deadline_seconds"),
        inputs=[Parameter(name=p) for p in input_parameters]
        + [GCSArtifact(name=a, path=f"{ARTIFACT_IN}/{a}", key=artifact_key(a)) for a in inputs]
        + ([GCSArtifact(name=PACKAGE, path=package.path, key=package.key)] if package else []),
        outputs=[
            Parameter(name=p, value_from=ValueFrom(path=f"{OUTPUTS_DIR}/{p}"))
            for p in output_parameters
        ]
        + [_output_artifact(a, f"{ARTIFACT_OUT}/{a}", artifact_key(a)) for a in outputs]
        # Argo uploads output artifacts in order (workflow/executor/executor.go,
        # SaveArtifacts): the entry, written by the step once it succeeded, goes last.
        + (
            [_output_artifact(caching.ENTRY, entry_path, inputs_parameter(caching.ENTRY))]
            if stage is not None
            else []
        ),
        node_selector=gpu.node_selector if gpu else None,
        tolerations=[Toleration.model_validate(t) for t in gpu.tolerations] if gpu else None,
        volumes=[Volume.model_validate(v) for v in volumes],
        volume_mounts=[VolumeMount.model_validate(m) for m in mounts],
        metrics=[
            Gauge(
                name="textcnn_step_duration_seconds",
                help="Seconds the step's pod ran, by step, at its end.",
                labels=[Label(key="step", value=name)],
                value="{{duration}}",
                realtime=False,
            ),
            *metrics,
        ],
    )


def _on_success(name: str, help: str, parameter: str) -> Gauge:
    """A gauge of the step's output `parameter`, set when it succeeded (Argo resolves
    `{{outputs...}}` only then), labelled with the endpoint it would serve."""
    return Gauge(
        name=name,
        help=help,
        labels=[Label(key="isvc", value=wp("isvc_name"))],
        value=f"{{{{outputs.parameters.{parameter}}}}}",
        realtime=False,
        when="{{status}} == Succeeded",
    )


# --- the steps (arguments derived from each step's signature, see step_args) -----------


def validate_params(launch: Launch, cache_plan: str) -> Container:
    """The first task: checks every option, and decides which cached stages run
    (`cache_plan`: workflows/dag/caching.py)."""
    return step_template(
        launch,
        "validate-params",
        "validate-params",
        [
            *(f"--{name}={wp(name)}" for name in PipelineParams.model_fields),
            f"--cache_plan={cache_plan}",
            "--artifact_root=$(ARTIFACT_ROOT)",
            f"--run_name={RUN_NAME}",
        ],
        display_name="Validate parameters",
        output_parameters=[PARAMS, *caching.outputs()],
        resources=pod_resources("100m", "256Mi", "512Mi"),
    )


def dataset_metadata(launch: Launch, split: str) -> Container:
    report = f"{split}-report"
    return step_template(
        launch,
        f"dataset-metadata-{split}",
        "dataset-metadata",
        step_args(
            "dataset-metadata",
            data_path=wp(f"{split}_data_path"),
            split=split,
            report_dir=output_path(report),
            # The test labels are checked against the training classes.
            **({"prepared_dir": input_path("prepared")} if split == "test" else {}),
        ),
        display_name=f"Check {split} data",
        inputs=["prepared"] if split == "test" else [],
        outputs=[report],
        output_parameters=[DATASET_ID],
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


CHECKED_TEST = f"{input_path('data-checks')}/test.csv"  # the test rows later steps score


def check_data(launch: Launch) -> Container:
    """Leakage and the data's statistics, before training (textcnn.steps.check_data)."""
    return step_template(
        launch,
        "check-data",
        "check-data",
        step_args(
            "check-data",
            prepared_dir=input_path("prepared"),
            train_report_dir=input_path("train-report"),
            test_report_dir=input_path("test-report"),
            output_dir=output_path("data-checks"),
        ),
        display_name="Check the data: leakage, classes, lengths",
        inputs=["prepared", "train-report", "test-report"],
        outputs=["data-checks"],
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def prepare_data(launch: Launch) -> Container:
    return step_template(
        launch,
        "prepare-data",
        "prepare-data",
        step_args("prepare-data", output_dir=output_path("prepared")),
        display_name="Prepare data",
        outputs=["prepared"],
        resources=pod_resources("1", "2Gi", "4Gi"),
    )


def embeddings(launch: Launch) -> Container:
    return step_template(
        launch,
        "embeddings",
        "embeddings",
        step_args(
            "embeddings", prepared_dir=input_path("prepared"), output_dir=output_path("embeddings")
        ),
        display_name="Word embeddings",
        inputs=["prepared"],
        outputs=["embeddings"],
        resources=pod_resources("2", "2Gi", "4Gi"),
    )


def model_metadata(launch: Launch) -> Container:
    return step_template(
        launch,
        "model-metadata",
        "model-metadata",
        step_args(
            "model-metadata",
            prepared_dir=input_path("prepared"),
            embeddings_dir=input_path("embeddings"),
            output_dir=output_path("spec"),
            spec_key=inputs_parameter(caching.key_parameter("spec")),
        ),
        display_name="Model spec",
        inputs=["prepared", "embeddings"],
        outputs=["spec"],
        output_parameters=[MODEL_SPEC_ID],
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def train(launch: Launch, gpu: bool) -> Container:
    """One training pod of the CNN; the GPU variant differs only in image and scheduling,
    and writes `cnn` to the same key."""
    return step_template(
        launch,
        "train-gpu" if gpu else "train",
        "train",
        step_args(
            "train",
            prepared_dir=input_path("prepared"),
            embeddings_dir=input_path("embeddings"),
            model_spec_dir=input_path("spec"),
            cnn_dir=output_path("cnn"),
        ),
        display_name="Train the CNN (GPU)" if gpu else "Train the CNN (CPU)",
        inputs=["prepared", "embeddings", "spec"],
        outputs=["cnn"],
        image=wp("gpu_image") if gpu else wp("image"),
        gpu=GpuScheduling() if gpu else None,
        # The GPU pod holds the input pipeline's buffers and a memory-backed /dev/shm.
        resources=pod_resources("4", "8Gi", "16Gi") if gpu else pod_resources("4", "4Gi", "8Gi"),
    )


def fit_ngrams(launch: Launch) -> Container:
    """The wide n-gram branch, fitted once, beside whichever trainer runs."""
    return step_template(
        launch,
        "fit-ngrams",
        "fit-ngrams",
        step_args(
            "fit-ngrams",
            prepared_dir=input_path("prepared"),
            model_spec_dir=input_path("spec"),
            output_dir=output_path("ngrams"),
        ),
        display_name="Fit the n-gram branch",
        inputs=["prepared", "spec"],
        outputs=["ngrams"],
        resources=pod_resources("1", "3Gi", "4Gi"),
    )


def export(launch: Launch) -> Container:
    """The one serving model from both branches, and the run's training record."""
    return step_template(
        launch,
        "export",
        "export",
        step_args(
            "export",
            cnn_dir=input_path("cnn"),
            ngrams_dir=input_path("ngrams"),
            prepared_dir=input_path("prepared"),
            model_spec_dir=input_path("spec"),
            model_dir=output_path("model"),
            training_dir=output_path("training"),
        ),
        display_name="Assemble the serving model",
        inputs=["cnn", "ngrams", "prepared", "spec"],
        outputs=["model", "training"],
        resources=pod_resources("1", "2Gi", "4Gi"),
    )


def workdir_volume() -> dict[str, Any]:
    """The shared volume of the TFJob branch, on the claim given as input `claim`."""
    return {"name": WORKDIR_VOLUME, "persistentVolumeClaim": {"claimName": inputs_parameter(CLAIM)}}


def workdir_claim() -> Resource:
    """Claim the TFJob branch's ReadWriteMany volume, sized by `pvc_size`; output `claim`
    is the generated claim name.

    Only this branch claims it, so a single-pod run asks for no volume. A resource
    manifest is substituted before it is decoded, so the size may be a parameter here
    (in volumeClaimTemplates it may not). The owner reference makes the claim go with the
    workflow.
    """
    doc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "generateName": f"{RUN_NAME}-{WORKDIR_VOLUME}-",
            "labels": {WORKFLOW_LABEL: RUN_NAME, "app.kubernetes.io/part-of": "textcnn"},
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": wp("pvc_storage_class"),
            "resources": {"requests": {"storage": wp("pvc_size")}},
        },
    }
    return Resource(
        name="workdir-claim",
        annotations={DISPLAY_NAME: "Claim the shared volume"},
        action="create",
        set_owner_reference=True,
        retry_strategy=API_RETRIES,
        manifest=resource_manifest(doc, ()),
        outputs=[Parameter(name=CLAIM, value_from=ValueFrom(json_path="{.metadata.name}"))],
    )


def stage_data(launch: Launch) -> Container:
    return step_template(
        launch,
        "stage-data",
        "stage-data",
        step_args(
            "stage-data",
            prepared_dir=input_path("prepared"),
            embeddings_dir=input_path("embeddings"),
            model_spec_dir=input_path("spec"),
            stage_dir=run_dir("data"),
            **({"package": launch.package.path} if launch.package else {}),
        ),
        display_name="Stage data on the shared volume",
        inputs=["prepared", "embeddings", "spec"],
        workdir=True,
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def _distributed_job(name: str, display: str, manifest: str) -> Resource:
    """Create a training job on the shared volume's claim (the input `claim`); its output
    `name` is the generated name. The owner reference makes deleting the workflow delete
    the job and its pods."""
    return Resource(
        name=name,
        annotations={DISPLAY_NAME: display},
        action="create",
        set_owner_reference=True,
        retry_strategy=API_RETRIES,
        manifest=manifest,
        inputs=[Parameter(name=CLAIM)],
        outputs=[Parameter(name=JOB_NAME, value_from=ValueFrom(json_path="{.metadata.name}"))],
    )


def _workload(launch: Launch, gpu: bool) -> Workload:
    """What each replica or node runs: train-distributed on the staged data, on the claim
    given as input `claim` (the GPU variant with the GPU image and scheduling)."""
    data = run_dir("data")
    command, args = launch.command(
        "train-distributed",
        step_args(
            "train-distributed",
            prepared_dir=f"{data}/prepared",
            embeddings_dir=f"{data}/embeddings",
            model_spec_dir=f"{data}/spec",
            cnn_dir=run_dir("cnn"),
        ),
    )
    return Workload(
        image=wp("gpu_image") if gpu else wp("image"),
        command=command,
        args=args,
        # stage-data put the wheel on the shared volume, beside the data.
        env=launch.env(wp("pip_index_url"), wheel_dir=f"{data}/package", cuda=gpu),
        cpu=wp("replica_cpu"),
        memory=wp("replica_memory"),
        claim_name=inputs_parameter(CLAIM),
        mount_path=wp("workdir"),
        active_deadline_seconds=wp("tfjob_active_deadline_seconds"),
        workflow_name=RUN_NAME,
        gpu=GpuScheduling() if gpu else None,
    )


def tfjob(launch: Launch, gpu: bool) -> Resource:
    """The TFJob that trains on the staged data: Chief + `workers` Workers."""
    doc = build_tfjob(
        _workload(launch, gpu),
        generate_name=f"{RUN_NAME}-tfjob-",
        workers=wp("workers"),
        backoff_limit=wp("tfjob_backoff_limit"),
    )
    return _distributed_job(
        "tfjob-gpu" if gpu else "tfjob", "TFJob (GPU)" if gpu else "TFJob (CPU)", tfjob_yaml(doc)
    )


def trainjob(launch: Launch, gpu: bool) -> Resource:
    """The Trainer v2 TrainJob that trains on the staged data: `workers` nodes of the
    runtime `training_runtime`."""
    doc = build_trainjob(
        _workload(launch, gpu),
        # Not the workflow's name: JobSet refuses a name whose pods' names would pass 63
        # characters (`<name>-node-0-<i>-xxxxx`), which a cron's or the lightweight
        # template's run names would; the label and owner reference name the workflow.
        generate_name=TRAINJOB_PREFIX,
        runtime=wp("training_runtime"),
        nodes=wp("workers"),
    )
    return _distributed_job(
        "trainjob-gpu" if gpu else "trainjob",
        "TrainJob (GPU)" if gpu else "TrainJob (CPU)",
        trainjob_yaml(doc),
    )


def wait_job(launch: Launch, step: str, what: str) -> Container:
    """Wait for the training job named by the input `name` (wait-tfjob, wait-trainjob)."""
    return step_template(
        launch,
        step,
        step,
        step_args(
            step,
            name=inputs_parameter(JOB_NAME),
            namespace="{{workflow.namespace}}",
            timeout_s=wp("tfjob_wait_timeout_seconds"),
        ),
        display_name=f"Wait for the {what}",
        input_parameters=[JOB_NAME],
        resources=pod_resources("100m", "256Mi", "512Mi"),
    )


def collect_model(launch: Launch) -> Container:
    """Publish the chief's CNN as the same `cnn` artifact as `train`'s."""
    return step_template(
        launch,
        "collect-model",
        "collect-model",
        step_args(
            "collect-model",
            source_dir=f"{wp('workdir')}/{RUN_NAME}",
            cnn_dir=output_path("cnn"),
        ),
        display_name="Collect the CNN",
        outputs=["cnn"],
        workdir=True,
        resources=pod_resources("250m", "512Mi", "1Gi"),
    )


def evaluate(launch: Launch) -> Container:
    return step_template(
        launch,
        "evaluate",
        "evaluate",
        step_args(
            "evaluate",
            model_dir=input_path("model"),
            prepared_dir=input_path("prepared"),
            metrics_dir=output_path("metrics"),
            training_dir=input_path("training"),
            test_path=CHECKED_TEST,
        ),
        display_name="Evaluate on the test set",
        inputs=["model", "prepared", "training", "data-checks"],
        outputs=["metrics"],
        resources=pod_resources("1", "2Gi", "4Gi"),
    )


LINEAGE_INPUTS = ("hyperparameters", caching.LINEAGE)


def log_training_metadata(launch: Launch) -> Container:
    return step_template(
        launch,
        "log-training-metadata",
        "log-training-metadata",
        step_args(
            "log-training-metadata",
            train_report_dir=input_path("train-report"),
            test_report_dir=input_path("test-report"),
            model_spec_dir=input_path("spec"),
            training_dir=input_path("training"),
            metrics_dir=input_path("metrics"),
            data_checks_dir=input_path("data-checks"),
            **{name: inputs_parameter(name) for name in LINEAGE_INPUTS},
        ),
        display_name="Record lineage",
        input_parameters=LINEAGE_INPUTS,
        inputs=["train-report", "test-report", "spec", "training", "metrics", "data-checks"],
        output_parameters=[MODEL_URI, MODEL_ID, ACCURACY, MACRO_F1],
        resources=pod_resources("250m", "512Mi", "1Gi"),
        # Here, not on evaluate, which a run that reuses its metrics skips.
        metrics=[
            _on_success("textcnn_test_accuracy", "Test accuracy of the candidate.", ACCURACY),
            _on_success("textcnn_test_macro_f1", "Test macro F1 of the candidate.", MACRO_F1),
        ],
    )


def gate(launch: Launch) -> Container:
    """Deploy or not: the candidate against the model that serves now (textcnn.steps.gate)."""
    return step_template(
        launch,
        "gate",
        "gate",
        step_args(
            "gate",
            namespace="{{workflow.namespace}}",
            model_id=inputs_parameter(MODEL_ID),
            model_uri=inputs_parameter(MODEL_URI),
            prepared_dir=input_path("prepared"),
            metrics_dir=input_path("metrics"),
            report_dir=output_path("gate"),
            data_checks_dir=input_path("data-checks"),
            test_path=CHECKED_TEST,
            report_uri=f"$(ARTIFACT_ROOT)/{artifact_key('gate')}/report.html",
        ),
        display_name="Gate: better than the serving model, and the data sound?",
        input_parameters=[MODEL_ID, MODEL_URI],
        inputs=["prepared", "metrics", "data-checks"],
        outputs=["gate"],
        output_parameters=[DECISION, REASON, DATA_CHECKS, REPORT, *DRIFT_GAUGES],
        resources=pod_resources("1", "2Gi", "4Gi"),
        metrics=[
            Counter(
                name="textcnn_gate_decisions_total",
                help="The gate's decisions, by decision (deploy or skip).",
                labels=[
                    Label(key="isvc", value=wp("isvc_name")),
                    Label(key="decision", value=f"{{{{outputs.parameters.{DECISION}}}}}"),
                ],
                value="1",
                when="{{status}} == Succeeded",
            ),
            *(
                _on_success(f"textcnn_data_{name}", about, name)
                for name, about in DRIFT_GAUGES.items()
            ),
        ],
    )


def deploy(runtime: str) -> Resource:
    """Apply the InferenceService serving the model at `model_uri` with `runtime` (one of
    inference_service.RUNTIMES; the structure differs, so one template each). `apply`
    updates the same service on every run (a new revision, canary if asked); it has no
    owner reference, since the endpoint outlives the workflow."""
    doc = build_inference_service(
        name=wp("isvc_name"),
        namespace="{{workflow.namespace}}",
        storage_uri=inputs_parameter(MODEL_URI),
        service_account=SERVING_ACCOUNT,
        runtime=runtime,
        deployment_mode=wp("serving_deployment_mode"),
        runtime_version=wp("tf_serving_version"),
        image=wp("serving_image") if runtime == "custom" else None,
        min_replicas=wp("serving_min_replicas"),
        max_replicas=wp("serving_max_replicas"),
        canary_traffic_percent=wp("canary_traffic_percent"),
        max_batch_size=wp("max_batch_size"),
        max_latency_ms=wp("max_latency_ms"),
    )
    return Resource(
        name=f"deploy-{runtime}",
        annotations={DISPLAY_NAME: f"Deploy on KServe ({runtime})"},
        action="apply",
        retry_strategy=API_RETRIES,
        manifest=inference_service_yaml(doc),
        inputs=[Parameter(name=MODEL_URI)],
    )


def deploy_wait(launch: Launch) -> Container:
    return step_template(
        launch,
        "deploy-wait",
        "deploy-wait",
        step_args(
            "deploy-wait",
            name=wp("isvc_name"),
            namespace="{{workflow.namespace}}",
            model_name=wp("isvc_name"),
            model_id=inputs_parameter(MODEL_ID),
            model_uri=inputs_parameter(MODEL_URI),
            model_dir=input_path("model"),
            timeout_s=wp("deploy_timeout_seconds"),
        ),
        display_name="Wait for the new model to serve, smoke-test it",
        input_parameters=[MODEL_ID, MODEL_URI],
        # The candidate itself: the endpoint must give its answers (TensorFlow runs it).
        inputs=["model"],
        output_parameters=[ENDPOINT],
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def canary_check(launch: Launch) -> Container:
    """Probe the canary revision; promote it or roll it back (textcnn.cluster.canary)."""
    return step_template(
        launch,
        "canary-check",
        "canary-check",
        step_args(
            "canary-check",
            name=wp("isvc_name"),
            namespace="{{workflow.namespace}}",
            model_id=inputs_parameter(MODEL_ID),
            model_uri=inputs_parameter(MODEL_URI),
            model_dir=input_path("model"),
            timeout_s=wp("deploy_timeout_seconds"),
        ),
        display_name="Canary: probe, then promote or roll back",
        input_parameters=[MODEL_ID, MODEL_URI],
        inputs=["model"],
        output_parameters=[VERDICT, REASON],
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def record_status(launch: Launch) -> Container:
    """The exit handler: the run's final status in ML Metadata, whatever happened."""
    return step_template(
        launch,
        "record-status",
        "record-status",
        step_args("record-status", status="{{workflow.status}}", failures="{{workflow.failures}}"),
        display_name="Record the run's status",
        resources=pod_resources("100m", "256Mi", "512Mi"),
    )
