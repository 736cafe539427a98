"""The Kubeflow Trainer v2 backend: the ClusterTrainingRuntime and the TrainJob as the DAG
renders them, checked against the vendored v2.3.0 CRDs and the trainer's webhook rules; the
TF_CONFIG a node builds from what its JobSet pod sees; the wait step's verdicts; and the
choice of backend, of which nothing else reaches the cluster."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import simulate
from test_tfjob import WF, rendered, substituted

from textcnn import tf_config
from textcnn.cluster.trainjob import judge
from textcnn.errors import InputError
from textcnn.params import PipelineParams
from workflows.checks import pod_security
from workflows.checks.lint import lint_paths
from workflows.checks.trainer import (
    RUNTIME_SCHEMA,
    TRAINJOB_SCHEMA,
    validate_training_runtime,
    validate_trainjob,
)
from workflows.dag import pipeline
from workflows.dag.trainjob import CHECKOV_SKIPS, JOBSET_LABELS, training_runtime
from workflows.kube.controllers import addresses

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_FILE = ROOT / pipeline.RUNTIME_FILE
JOBS = ("tfjob", "tfjob-gpu", "trainjob", "trainjob-gpu")


def runtime() -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(RUNTIME_FILE.read_text()) if d]
    return doc


def trainjob(params: PipelineParams, name: str = "trainjob") -> dict[str, Any]:
    """The TrainJob as Argo sends it: the template's manifest with the parameters, the
    workflow's name and the claim substituted."""
    text = rendered(params)[name]["resource"]["manifest"]
    return substituted(text.replace("{{inputs.parameters.claim}}", f"{WF}-workdir-abcde"), params)


# --- the runtime ----------------------------------------------------------------------


def test_the_committed_runtime_is_what_compile_writes(tmp_path: Path) -> None:
    written = pipeline.write_runtime(tmp_path / "runtime.yaml")
    assert written.read_text() == RUNTIME_FILE.read_text(), "run `make compile`"


def test_the_runtime_passes_the_webhook_and_pod_security_restricted() -> None:
    doc = runtime()
    assert validate_training_runtime(doc) == []
    assert pod_security.document_problems(doc) == []
    (job,) = doc["spec"]["template"]["spec"]["replicatedJobs"]
    labels = job["template"]["metadata"]["labels"]
    assert labels == {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
    (container,) = job["template"]["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "node"  # the only container the trainer fields reach
    # Without an mlPolicy the trainer would ignore resourcesPerNode.
    assert doc["spec"]["mlPolicy"] == {"numNodes": 1}
    # What the node builds TF_CONFIG from, through the downward API.
    refs = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in container["env"]
        if "fieldRef" in e.get("valueFrom", {})
    }
    assert refs == {k: f"metadata.labels['{v}']" for k, v in JOBSET_LABELS.items()}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda j: j.update(replicas=2), "replicas: always must be 1"),
        (
            lambda j: j["template"]["spec"]["template"]["spec"]["containers"][0].update(
                name="trainer"
            ),
            "must contain the required container for the ancestor: trainer",
        ),
        (lambda j: j["template"]["spec"].update(backoffLimits=0), "backoffLimits"),
    ],
    ids=["replicas", "container", "unknown-key"],
)
def test_the_runtime_webhook_rules_are_checked(change: Any, expected: str) -> None:
    doc = training_runtime("textcnn-tensorflow", "img:1")
    change(doc["spec"]["template"]["spec"]["replicatedJobs"][0])
    assert any(expected in p for p in validate_training_runtime(doc)), validate_training_runtime(
        doc
    )


def test_the_runtimes_pod_template_is_held_to_restricted() -> None:
    doc = training_runtime("textcnn-tensorflow", "img:1")
    pod = doc["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    del pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"]
    (problem,) = pod_security.document_problems(doc)
    assert "containers[node].securityContext.allowPrivilegeEscalation" in problem


def test_the_vendored_schemas_are_the_files_named_in_provenance() -> None:
    provenance = (TRAINJOB_SCHEMA.parent.parent / "PROVENANCE.md").read_text()
    for schema in (TRAINJOB_SCHEMA, RUNTIME_SCHEMA):
        assert hashlib.sha256(schema.read_bytes()).hexdigest() in provenance, schema.name


