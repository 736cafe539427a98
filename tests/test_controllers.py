"""The local cluster's controllers over the object store (workflows.kube.controllers): the
manager's loop, claims bound to folders, and TFJobs and TrainJobs whose replicas or nodes
run as processes, each driven through the store as the API server would and judged by the
status the upstream controller writes (by the wait steps' own `judge`)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from textcnn.cluster.tfjob import judge
from textcnn.cluster.trainjob import judge as trainjob_judge
from workflows.dag.gpu import GpuScheduling
from workflows.dag.tfjob import build_tfjob
from workflows.dag.trainjob import DEFAULT_RESOURCES, build_trainjob, training_runtime
from workflows.dag.workload import Workload
from workflows.hooks import images
from workflows.kube.controllers import Claims, Manager, TFJobs, TrainJobs, wait_for
from workflows.kube.controllers.kinds import PVC, TFJOB, TRAINJOB
from workflows.kube.controllers.trainjob_pods import node_job, strategic_merge, upsert
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


# --- TFJobs -------------------------------------------------------------------------------

# Each replica writes its TF_CONFIG into the claim's folder (argv[1]); then a replica named
# in argv[2] ({"worker-1": "exit 3", "chief-0": "sleep 60", ...}) does that; a "flaky" one
# exits 3 on its first run only, and says so on its second (`ME.again`), which an "await
# FILE" one waits for.
REPLICA = """
import json, os, pathlib, sys, time
task = json.loads(os.environ["TF_CONFIG"])["task"]
me = f"{task['type']}-{task['index']}"
folder = pathlib.Path(sys.argv[1])
(folder / f"{me}.json").write_text(os.environ["TF_CONFIG"])
what = json.loads(sys.argv[2]).get(me, "")
if what.startswith("sleep"):
    time.sleep(float(what.split()[1]))
deadline = time.monotonic() + 120
while what.startswith("await") and not (folder / what.split()[1]).exists():
    assert time.monotonic() < deadline, f"{me}: no {what.split()[1]}"
    time.sleep(0.05)
if what == "flaky":
    if not (folder / f"{me}.ran").exists():
        (folder / f"{me}.ran").touch()
        sys.exit(3)
    (folder / f"{me}.again").touch()
