"""The TFJob: the manifest builder, strict validation (CRD schema v1.9.4, unknown keys,
admission rules), and the resource templates as the DAG renders them, substituted with
sample parameter values, with and without GPUs."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

import pytest
import yaml

from textcnn.params import PipelineParams
from workflows.checks.admission import TFJOB_SCHEMA, validate_tfjob
from workflows.dag import pipeline
from workflows.dag.gpu import GpuScheduling
from workflows.dag.tfjob import build_tfjob, manifest_yaml
from workflows.dag.workload import Workload

WF = "textcnn-pipeline-x1b2c"
GPU_PARAMS = (
    "gpu_count",
    "gpu_node_selector_key",
    "gpu_node_selector_value",
    "gpu_toleration_key",
    "gpu_image",
)
LITERAL_GPU = GpuScheduling(
    limits={"nvidia.com/gpu": "1"},
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
)


def job(workers: int = 2, gpu: GpuScheduling | None = None) -> dict[str, Any]:
    work = Workload(
        image="ghcr.io/textcnn-argo/steps:0.1.0",
        command=["python", "-m", "textcnn", "train-distributed"],
        args=["--epochs=2"],
        cpu="2",
        memory="4Gi",
        claim_name=f"{WF}-workdir",
        mount_path="/mnt/workdir",
        active_deadline_seconds=3600,
        workflow_name=WF,
        gpu=gpu,
    )
    return build_tfjob(work, generate_name=f"{WF}-tfjob-", workers=workers, backoff_limit=2)


def replicas(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return doc["spec"]["tfReplicaSpecs"]


# --- the builder ----------------------------------------------------------------------


@pytest.mark.parametrize("gpu", [None, LITERAL_GPU], ids=["cpu", "gpu"])
def test_built_tfjob_is_valid(gpu: GpuScheduling | None) -> None:
    assert validate_tfjob(job(gpu=gpu)) == []


def test_a_chief_and_the_workers_share_one_pod_template() -> None:
    doc = job(workers=3)
    chief, worker = replicas(doc)["Chief"], replicas(doc)["Worker"]
    assert (chief["replicas"], worker["replicas"]) == (1, 3)
    assert chief["template"] == worker["template"]
    assert chief["restartPolicy"] == worker["restartPolicy"] == "OnFailure"
    assert doc["spec"]["runPolicy"] == {
        "cleanPodPolicy": "Running",
        "backoffLimit": 2,
        "activeDeadlineSeconds": 3600,
    }
    assert doc["metadata"]["generateName"] == f"{WF}-tfjob-" and "name" not in doc["metadata"]
    pod = chief["template"]
    assert pod["metadata"]["labels"] == {
        "workflows.argoproj.io/workflow": WF,
        "sidecar.istio.io/inject": "false",
    }
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "tensorflow"
    assert container["command"] == ["python", "-m", "textcnn", "train-distributed"]
    # The shared volume is mounted in every replica.
    assert {"name": "workdir", "mountPath": "/mnt/workdir"} in container["volumeMounts"]
    assert {"name": "workdir", "persistentVolumeClaim": {"claimName": f"{WF}-workdir"}} in (
        pod["spec"]["volumes"]
    )


def test_gpu_scheduling_only_with_gpu() -> None:
    cpu, gpu = job(), job(gpu=LITERAL_GPU)
    assert not re.search("nvidia|nodeSelector|tolerations|/dev/shm", json.dumps(cpu))
    for replica in replicas(gpu).values():
        spec = replica["template"]["spec"]
        (container,) = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["nodeSelector"] == LITERAL_GPU.node_selector
        assert spec["tolerations"] == LITERAL_GPU.tolerations
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        (shm,) = [v for v in spec["volumes"] if v["name"] == "dshm"]
        assert shm["emptyDir"]["medium"] == "Memory"


def test_manifest_text_leaves_integer_parameters_unquoted() -> None:
    doc = job()
    replicas(doc)["Worker"]["replicas"] = "{{workflow.parameters.workers}}"
    doc["spec"]["runPolicy"]["backoffLimit"] = "{{workflow.parameters.tfjob_backoff_limit}}"
    text = manifest_yaml(doc)
    assert "replicas: {{workflow.parameters.workers}}\n" in text
    assert "backoffLimit: {{workflow.parameters.tfjob_backoff_limit}}\n" in text
    substituted = text.replace("{{workflow.parameters.workers}}", "4").replace(
        "{{workflow.parameters.tfjob_backoff_limit}}", "1"
    )
    parsed = yaml.safe_load(substituted)
    assert replicas(parsed)["Worker"]["replicas"] == 4
    assert parsed["spec"]["runPolicy"]["backoffLimit"] == 1
    assert "&" not in text and "*id" not in text  # no YAML aliases between the replicas
    assert validate_tfjob(parsed) == []


# --- validation: schema, strict keys, admission rules ----------------------------------


def broken(change: str) -> dict[str, Any]:
    doc = copy.deepcopy(job())
    chief, spec = replicas(doc)["Chief"], doc["spec"]
    container = chief["template"]["spec"]["containers"][0]
    if change == "pre-v1 cleanPodPolicy":
        spec["cleanPodPolicy"] = "Running"
    elif change == "restartPolicy":
        chief["restartPolicy"] = "Sometimes"
    elif change == "cleanPodPolicy":
        spec["runPolicy"]["cleanPodPolicy"] = "Finished"
    elif change == "successPolicy":
        spec["successPolicy"] = "ChiefOnly"
    elif change == "replica key":
        spec["tfReplicaSpecs"]["Workers"] = spec["tfReplicaSpecs"].pop("Worker")
    elif change == "chief and master":
        spec["tfReplicaSpecs"]["Master"] = copy.deepcopy(chief)
    elif change == "container name":
        container["name"] = "trainer"
    elif change == "no image":
        container["image"] = ""
    elif change == "no containers":
        chief["template"]["spec"]["containers"] = []
    elif change == "name":
        doc["metadata"] = {"name": "Textcnn_Job"}
    elif change == "generateName":
        doc["metadata"]["generateName"] = "x" * 60 + "-"
    elif change == "replicas type":
        replicas(doc)["Worker"]["replicas"] = "2"
    elif change == "no replica specs":
        del spec["tfReplicaSpecs"]
    elif change == "unknown container key":
        container["volumeMount"] = container.pop("volumeMounts")
    elif change == "kind":
        doc["kind"] = "PyTorchJob"
    return doc


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("pre-v1 cleanPodPolicy", "spec.cleanPodPolicy: unknown field"),
        ("restartPolicy", "spec.tfReplicaSpecs.Chief.restartPolicy: 'Sometimes' is not one of"),
        ("cleanPodPolicy", "spec.runPolicy.cleanPodPolicy: 'Finished' is not one of All, Running"),
        ("successPolicy", "spec.successPolicy: 'ChiefOnly' is not one of '', 'AllWorkers'"),
        ("replica key", "spec.tfReplicaSpecs.Workers: not a replica type"),
        ("chief and master", "spec.tfReplicaSpecs: at most one Chief or Master"),
        ("container name", "needs a container named 'tensorflow'"),
        ("no image", "spec.tfReplicaSpecs.Chief.template.spec.containers[0].image: must be"),
        ("no containers", "spec.tfReplicaSpecs.Chief.template.spec.containers: must be specified"),
        ("name", "metadata.name: 'Textcnn_Job' is not a DNS-1035 label"),
        ("generateName", "metadata.generateName (+ 5 generated characters)"),
        ("replicas type", "spec.tfReplicaSpecs.Worker.replicas: '2' is not of type 'integer'"),
        ("no replica specs", "spec: 'tfReplicaSpecs' is a required property"),
        ("unknown container key", "containers[0].volumeMount: unknown field"),
        ("kind", "kind: expected TFJob, got 'PyTorchJob'"),
    ],
)
def test_validation_reports_each_problem_at_its_path(change: str, expected: str) -> None:
    problems = validate_tfjob(broken(change))
    assert any(expected in p for p in problems), problems


def test_the_defaulter_accepts_other_capitalisations_but_not_twice() -> None:
    doc = job()
    doc["spec"]["tfReplicaSpecs"]["worker"] = doc["spec"]["tfReplicaSpecs"].pop("Worker")
    assert validate_tfjob(doc) == []
    doc["spec"]["tfReplicaSpecs"]["WORKER"] = copy.deepcopy(replicas(doc)["worker"])
    assert any("same replica type" in p for p in validate_tfjob(doc))


def test_vendored_schema_is_the_file_named_in_provenance() -> None:
    folder = TFJOB_SCHEMA.parent.parent
    provenance = (folder / "PROVENANCE.md").read_text()
    digests = re.findall(r"sha256 `([0-9a-f]{64})`", provenance)
    assert hashlib.sha256(TFJOB_SCHEMA.read_bytes()).hexdigest() in provenance
    assert hashlib.sha256((folder / "LICENSE").read_bytes()).hexdigest() in digests
    assert "Apache License" in (folder / "LICENSE").read_text()


# --- the resource templates the DAG renders ---------------------------------------------


def rendered(params: PipelineParams | None = None) -> dict[str, dict[str, Any]]:
    doc = pipeline.render(params)[0]
    return {t["name"]: t for t in doc["spec"]["templates"]}


def substituted(text: str, params: PipelineParams) -> Any:
    """YAML (or JSON) text as Argo sends it: every {{workflow...}} replaced, then parsed."""
    values = {f"workflow.parameters.{k}": v for k, v in params.to_strings().items()}
    values.update({"workflow.name": WF, "workflow.namespace": params.namespace})
    return yaml.safe_load(
        re.sub(r"\{\{\s*(workflow\.[^{}]+?)\s*\}\}", lambda m: values[m.group(1)], text)
    )


@pytest.mark.parametrize("name", ["tfjob", "tfjob-gpu"])
def test_resource_templates_create_an_owned_tfjob_and_output_its_name(name: str) -> None:
    template = rendered()[name]
    resource = template["resource"]
    assert resource["action"] == "create" and resource["setOwnerReference"] is True
    assert template["outputs"]["parameters"] == [
        {"name": "name", "valueFrom": {"jsonPath": "{.metadata.name}"}}
    ]
    doc = yaml.safe_load(re.sub(r"\{\{[^{}]+\}\}", "0", resource["manifest"]))
    assert doc["metadata"]["generateName"] == "0-tfjob-"


@pytest.mark.parametrize("gpu_support", [False, True])
def test_substituted_manifests_are_valid_tfjobs(gpu_support: bool) -> None:
    params = PipelineParams(dist_training=True, gpu_support=gpu_support, workers=3)
    for name in ("tfjob", "tfjob-gpu"):
        doc = substituted(rendered(params)[name]["resource"]["manifest"], params)
        assert validate_tfjob(doc) == [], name
        assert replicas(doc)["Worker"]["replicas"] == 3
        pod = replicas(doc)["Chief"]["template"]
        assert pod["metadata"]["labels"]["workflows.argoproj.io/workflow"] == WF
        # The claim the branch's workdir-claim task created, passed in as an input.
        assert pod["spec"]["volumes"][0]["persistentVolumeClaim"] == {
            "claimName": "{{inputs.parameters.claim}}"
        }


def test_gpu_rendering_differs_only_by_gpu_scheduling() -> None:
    params = PipelineParams(gpu_support=True, gpu_count=2, gpu_image="gpu:1")
    cpu, gpu = (
        substituted(rendered(params)[n]["resource"]["manifest"], params)
        for n in ("tfjob", "tfjob-gpu")
    )
    for replica in replicas(gpu).values():
        spec = replica["template"]["spec"]
        (container,) = spec["containers"]
        assert container["image"] == "gpu:1"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert not re.search("nvidia|nodeSelector|tolerations|dshm|gpu:1", json.dumps(cpu))
    assert replicas(cpu)["Chief"]["template"]["spec"]["containers"][0]["image"] == params.image


@pytest.mark.parametrize("gpu_support", [False, True])
def test_no_gpu_bits_reach_the_cluster_unless_gpu_support(gpu_support: bool) -> None:
    """Both renderings of what the cluster gets: the training template that runs, with
    every parameter substituted (single pod, and the TFJob)."""
    from helpers import simulate

    for dist in (False, True):
        params = PipelineParams(gpu_support=gpu_support, dist_training=dist)
        wt = pipeline.render(params)[0]
        phases = simulate(wt, params.to_strings())
        names = rendered(params)
        tasks = {t["name"]: t["template"] for t in names["pipeline"]["dag"]["tasks"]}
        (trainer,) = [
            names[tasks[t]]
            for t in ("train", "train-gpu", "tfjob", "tfjob-gpu")
            if phases[t] == "Succeeded"
        ]
        text = json.dumps(substituted(json.dumps(trainer), params))
        for bit in ("nvidia.com/gpu", params.gpu_node_selector_value, params.gpu_image):
            assert (bit in text) is gpu_support, (bit, dist, gpu_support)


def dag_arguments(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each DAG task's parameter arguments, by task name."""
    (dag,) = [t for t in doc["spec"]["templates"] if "dag" in t]
    return {
        t["name"]: {p["name"]: p["value"] for p in t.get("arguments", {}).get("parameters", [])}
        for t in dag["dag"]["tasks"]
    }