# --- the TrainJob ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["trainjob", "trainjob-gpu"])
def test_the_rendered_trainjob_passes_the_crd_and_the_webhook_on_our_runtime(name: str) -> None:
    params = PipelineParams(dist_training=True, dist_backend="trainjob", workers=3)
    doc = trainjob(params, name)
    assert validate_trainjob(doc, {params.training_runtime: runtime()}) == []
    spec = doc["spec"]
    assert spec["trainer"]["numNodes"] == 3 and spec["activeDeadlineSeconds"] == 7200
    assert {"name": tf_config.NUM_NODES, "value": "3"} in spec["trainer"]["env"]
    assert spec["runtimeRef"] == {"name": "textcnn-tensorflow"}
    template = rendered(params)[name]
    assert template["resource"]["action"] == "create"
    assert template["resource"]["setOwnerReference"] is True


def test_the_project_lint_checks_a_trainjob_against_the_runtime_beside_it(tmp_path: Path) -> None:
    params = PipelineParams(dist_training=True, dist_backend="trainjob")
    doc = trainjob(params)
    patch = doc["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    patch["replicatedJobs"][0]["name"] = "launcher"
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(doc))
    assert lint_paths([tmp_path]) == []  # no runtime among the files: not checked
    (tmp_path / "runtime.yaml").write_text(RUNTIME_FILE.read_text())
    (problem,) = lint_paths([tmp_path])
    assert "must not have replicated job that doesn't exist in the runtime" in problem


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["spec"]["runtimePatches"][0].update(manager="textcnn"),
            "must be a domain-prefixed path",
        ),
        (
            lambda d: d["spec"]["runtimePatches"].append(
                copy.deepcopy(d["spec"]["runtimePatches"][0])
            ),
            "Duplicate value",
        ),
        (
            lambda d: d["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
                "replicatedJobs"
            ][0]["template"]["spec"]["template"]["spec"]["containers"][0].update(
                env=[{"name": "A", "value": "1"}]
            ),
            "must not have envs for the dataset-initializer, model-initializer, node containers",
        ),
        (
            lambda d: d["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][
                "replicatedJobs"
            ][0]["template"]["spec"]["template"]["spec"]["containers"][0].update(name="sidecar"),
            "must not have container that doesn't exist in the runtime job node",
        ),
        (
            lambda d: d["spec"]["runtimeRef"].update(name="torch-distributed"),
            "specified clusterTrainingRuntime must be created before the TrainJob is created",
        ),
        (
            lambda d: d["spec"]["runtimeRef"].update(kind="TFJob"),
            "unsupported runtime: TFJob.trainer.kubeflow.org",
        ),
        (lambda d: d["metadata"].update(generateName="Textcnn-"), "not a DNS-1035 label"),
        (
            # What `{{workflow.name}}-trainjob-` would give a lightweight cron's run.
            lambda d: d["metadata"].update(
                generateName="textcnn-retrain-lightweight-1796683370-trainjob-"
            ),
            "pod names generated for this JobSet will exceed 63 characters",
        ),
        (lambda d: d["spec"]["trainer"].update(numNodes="2"), "numNodes"),
        (lambda d: d["spec"].update(runPolicy={}), "runPolicy"),
    ],
    ids=[
        "manager",
        "duplicate",
        "env",
        "container",
        "missing-runtime",
        "kind",
        "name",
        "pod-names",
        "type",
        "unknown-key",
    ],
)
def test_the_trainjob_webhook_rules_are_checked(change: Any, expected: str) -> None:
    doc = trainjob(PipelineParams(dist_training=True, dist_backend="trainjob"))
    change(doc)
    problems = validate_trainjob(doc, {"textcnn-tensorflow": runtime()})
    assert any(expected in p for p in problems), problems