sys.exit(int(what.split()[1]) if what.startswith("exit") else 0)
"""
TRAINING = {"chief-0": "sleep 60", "worker-0": "sleep 60", "worker-1": "sleep 60"}


def _tfjob(workers: int, does: dict[str, str], backoff_limit: int = 2, deadline: int = 600) -> dict:
    work = _workload(REPLICA, ["/mnt/workdir/replicas", json.dumps(does)], deadline)
    return build_tfjob(
        work, generate_name="wf-tfjob-", workers=workers, backoff_limit=backoff_limit
    )


def _workload(script: str, args: list[str], deadline: int, **given: Any) -> Workload:
    """`python -c SCRIPT ARGS` on claim `work` at /mnt/workdir."""
    return Workload(
        **{
            "image": "python:3.11",
            "command": ["python", "-c", script],
            "args": args,
            "cpu": "100m",
            "memory": "64Mi",
            "claim_name": "work",
            "mount_path": "/mnt/workdir",
            "active_deadline_seconds": deadline,
            "workflow_name": "wf",
            **given,
        }
    )


def _tfjobs(
    objects: Objects,
    run_dir: Path,
    runs: Callable[[str, list[str], dict[str, str]], tuple[list[str], dict]] = (
        lambda image, command, env: (command, env)
    ),
    env: dict[str, str] | None = None,
) -> TFJobs:
    """The TFJob controller over `objects`, its replicas' logs and pods under `run_dir`;
    `runs` turns a replica's image and command into this machine's (by default, as is)."""
    return TFJobs(
        objects,
        runs,
        run_dir=run_dir,
        logs_dir=run_dir / "logs",
        pods_dir=run_dir / "pods",
        env=env or {},
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[TFJobs, Callable[[dict], dict]]]:
    """A store with claim `work` bound and the TFJob controller running; `run(doc)`
    creates the TFJob and returns it once it has finished."""
    objects = Objects()
    run_dir = tmp_path / "run"

    def runs(image: str, command: list[str], env: dict[str, str]) -> tuple[list[str], dict]:
        images.pull(image, run_dir)
        return images.command_and_env(image, command, env, run_dir)

    tfjobs = _tfjobs(objects, run_dir, runs, env={"PATH": "/usr/bin:/bin"})
    objects.create(PVC, NS, _claim("work"))
    (run_dir / "volumes" / "work" / "replicas").mkdir(parents=True)

    def run(doc: dict, release: str = "") -> dict:
        name = objects.create(TFJOB, NS, doc)["metadata"]["name"]
        if release:  # a replica awaits this file: create it once the job is seen Running
            wait_for(
                objects,
                lambda o: _running(o.get(TFJOB, NS, name)),
                30,
                f"TFJob {name} Running",
            )
            (run_dir / "volumes" / "work" / "replicas" / release).touch()
        return wait_for(
            objects,
            lambda o: _finished(o.get(TFJOB, NS, name)),
            30,
            f"TFJob {name} finished",
        )

    errors: list[str] = []
    with Manager(objects, [Claims(objects, run_dir), tfjobs], errors.append):
        yield tfjobs, run
    assert errors == []


def _finished(doc: dict) -> dict | None:
    return doc if judge(doc).state != "waiting" else None


def _running(doc: dict) -> bool:
    return any(
        c["type"] == "Running" and c["status"] == "True"
        for c in doc.get("status", {}).get("conditions", [])
    )


def _conditions(doc: dict) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c["reason"]) for c in doc["status"]["conditions"]]


def test_a_tfjob_runs_its_replicas_with_the_operators_tf_config(
    cluster: tuple[TFJobs, Callable[[dict], dict]], tmp_path: Path
) -> None:
    _, run = cluster
    # The chief ends once the job has been seen Running: replicas that all end before the
    # controller's first look go from Created to Succeeded, as on a cluster.
    job = run(_tfjob(workers=2, does={"chief-0": "await go"}), release="go")
    name, status = job["metadata"]["name"], job["status"]
    assert judge(job).message == f"TFJob default/{name} successfully completed."
    assert _conditions(job) == [
        ("Created", "True", "TFJobCreated"),
        ("Running", "False", "TFJobRunning"),
        ("Succeeded", "True", "TFJobSucceeded"),
    ]
    assert status["conditions"][0]["message"] == f"TFJob {name} is created."
    assert status["replicaStatuses"] == {"Chief": {"succeeded": 1}, "Worker": {"succeeded": 2}}
    assert status["startTime"] <= status["completionTime"]
    # Every replica saw the same cluster, one loopback port each, and its own task.
    folder = tmp_path / "run" / "volumes" / "work" / "replicas"
    configs = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(configs) == {"chief-0", "worker-0", "worker-1"}
    cluster_spec = configs["chief-0"]["cluster"]
    assert all(c["cluster"] == cluster_spec for c in configs.values())
    assert list(cluster_spec) == ["chief", "worker"] and len(cluster_spec["worker"]) == 2
    addresses = [a for group in cluster_spec.values() for a in group]
    assert len(set(addresses)) == 3 and all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in addresses)
    assert configs["worker-1"]["task"] == {"type": "worker", "index": 1}
    assert configs["worker-1"]["environment"] == "cloud"
    log = tmp_path / "run" / "logs" / f"{name}-worker-1.log"
    assert log.read_text().startswith("TF_CONFIG={")


@pytest.mark.parametrize(
    ("does", "policy", "limit", "deadline", "message", "replicas"),
    [
        # The chief is done while a worker still trains: cleanPodPolicy Running stops it,
        # and the operator counts it as succeeded.
        (
            {"worker-0": "sleep 60"},
            "OnFailure",
            2,
            600,
            r"TFJob default/\S+ successfully completed\.",
            {"Chief": {"succeeded": 1}, "Worker": {"succeeded": 2}},
        ),
        # restartPolicy Never: a failed worker fails the job; the sleeping chief is stopped.
        (
            {**TRAINING, "worker-1": "exit 3"},
            "Never",
            2,
            600,
            r"TFJob default/\S+ has failed because 1 Worker replica\(s\) failed\.",
            {"Chief": {"active": 1}, "Worker": {"active": 1, "failed": 1}},
        ),
        # OnFailure: the kubelet restarts the worker; the first restart passes limit 0.
        (
            {**TRAINING, "worker-1": "exit 3"},
            "OnFailure",
            0,
            600,
            r"Job \S+ has failed because it has reached the specified backoff limit",
            {"Chief": {"active": 1}, "Worker": {"active": 2}},
        ),
        # OnFailure within the limit: the worker fails once, runs again and succeeds.
        (
            # The chief ends once the worker's second run has begun.
            {"chief-0": "await worker-1.again", "worker-1": "flaky"},
            "OnFailure",
            2,
            600,
            r"TFJob default/\S+ successfully completed\.",
            {"Chief": {"succeeded": 1}, "Worker": {"succeeded": 2}},
        ),
        (
            TRAINING,
            "OnFailure",
            2,
            1,
            r"Job \S+ has failed because it was active longer than specified deadline",
            {"Chief": {"active": 1}, "Worker": {"active": 2}},
        ),
    ],
    ids=["chief-first", "never", "backoff-limit", "restarted", "deadline"],
)
def test_the_operators_verdicts(
    cluster: tuple[TFJobs, Callable[[dict], dict]],
    tmp_path: Path,
    does: dict[str, str],
    policy: str,
    limit: int,
    deadline: int,
    message: str,
    replicas: dict[str, dict[str, int]],
) -> None:
    tfjobs, run = cluster
    doc = _tfjob(workers=2, does=does, backoff_limit=limit, deadline=deadline)
    for spec in doc["spec"]["tfReplicaSpecs"].values():
        spec["restartPolicy"] = policy
    job = run(doc)
    verdict = judge(job)
    assert re.fullmatch(message, verdict.message.split(" [")[0]), verdict.message
    assert job["status"]["replicaStatuses"] == replicas
    assert "completionTime" in job["status"]
    # Finished, it has no pod left running (cleanPodPolicy Running; every pod past a limit).
    (ran,) = tfjobs.jobs.values()
    assert [r.proc.poll() is not None for r in ran.replicas if r.proc] == [True] * 3
    restarted = (
        "--- restarted after exit code 3"
        in (tmp_path / "run" / "logs" / f"{job['metadata']['name']}-worker-1.log").read_text()
    )
    assert restarted == (does.get("worker-1") == "flaky")


def test_a_tfjob_waits_for_its_claim(tmp_path: Path) -> None:
    """A pod whose claim is not Bound stays Pending: the job is Created, nothing runs."""
    objects = Objects()
    run_dir = tmp_path / "run"
    tfjobs = _tfjobs(objects, run_dir)
    name = objects.create(TFJOB, NS, _tfjob(workers=1, does={}))["metadata"]["name"]
    tfjobs.reconcile()
    job = objects.get(TFJOB, NS, name)
    assert _conditions(job) == [("Created", "True", "TFJobCreated")]
    assert judge(job).state == "waiting" and tfjobs.jobs == {}
    assert not (run_dir / "logs").exists()


def test_a_volume_this_machine_cannot_mount_fails_the_tfjob(tmp_path: Path) -> None:
    """Not the operator's doing (a cluster would mount it): said in the job's Failed
    condition, and nothing runs."""
    objects = Objects()
    run_dir = tmp_path / "run"
    claims = Claims(objects, run_dir)
    tfjobs = _tfjobs(objects, run_dir)
    objects.create(PVC, NS, _claim("work"))
    claims.reconcile()
    doc = _tfjob(workers=1, does={})
    for spec in doc["spec"]["tfReplicaSpecs"].values():
        pod = spec["template"]["spec"]
        pod["volumes"].append({"name": "config", "configMap": {"name": "settings"}})
        pod["containers"][0]["volumeMounts"].append({"name": "config", "mountPath": "/etc/x"})
    name = objects.create(TFJOB, NS, doc)["metadata"]["name"]
    tfjobs.reconcile()
    job = objects.get(TFJOB, NS, name)
    assert judge(job).state == "failed"
    assert "volume 'config': only persistentVolumeClaim and emptyDir" in judge(job).message
    assert tfjobs.jobs == {} and not (run_dir / "logs").exists()


# --- TrainJobs ----------------------------------------------------------------------------

# Each node writes what it is (its completion index, host name, the TF_CONFIG it builds
# from its JobSet names) into the claim's folder (argv[1]); then a node named in argv[2]
# ({"1": "exit 3", "0": "sleep 60", ...}) does that; a "flaky" one exits 3 on its first
# run only.
NODE = """
import json, os, pathlib, sys, time
from textcnn.tf_config import jobset_tf_config
me = os.environ["JOB_COMPLETION_INDEX"]
folder = pathlib.Path(sys.argv[1])
seen = {"hostname": os.environ["HOSTNAME"], "tf_config": json.loads(jobset_tf_config(os.environ))}
(folder / f"node-{me}.json").write_text(json.dumps(seen))
what = json.loads(sys.argv[2]).get(me, "")
if what.startswith("sleep"):
    time.sleep(float(what.split()[1]))