MOUNTING = ("stage-data", "tfjob", "tfjob-gpu", "collect-model")


def test_only_the_tfjob_branch_claims_the_shared_volume() -> None:
    doc = pipeline.render()[0]
    assert "volumeClaimTemplates" not in doc["spec"] and "volumes" not in doc["spec"]
    tasks = {t["name"]: t for t in rendered()["pipeline"]["dag"]["tasks"]}
    # Only when the `train` stage is not reused either (workflows/dag/caching.py).
    assert tasks["workdir-claim"]["when"] == (
        "{{workflow.parameters.dist_training}} == true && "
        "'{{tasks.validate-params.outputs.parameters.train}}' == 'run'"
    )
    arguments = dag_arguments(doc)
    for name in MOUNTING:
        claim = arguments[name]["claim"]
        assert claim == "{{tasks.workdir-claim.outputs.parameters.claim}}", name


def test_the_claim_is_an_owned_pvc_sized_by_parameters() -> None:
    template = rendered()["workdir-claim"]
    resource = template["resource"]
    assert resource["action"] == "create" and resource["setOwnerReference"] is True
    assert template["outputs"]["parameters"] == [
        {"name": "claim", "valueFrom": {"jsonPath": "{.metadata.name}"}}
    ]
    params = PipelineParams(pvc_size="2Ti", pvc_storage_class="filestore")
    claim = substituted(rendered(params)["workdir-claim"]["resource"]["manifest"], params)
    assert claim["kind"] == "PersistentVolumeClaim"
    assert claim["metadata"]["generateName"] == f"{WF}-workdir-"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "filestore",
        "resources": {"requests": {"storage": "2Ti"}},
    }


def test_an_existing_claim_replaces_the_claim_task() -> None:
    doc = pipeline.render(rendering=pipeline.Rendering(existing_claim="shared-rwx"))[0]
    assert "workdir-claim" not in {t["name"] for t in doc["spec"]["templates"]}
    arguments = dag_arguments(doc)
    for name in MOUNTING:
        assert arguments[name]["claim"] == "shared-rwx", name
    # Chosen when rendering: no parameter, so neither the UI nor a run can change it.
    assert "pvc_existing_claim" not in PipelineParams.model_fields
