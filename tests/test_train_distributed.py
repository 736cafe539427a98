"""Distributed training: TF_CONFIG, sharding, the multi-worker custom loop on real local
processes, a TFJob through the local cluster (the operator's TF_CONFIG on loopback, the
shared volume, its verdicts read by the real wait-tfjob), the Role enforced, and the whole
pipeline's TFJob branch on a small slice."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import Inputs, write_inputs

from textcnn.cluster.tfjob import judge
from textcnn.errors import InputError
from textcnn.export import load_serving_model
from textcnn.model import CNN_FILES
from textcnn.steps import export, fit_ngrams, train
from textcnn.steps.train_distributed import parse_tf_config, per_replica_batches
from workflows.dag import pipeline, templates
from workflows.dag.tfjob import build_tfjob, manifest_yaml
from workflows.dag.workload import Workload
from workflows.errors import WorkflowError
from workflows.hooks import RBAC_FILE, project_cluster, project_hooks
from workflows.kube.objects import KINDS
from workflows.local.execute import run_workflow
from workflows.local.result import RunResult

REPO = Path(__file__).resolve().parents[1]


def cluster(chief: int, workers: int) -> dict[str, list[str]]:
    out = {
        "chief": [f"host-c{i}:2222" for i in range(chief)],
        "worker": [f"host-w{i}:2222" for i in range(workers)],
    }
    return {k: v for k, v in out.items() if v}


def tf_config(task_type: str, index: int, chief: int = 1, workers: int = 2) -> str:
    return json.dumps(
        {
            "cluster": cluster(chief, workers),
            "task": {"type": task_type, "index": index},
            "environment": "cloud",
        }
    )


# --- TF_CONFIG ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "is_chief", "workers"),
    [
        (tf_config("chief", 0), True, 3),
        (tf_config("worker", 0), False, 3),
        (tf_config("worker", 1), False, 3),
        (tf_config("worker", 0, chief=0), True, 2),  # no chief: worker 0 writes the model
        (tf_config("worker", 1, chief=0), False, 2),
        (None, True, 0),  # no TF_CONFIG: a cluster of one
    ],
)
def test_role_from_tf_config(config: str | None, is_chief: bool, workers: int) -> None:
    role = parse_tf_config(config)
    assert role.is_chief is is_chief
    assert role.num_workers == workers


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"cluster": cluster(1, 1)}), 'expected {"cluster"'),
        (
            json.dumps(
                {
                    "cluster": {"ps": ["h:1"], "worker": ["h:2"]},
                    "task": {"type": "worker", "index": 0},
                }
            ),
            "task type 'ps' is not supported",
        ),
        (tf_config("worker", 2), "is not in the cluster"),
        (tf_config("evaluator", 0), "is not in the cluster"),
        (
            json.dumps(
                {"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}
            ),
            "at most one chief",
        ),
        (
            json.dumps(
                {"cluster": {"worker": ["no-port"]}, "task": {"type": "worker", "index": 0}}
            ),
            "host:port",
        ),
    ],
)
def test_bad_tf_config_is_an_input_error_naming_it(config: str, words: str) -> None:
    with pytest.raises(InputError, match="^TF_CONFIG: ") as info:
        parse_tf_config(config)
    assert words in str(info.value)


# --- the global batch -----------------------------------------------------------------

# Three replicas in one process (logical CPUs, before TensorFlow starts): the distributed
# dataset's per-replica slices of each batch, against the single pod's batches.
SPLIT_BATCHES = """
import json, pathlib, sys, tempfile
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 3)
from textcnn import prepared
from textcnn.training import make_dataset
from textcnn.steps.train_distributed import distributed_dataset
batch = int(sys.argv[1])
x = np.arange(103, dtype="int32").reshape(-1, 1); y = np.zeros(103, dtype="int32")
folder = pathlib.Path(tempfile.mkdtemp())
prepared.SHARD_ROWS = 40  # three shards, streamed one after the other
prepared.write_shards(folder, "train", x, y)
data = prepared.Split(tuple(prepared.shard_files(folder, "train")), 103)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1", "/cpu:2"])
split = [[[int(v) for v in part.numpy()[:, 0]] for part in strategy.experimental_local_results(xb)]
         for xb, _ in distributed_dataset(strategy, data, 1, batch, shuffle_seed=5)]
