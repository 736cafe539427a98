"""Argo templates of the pipeline steps: one Hera `Container` per step of `textcnn.cli`.

Every step runs `python -m textcnn STEP --name=value ...`. Values come from workflow
parameters, input parameters and artifact paths. Artifacts are key-only GCS artifacts at
`{{workflow.name}}/<artifact>`, resolved against the workflow's artifact repository and
left unarchived, so every producer of an artifact (CPU or GPU training, the TFJob branch)
writes the same key and its consumers read it without knowing which branch ran.

The TFJob branch shares one ReadWriteMany volume, mounted at the `workdir` parameter, in
a folder per run: stage-data writes the trainers' inputs there, the TFJob's replicas read
them and the chief writes the model next to them, and collect-model publishes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hera.workflows import Container, Env, GCSArtifact, NoneArchiveStrategy, Parameter, Resource
from hera.workflows.models import ResourceRequirements, Toleration, ValueFrom, Volume, VolumeMount

from textcnn.params import argo_cli_args
from workflows.inference_service import RUNTIMES, build_inference_service, inference_service_yaml
from workflows.manifest import manifest_yaml as resource_manifest
from workflows.tfjob import WORKDIR_VOLUME, WORKFLOW_LABEL, build_tfjob, manifest_yaml

DISPLAY_NAME = "workflows.argoproj.io/display-name"
RUN_NAME = "{{workflow.name}}"
ARTIFACT_IN = "/tmp/artifacts/in"
ARTIFACT_OUT = "/tmp/artifacts/out"
OUTPUTS_DIR = "/tmp/outputs/params"
GPU_RESOURCE = "nvidia.com/gpu"

# Output parameters the DAG passes on (keys of the steps' returned dicts).
PARAMS = "params"
DATASET_ID = "dataset_id"
MODEL_SPEC_ID = "model_spec_id"
ACCURACY = "accuracy"
MACRO_F1 = "macro_f1"
MODEL_URI = "model_uri"
MODEL_ID = "model_id"
ENDPOINT = "endpoint"
SERVING_ACCOUNT = "textcnn-serving"  # manifests/rbac.yaml: reads the model bucket
TFJOB_NAME = "name"  # the created TFJob's name, read back by the resource template
CLAIM = "claim"  # the shared volume's claim name, an input of the TFJob branch's templates
MAIN_CONTAINER = "main"  # what Argo names a container template's container


def wp(name: str) -> str:
    """Reference to a workflow parameter."""
    return f"{{{{workflow.parameters.{name}}}}}"


def input_path(artifact: str) -> str:
    return f"{{{{inputs.artifacts.{artifact}.path}}}}"


def output_path(artifact: str) -> str:
    return f"{{{{outputs.artifacts.{artifact}.path}}}}"


def artifact_key(artifact: str) -> str:
    return f"{RUN_NAME}/{artifact}"


def run_dir(folder: str) -> str:
    """A folder of this run on the shared volume."""
    return f"{wp('workdir')}/{RUN_NAME}/{folder}"


def cli(**options: str) -> list[str]:
    """`--name=value` tokens, one per step argument, in the order given."""
    return [f"--{name}={value}" for name, value in options.items()]


def pod_resources(cpu: str, memory: str, memory_limit: str) -> dict[str, dict[str, str]]:
    # No CPU limit: throttling a TensorFlow step only makes it slower.
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


@dataclass(frozen=True)
class GpuScheduling:
    """What puts a pod on a GPU node, as Kubernetes (camelCase) dicts driven by workflow
    parameters: the GPU limit, the node selector, the toleration of the GPU taint and a
    memory-backed /dev/shm (NCCL, used by MirroredStrategy across GPUs, outgrows the
    container runtime's 64 MiB default).
    Plain dicts so a TFJob replica spec can take them as they are. A container template
    takes the GPU limit through `pod_spec_patch`: Argo decodes `resources` as quantities
    before it substitutes parameters, but substitutes the patch (a string) first."""

    limits: dict[str, str] = field(default_factory=lambda: {GPU_RESOURCE: wp("gpu_count")})
    # Argo substitutes parameters over the whole template JSON, map keys included.
    node_selector: dict[str, str] = field(default_factory=lambda: {
        wp("gpu_node_selector_key"): wp("gpu_node_selector_value"),
    })
    tolerations: list[dict[str, str]] = field(default_factory=lambda: [
        {"key": wp("gpu_toleration_key"), "operator": "Exists", "effect": "NoSchedule"},
    ])
    volumes: list[dict[str, Any]] = field(default_factory=lambda: [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
    ])
    volume_mounts: list[dict[str, str]] = field(default_factory=lambda: [
        {"name": "dshm", "mountPath": "/dev/shm"},
    ])

    def pod_spec_patch(self) -> str:
        """The GPU limit as an Argo `podSpecPatch` of the template's `main` container."""
        return json.dumps({"containers": [
            {"name": MAIN_CONTAINER, "resources": {"limits": self.limits}}]})


def step_template(
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
) -> Container:
    """The Container template of one step.

    `inputs`/`outputs` name artifacts mounted at /tmp/artifacts/{in,out}/NAME;
    `output_parameters` are keys of the step's returned dict, read back from
    /tmp/outputs/params/KEY; `workdir` mounts the shared volume, whose claim name is the
    template's input parameter `claim`. The display name travels
    as a pod annotation, the only annotation Hera 7.1 can express;
    `pipeline.hoist_template_annotations` moves it to the template, where Argo >= 3.7
    reads it.
    """
    args = list(args)
    if output_parameters:
        args.append(f"--outputs={OUTPUTS_DIR}")
    mounts = [*(gpu.volume_mounts if gpu else []),
              *([{"name": WORKDIR_VOLUME, "mountPath": wp("workdir")}] if workdir else [])]
    volumes = [*(gpu.volumes if gpu else []), *([workdir_volume()] if workdir else [])]
    input_parameters = [*input_parameters, *([CLAIM] if workdir else [])]
    return Container(
        name=name,
        annotations={DISPLAY_NAME: display_name},
        image=image,
        command=["python", "-m", "textcnn", step],
        args=args,
        env=[Env(name="ARTIFACT_ROOT", value=f"gs://{wp('gcp_bucket')}")],
        resources=ResourceRequirements.model_validate(resources),
        pod_spec_patch=gpu.pod_spec_patch() if gpu else None,
        inputs=[Parameter(name=p) for p in input_parameters] + [
            GCSArtifact(name=a, path=f"{ARTIFACT_IN}/{a}", key=artifact_key(a)) for a in inputs
        ],
        outputs=[
            Parameter(name=p, value_from=ValueFrom(path=f"{OUTPUTS_DIR}/{p}"))
            for p in output_parameters
        ] + [
            GCSArtifact(name=a, path=f"{ARTIFACT_OUT}/{a}", key=artifact_key(a),
                        archive=NoneArchiveStrategy())
            for a in outputs
        ],
        node_selector=gpu.node_selector if gpu else None,
        tolerations=[Toleration.model_validate(t) for t in gpu.tolerations] if gpu else None,
        volumes=[Volume.model_validate(v) for v in volumes] or None,
        volume_mounts=[VolumeMount.model_validate(m) for m in mounts] or None,
    )


# --- the steps (arguments in the order of each step's run() signature) -------------------

def validate_params() -> Container:
    return step_template(
        "validate-params", "validate-params", argo_cli_args(),
        display_name="Validate parameters", output_parameters=[PARAMS],
        resources=pod_resources("100m", "256Mi", "512Mi"),
    )


def dataset_metadata(split: str) -> Container:
    report = f"{split}-report"
    return step_template(
        f"dataset-metadata-{split}", "dataset-metadata",
        cli(
            data_path=wp(f"{split}_data_path"), split=split,
            text_column=wp("column_text_value"), label_column=wp("column_target_value"),
            report_dir=output_path(report), metadata_store=wp("metadata_store"),
            run_name=RUN_NAME,
        ),
        display_name=f"Check {split} data", outputs=[report], output_parameters=[DATASET_ID],
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def prepare_data() -> Container:
    return step_template(
        "prepare-data", "prepare-data",
        cli(
            train_path=wp("train_data_path"), text_column=wp("column_text_value"),
            label_column=wp("column_target_value"), val_data_pct=wp("val_data_pct"),
            num_words=wp("num_words"), max_length=wp("max_length"),
            length_percentile=wp("length_percentile"), seed=wp("seed"),
            output_dir=output_path("prepared"), json_tokenizer_path=wp("json_tokenizer_path"),
        ),
        display_name="Prepare data", outputs=["prepared"],
        resources=pod_resources("1", "2Gi", "4Gi"),
    )


def embeddings() -> Container:
    return step_template(
        "embeddings", "embeddings",
        cli(
            prepared_dir=input_path("prepared"), w2v_model_path=wp("w2v_model_path"),
            embedding_dim=wp("embbeding_dim"), seed=wp("seed"),
            output_dir=output_path("embeddings"),
        ),
        display_name="Word embeddings", inputs=["prepared"], outputs=["embeddings"],
        resources=pod_resources("2", "2Gi", "4Gi"),
    )


def model_metadata() -> Container:
    return step_template(
        "model-metadata", "model-metadata",
        cli(
            prepared_dir=input_path("prepared"), embeddings_dir=input_path("embeddings"),
            filter_sizes=wp("filter_sizes"), num_filters=wp("num_filters"),
            num_conv_layers=wp("num_conv_layers"), maxpool_strides=wp("maxpool_strides"),
            dropout=wp("dropout"), embedding_dim=wp("embbeding_dim"),
            static_embeddings=wp("static_embeddings"),
            learning_rate=wp("learning_rate"), output_dir=output_path("spec"),
            metadata_store=wp("metadata_store"), run_name=RUN_NAME,
            artifact_root="$(ARTIFACT_ROOT)",
        ),
        display_name="Model spec", inputs=["prepared", "embeddings"], outputs=["spec"],
        output_parameters=[MODEL_SPEC_ID], resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def train(gpu: bool) -> Container:
    """One training pod; the GPU variant differs only in image and scheduling, and
    writes `model` and `training` to the same keys."""
    return step_template(
        "train-gpu" if gpu else "train", "train",
        cli(
            prepared_dir=input_path("prepared"), embeddings_dir=input_path("embeddings"),
            model_spec_dir=input_path("spec"), epochs=wp("epochs"),
            batch_size=wp("batch_size"), patience=wp("patience"), seed=wp("seed"),
            model_dir=output_path("model"), training_dir=output_path("training"),
        ),
        display_name="Train (GPU)" if gpu else "Train (CPU)",
        inputs=["prepared", "embeddings", "spec"], outputs=["model", "training"],
        image=wp("gpu_image") if gpu else wp("image"),
        gpu=GpuScheduling() if gpu else None,
        # The GPU pod holds the input pipeline's buffers and a memory-backed /dev/shm.
        resources=pod_resources("4", "8Gi", "16Gi") if gpu else pod_resources("4", "4Gi", "8Gi"),
    )


def stage_data() -> Container:
    return step_template(
        "stage-data", "stage-data",
        cli(
            prepared_dir=input_path("prepared"), embeddings_dir=input_path("embeddings"),
            model_spec_dir=input_path("spec"), stage_dir=run_dir("data"),
        ),
        display_name="Stage data on the shared volume",
        inputs=["prepared", "embeddings", "spec"], workdir=True,
        resources=pod_resources("500m", "1Gi", "2Gi"),
    )


def workdir_volume() -> dict[str, Any]:
    """The shared volume of the TFJob branch, on the claim given as input `claim`."""
    return {"name": WORKDIR_VOLUME,
            "persistentVolumeClaim": {"claimName": f"{{{{inputs.parameters.{CLAIM}}}}}"}}


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
        "metadata": {"generateName": f"{RUN_NAME}-{WORKDIR_VOLUME}-",
                     "labels": {WORKFLOW_LABEL: RUN_NAME, "app.kubernetes.io/part-of": "textcnn"}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": wp("pvc_storage_class"),
            "resources": {"requests": {"storage": wp("pvc_size")}},
        },
    }
    return Resource(
        name="workdir-claim",
        annotations={DISPLAY_NAME: "Claim the shared volume"},
        action="create", set_owner_reference=True, manifest=resource_manifest(doc, ()),
        outputs=[Parameter(name=CLAIM, value_from=ValueFrom(json_path="{.metadata.name}"))],
    )


def tfjob(gpu: bool) -> Resource:
    """Create the TFJob that trains on the staged data (Chief + `workers` Workers, the GPU
    variant with the GPU image and scheduling); its output `name` is the generated name.

    Every replica mounts the shared volume's claim, the input `claim`. The owner reference
    makes deleting the workflow delete the job and its pods.
    """
    data = run_dir("data")
    doc = build_tfjob(
        generate_name=f"{RUN_NAME}-tfjob-",
        image=wp("gpu_image") if gpu else wp("image"),
        command=["python", "-m", "textcnn", "train-distributed"],
        args=cli(
            prepared_dir=f"{data}/prepared", embeddings_dir=f"{data}/embeddings",
            model_spec_dir=f"{data}/spec", epochs=wp("epochs"),
            batch_size=wp("batch_size"), patience=wp("patience"), seed=wp("seed"),
            model_dir=run_dir("model"), training_dir=run_dir("training"),
        ),
        workers=wp("workers"), cpu=wp("replica_cpu"), memory=wp("replica_memory"),
        claim_name=f"{{{{inputs.parameters.{CLAIM}}}}}", mount_path=wp("workdir"),
        backoff_limit=wp("tfjob_backoff_limit"),
        active_deadline_seconds=wp("tfjob_active_deadline_seconds"),
        workflow_name=RUN_NAME, gpu=GpuScheduling() if gpu else None,
    )
    return Resource(
        name="tfjob-gpu" if gpu else "tfjob",
        annotations={DISPLAY_NAME: "TFJob (GPU)" if gpu else "TFJob (CPU)"},
        action="create", set_owner_reference=True, manifest=manifest_yaml(doc),
        inputs=[Parameter(name=CLAIM)],
        outputs=[Parameter(name=TFJOB_NAME, value_from=ValueFrom(json_path="{.metadata.name}"))],
    )


def wait_tfjob() -> Container:
    return step_template(
        "wait-tfjob", "wait-tfjob",
        cli(name=f"{{{{inputs.parameters.{TFJOB_NAME}}}}}", namespace="{{workflow.namespace}}",
            timeout_s=wp("tfjob_wait_timeout_seconds")),
        display_name="Wait for the TFJob", input_parameters=[TFJOB_NAME],
        resources=pod_resources("100m", "256Mi", "512Mi"),
    )


def collect_model() -> Container:
    """Publish the chief's model as the same `model` and `training` artifacts as `train`."""
    return step_template(
        "collect-model", "collect-model",
        cli(source_dir=f"{wp('workdir')}/{RUN_NAME}", model_dir=output_path("model"),
            training_dir=output_path("training")),
        display_name="Collect the model", outputs=["model", "training"], workdir=True,
        resources=pod_resources("250m", "512Mi", "1Gi"),
    )


def evaluate() -> Container:
    return step_template(
        "evaluate", "evaluate",
        cli(
            model_dir=input_path("model"), prepared_dir=input_path("prepared"),
            test_path=wp("test_data_path"), text_column=wp("column_text_value"),
            label_column=wp("column_target_value"), metrics_dir=output_path("metrics"),
            training_dir=input_path("training"),
        ),
        display_name="Evaluate on the test set", inputs=["model", "prepared", "training"],
        outputs=["metrics"], output_parameters=[ACCURACY, MACRO_F1],
        resources=pod_resources("1", "2Gi", "4Gi"),
    )


def log_training_metadata() -> Container:
    # $(ARTIFACT_ROOT) is expanded by Kubernetes from the container's env.
    return step_template(
        "log-training-metadata", "log-training-metadata",
        cli(
            metadata_store=wp("metadata_store"), run_name=RUN_NAME,
            artifact_root="$(ARTIFACT_ROOT)",
            train_dataset_id="{{inputs.parameters.train_dataset_id}}",
            test_dataset_id="{{inputs.parameters.test_dataset_id}}",
            model_spec_id="{{inputs.parameters.model_spec_id}}",
            training_dir=input_path("training"), metrics_dir=input_path("metrics"),
            hyperparameters="{{inputs.parameters.hyperparameters}}",
        ),
        display_name="Record lineage",
        input_parameters=["train_dataset_id", "test_dataset_id", "model_spec_id",
                          "hyperparameters"],
        inputs=["training", "metrics"], output_parameters=[MODEL_URI, MODEL_ID],
        resources=pod_resources("250m", "512Mi", "1Gi"),
    )


def deploy(runtime: str) -> Resource:
    """Apply the InferenceService serving the model at `model_uri` with `runtime` (one of
    inference_service.RUNTIMES; the structure differs, so one template each). `apply`
    updates the same service on every run (a new revision, canary if asked); it has no
    owner reference, since the endpoint outlives the workflow."""
    doc = build_inference_service(
        name=wp("isvc_name"), namespace="{{workflow.namespace}}",
        storage_uri=f"{{{{inputs.parameters.{MODEL_URI}}}}}", service_account=SERVING_ACCOUNT,
        runtime=runtime, deployment_mode=wp("serving_deployment_mode"),
        runtime_version=wp("tf_serving_version"),
        image=wp("serving_image") if runtime == "custom" else None,
        min_replicas=wp("serving_min_replicas"), max_replicas=wp("serving_max_replicas"),
        canary_traffic_percent=wp("canary_traffic_percent"),
    )
    return Resource(
        name=f"deploy-{runtime}",
        annotations={DISPLAY_NAME: f"Deploy on KServe ({runtime})"},
        action="apply", manifest=inference_service_yaml(doc),
        inputs=[Parameter(name=MODEL_URI)],
    )


def deploy_wait() -> Container:
    return step_template(
        "deploy-wait", "deploy-wait",
        cli(
            name=wp("isvc_name"), namespace="{{workflow.namespace}}",
            model_name=wp("isvc_name"), metadata_store=wp("metadata_store"),
            run_name=RUN_NAME, model_id=f"{{{{inputs.parameters.{MODEL_ID}}}}}",
            timeout_s=wp("deploy_timeout_seconds"),
        ),
        display_name="Wait for the endpoint, smoke-test it", input_parameters=[MODEL_ID],
        output_parameters=[ENDPOINT], resources=pod_resources("100m", "256Mi", "512Mi"),
    )


def record_status() -> Container:
    """The exit handler: the run's final status in ML Metadata, whatever happened."""
    return step_template(
        "record-status", "record-status",
        cli(metadata_store=wp("metadata_store"), run_name=RUN_NAME,
            status="{{workflow.status}}", failures="{{workflow.failures}}"),
        display_name="Record the run's status", resources=pod_resources("100m", "256Mi", "512Mi"),
    )


SERVING_RUNTIMES = RUNTIMES