def test_a_runtime_patch_may_not_weaken_the_runtimes_pod_security() -> None:
    doc = trainjob(PipelineParams(dist_training=True, dist_backend="trainjob"))
    assert pod_security.document_problems(doc) == []
    patch = doc["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    pod = patch["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    pod["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": True}
    problems = pod_security.document_problems(doc)
    assert len(problems) == 2, problems
    assert "volumes[host]: hostPath volumes are not allowed" in problems[0]
    assert "containers[node].securityContext: must not be privileged or escalate" in problems[1]


def test_gpu_scheduling_reaches_the_trainjob_only_with_gpu() -> None:
    params = PipelineParams(gpu_support=True, gpu_count=2, gpu_image="gpu:1")
    cpu, gpu = trainjob(params, "trainjob"), trainjob(params, "trainjob-gpu")
    assert gpu["spec"]["trainer"]["image"] == "gpu:1"
    assert gpu["spec"]["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "2"
    patch = gpu["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]
    pod = patch["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert [m["mountPath"] for m in pod["containers"][0]["volumeMounts"]] == [
        "/mnt/workdir",
        "/dev/shm",
    ]
    assert not re.search("nvidia|nodeSelector|tolerations|dshm|gpu:1", json.dumps(cpu))


@pytest.mark.parametrize("backend", ["tfjob", "trainjob"])
@pytest.mark.parametrize("gpu", [False, True])
def test_only_the_chosen_backend_reaches_the_cluster(backend: str, gpu: bool) -> None:
    """Of the four distributed jobs, the one task that runs is the chosen backend's, and
    no other resource the run creates names the other backend's API group."""
    params = PipelineParams(dist_training=True, dist_backend=backend, gpu_support=gpu)
    wt = pipeline.render(params)[0]
    phases = simulate(wt, params.to_strings())
    job = f"{backend}-gpu" if gpu else backend
    assert [j for j in JOBS if phases[j] == "Succeeded"] == [job]
    names = rendered(params)
    tasks = {t["name"]: t["template"] for t in names["pipeline"]["dag"]["tasks"]}
    sent = [
        json.dumps(names[tasks[t]]["resource"]["manifest"])
        for t, phase in phases.items()
        if phase == "Succeeded" and "resource" in names[tasks[t]]
    ]
    other = "kubeflow.org/v1\\n" if backend == "trainjob" else "trainer.kubeflow.org"
    mine = "trainer.kubeflow.org" if backend == "trainjob" else "kubeflow.org/v1\\n"
    assert not any(other in s for s in sent)
    assert sum(mine in s for s in sent) == 1
    waits = [t for t in phases if t.startswith("wait-")]
    assert [t for t in waits if phases[t] == "Succeeded"] == [f"wait-{job}"]


# --- TF_CONFIG from the JobSet's names --------------------------------------------------


def pod_env(jobset: str, index: int, nodes: int) -> dict[str, str]:
    """The environment node `index` of a JobSet's trainer Job sees: the runtime's env with
    its downward-API references resolved from the labels JobSet puts on the pod
    (jobset_controller.go, `labelAndAnnotateObject`), the host name the Job controller gives
    an Indexed Job's pod (`<job>-<index>`), JOB_COMPLETION_INDEX, and the TrainJob's env."""
    labels = {
        "jobset.sigs.k8s.io/jobset-name": jobset,
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "jobset.sigs.k8s.io/job-index": "0",
        "batch.kubernetes.io/job-completion-index": str(index),
    }
    (job,) = runtime()["spec"]["template"]["spec"]["replicatedJobs"]
    (container,) = job["template"]["spec"]["template"]["spec"]["containers"]
    env = {}
    for e in container["env"]:
        ref = e.get("valueFrom", {}).get("fieldRef")
        if ref is not None:
            key = re.fullmatch(r"metadata\.labels\['(.+)'\]", ref["fieldPath"])
            assert key is not None
            env[e["name"]] = labels[key.group(1)]
    return env | {
        "HOSTNAME": f"{jobset}-node-0-{index}",
        "JOB_COMPLETION_INDEX": str(index),
        tf_config.NUM_NODES: str(nodes),
    }


def test_each_node_builds_the_same_cluster_from_the_jobset_names() -> None:
    name = "textcnn-pipeline-x1b2c-trainjob-q8v4m"
    configs = [json.loads(tf_config.jobset_tf_config(pod_env(name, i, 3))) for i in range(3)]
    workers = [f"{name}-node-0-{i}.{name}:2222" for i in range(3)]
    for index, config in enumerate(configs):
        assert config == {
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index},
        }
    roles = [tf_config.parse_tf_config(json.dumps(c)) for c in configs]
    assert [r.is_chief for r in roles] == [True, False, False]  # the pod of index 0
    assert {r.num_workers for r in roles} == {3}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"JOB_COMPLETION_INDEX": "3"}, "is not a node of 3"),
        ({"JOB_COMPLETION_INDEX": "0"}, "this pod is not the JobSet's node"),  # host says 1
        ({"HOSTNAME": "other-node-0-1"}, "this pod is not the JobSet's node"),
        ({"JOBSET_NAME": "other"}, "this pod is not the JobSet's node"),
        ({"JOBSET_JOB_INDEX": "1"}, "this pod is not the JobSet's node"),
        ({"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX='x': expected a number"),
        ({"JOBSET_NAME": ""}, "is this a TrainJob node?"),
        ({"TRAINJOB_NUM_NODES": "²"}, "expected a number from 0 to 9999"),
        ({"TRAINJOB_NUM_NODES": "100000"}, "expected a number from 0 to 9999"),
        ({tf_config.PEER_ADDRESSES: "{bad"}, "LOCAL_CLUSTER_ADDRESSES: not valid JSON"),
        ({tf_config.PEER_ADDRESSES: "[1]"}, "expected {host: ip:port, ...}"),
        ({tf_config.PEER_ADDRESSES: '{"tj-node-0-0.tj": 5}'}, "expected {host: ip:port, ...}"),
    ],
)
def test_a_wrong_index_or_name_is_an_input_error(change: dict[str, str], words: str) -> None:
    env = pod_env("tj", 1, 3) | change
    with pytest.raises(InputError, match=re.escape(words)):
        tf_config.jobset_tf_config(env)