single = [[int(v) for v in xb.numpy()[:, 0]]
          for xb, _ in make_dataset(data, 1, batch, shuffle_seed=5)]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "shards": len(data.files),
                  "split": split, "single": single}))
"""


@pytest.mark.parametrize("batch_size", [48, 50])
def test_batch_size_is_the_global_batch_split_across_replicas(batch_size: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SPLIT_BATCHES, str(batch_size)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=True,
    )
    got = json.loads(proc.stdout.splitlines()[-1])
    assert (got["replicas"], got["shards"]) == (3, 3)
    # Every row once per epoch, shuffled across the shards.
    rows = sum(got["single"], [])
    assert sorted(rows) == list(range(103)) and rows != sorted(rows)
    expected = per_replica_batches(batch_size, 3)
    assert sum(expected) == batch_size and max(expected) - min(expected) <= 1
    # Every step is one of the single pod's batches, cut into the replicas' slices.
    assert [sum(parts, []) for parts in got["split"]] == got["single"]
    full = [parts for parts in got["split"] if sum(map(len, parts)) == batch_size]
    assert len(full) == 103 // batch_size
    assert all([len(p) for p in parts] == expected for parts in full)


def test_per_replica_batches_add_up_to_the_batch_size() -> None:
    for batch_size in (1, 2, 50, 64, 101):
        for replicas in (1, 2, 3, 8):
            parts = per_replica_batches(batch_size, replicas)
            assert len(parts) == replicas and sum(parts) == batch_size
            assert max(parts) - min(parts) <= 1


# --- the custom loop on two real processes ------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def train_options(inputs: Inputs, out: Path, batch_size: int) -> dict[str, Any]:
    return {
        "prepared_dir": str(inputs.prepared),
        "embeddings_dir": str(inputs.embeddings),
        "model_spec_dir": str(inputs.model_spec),
        "epochs": 5,
        "batch_size": batch_size,
        "patience": 2,
        "seed": 7,
        "cnn_dir": str(out / "cnn"),
    }


EPOCH_LINE = re.compile(r"^Epoch \d+/\d+ - .*$", re.MULTILINE)


@pytest.mark.slow
def test_two_workers_train_like_one_pod(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path / "in", n_train=301, n_val=101)  # shards of 151 and 150
    ports = free_ports(2)
    addresses = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"]}
    procs, scratch = [], tmp_path / "worker-tmp"
    scratch.mkdir()
    for task_type, out in (("chief", tmp_path / "chief"), ("worker", tmp_path / "worker")):
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TMPDIR": str(scratch),
            "TF_CONFIG": json.dumps(
                {"cluster": addresses, "task": {"type": task_type, "index": 0}}
            ),
        }
        options = train_options(inputs, out, batch_size=32)  # the global batch: 16 each
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "textcnn",
                    "train-distributed",
                    *(f"--{k}={v}" for k, v in options.items()),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs

    # Losses and accuracies are summed over both workers: the same lines on each.
    chief_epochs, worker_epochs = (EPOCH_LINE.findall(log) for log in logs)
    assert chief_epochs == worker_epochs and len(chief_epochs) >= 2
    # Only the chief's outputs remain; the worker's went to a deleted folder.
    assert not (tmp_path / "worker").exists() and list(scratch.iterdir()) == []
    # The replicas trained the CNN and nothing else: the wide branch is fit-ngrams' work,
    # done once beside the TFJob.
    cnn = tmp_path / "chief" / "cnn"
    assert sorted(p.name for p in cnn.iterdir()) == sorted(CNN_FILES)
    assert not any("n-gram" in log for log in logs)
    training = json.loads((cnn / "training.json").read_text())
    assert training["strategy"] == "MultiWorkerMirroredStrategy"
    assert training["replicas"] == 2
    history = json.loads((cnn / "history.json").read_text())
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert training["best_epoch"] == int(np.argmin(history["val_loss"])) + 1

    # It learns as one pod does with the same global batch, and the export serves.
    single = train.run(**train_options(inputs, tmp_path / "single", batch_size=32))
    distributed = history["val_accuracy"][training["best_epoch"] - 1]
    assert single["val_accuracy"] > 0.9 and distributed > 0.9
    assert abs(distributed - single["val_accuracy"]) <= 0.05
    # Assembled with the wide branch, the chief's CNN serves.
    fit_ngrams.run(str(inputs.prepared), str(inputs.model_spec), str(tmp_path / "ngrams"))
    export.run(
        cnn_dir=str(cnn),
        ngrams_dir=str(tmp_path / "ngrams"),
        prepared_dir=str(inputs.prepared),
        model_spec_dir=str(inputs.model_spec),
        model_dir=str(tmp_path / "model"),
        training_dir=str(tmp_path / "training"),
    )
    predict = load_serving_model(tmp_path / "model" / "1")
    texts = ["the movie was great", "it was a very dull plot", "a superb scene"]
    assert predict(texts)["label"].tolist() == ["fresh", "rotten", "fresh"]


# --- the TFJob through the local cluster, with replicas that need no TensorFlow --------------

# Each replica writes its TF_CONFIG on the shared volume (argv[1]); worker 1 exits with
# argv[2]; the chief waits until every replica has written (the operator stops the workers
# once the chief is done: cleanPodPolicy Running), then sleeps argv[3] seconds.
REPLICA = (
    "import json, os, pathlib, sys, time\n"
    "config = json.loads(os.environ['TF_CONFIG']); task = config['task']\n"
    "folder = pathlib.Path(sys.argv[1]); folder.mkdir(parents=True, exist_ok=True)\n"
    "(folder / f\"{task['type']}-{task['index']}.json\").write_text(os.environ['TF_CONFIG'])\n"
    "replicas = sum(len(a) for a in config['cluster'].values())\n"
    "deadline = time.monotonic() + 60\n"
    "while task['type'] == 'chief' and len(list(folder.glob('*.json'))) < replicas:\n"
    "    assert time.monotonic() < deadline, 'not every replica wrote its TF_CONFIG'\n"
    "    time.sleep(0.05)\n"
    "if task['type'] == 'chief': time.sleep(float(sys.argv[3]))\n"
    "sys.exit(int(sys.argv[2]) if task == {'type': 'worker', 'index': 1} else 0)\n"
)
# Count the files under argv[1] into the output parameter file argv[2].
COUNT = (
    "import pathlib, sys\n"
    "out = pathlib.Path(sys.argv[2]); out.parent.mkdir(parents=True, exist_ok=True)\n"
    "out.write_text(str(len(list(pathlib.Path(sys.argv[1]).iterdir()))))"
)


def tfjob_workflow(
    workers: int, worker_exit: int = 0, chief_sleep: float = 0, deadline: int = 600
) -> dict[str, Any]:
    """claim (the pipeline's own workdir-claim template) -> stage (touches the volume) ->
    tfjob -> wait-tfjob -> collect (counts the files), each mounting the claim at
    /mnt/workdir, as the pipeline does."""
    folder = "/mnt/workdir/{{workflow.name}}/replicas"
    manifest = manifest_yaml(
        build_tfjob(
            Workload(
                image="python:3.11",
                command=["python", "-c", REPLICA],
                args=[folder, str(worker_exit), str(chief_sleep)],
                cpu="100m",
                memory="64Mi",
                claim_name="{{inputs.parameters.claim}}",
                mount_path="/mnt/workdir",
                active_deadline_seconds=deadline,
                workflow_name="{{workflow.name}}",
            ),
            generate_name="{{workflow.name}}-tfjob-",
            workers="{{workflow.parameters.workers}}",
            backoff_limit=0,
        )
    )
    mount = [{"name": "workdir", "mountPath": "/mnt/workdir"}]
    container = {"image": "python:3.11", "command": ["python", "-c"], "volumeMounts": mount}
    claim = {"inputs": {"parameters": [{"name": "claim"}]}, "volumes": [templates.workdir_volume()]}
    (workdir_claim,) = [
        t for t in pipeline.render()[0]["spec"]["templates"] if t["name"] == "workdir-claim"
    ]
    steps = [
        workdir_claim,
        {
            "name": "stage",
            **claim,
            "container": {
                **container,
                "args": [
                    "import os, sys; os.makedirs(sys.argv[1])",
                    "/mnt/workdir/{{workflow.name}}",
                ],
            },
        },
        {
            "name": "tfjob",
            "inputs": claim["inputs"],
            "resource": {"action": "create", "setOwnerReference": True, "manifest": manifest},
            "outputs": {
                "parameters": [{"name": "name", "valueFrom": {"jsonPath": "{.metadata.name}"}}]
            },
        },
        {
            "name": "wait-tfjob",
            "inputs": {"parameters": [{"name": "name"}]},
            "container": {
                "image": "steps",
                "command": ["python", "-m", "textcnn", "wait-tfjob"],
                "args": [
                    "--name={{inputs.parameters.name}}",
                    "--namespace={{workflow.namespace}}",
                    "--timeout_s=30",
                    "--poll_s=0.1",
                ],
            },
        },
        {
            "name": "collect",
            **claim,
            "container": {**container, "args": [COUNT, folder, "/tmp/outputs/count"]},
            "outputs": {
                "parameters": [{"name": "count", "valueFrom": {"path": "/tmp/outputs/count"}}]
            },
        },
    ]
    use_claim = {
        "parameters": [
            {"name": "claim", "value": "{{tasks.workdir-claim.outputs.parameters.claim}}"}
        ]
    }
    tasks = [
        {"name": "workdir-claim", "template": "workdir-claim"},
        {"name": "stage", "template": "stage", "depends": "workdir-claim", "arguments": use_claim},
        {"name": "tfjob", "template": "tfjob", "depends": "stage", "arguments": use_claim},
        {
            "name": "wait-tfjob",
            "template": "wait-tfjob",
            "depends": "tfjob.Succeeded",
            "arguments": {
                "parameters": [{"name": "name", "value": "{{tasks.tfjob.outputs.parameters.name}}"}]
            },
        },
        {
            "name": "collect",
            "template": "collect",
            "depends": "wait-tfjob.Succeeded",
            "arguments": use_claim,
        },
    ]
    parameters = {
        "workers": str(workers),
        "pvc_size": "1Gi",
        "pvc_storage_class": "rwx",
        "retry_limit": "0",
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "dist"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": k, "value": v} for k, v in parameters.items()]},
            "templates": [{"name": "main", "dag": {"tasks": tasks}}, *steps],
        },
    }


def run_local(
    template: dict[str, Any], out: Path, rbac_file: Path = RBAC_FILE
) -> tuple[RunResult, list[str], list[dict[str, Any]]]:
    """Run `template` as `python -m workflows run` does, against a local cluster; the
    result, its progress lines, and the TFJobs the cluster held at the end."""
    lines: list[str] = []
    with project_cluster(out, {}, rbac_file) as cluster:
        result = run_workflow(
            template,
            {},
            out,
            hooks=project_hooks(),
            cluster=cluster.access,
            workflow_name="wf-d",
            on_progress=lines.append,
        )
        return result, lines, cluster.objects.list_of(TFJOB)


def test_the_operator_runs_chief_and_workers_with_tf_config_on_the_shared_volume(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    result, lines, (job,) = run_local(tfjob_workflow(workers=3), out)
    assert result.status == "Succeeded", lines
    # Every task saw the same claim folder: the replicas wrote 4 files, collect counted them.
    assert result.steps["collect"]["outputs"] == {"count": "4"}
    claim = result.steps["workdir-claim"]["outputs"]["claim"]
    assert re.fullmatch(r"wf-d-workdir-[a-z0-9]{5}", claim)
    folder = out / "volumes" / claim / "wf-d" / "replicas"
    configs = {p.stem: json.loads(p.read_text()) for p in folder.iterdir()}
    assert set(configs) == {"chief-0", "worker-0", "worker-1", "worker-2"}
    clusters = [c["cluster"] for c in configs.values()]
    assert all(c == clusters[0] for c in clusters)
    addresses = clusters[0]["chief"] + clusters[0]["worker"]
    assert len(clusters[0]["chief"]) == 1 and len(clusters[0]["worker"]) == 3
    assert all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addresses)
    assert len(set(addresses)) == 4  # one port each
    assert {(c["task"]["type"], c["task"]["index"]) for c in configs.values()} == {
        ("chief", 0),
        ("worker", 0),
        ("worker", 1),
        ("worker", 2),
    }
    # One log per replica; the job holds the operator's verdict, which wait-tfjob (a
    # process, like any step) read through the API.
    name = result.steps["tfjob"]["outputs"]["name"]
    assert re.fullmatch(r"wf-d-tfjob-[a-z0-9]{5}", name) and job["metadata"]["name"] == name
    for replica in configs:
        assert (out / "logs" / f"{name}-{replica}.log").exists()
    assert judge(job).state == "succeeded"
    assert job["status"]["replicaStatuses"]["Chief"]["succeeded"] == 1
    wait = result.steps["wait-tfjob"]
    assert wait["exit_code"] == 0 and wait["max_rss_mib"] > 0  # a process, as in a pod
    assert "successfully completed" in (out / "logs" / "wait-tfjob.log").read_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            # restartPolicy OnFailure: the kubelet restarts the worker, which the operator
            # counts against backoffLimit (0 here).
            {"worker_exit": 3, "chief_sleep": 60},
            r"Job wf-d-tfjob-\w{5} has failed because it has reached the specified backoff limit",
        ),
        (
            {"chief_sleep": 60, "deadline": 1},
            r"Job wf-d-tfjob-\w{5} has failed because it was active longer than specified deadline",
        ),
    ],
)
def test_a_failed_job_fails_the_wait_with_the_operators_message(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    out = tmp_path / "run"
    result, lines, (job,) = run_local(tfjob_workflow(workers=2, **kwargs), out)
    assert result.status == "Failed"
    # Creating the job worked; the wait step judged it failed, and collect never ran.
    assert [result.steps[t]["status"] for t in ("tfjob", "wait-tfjob", "collect")] == [
        "Succeeded",
        "Failed",
        "Omitted",
    ]
    assert re.search(message, (out / "logs" / "wait-tfjob.log").read_text()), lines
    assert judge(job).state == "failed"
    assert result.steps["wait-tfjob"]["seconds"] < 30  # the verdict, not the wait's timeout


def test_a_manifest_the_webhook_would_reject_fails_the_create(tmp_path: Path) -> None:
    template = tfjob_workflow(workers=1)
    (tfjob,) = [t for t in template["spec"]["templates"] if t["name"] == "tfjob"]
    tfjob["resource"]["manifest"] = tfjob["resource"]["manifest"].replace(
        "name: tensorflow", "name: trainer"
    )
    result, _, jobs = run_local(template, tmp_path / "run")
    assert result.steps["tfjob"]["status"] == "Failed"
    assert "needs a container named 'tensorflow'" in result.steps["tfjob"]["message"]
    assert jobs == []


@pytest.mark.parametrize(
    ("verbs", "refused"),
    [
        ([], "create"),  # the rule gone: the executor cannot create the TFJob
        (["create"], "get"),  # created, but its generated name cannot be read back
    ],
)
def test_the_role_is_enforced_a_rule_less_fails_the_run_with_the_apis_403(
    tmp_path: Path, verbs: list[str], refused: str
) -> None:
    """manifests/rbac.yaml, which workflows.checks.rbac derives from the code, is what
    the local API enforces: with one verb fewer the run fails on that request."""
    docs = list(yaml.safe_load_all(RBAC_FILE.read_text()))
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (rule,) = [r for r in role["rules"] if r["resources"] == ["tfjobs"]]
    if verbs:
        rule["verbs"] = verbs
    else:
        role["rules"].remove(rule)
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(yaml.safe_dump_all(docs))
    result, lines, _ = run_local(tfjob_workflow(workers=1), tmp_path / "run", rbac)
    assert result.status == "Failed"
    assert result.steps["tfjob"]["status"] == "Failed"
    assert (
        'is forbidden: User "system:serviceaccount:default:textcnn-workflow" cannot '
        f'{refused} resource "tfjobs" in API group "kubeflow.org" in the namespace "default"'
    ) in result.steps["tfjob"]["message"], lines


TFJOB = next(k for k in KINDS if k.kind == "TFJob")


# --- the local runner's volumes ------------------------------------------------------------

WRITE = (
    "import pathlib, sys\n"
    "for path, text in zip(sys.argv[1::2], sys.argv[2::2]):\n"
    "    path = pathlib.Path(path); path.parent.mkdir(parents=True, exist_ok=True)\n"
    "    path.write_text(text)"
)


def volume_workflow(
    volumes: list[dict[str, Any]], mounts: list[dict[str, str]], args: list[str]
) -> dict[str, Any]:
    container = {"image": "python:3.11", "command": ["python", "-c"], "volumeMounts": mounts}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "vols"},
        "spec": {
            "entrypoint": "main",
            "volumes": volumes,
            "templates": [
                {
                    "name": "main",
                    "dag": {
                        "tasks": [
                            {"name": "write", "template": "write"},
                            {"name": "read", "template": "read", "depends": "write"},
                        ]
                    },
                },
                {
                    "name": "write",
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                    "container": {
                        **container,
                        "args": [WRITE, *args],
                        "volumeMounts": [*mounts, {"name": "scratch", "mountPath": "/scratch"}],
                    },
                },
                {
                    "name": "read",
                    "container": {**container, "args": [COUNT, "/data/sub", "/tmp/outputs/n"]},
                    "outputs": {
                        "parameters": [{"name": "n", "valueFrom": {"path": "/tmp/outputs/n"}}]
                    },
                },
            ],
        },
    }


def test_an_existing_claim_is_one_folder_for_every_task(tmp_path: Path) -> None:
    template = volume_workflow(
        [{"name": "shared", "persistentVolumeClaim": {"claimName": "team-rwx"}}],
        [{"name": "shared", "mountPath": "/data"}],
        ["/data/sub/a", "A", "/data/sub/b", "B", "/scratch/c", "C"],
    )
    result, lines, _ = run_local(template, tmp_path / "run")
    assert result.status == "Succeeded", lines
    assert result.steps["read"]["outputs"] == {"n": "2"}
    assert (tmp_path / "run" / "volumes" / "team-rwx" / "sub" / "b").read_text() == "B"
    # An emptyDir belongs to its pod.
    assert (tmp_path / "run" / "pods" / "write" / "scratch" / "c").read_text() == "C"


@pytest.mark.parametrize(
    ("volumes", "expected"),
    [
        ([], "volume mount 'shared' names no volume"),
        (
            [{"name": "shared", "configMap": {"name": "cm"}}],
            "volume 'shared': the local runner runs persistentVolumeClaim and emptyDir "
            "volumes only",
        ),
    ],
)
def test_volumes_the_runner_cannot_provide_are_rejected_up_front(
    tmp_path: Path, volumes: list[dict[str, Any]], expected: str
) -> None:
    template = volume_workflow(volumes, [{"name": "shared", "mountPath": "/data"}], [])
    with pytest.raises(WorkflowError, match=re.escape(expected)):
        run_local(template, tmp_path / "run")
    assert not (tmp_path / "run" / "logs").exists()


# --- the pipeline's TFJob branch, locally, on a slice ---------------------------------------


@pytest.mark.slow
def test_pipeline_trains_on_a_local_two_worker_tfjob(tmp_path: Path) -> None:
    folder = tmp_path / "slice"
    folder.mkdir()
    for name, rows in (("train", 600), ("test", 200)):
        df = pd.read_csv(REPO / "data" / "rt" / f"{name}.csv")
        df.groupby("label").head(rows // 2).to_csv(folder / f"{name}.csv", index=False)
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflows",
            "run",
            "--output_dir",
            str(out),
            "--dist_training",
            "yes",
            "--workers",
            "2",
            "--train_data_path",
            str(folder / "train.csv"),
            "--test_data_path",
            str(folder / "test.csv"),
            "--epochs",
            "2",
            "--num_filters",
            "8",
            "--embbeding_dim",
            "16",
            "--filter_sizes",
            "3,4",
            "--patience",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads((out / "run.json").read_text())
    statuses = {name: step["status"] for name, step in run["steps"].items()}
    assert [
        statuses[t]
        for t in (
            "workdir-claim",
            "stage-data",
            "tfjob",
            "wait-tfjob",
            "collect-model",
            "fit-ngrams",
            "export",
            "evaluate",
            "log-training-metadata",
        )
    ] == ["Succeeded"] * 9
    assert [statuses[t] for t in ("train", "train-gpu", "tfjob-gpu", "wait-tfjob-gpu")] == [
        "Skipped",
        "Skipped",
        "Skipped",
        "Omitted",
    ]
    # A chief and two workers, each with its own log and the whole cluster in TF_CONFIG.
    job = run["steps"]["tfjob"]["outputs"]["name"]
    logs = sorted(p.name for p in (out / "logs").glob(f"{job}-*.log"))
    assert logs == [f"{job}-{r}.log" for r in ("chief-0", "worker-0", "worker-1")]
    for log in logs:
        text = (out / "logs" / log).read_text()
        assert "3 replicas in sync" in text
        # No replica fits the wide branch: fit-ngrams did, once, beside the TFJob.
        assert "n-gram" not in text
    assert "2 n-gram models fitted" in Path(run["steps"]["fit-ngrams"]["log"]).read_text()
    # The published CNN is the chief's, and the rest of the DAG used it as usual.
    # The replicas mounted the claim that the branch's own workdir-claim task created.
    claim_name = run["steps"]["workdir-claim"]["outputs"]["claim"]
    claim = out / "volumes" / claim_name / run["workflow_name"]
    assert not list(claim.glob("data/prepared/*_tokens.txt"))  # the texts stay off the volume
    cnn = Path(run["artifacts"]["cnn"])
    assert sorted(p.name for p in cnn.iterdir()) == sorted(CNN_FILES)
    for name in CNN_FILES:
        assert (cnn / name).read_bytes() == (claim / "cnn" / name).read_bytes()
    training = json.loads(
        next(out.parent.glob("artifacts/cache/*/training/training.json")).read_text()
    )
    assert (training["strategy"], training["replicas"]) == ("MultiWorkerMirroredStrategy", 3)
    assert 0.5 < run["metrics"]["accuracy"] <= 1