if what == "flaky" and not (folder / f"node-{me}.ran").exists():
    (folder / f"node-{me}.ran").touch()
    sys.exit(3)
sys.exit(int(what.split()[1]) if what.startswith("exit") else 0)
"""


def _trainjob(
    nodes: int, does: dict[str, str], deadline: int = 600, **given: Any
) -> dict[str, Any]:
    return build_trainjob(
        _workload(NODE, ["/mnt/workdir/nodes", json.dumps(does)], deadline, **given),
        generate_name="wf-trainjob-",
        runtime="textcnn-tensorflow",
        nodes=nodes,
    )


@pytest.fixture
def trainer(tmp_path: Path) -> Iterator[tuple[TrainJobs, Callable[..., dict]]]:
    """A store with claim `work` bound and the TrainJob controller running on our runtime
    (`max_restarts`: its failurePolicy.maxRestarts; None: no failurePolicy); `run(doc)`
    creates the TrainJob and returns it once it has finished."""
    objects = Objects()
    run_dir = tmp_path / "run"

    def runs(image: str, command: list[str], env: dict[str, str]) -> tuple[list[str], dict]:
        return images.run_here(image, command, env, run_dir)

    runtime = training_runtime("textcnn-tensorflow", "img:1")
    trainjobs = TrainJobs(
        objects,
        runs,
        {"textcnn-tensorflow": runtime},
        run_dir=run_dir,
        logs_dir=run_dir / "logs",
        pods_dir=run_dir / "pods",
        env={"PATH": "/usr/bin:/bin"},
    )
    objects.create(PVC, NS, _claim("work"))
    (run_dir / "volumes" / "work" / "nodes").mkdir(parents=True)

    def run(doc: dict, max_restarts: int | None = 2) -> dict:
        jobset = runtime["spec"]["template"]["spec"]
        jobset.pop("failurePolicy", None)
        if max_restarts is not None:
            jobset["failurePolicy"] = {"maxRestarts": max_restarts}
        name = objects.create(TRAINJOB, NS, doc)["metadata"]["name"]
        return wait_for(objects, lambda o: _finished_trainjob(o.get(TRAINJOB, NS, name)), 60, name)

    errors: list[str] = []
    with Manager(objects, [Claims(objects, run_dir), trainjobs], errors.append):
        yield trainjobs, run
    assert errors == []


def _finished_trainjob(doc: dict) -> dict | None:
    return doc if trainjob_judge(doc).state != "waiting" else None


def test_a_trainjob_runs_its_nodes_with_the_jobset_names(
    trainer: tuple[TrainJobs, Callable[..., dict]], tmp_path: Path
) -> None:
    _, run = trainer
    job = run(_trainjob(nodes=3, does={}))
    name, status = job["metadata"]["name"], job["status"]
    assert trainjob_judge(job).state == "succeeded"
    (complete,) = status["conditions"]
    assert (complete["type"], complete["reason"], complete["message"]) == (
        "Complete",
        "AllJobsCompleted",
        "jobset completed successfully",
    )
    assert status["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 1, "failed": 0, "active": 0, "suspended": 0}
    ]
    # Each node had its Indexed Job's host name, and built the same cluster from it, whose
    # names the local cluster resolved to one loopback port each.
    folder = tmp_path / "run" / "volumes" / "work" / "nodes"
    seen = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(seen) == {"node-0", "node-1", "node-2"}
    for i in range(3):
        assert seen[f"node-{i}"]["hostname"] == f"{name}-node-0-{i}"
        assert seen[f"node-{i}"]["tf_config"]["task"] == {"type": "worker", "index": i}
        assert (tmp_path / "run" / "logs" / f"{name}-node-0-{i}.log").exists()
    workers = seen["node-0"]["tf_config"]["cluster"]["worker"]
    assert all(s["tf_config"]["cluster"]["worker"] == workers for s in seen.values())
    assert len(set(workers)) == 3 and all(re.fullmatch(r"127\.0\.0\.1:\d+", a) for a in workers)


@pytest.mark.parametrize(
    ("does", "max_restarts", "deadline", "reason", "message", "recreated"),
    [
        # A node fails: JobSet recreates every Job (maxRestarts 2), and the node fails
        # again each time.
        (
            {"0": "sleep 60", "1": "exit 3"},
            2,
            600,
            "ReachedMaxRestarts",
            r"jobset failed due to reaching max number of restarts \(first failed job: "
            r"{name}-node-0\)",
            2,
        ),
        # Without a failurePolicy, the first failed Job fails the JobSet.
        (
            {"0": "sleep 60", "1": "exit 3"},
            None,
            600,
            "FailedJobs",
            r"jobset failed due to one or more job failures \(first failed job: {name}-node-0\)",
            0,
        ),
        # One failure, then a good run of every node after the JobSet's restart.
        ({"1": "flaky"}, 2, 600, "AllJobsCompleted", "jobset completed successfully", 1),
        (
            # From the TrainJob's creation (whole seconds): 3 s leaves its pods time to start.
            {"0": "sleep 60", "1": "sleep 60"},
            2,
            3,
            "DeadlineExceeded",
            "TrainJob exceeded its active deadline",
            0,
        ),
    ],
    ids=["max-restarts", "no-policy", "restarted", "deadline"],
)
def test_the_trainers_verdicts(
    trainer: tuple[TrainJobs, Callable[..., dict]],
    tmp_path: Path,
    does: dict[str, str],
    max_restarts: int | None,
    deadline: int,
    reason: str,
    message: str,
    recreated: int,
) -> None:
    trainjobs, run = trainer
    job = run(_trainjob(nodes=2, does=does, deadline=deadline), max_restarts=max_restarts)
    (condition,) = job["status"]["conditions"]
    assert condition["reason"] == reason
    expected = message.replace("{name}", re.escape(job["metadata"]["name"]))
    assert re.fullmatch(expected, condition["message"]), condition["message"]
    # Finished, it has no pod left running.
    (jobset,) = trainjobs.sets.values()
    assert all(r.proc is not None and r.proc.poll() is not None for r in jobset.pods)
    log = (tmp_path / "run" / "logs" / f"{job['metadata']['name']}-node-0-1.log").read_text()
    assert log.count("--- recreated") == recreated
    assert jobset.restarts == recreated


def test_a_trainjob_waits_for_its_claim_and_its_runtime(tmp_path: Path) -> None:
    """A pod whose claim is not Bound stays Pending; a runtime not installed gets the
    TrainJob no JobSet (upstream: an event, no condition). Either way nothing runs."""
    runtime = training_runtime("textcnn-tensorflow", "img:1")
    for runtimes, claim in (({"textcnn-tensorflow": runtime}, False), ({}, True)):
        objects = Objects()
        run_dir = tmp_path / str(claim)
        if claim:  # bound: only the runtime is missing
            objects.create(PVC, NS, _claim("work"))
            Claims(objects, run_dir).reconcile()
        trainjobs = _trainjobs(objects, run_dir, runtimes)
        name = objects.create(TRAINJOB, NS, _trainjob(nodes=1, does={}))["metadata"]["name"]
        trainjobs.reconcile()
        job = objects.get(TRAINJOB, NS, name)
        assert trainjob_judge(job).state == "waiting" and "status" not in job
        assert trainjobs.sets == {} and not (run_dir / "logs").exists()


def test_a_suspended_trainjob_runs_no_pod_until_resumed(tmp_path: Path) -> None:
    """`setSuspendedCondition`: Suspended while spec.suspend, False ("Resumed") after."""
    objects = Objects()
    objects.create(PVC, NS, _claim("work"))
    Claims(objects, tmp_path).reconcile()
    runtime = training_runtime("textcnn-tensorflow", "img:1")
    trainjobs = _trainjobs(objects, tmp_path, {"textcnn-tensorflow": runtime}, runs=_passes)
    doc = _trainjob(nodes=1, does={})
    doc["spec"]["suspend"] = True
    name = objects.create(TRAINJOB, NS, doc)["metadata"]["name"]
    trainjobs.reconcile()
    job = objects.get(TRAINJOB, NS, name)
    assert [(c["type"], c["status"], c["reason"]) for c in job["status"]["conditions"]] == [
        ("Suspended", "True", "Suspended")
    ]
    assert trainjob_judge(job).state == "waiting" and trainjobs.sets == {}
    objects.patch(TRAINJOB, NS, name, {"spec": {"suspend": False}})
    with Manager(objects, [trainjobs], lambda error: pytest.fail(error)):
        job = wait_for(objects, lambda o: _finished_trainjob(o.get(TRAINJOB, NS, name)), 60, name)
    assert [(c["type"], c["status"], c["reason"]) for c in job["status"]["conditions"]] == [
        ("Suspended", "False", "Resumed"),
        ("Complete", "True", "AllJobsCompleted"),
    ]


def test_a_volume_this_machine_cannot_mount_fails_the_trainjob(tmp_path: Path) -> None:
    """Not the trainer's doing (a cluster would mount it): the TrainJob fails saying so."""
    objects = Objects()
    objects.create(PVC, NS, _claim("work"))
    Claims(objects, tmp_path).reconcile()
    runtime = training_runtime("textcnn-tensorflow", "img:1")
    job = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]
    pod = job["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "config", "configMap": {"name": "settings"}})
    pod["containers"][0]["volumeMounts"].append({"name": "config", "mountPath": "/etc/x"})
    trainjobs = _trainjobs(objects, tmp_path, {"textcnn-tensorflow": runtime})
    name = objects.create(TRAINJOB, NS, _trainjob(nodes=2, does={}))["metadata"]["name"]
    trainjobs.reconcile()
    verdict = trainjob_judge(objects.get(TRAINJOB, NS, name))
    assert verdict.state == "failed"
    assert "volume 'config': only persistentVolumeClaim and emptyDir" in verdict.message
    assert trainjobs.sets == {} and not (tmp_path / "logs").exists()


def _passes(image: str, command: list[str], env: dict[str, str]) -> tuple[list[str], dict]:
    """A node that succeeds at once, whatever it was to run."""
    return [sys.executable, "-c", "pass"], env


def _trainjobs(
    objects: Objects,
    run_dir: Path,
    runtimes: dict[str, dict[str, Any]],
    runs: Callable[[str, list[str], dict[str, str]], tuple[list[str], dict]] = (
        lambda image, command, env: (command, env)
    ),
) -> TrainJobs:
    return TrainJobs(
        objects,
        runs,
        runtimes,
        run_dir=run_dir,
        logs_dir=run_dir / "logs",
        pods_dir=run_dir / "pods",
        env={},
    )


def test_the_node_job_is_the_runtime_with_the_trainjobs_fields_and_patches() -> None:
    """trainjob_pods.node_job, as the trainer builds it: trainer fields into the container
    `node` (env upserted by name), resourcesPerNode merged key by key, the runtime patch
    merged by name (volumes) and mountPath (volumeMounts), numNodes as the pod count."""
    runtime = training_runtime("textcnn-tensorflow", "img:1")
    container = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"
    ]["spec"]["containers"][0]
    container["env"].insert(0, {"name": "TRAINJOB_NUM_NODES", "value": "1"})
    gpu = GpuScheduling(
        limits={"nvidia.com/gpu": "1"},
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    doc = _trainjob(nodes=3, does={}, cpu="3", gpu=gpu)
    doc["metadata"]["name"] = "tj"
    job = node_job(doc, runtime)
    assert (job.name, job.hostname(2), job.subdomain, job.nodes) == (
        "tj-node-0",
        "tj-node-0-2",
        "tj",
        3,
    )
    assert (job.backoff_limit, job.max_restarts) == (0, 2)
    pod = job.pod["spec"]
    (node,) = pod["containers"]
    assert node["image"] == "python:3.11" and node["command"][:2] == ["python", "-c"]
    names = [e["name"] for e in node["env"]]
    assert names[0] == "TRAINJOB_NUM_NODES" and names.count("TRAINJOB_NUM_NODES") == 1
    assert node["env"][0] == {"name": "TRAINJOB_NUM_NODES", "value": "3"}  # in place
    assert node["resources"] == {
        "requests": {"cpu": "3", "memory": "64Mi"},
        "limits": {"memory": "64Mi", "nvidia.com/gpu": "1"},
    }
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "workdir", "dshm"]
    assert [m["mountPath"] for m in node["volumeMounts"]] == ["/tmp", "/mnt/workdir", "/dev/shm"]
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["restartPolicy"] == "Never"
    assert job.pod["metadata"]["labels"]["jobset.sigs.k8s.io/jobset-name"] == "tj"
    # Without an mlPolicy the trainer leaves the resources as the runtime has them.
    del runtime["spec"]["mlPolicy"]
    assert node_job(doc, runtime).pod["spec"]["containers"][0]["resources"] == (DEFAULT_RESOURCES)


def test_a_strategic_merge_patch_merges_lists_by_their_keys() -> None:
    base = {
        "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}], "image": "i"}],
        "tolerations": [{"key": "t1"}],
        "nodeSelector": {"a": "1"},
    }
    patch = {
        "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}, {"name": "b"}],
        "tolerations": [{"key": "t2"}],
        "nodeSelector": {"b": "2"},
    }
    assert strategic_merge(base, patch) == {
        "containers": [
            {
                "name": "a",
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                "image": "i",
            },
            {"name": "b"},
        ],
        "tolerations": [{"key": "t2"}],  # no merge key: replaced
        "nodeSelector": {"a": "1", "b": "2"},
    }
    assert upsert(
        [{"name": "A", "valueFrom": {"x": 1}}, {"name": "B", "value": "b"}],
        [{"name": "A", "value": "a"}, {"name": "C", "value": "c"}],
    ) == [{"name": "A", "value": "a"}, {"name": "B", "value": "b"}, {"name": "C", "value": "c"}]