def test_the_kube_side_names_the_variables_the_node_reads() -> None:
    """workflows.kube may not import textcnn (tests/test_layout.py): the names are agreed."""
    assert (addresses.LOCAL_ADDRESSES_ENV, addresses.HOSTNAME_ENV) == (
        tf_config.PEER_ADDRESSES,
        tf_config.HOSTNAME,
    )
    assert addresses.COMPLETION_INDEX_ENV == tf_config.COMPLETION_INDEX


def test_the_local_cluster_resolves_names_to_loopback_ports() -> None:
    env = pod_env("tj", 1, 2) | {
        tf_config.PEER_ADDRESSES: json.dumps(
            {"tj-node-0-0.tj": "127.0.0.1:4001", "tj-node-0-1.tj": "127.0.0.1:4002"}
        )
    }
    config = json.loads(tf_config.jobset_tf_config(env))
    assert config["cluster"]["worker"] == ["127.0.0.1:4001", "127.0.0.1:4002"]


# --- the wait step's verdicts -----------------------------------------------------------


def obj(*conditions: dict[str, str], jobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)} if conditions else {}
    if jobs is not None:
        status["jobsStatus"] = jobs
    return {"metadata": {"name": "tj", "namespace": "ns"}, "status": status}


def condition(kind: str, reason: str, message: str, status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("doc", "state", "words"),
    [
        (obj(), "waiting", "has no JobSet yet"),
        (
            obj(jobs=[{"name": "node", "active": 1, "ready": 1}]),
            "waiting",
            "is running [jobs: node: 1 active, 1 ready]",
        ),
        (obj(condition("Suspended", "Suspended", "TrainJob is suspended")), "waiting", "suspended"),
        (
            obj(condition("Complete", "AllJobsCompleted", "jobset completed successfully")),
            "succeeded",
            "TrainJob ns/tj: jobset completed successfully (AllJobsCompleted)",
        ),
        (
            obj(
                condition(
                    "Failed",
                    "ReachedMaxRestarts",
                    "jobset failed due to reaching max number of restarts (first failed "
                    "job: tj-node-0)",
                ),
                jobs=[{"name": "node", "failed": 1}],
            ),
            "failed",
            "reaching max number of restarts (first failed job: tj-node-0) "
            "(ReachedMaxRestarts) [jobs: node: 1 failed]",
        ),
        (
            obj(condition("Failed", "DeadlineExceeded", "TrainJob exceeded its active deadline")),
            "failed",
            "TrainJob exceeded its active deadline (DeadlineExceeded)",
        ),
        (
            obj(condition("Complete", "AllJobsCompleted", "done", status="False")),
            "waiting",
            "has no JobSet yet",
        ),
    ],
    ids=["new", "running", "suspended", "complete", "failed", "deadline", "false"],
)
def test_the_wait_follows_the_trainers_conditions(doc: Any, state: str, words: str) -> None:
    verdict = judge(doc)
    assert verdict.state == state
    assert words in verdict.message


CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


@pytest.mark.skipif(not CHECKOV.exists(), reason="make test creates .venv-checkov")
def test_checkov_passes_the_runtimes_pod_template(tmp_path: Path) -> None:
    """checkov knows no ClusterTrainingRuntime, so its node pod template is checked as the
    Job JobSet makes of it, with the runtime's own suppressions (each with its reason)."""
    doc = runtime()
    (job,) = doc["spec"]["template"]["spec"]["replicatedJobs"]
    as_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{doc['metadata']['name']}-node-0",
            "namespace": "textcnn",
            "annotations": doc["metadata"]["annotations"],
        },
        "spec": job["template"]["spec"],
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(as_job))
    command = [str(CHECKOV), "--directory", str(tmp_path), "--framework", "kubernetes"]
    found = subprocess.run(
        [*command, "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(found.stdout)
    failed = [c["check_id"] for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["passed"] > 50
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped == {s.split("=")[0] for s in CHECKOV_SKIPS}
