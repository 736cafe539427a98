"""The local runner on tiny templates whose containers are `python -c` one-liners."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from textcnn.errors import NOT_RETRIED
from workflows.credentials import CLIENT_CREDENTIALS
from workflows.errors import WorkflowError
from workflows.hooks import project_hooks
from workflows.kube.api import KubeApi
from workflows.kube.objects import KINDS, Objects
from workflows.local.execute import run_workflow
from workflows.local.resources import ClusterAccess
from workflows.local.result import RunResult

# Write each PATH TEXT pair of arguments (creating folders, as a step must).
WRITE = (
    "import pathlib,sys\n"
    "for p, t in zip(sys.argv[1::2], sys.argv[2::2]):\n"
    "    p = pathlib.Path(p); p.parent.mkdir(parents=True, exist_ok=True); p.write_text(t)"
)
# Join the texts of the files named by all arguments but the last into the last one.
CAT = (
    "import pathlib,sys\n"
    "out = pathlib.Path(sys.argv[-1]); out.parent.mkdir(parents=True, exist_ok=True)\n"
    "out.write_text('+'.join(pathlib.Path(p).read_text() for p in sys.argv[1:-1]))"
)
# Touch DIR/ME, wait for DIR/PARTNER (so it only passes when both run at once), touch ME.done.
RENDEZVOUS = (
    "import pathlib,sys,time\n"
    "d, me, partner = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
    "(d / me).touch(); deadline = time.time() + 30\n"
    "while not (d / partner).exists():\n"
    "    assert time.time() < deadline, 'partner never started'; time.sleep(0.02)\n"
    "(d / (me + '.done')).write_text(me)"
)
FAIL = (
    "import sys\n"
    "for i in range(25): print('line', i)\n"
    "print('boom: the disk is on fire'); sys.exit(3)"
)
PARAMS = "/tmp/outputs/params"


def container(
    name: str,
    code: str,
    *args: str,
    inputs: dict | None = None,
    outputs: dict | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    spec: dict[str, Any] = {
        "image": "python:3.11",
        "command": ["python", "-c", code],
        "args": list(args),
    }
    if env:
        spec["env"] = [{"name": k, "value": v} for k, v in env.items()]
    template = {"name": name, "container": spec}
    for section, value in (("inputs", inputs), ("outputs", outputs)):
        if value:
            template[section] = value
    return template


def task(
    name: str,
    template: str,
    depends: str | None = None,
    when: str | None = None,
    params: dict[str, str] | None = None,
    artifacts: list[dict] | None = None,
) -> dict:
    spec: dict[str, Any] = {"name": name, "template": template}
    if depends:
        spec["depends"] = depends
    if when:
        spec["when"] = when
    arguments: dict[str, Any] = {}
    if params:
        arguments["parameters"] = [{"name": k, "value": v} for k, v in params.items()]
    if artifacts:
        arguments["artifacts"] = artifacts
    if arguments:
        spec["arguments"] = arguments
    return spec


def workflow(
    tasks: list[dict],
    templates: list[dict],
    parameters: dict[str, str] | None = None,
    outputs: dict[str, str] | None = None,
) -> dict:
    dag: dict[str, Any] = {"name": "main", "dag": {"tasks": tasks}}
    if outputs:
        dag["outputs"] = {
            "parameters": [{"name": k, "valueFrom": {"parameter": v}} for k, v in outputs.items()]
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "demo"},
        "spec": {
            "entrypoint": "main",
            "arguments": {
                "parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()]
            },
            "templates": [dag, *templates],
        },
    }


def param(name: str, **value_from: str) -> dict:
    return {"name": name, "valueFrom": {"path": f"{PARAMS}/{name}", **value_from}}


def gcs(name: str, path: str, key: str | None = None) -> dict:
    artifact: dict[str, Any] = {"name": name, "path": path}
    if key:
        artifact["gcs"] = {"key": key}
    return artifact


def run(
    template: dict, out: Path, parameters: dict[str, str] | None = None, **kwargs: Any
) -> tuple[RunResult, list[str]]:
    lines: list[str] = []
    kwargs.setdefault("hooks", project_hooks())  # our CLI's steps start warm, as in a run
    result = run_workflow(template, parameters or {}, out, on_progress=lines.append, **kwargs)
    return result, lines


def run_in_process(template: dict, out: Path) -> subprocess.Popen[str]:
    """`run_workflow(template, {}, out)` in a process of its own, to be sent signals."""
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = out.parent / "wt.json"
    saved.write_text(json.dumps(template))
    script = (
        "import json, sys, pathlib\n"
        "from workflows.hooks import project_hooks\n"
        "from workflows.local.execute import run_workflow\n"
        "run_workflow(json.loads(pathlib.Path(sys.argv[1]).read_text()), {},"
        " pathlib.Path(sys.argv[2]), hooks=project_hooks())"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(saved), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def statuses(result: RunResult) -> dict[str, str]:
    return {name: step["status"] for name, step in result.steps.items()}


def test_independent_tasks_run_together_and_dependents_wait(tmp_path: Path) -> None:
    rv = tmp_path / "rv"
    rv.mkdir()
    templates = [
        container(
            "meet",
            RENDEZVOUS,
            "{{inputs.parameters.dir}}",
            "{{inputs.parameters.me}}",
            "{{inputs.parameters.partner}}",
            inputs={
                "parameters": [
                    {"name": "dir", "value": str(rv)},
                    {"name": "me"},
                    {"name": "partner"},
                ]
            },
        ),
        container(
            "join",
            CAT,
            f"{rv}/a.done",
            f"{rv}/b.done",
            "{{outputs.parameters.both.path}}",
            outputs={"parameters": [{"name": "both", "valueFrom": {"path": "/tmp/both"}}]},
        ),
    ]
    tasks = [
        task("a", "meet", params={"me": "a", "partner": "b"}),
        task("b", "meet", params={"me": "b", "partner": "a"}),
        task("c-after-both", "join", depends="a && b"),
    ]
    result, lines = run(workflow(tasks, templates), tmp_path / "run", max_parallel=2)

    assert result.status == "Succeeded", lines
    assert statuses(result) == dict.fromkeys(["a", "b", "c-after-both"], "Succeeded")
    # c ran after both: it read the markers a and b write as their last act.
    assert result.steps["c-after-both"]["outputs"] == {"both": "a+b"}
    assert lines[-1].startswith("c-after-both")
    # One aligned line per task: status and seconds columns line up despite the names.
    assert len(lines) == 3
    assert len({line.index("Succeeded") for line in lines}) == 1
    assert len({len(line) for line in lines}) == 1


def test_max_parallel_one_runs_tasks_one_at_a_time(tmp_path: Path) -> None:
    probe = (
        "import os,time,pathlib,sys; p=pathlib.Path(sys.argv[1]); "
        "fd=os.open(p, os.O_CREAT|os.O_EXCL); time.sleep(0.3); os.unlink(p)"
    )
    lock = tmp_path / "lock"
    templates = [container("probe", probe, str(lock))]
    tasks = [task(n, "probe") for n in ("a", "b", "c")]
    # Each task holds an exclusive lock file while it runs; an overlap would fail one.
    result, lines = run(workflow(tasks, templates), tmp_path / "run", max_parallel=1)
    assert statuses(result) == dict.fromkeys("abc", "Succeeded"), lines


def test_a_short_slot_goes_to_the_head_of_the_critical_path(tmp_path: Path) -> None:
    """With one slot, the task that heads the longest chain starts first, although the
    DAG lists a side task before it (as dataset-metadata before prepare-data)."""
    templates = [container("noop", "pass")]
    tasks = [
        task("side", "noop"),
        task("head", "noop"),
        task("middle", "noop", depends="head"),
        task("tail", "noop", depends="middle"),
    ]
    result, lines = run(workflow(tasks, templates), tmp_path / "run", max_parallel=1)
    assert statuses(result) == dict.fromkeys(["side", "head", "middle", "tail"], "Succeeded")
    assert [line.split()[0] for line in lines] == ["head", "middle", "side", "tail"]


@pytest.mark.parametrize("gpu", ["false", "true"])
def test_when_skips_and_branches_join(tmp_path: Path, gpu: str) -> None:
    templates = [
        container(
            "say",
            WRITE,
            f"{PARAMS}/name",
            "{{inputs.parameters.name}}",
            inputs={"parameters": [{"name": "name"}]},
            outputs={"parameters": [param("name")]},
        )
    ]
    tasks = [
        task("train", "say", when="{{workflow.parameters.gpu}} == false", params={"name": "cpu"}),
        task(
            "train-gpu", "say", when="{{workflow.parameters.gpu}} == true", params={"name": "gpu"}
        ),
        task(
            "evaluate",
            "say",
            depends="train.Succeeded || train-gpu.Succeeded",
            params={"name": "evaluate"},
        ),
        task("after-gpu", "say", depends="train-gpu", params={"name": "plain"}),
        task("gpu-only", "say", depends="train-gpu.Succeeded", params={"name": "gpu-only"}),
    ]
    result, lines = run(
        workflow(tasks, templates, {"gpu": "false"}), tmp_path / "run", {"gpu": gpu}
    )

    on_gpu = gpu == "true"
    assert result.status == "Succeeded", lines
    assert statuses(result) == {
        "train": "Skipped" if on_gpu else "Succeeded",
        "train-gpu": "Succeeded" if on_gpu else "Skipped",
        "evaluate": "Succeeded",
        "after-gpu": "Succeeded",  # a plain `depends: T` also runs after a skipped T
        "gpu-only": "Succeeded" if on_gpu else "Omitted",
    }
    skipped = "train" if on_gpu else "train-gpu"
    assert result.steps[skipped]["log"] is None
    assert not (tmp_path / "run" / "logs" / f"{skipped}.log").exists()


def test_failure_omits_the_rest_and_reports_the_log(tmp_path: Path) -> None:
    slow = "import time,pathlib,sys; time.sleep(1.5); pathlib.Path(sys.argv[1]).write_text('ok')"
    templates = [
        container("fail", FAIL),
        container("slow", slow, str(tmp_path / "slow.txt")),
        container("echo", WRITE, str(tmp_path / "never.txt"), "ran"),
    ]
    tasks = [
        task("broken", "fail"),
        task("slow", "slow"),
        task("after-broken", "echo", depends="broken"),
        task("after-slow", "echo", depends="slow"),
    ]
    out = tmp_path / "run"
    result, lines = run(workflow(tasks, templates), out, max_parallel=2)

    assert result.status == "Failed"
    assert "broken" in result.message
    # The running task finishes; nothing new starts, not even after the one that succeeded.
    assert statuses(result) == {
        "broken": "Failed",
        "slow": "Succeeded",
        "after-broken": "Omitted",
        "after-slow": "Omitted",
    }
    assert (tmp_path / "slow.txt").read_text() == "ok"
    assert not (tmp_path / "never.txt").exists()
    log = out / "logs" / "broken.log"
    report = next(line for line in lines if line.startswith("task 'broken' failed"))
    assert str(log) in report and "exit code 3" in report
    tail = [line.removeprefix("  | ") for line in lines if line.startswith("  | ")]
    assert tail[-2:] == ["boom: the disk is on fire", "error: exit code 3"]
    assert "line 24" in tail and "line 0" not in tail  # the tail, not the whole log
    saved = json.loads((out / "run.json").read_text())
    assert saved["status"] == "Failed"
    assert saved["steps"]["broken"]["log"] == str(log)


def test_parameters_flow_between_tasks_and_to_dag_outputs(tmp_path: Path) -> None:
    templates = [
        # Writes into a literal pod folder, as steps do with `--outputs /tmp/outputs/params`.
        container(
            "greet",
            WRITE,
            f"{PARAMS}/greeting",
            "{{inputs.parameters.who}}\n",
            inputs={"parameters": [{"name": "who"}]},
            outputs={"parameters": [param("greeting"), param("unset", default="fallback")]},
        ),
        container(
            "shout",
            WRITE,
            "{{outputs.parameters.loud.path}}",
            "{{inputs.parameters.text}}!",
            inputs={"parameters": [{"name": "text"}]},
            outputs={"parameters": [param("loud")]},
        ),
    ]
    tasks = [
        task("greet", "greet", params={"who": "{{workflow.parameters.who}}"}),
        task(
            "shout",
            "shout",
            depends="greet",
            params={
                "text": "{{tasks.greet.outputs.parameters.greeting}} "
                "{{tasks.greet.outputs.parameters.unset}}"
            },
        ),
    ]
    out = tmp_path / "run"
    result, lines = run(
        workflow(
            tasks,
            templates,
            {"who": "nobody"},
            outputs={"shouted": "{{tasks.shout.outputs.parameters.loud}}"},
        ),
        out,
        {"who": "world"},
    )

    assert result.status == "Succeeded", lines
    # One trailing newline trimmed (as Argo does); a missing file gives the default.
    assert result.steps["greet"]["outputs"] == {"greeting": "world", "unset": "fallback"}
    assert result.outputs == {"shouted": "world fallback!"}
    assert (out / "pods" / "greet" / "tmp" / "outputs" / "params" / "greeting").is_file()


def test_environment_interpreter_and_overrides(tmp_path: Path) -> None:
    code = (
        "import os,sys,pathlib; p=pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True); "
        "p.write_text(os.environ['WHO'] + ' ' + os.environ['ARTIFACT_ROOT']); "
        "(p.parent / 'python').write_text(sys.executable)"
    )
    templates = [
        container(
            "env",
            code,
            f"{PARAMS}/env",
            env={"WHO": "{{workflow.parameters.who}}", "ARTIFACT_ROOT": "gs://from-template"},
            outputs={"parameters": [param("env"), param("python")]},
        )
    ]
    result, lines = run(
        workflow([task("env", "env")], templates, {"who": "me"}),
        tmp_path / "run",
        env={"ARTIFACT_ROOT": "/runner/root"},
    )
    assert result.status == "Succeeded", lines
    assert result.steps["env"]["outputs"] == {"env": "me /runner/root", "python": sys.executable}


def test_the_downward_api_gives_a_step_its_cpu_request(tmp_path: Path) -> None:
    """As the kubelet does: the request over the divisor, rounded up; without a CPU
    limit, limits.cpu is the node's CPUs (here, this machine's cores)."""
    code = (
        "import os,sys,pathlib; p=pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True); "
        "p.write_text(os.environ['REQ'] + ' ' + os.environ['MILLI'] + ' ' + os.environ['LIM'])"
    )
    template = container("cpus", code, f"{PARAMS}/cpus", outputs={"parameters": [param("cpus")]})
    template["container"]["resources"] = {"requests": {"cpu": "1500m", "memory": "1Gi"}}
    template["container"]["env"] = [
        {"name": name, "valueFrom": {"resourceFieldRef": {"resource": res, "divisor": div}}}
        for name, res, div in (
            ("REQ", "requests.cpu", "1"),
            ("MILLI", "requests.cpu", "1m"),
            ("LIM", "limits.cpu", "1"),
        )
    ]
    result, lines = run(workflow([task("cpus", "cpus")], [template]), tmp_path / "run")
    assert result.status == "Succeeded", lines
    cores = len(os.sched_getaffinity(0))
    assert result.steps["cpus"]["outputs"] == {"cpus": f"2 1500 {cores}"}
    template["container"]["env"][0]["valueFrom"]["resourceFieldRef"]["resource"] = "requests.memory"
    with pytest.raises(WorkflowError, match="'REQ' takes resourceFieldRef 'requests.memory'"):
        run(workflow([task("cpus", "cpus")], [template]), tmp_path / "again")


def test_the_clients_credentials_reach_no_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in CLIENT_CREDENTIALS:
        monkeypatch.setenv(name, f"secret-{name}")
    monkeypatch.setenv("OTHER_SETTING", "kept")
    code = (
        "import os,sys,pathlib; p=pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True); "
        "p.write_text(' '.join(sorted(k for k in os.environ if 'ARGO' in k or 'OTHER' in k)))"
    )
    templates = [container("env", code, f"{PARAMS}/env", outputs={"parameters": [param("env")]})]
    result, lines = run(workflow([task("env", "env")], templates, {}), tmp_path / "run")
    assert result.status == "Succeeded", lines
    # Only what a pod gets: ARGO_PROGRESS_FILE is set by Argo's executor too.
    assert result.steps["env"]["outputs"] == {"env": "ARGO_PROGRESS_FILE OTHER_SETTING"}


def test_artifacts_flow_by_key_and_by_from(tmp_path: Path) -> None:
    make = container(
        "make",
        WRITE,
        "{{outputs.artifacts.report.path}}",
        "report text",
        "{{outputs.artifacts.model.path}}/1/weights.txt",
        "weights",
        outputs={
            "artifacts": [
                gcs("report", "/tmp/artifacts/out/report.txt", "{{workflow.name}}/report.txt"),
                gcs("model", "/tmp/artifacts/out/model", "{{workflow.name}}/model"),
            ]
        },
    )
    by_key = container(
        "by-key",
        CAT,
        "{{inputs.artifacts.report.path}}",
        "{{inputs.artifacts.model.path}}/1/weights.txt",
        f"{PARAMS}/seen",
        inputs={
            "artifacts": [
                gcs("report", "/tmp/artifacts/in/report", "{{workflow.name}}/report.txt"),
                gcs("model", "/tmp/artifacts/in/model", "{{workflow.name}}/model"),
            ]
        },
        outputs={"parameters": [param("seen")]},
    )
    by_from = container(
        "by-from",
        CAT,
        "/tmp/artifacts/in/m/1/weights.txt",
        f"{PARAMS}/seen",
        inputs={"artifacts": [gcs("m", "/tmp/artifacts/in/m")]},
        outputs={"parameters": [param("seen")]},
    )
    tasks = [
        task("make", "make"),
        task("by-key", "by-key", depends="make"),
        task(
            "by-from",
            "by-from",
            depends="make",
            artifacts=[{"name": "m", "from": "{{tasks.make.outputs.artifacts.model}}"}],
        ),
    ]
    out = tmp_path / "run"
    result, lines = run(
        workflow(tasks, templates=[make, by_key, by_from]), out, workflow_name="wf-1"
    )

    assert result.status == "Succeeded", lines
    assert result.steps["by-key"]["outputs"] == {"seen": "report text+weights"}
    assert result.steps["by-from"]["outputs"] == {"seen": "weights"}
    store = out / "artifacts" / "wf-1"
    assert (store / "report.txt").read_text() == "report text"
    assert (store / "model" / "1" / "weights.txt").read_text() == "weights"
    assert result.artifacts == {"report": str(store / "report.txt"), "model": str(store / "model")}
    assert not list(store.glob(".*"))  # no temporary leftovers


@pytest.mark.parametrize("gpu", ["false", "true"])
def test_two_branches_write_one_key_joined_downstream(tmp_path: Path, gpu: str) -> None:
    key = "{{workflow.name}}/model"
    train = container(
        "train",
        WRITE,
        "/tmp/artifacts/out/model/kind",
        "{{inputs.parameters.kind}}",
        inputs={"parameters": [{"name": "kind"}]},
        outputs={"artifacts": [gcs("model", "/tmp/artifacts/out/model", key)]},
    )
    evaluate = container(
        "evaluate",
        CAT,
        "/tmp/artifacts/in/model/kind",
        f"{PARAMS}/kind",
        inputs={"artifacts": [gcs("model", "/tmp/artifacts/in/model", key)]},
        outputs={"parameters": [param("kind")]},
    )
    tasks = [
        task("train", "train", when="{{workflow.parameters.gpu}} == false", params={"kind": "cpu"}),
        task(
            "train-gpu", "train", when="{{workflow.parameters.gpu}} == true", params={"kind": "gpu"}
        ),
        task("evaluate", "evaluate", depends="train.Succeeded || train-gpu.Succeeded"),
    ]
    result, lines = run(
        workflow(tasks, [train, evaluate], {"gpu": gpu}),
        tmp_path / "run",
        {"gpu": gpu},
        artifact_root=str(tmp_path / "store"),
    )
    assert result.status == "Succeeded", lines
    assert result.steps["evaluate"]["outputs"] == {"kind": "gpu" if gpu == "true" else "cpu"}
    wf = result.workflow_name
    assert result.artifacts == {"model": str(tmp_path / "store" / wf / "model")}


def test_missing_input_artifact_errors_the_task(tmp_path: Path) -> None:
    templates = [
        container(
            "read",
            CAT,
            "/tmp/artifacts/in/x",
            f"{PARAMS}/x",
            inputs={
                "artifacts": [gcs("x", "/tmp/artifacts/in/x", "{{workflow.name}}/nothing-here")]
            },
        )
    ]
    result, lines = run(
        workflow([task("reader", "read")], templates), tmp_path / "run", workflow_name="wf-2"
    )
    assert result.status == "Failed"
    assert result.steps["reader"]["status"] == "Errored"
    message = result.steps["reader"]["message"]
    assert "wf-2/nothing-here" in message and "'reader'" in message
    assert any("task 'reader' errored" in line for line in lines)


def test_missing_output_file_without_default_errors_the_task(tmp_path: Path) -> None:
    templates = [container("quiet", "pass", outputs={"parameters": [param("nothing")]})]
    result, _ = run(workflow([task("quiet", "quiet")], templates), tmp_path / "run")
    assert result.steps["quiet"]["status"] == "Errored"
    assert "output parameter 'nothing'" in result.steps["quiet"]["message"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["{{inputs.parameters.nope}}"],
            "task 'a' (template 'say'): cannot resolve {{inputs.parameters.nope}}",
        ),
        (["{{workflow.parameters.missing}}"], "{{workflow.parameters.missing}}"),
        # Templates see their inputs, never other tasks' outputs.
        (["{{tasks.b.outputs.parameters.x}}"], "{{tasks.b.outputs.parameters.x}}"),
    ],
)
def test_unresolved_variables_are_errors_before_anything_runs(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    templates = [
        container("say", WRITE, f"{PARAMS}/x", *args, outputs={"parameters": [param("x")]})
    ]
    tasks = [task("a", "say"), task("b", "say")]
    with pytest.raises(WorkflowError) as info:
        run(workflow(tasks, templates), tmp_path / "run")
    assert expected in str(info.value)
    assert not (tmp_path / "run" / "logs").exists()


def test_only_ancestors_outputs_are_visible(tmp_path: Path) -> None:
    templates = [
        container(
            "say",
            WRITE,
            f"{PARAMS}/x",
            "{{inputs.parameters.text}}",
            inputs={"parameters": [{"name": "text", "value": "hi"}]},
            outputs={"parameters": [param("x")]},
        )
    ]
    # b runs after a but is no descendant of it: Argo rejects this reference, and so do we.
    tasks = [
        task("a", "say"),
        task("c", "say", depends="a"),
        task("b", "say", params={"text": "{{ tasks.a.outputs.parameters.x }}"}),
    ]
    with pytest.raises(
        WorkflowError,
        match=r"task 'b' arguments: cannot resolve "
        r"\{\{tasks.a.outputs.parameters.x\}\}",
    ):
        run(workflow(tasks, templates), tmp_path / "run")
    tasks[2]["depends"] = "c"
    result, lines = run(workflow(tasks, templates), tmp_path / "run")
    assert result.steps["b"]["outputs"] == {"x": "hi"}, lines


def test_unresolved_task_argument_names_the_task(tmp_path: Path) -> None:
    templates = [
        container(
            "say",
            WRITE,
            "/tmp/x",
            "{{inputs.parameters.text}}",
            inputs={"parameters": [{"name": "text"}]},
        )
    ]
    tasks = [
        task("first", "say", params={"text": "hi"}),
        task(
            "second",
            "say",
            depends="first",
            params={"text": "{{tasks.first.outputs.parameters.none}}"},
        ),
    ]
    with pytest.raises(
        WorkflowError,
        match=r"task 'second' arguments: cannot resolve "
        r"\{\{tasks.first.outputs.parameters.none\}\}",
    ):
        run(workflow(tasks, templates), tmp_path / "run")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"nope": "1", "other": "2"}, "unknown workflow parameter(s): nope, other"),
        ({"color": "purple"}, "'color' is 'purple'; allowed: red, blue"),
    ],
)
def test_bad_workflow_parameters(tmp_path: Path, parameters: dict[str, str], expected: str) -> None:
    template = workflow([task("a", "say")], [container("say", "pass")], {"color": "red"})
    template["spec"]["arguments"]["parameters"][0]["enum"] = ["red", "blue"]
    with pytest.raises(WorkflowError) as info:
        run(template, tmp_path / "run", parameters)
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([task("a", "say", depends="ghost")], "task 'a' depends on unknown task(s): ghost"),
        ([task("a", "say", depends="b"), task("b", "say", depends="a")], "dependency cycle"),
        ([task("a", "nowhere")], "task 'a': no template named 'nowhere'"),
        ([task("a", "say", depends="a.Finished")], "'a.Finished' is not supported"),
    ],
)
def test_bad_dags_are_rejected(tmp_path: Path, tasks: list[dict], expected: str) -> None:
    with pytest.raises(WorkflowError) as info:
        run(workflow(tasks, [container("say", "pass")]), tmp_path / "run")
    assert expected in str(info.value)


def test_legacy_dependencies_accept_success_or_skip(tmp_path: Path) -> None:
    templates = [container("ok", "pass")]
    tasks = [
        task("a", "ok", when="no == yes"),
        task("b", "ok"),
        {**task("c", "ok"), "dependencies": ["a", "b"]},
    ]
    result, lines = run(workflow(tasks, templates), tmp_path / "run")
    assert statuses(result) == {"a": "Skipped", "b": "Succeeded", "c": "Succeeded"}, lines


def test_run_json_records_every_step(tmp_path: Path) -> None:
    templates = [container("say", WRITE, f"{PARAMS}/x", "1", outputs={"parameters": [param("x")]})]
    tasks = [task("one", "say"), task("two", "say", when="a == b")]
    out = tmp_path / "run"
    result, _ = run(workflow(tasks, templates), out)

    assert re.fullmatch(r"demo-[a-z0-9]{5}", result.workflow_name)
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(result.to_json())
    assert saved["status"] == "Succeeded" and saved["workflow_name"] == result.workflow_name
    one, two = saved["steps"]["one"], saved["steps"]["two"]
    assert one["status"] == "Succeeded" and one["seconds"] > 0
    assert Path(one["log"]).read_text().startswith(f"$ {sys.executable} -c ")
    assert two == {
        "status": "Skipped",
        "seconds": 0.0,
        "log": None,
        "outputs": {},
        "message": "when 'a == b' evaluated false",
    }

    result.extra["metrics"] = {"accuracy": 0.5}
    result.write(out / "run.json")
    assert json.loads((out / "run.json").read_text())["metrics"] == {"accuracy": 0.5}


def test_run_json_records_each_steps_peak_memory(tmp_path: Path) -> None:
    # 200 MiB written (not merely reserved), so every page is resident; then exit CODE.
    hog = "import sys; block = b'x' * (200 << 20); sys.exit(int(sys.argv[1]))"
    templates = [
        container(
            "hog", hog, "{{inputs.parameters.code}}", inputs={"parameters": [{"name": "code"}]}
        ),
        container("idle", "pass"),
    ]
    # idle runs after a hog: a runner-wide peak (RUSAGE_CHILDREN) would show 200 there too.
    tasks = [
        task("hog", "hog", params={"code": "0"}),
        task("idle", "idle", depends="hog"),
        task("hog-fails", "hog", depends="idle", params={"code": "3"}),
    ]
    out = tmp_path / "run"
    # The runner gets a fresh interpreter: Linux starts a child's ru_maxrss at its parent's
    # resident size (fork, then exec), and this test process may hold TensorFlow's ~800 MiB.
    runner = (
        "import json, pathlib, sys; from workflows.local.execute import run_workflow; "
        "run_workflow(json.loads(sys.argv[1]), {}, pathlib.Path(sys.argv[2]), "
        "on_progress=lambda line: None)"
    )
    subprocess.run(
        [sys.executable, "-c", runner, json.dumps(workflow(tasks, templates)), str(out)], check=True
    )

    steps = json.loads((out / "run.json").read_text())["steps"]
    assert steps["hog"]["max_rss_mib"] >= 200
    assert 0 < steps["idle"]["max_rss_mib"] < 100
    assert steps["hog-fails"]["status"] == "Failed"  # a failed step's peak is kept too
    assert steps["hog-fails"]["max_rss_mib"] >= 200


def test_hera_built_template_runs(tmp_path: Path) -> None:
    from hera.workflows import (
        DAG,
        Artifact,
        Container,
        NoneArchiveStrategy,
        Parameter,
        WorkflowTemplate,
    )
    from hera.workflows.models import ValueFrom

    with WorkflowTemplate(
        name="hera-demo", entrypoint="main", arguments=[Parameter(name="text", value="hello")]
    ) as wt:
        write = Container(
            name="write",
            image="python:3.11",
            command=["python", "-c", WRITE],
            args=[
                "{{outputs.artifacts.note.path}}",
                "{{inputs.parameters.text}}",
                f"{PARAMS}/length",
                "{{inputs.parameters.text}}",
            ],
            inputs=[Parameter(name="text")],
            outputs=[
                Parameter(name="length", value_from=ValueFrom(path=f"{PARAMS}/length")),
                Artifact(
                    name="note", path="/tmp/artifacts/out/note", archive=NoneArchiveStrategy()
                ),
            ],
        )
        read = Container(
            name="read",
            image="python:3.11",
            command=["python", "-c", CAT],
            args=["{{inputs.artifacts.note.path}}", f"{PARAMS}/echo"],
            inputs=[Artifact(name="note", path="/tmp/artifacts/in/note")],
            outputs=[Parameter(name="echo", value_from=ValueFrom(path=f"{PARAMS}/echo"))],
        )
        with DAG(
            name="main",
            outputs=[
                Parameter(
                    name="echo",
                    value_from=ValueFrom(parameter="{{tasks.read.outputs.parameters.echo}}"),
                )
            ],
        ):
            w = write(name="write", arguments={"text": "{{workflow.parameters.text}}"})
            r = read(name="read", arguments=[w.get_artifact("note").with_name("note")])
            w.on_success(r)

    result, lines = run(wt.to_dict(), tmp_path / "run", {"text": "from hera"})
    assert result.status == "Succeeded", lines
    assert result.outputs == {"echo": "from hera"}


def test_artifacts_through_a_gcs_root(tmp_path: Path, gcs_root: str) -> None:
    from textcnn import storage

    make = container(
        "make",
        WRITE,
        "/tmp/artifacts/out/m/a.txt",
        "A",
        "/tmp/artifacts/out/m/b/c",
        "C",
        "/tmp/artifacts/out/f",
        "F",
        outputs={
            "artifacts": [
                gcs("m", "/tmp/artifacts/out/m", "{{workflow.name}}/m"),
                gcs("f", "/tmp/artifacts/out/f", "{{workflow.name}}/f"),
            ]
        },
    )
    read = container(
        "read",
        CAT,
        "/tmp/artifacts/in/m/a.txt",
        "/tmp/artifacts/in/m/b/c",
        "/tmp/artifacts/in/f",
        f"{PARAMS}/seen",
        inputs={
            "artifacts": [
                gcs("m", "/tmp/artifacts/in/m", "{{workflow.name}}/m"),
                gcs("f", "/tmp/artifacts/in/f", "{{workflow.name}}/f"),
            ]
        },
        outputs={"parameters": [param("seen")]},
    )
    tasks = [task("make", "make"), task("read", "read", depends="make")]
    result, lines = run(
        workflow(tasks, [make, read]),
        tmp_path / "run",
        artifact_root=gcs_root,
        workflow_name="wf-g",
    )
    assert result.status == "Succeeded", lines
    assert result.steps["read"]["outputs"] == {"seen": "A+C+F"}
    assert result.artifacts == {"m": f"{gcs_root}/wf-g/m", "f": f"{gcs_root}/wf-g/f"}
    assert storage.read_text(f"{gcs_root}/wf-g/m/b/c") == "C"


@pytest.mark.usefixtures("no_orphans")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_running_tasks_and_records_the_run(tmp_path: Path, sig: int) -> None:
    pid_file = tmp_path / "pid"
    sleeper = (
        "import os,sys,time,pathlib; pathlib.Path(sys.argv[1]).write_text(str(os.getpid()));"
        " time.sleep(60)"
    )
    template = workflow(
        [task("sleep", "sleep"), task("after", "sleep", depends="sleep")],
        [container("sleep", sleeper, str(pid_file))],
    )
    out = tmp_path / "run"
    runner = run_in_process(template, out)
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.05)
    child = int(pid_file.read_text())
    runner.send_signal(sig)
    stdout, stderr = runner.communicate(timeout=30)

    name = signal.Signals(sig).name
    assert runner.returncode == 0, stderr  # the library returns the result; the CLI exits
    assert "Traceback" not in stderr and f"{name}: stopping sleep" in stdout
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # stopped and reaped
    saved = json.loads((out / "run.json").read_text())
    assert saved["status"] == "Failed" and saved["message"] == "interrupted"
    assert saved["interrupted"] == {"signal": name, "stopped": ["sleep"]}
    assert saved["steps"]["sleep"]["status"] == "Failed"
    assert saved["steps"]["after"] == {
        "status": "Omitted",
        "seconds": 0.0,
        "log": None,
        "outputs": {},
        "message": f"not started: interrupted by {name}",
    }


def test_resume_reruns_what_failed_with_the_outputs_of_what_succeeded(tmp_path: Path) -> None:
    """As `argo retry`: succeeded tasks stand (their outputs and artifacts are reused),
    the failed task and those after it run again."""
    flag, count = tmp_path / "broken", tmp_path / "count"
    flag.touch()
    make = container(
        "make",
        "import pathlib,sys\n"
        "c = pathlib.Path(sys.argv[1]); c.write_text(c.read_text() + 'x' if c.exists() else 'x')\n"
        "o = pathlib.Path(sys.argv[2]); o.parent.mkdir(parents=True); o.write_text('made')\n"
        "a = pathlib.Path(sys.argv[3]); a.parent.mkdir(parents=True); a.write_text('art')",
        str(count),
        "{{outputs.parameters.made.path}}",
        "/tmp/art/file",
        outputs={"parameters": [param("made")], "artifacts": [gcs("art", "/tmp/art")]},
    )
    flaky = container(
        "flaky",
        "import pathlib,sys; sys.exit(3 if pathlib.Path(sys.argv[1]).exists() else 0)",
        str(flag),
    )
    use = container(
        "use",
        CAT,
        "/tmp/in/file",
        "{{outputs.parameters.seen.path}}",
        inputs={
            "parameters": [{"name": "made"}],
            "artifacts": [{"name": "art", "path": "/tmp/in"}],
        },
        outputs={"parameters": [param("seen")]},
    )
    tasks = [
        task("make", "make"),
        task("flaky", "flaky", depends="make"),
        task(
            "use",
            "use",
            depends="flaky",
            params={"made": "{{tasks.make.outputs.parameters.made}}"},
            artifacts=[{"name": "art", "from": "{{tasks.make.outputs.artifacts.art}}"}],
        ),
    ]
    template = workflow(tasks, [make, flaky, use])
    out = tmp_path / "run"
    failed, _ = run(template, out, workflow_name="wf-r")
    assert statuses(failed) == {"make": "Succeeded", "flaky": "Failed", "use": "Omitted"}

    flag.unlink()
    earlier = json.loads((out / "run.json").read_text())
    with pytest.raises(WorkflowError, match="holds an earlier run"):
        run(template, out, workflow_name="wf-r")
    result, lines = run(template, out, workflow_name="wf-r", earlier=earlier)
    assert statuses(result) == {"make": "Succeeded", "flaky": "Succeeded", "use": "Succeeded"}
    assert count.read_text() == "x"  # make ran once
    assert result.steps["make"]["resumed"] is True and "resumed" not in result.steps["use"]
    assert result.steps["use"]["outputs"] == {"seen": "art"}
    assert "make   Succeeded  (earlier run)" in lines
    assert result.artifacts == earlier["artifacts"]

    # A task in `rerun` runs again, with every task after it.
    result, _ = run(template, out, workflow_name="wf-r", earlier=earlier, rerun=["make"])
    assert count.read_text() == "xx" and not any(s.get("resumed") for s in result.steps.values())

    # run.json is data: a kept task's artifact pointed elsewhere is refused.
    earlier["steps"]["make"]["artifacts"]["art"] = "../../elsewhere"
    with pytest.raises(WorkflowError, match="names artifact 'art' at '../../elsewhere', not where"):
        run(template, out, workflow_name="wf-r", earlier=earlier)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'gs://{{workflow.parameters.bucket}}/{{workflow.name}}/model'", "gs://b/wf-4/model"),
        ("tasks.a.status == 'Succeeded' ? 'x' : 'y'", None),  # beyond the runner: rejected
    ],
)
def test_dag_output_expression_only_as_a_quoted_string(
    tmp_path: Path, expression: str, expected: str | None
) -> None:
    template = workflow([task("a", "ok")], [container("ok", "pass")], {"bucket": "b"})
    template["spec"]["templates"][0]["outputs"] = {
        "parameters": [{"name": "model_uri", "valueFrom": {"expression": expression}}]
    }
    if expected is None:
        with pytest.raises(WorkflowError, match="DAG output parameter 'model_uri'"):
            run(template, tmp_path / "run", workflow_name="wf-4")
    else:
        result, _ = run(template, tmp_path / "run", workflow_name="wf-4")
        assert result.outputs == {"model_uri": expected}


@pytest.mark.parametrize("fail", [False, True])
def test_exit_handler_runs_after_the_dag_with_its_status(tmp_path: Path, fail: bool) -> None:
    record = tmp_path / "exit.txt"
    templates = [
        container("fail", FAIL),
        container("echo", WRITE, str(tmp_path / "x"), "x"),
        container("on-exit", WRITE, str(record), "{{workflow.status}} {{workflow.failures}}"),
    ]
    wt = workflow([task("work", "fail" if fail else "echo")], templates)
    wt["spec"]["onExit"] = "on-exit"
    result, lines = run(wt, tmp_path / "run")
    assert result.status == ("Failed" if fail else "Succeeded")
    assert statuses(result)["on-exit"] == "Succeeded"
    status, _, failures = record.read_text().partition(" ")
    assert status == result.status
    assert json.loads(failures) == (
        [
            {
                "displayName": "work",
                "templateName": "fail",
                "phase": "Failed",
                "message": "exit code 3",
            }
        ]
        if fail
        else []
    )


def test_a_failing_exit_handler_fails_the_run(tmp_path: Path) -> None:
    wt = workflow(
        [task("work", "echo")],
        [container("echo", WRITE, str(tmp_path / "x"), "x"), container("on-exit", FAIL)],
    )
    wt["spec"]["onExit"] = "on-exit"
    result, _ = run(wt, tmp_path / "run")
    assert result.status == "Failed" and "on-exit" in result.message


# ---- retryStrategy and activeDeadlineSeconds, as Argo applies them ----------------------

# Fails with exit code argv[2] until its counter file argv[1] reaches argv[3] attempts.
FLAKY = (
    "import pathlib, sys; c = pathlib.Path(sys.argv[1]); n = int(c.read_text()) + 1 "
    "if c.exists() else 1; c.write_text(str(n)); sys.exit(int(sys.argv[2]) "
    "if n < int(sys.argv[3]) else 0)"
)
STEP_RETRIES = {
    "limit": "3",
    "retryPolicy": "Always",
    "expression": "asInt(lastRetry.exitCode) != 2",
    "backoff": {"duration": "50ms", "factor": "2", "maxDuration": "1m"},
}


def flaky(tmp_path: Path, exit_code: int, succeed_on: int, **extra: Any) -> dict:
    template = container("flaky", FLAKY, str(tmp_path / "count"), str(exit_code), str(succeed_on))
    return {**template, "retryStrategy": STEP_RETRIES, **extra}


def test_a_transient_failure_is_retried_with_backoff(tmp_path: Path) -> None:
    result, lines = run(workflow([task("f", "flaky")], [flaky(tmp_path, 1, 3)], {}), tmp_path / "r")
    assert result.status == "Succeeded", lines
    assert (tmp_path / "count").read_text() == "3"
    assert result.steps["f"]["retries"] == 2
    log = Path(result.steps["f"]["log"]).read_text()
    assert "retry 1 of 3 after 0.05 s" in log and "retry 2 of 3 after 0.1 s" in log


def test_a_user_error_is_not_retried(tmp_path: Path) -> None:
    result, _ = run(workflow([task("f", "flaky")], [flaky(tmp_path, 2, 3)], {}), tmp_path / "r")
    assert result.status == "Failed"
    assert (tmp_path / "count").read_text() == "1"  # one attempt only
    assert "retries" not in result.steps["f"]


def test_retries_stop_at_the_limit(tmp_path: Path) -> None:
    result, _ = run(workflow([task("f", "flaky")], [flaky(tmp_path, 1, 99)], {}), tmp_path / "r")
    assert result.status == "Failed"
    assert (tmp_path / "count").read_text() == "4" and result.steps["f"]["retries"] == 3


def test_a_step_past_its_deadline_is_stopped(tmp_path: Path) -> None:
    slow = {**container("slow", "import time; time.sleep(60)"), "activeDeadlineSeconds": "1"}
    began = time.monotonic()
    result, _ = run(workflow([task("s", "slow")], [slow], {}), tmp_path / "r")
    assert time.monotonic() - began < 30
    assert result.status == "Failed"
    assert result.steps["s"]["message"] == (
        "Pod was active on the node longer than the specified deadline (1 s)"
    )


def test_the_pipelines_steps_carry_these_rules() -> None:
    from workflows.dag import pipeline

    for template in pipeline.render()[0]["spec"]["templates"]:
        if "container" in template:
            assert template["retryStrategy"]["expression"] == STEP_RETRIES["expression"]
            assert template["activeDeadlineSeconds"] == (
                "{{workflow.parameters.step_deadline_seconds}}"
            )
        elif "resource" in template:
            assert template["retryStrategy"]["retryPolicy"] == "OnError"  # API errors only


# Wait until the log of task ARGV[2] (in the run folder ARGV[1]) shows its warm process
# waiting; print that line; then sleep ARGV[4] seconds (default none) and exit with ARGV[3].
AWAIT_WARM = (
    "import pathlib,sys,time\n"
    "log = pathlib.Path(sys.argv[1]) / 'logs' / (sys.argv[2] + '.log'); end = time.time() + 60\n"
    "while 'warm start: pid' not in (text := log.read_text() if log.exists() else ''):\n"
    "    assert time.time() < end, 'no warm start'; time.sleep(0.05)\n"
    "print(text, flush=True); time.sleep(float(sys.argv[4]) if sys.argv[4:] else 0)\n"
    "sys.exit(int(sys.argv[3]))"
)


def warm_pid(log: Path) -> int:
    found = re.search(r"warm start: pid (\d+)", log.read_text())
    assert found, log.read_text()
    return int(found.group(1))


def validate_step(tmp_path: Path, env: dict[str, str] | None = None, train: str = "") -> dict:
    """A template of the project's own step CLI: validate-params on a tiny CSV."""
    csv = tmp_path / "data.csv"
    csv.write_text("text,label\ngood,1\nbad,0\n")
    step = container("validate", "", outputs={"parameters": [param("params")]}, env=env)
    step["container"]["command"] = ["python", "-m", "textcnn", "validate-params"]
    step["container"]["args"] = [
        f"--train_data_path={train or csv}",
        f"--test_data_path={csv}",
        f"--outputs={PARAMS}",
    ]
    return step


def test_a_step_of_our_cli_imports_while_its_dependency_runs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    templates = [container("before", AWAIT_WARM, str(out), "after", "0"), validate_step(tmp_path)]
    tasks = [task("before", "before"), task("after", "validate", depends="before")]
    result, lines = run(workflow(tasks, templates), out)
    assert result.status == "Succeeded", lines
    step = result.steps["after"]
    assert step["warm_start"] is True
    assert json.loads(step["outputs"]["params"])["train_data_path"] == str(tmp_path / "data.csv")
    log = Path(step["log"]).read_text()
    # Imported before its command line came; then it ran it, as a cold start would have.
    assert log.index("warm start: pid") < log.index("$ ") < log.index("timing step=validate")
    assert "warm_start" not in result.steps["before"]  # `python -c`: no step CLI


def test_a_warm_started_step_fails_as_a_cold_one_does(tmp_path: Path) -> None:
    out = tmp_path / "run"
    missing = tmp_path / "missing.csv"
    templates = [
        container("before", AWAIT_WARM, str(out), "after", "0"),
        validate_step(tmp_path, train=str(missing)),
    ]
    tasks = [task("before", "before"), task("after", "validate", depends="before")]
    result, lines = run(workflow(tasks, templates), out)
    step = result.steps["after"]
    assert step["status"] == "Failed" and step["warm_start"] is True, lines
    # The step's own verdict and exit code (textcnn.cli: not retried), and its memory.
    assert step["message"] == f"exit code {NOT_RETRIED} (error: validate-params: invalid options:)"
    assert f"--train_data_path {missing}: " in Path(step["log"]).read_text()
    assert step["max_rss_mib"] > 0


def test_cold_start_starts_each_process_when_its_task_is_ready(tmp_path: Path) -> None:
    templates = [container("before", WRITE, f"{tmp_path}/x", "1"), validate_step(tmp_path)]
    tasks = [task("before", "before"), task("after", "validate", depends="before")]
    result, lines = run(workflow(tasks, templates), tmp_path / "run", warm_start=False)
    assert result.status == "Succeeded", lines
    assert "warm_start" not in result.steps["after"]
    assert "warm start" not in Path(result.steps["after"]["log"]).read_text()


def test_a_step_whose_environment_waits_on_outputs_starts_cold(tmp_path: Path) -> None:
    templates = [
        container("before", WRITE, f"{PARAMS}/x", "1", outputs={"parameters": [param("x")]}),
        validate_step(tmp_path, env={"X": "{{inputs.parameters.x}}"}),
    ]
    templates[1]["inputs"] = {"parameters": [{"name": "x"}]}
    tasks = [
        task("before", "before"),
        task(
            "after",
            "validate",
            depends="before",
            params={"x": "{{tasks.before.outputs.parameters.x}}"},
        ),
    ]
    result, lines = run(workflow(tasks, templates), tmp_path / "run")
    assert result.status == "Succeeded", lines
    assert "warm_start" not in result.steps["after"]
    assert "warm start" not in Path(result.steps["after"]["log"]).read_text()
    assert "train_data_path" in result.steps["after"]["outputs"]["params"]


def test_the_warm_process_of_a_task_that_never_runs_is_stopped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    templates = [container("before", AWAIT_WARM, str(out), "after", "3"), validate_step(tmp_path)]
    tasks = [task("before", "before"), task("after", "validate", depends="before")]
    result, lines = run(workflow(tasks, templates), out)
    assert statuses(result) == {"before": "Failed", "after": "Omitted"}, lines
    pid = warm_pid(out / "logs" / "before.log")
    with pytest.raises(ProcessLookupError):  # stopped and reaped
        os.kill(pid, 0)
    assert result.steps["after"]["log"] is None
    assert not (out / "logs" / "after.log").exists()  # it never ran: no log


def test_an_interrupt_stops_warm_processes_too(tmp_path: Path) -> None:
    out = tmp_path / "run"
    templates = [
        container("before", AWAIT_WARM, str(out), "after", "0", "60"),
        validate_step(tmp_path),
    ]
    tasks = [task("before", "before"), task("after", "validate", depends="before")]
    runner = run_in_process(workflow(tasks, templates), out)
    log, deadline = out / "logs" / "before.log", time.monotonic() + 30
    while not re.search(r"warm start: pid \d", log.read_text() if log.exists() else ""):
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.05)
    runner.send_signal(signal.SIGINT)
    _, stderr = runner.communicate(timeout=30)
    assert runner.returncode == 0 and "Traceback" not in stderr, stderr
    with pytest.raises(ProcessLookupError):
        os.kill(warm_pid(log), 0)
    steps = json.loads((out / "run.json").read_text())["steps"]
    assert steps["after"]["status"] == "Omitted" and steps["after"]["log"] is None


# --- resource templates, through a Kubernetes API ----------------------------------------

TFJOB = next(k for k in KINDS if k.kind == "TFJob")
TFJOB_MANIFEST = (
    "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata:\n"
    "  generateName: {{workflow.name}}-\nspec:\n"
    "  workers: {{inputs.parameters.workers}}\n"
)


@pytest.fixture
def api() -> Iterator[tuple[ClusterAccess, Objects, list[list[str]]]]:
    """A Kubernetes API that admits everything but objects with `spec.bad`; the third
    element collects each authorization request (user, verb, group, resource, ns, name)."""
    objects, asked = Objects(), []

    def authorize(*request: str) -> bool:
        asked.append(list(request))
        return True

    def admit(kind: Any, doc: dict[str, Any]) -> list[str]:
        return ["spec.bad: not allowed"] if "bad" in doc.get("spec", {}) else []

    with KubeApi(objects, {"token": "argo"}, authorize, admit) as server:
        yield ClusterAccess(server.url, "token", {}), objects, asked


def resource_workflow(action: str, manifest: str, owner: bool = True) -> dict[str, Any]:
    tfjob = {
        "name": "tfjob",
        "resource": {"action": action, "manifest": manifest, "setOwnerReference": owner},
        "inputs": {"parameters": [{"name": "workers"}]},
        "outputs": {
            "parameters": [{"name": "job-name", "valueFrom": {"jsonPath": "{.metadata.name}"}}]
        },
    }
    show = container(
        "show",
        WRITE,
        f"{PARAMS}/name",
        "{{inputs.parameters.name}}",
        inputs={"parameters": [{"name": "name"}]},
        outputs={"parameters": [param("name")]},
    )
    tasks = [
        task("tfjob", "tfjob", params={"workers": "{{workflow.parameters.workers}}"}),
        task(
            "wait",
            "show",
            depends="tfjob",
            params={"name": "{{tasks.tfjob.outputs.parameters.job-name}}"},
        ),
    ]
    return workflow(tasks, [tfjob, show], {"workers": "2"})


def test_a_resource_template_creates_its_object_as_argos_executor_does(
    tmp_path: Path, api: tuple[ClusterAccess, Objects, list[list[str]]]
) -> None:
    access, objects, asked = api
    out = tmp_path / "run"
    template = resource_workflow("create", TFJOB_MANIFEST)
    result, lines = run(template, out, {"workers": "3"}, workflow_name="wf-3", cluster=access)
    assert result.status == "Succeeded", lines
    (job,) = objects.list_of(TFJOB)
    name = job["metadata"]["name"]
    assert re.fullmatch(r"wf-3-\w{5}", name) and job["spec"] == {"workers": 3}
    (owner,) = job["metadata"]["ownerReferences"]  # setOwnerReference: the workflow
    assert owner["kind"] == "Workflow" and owner["name"] == "wf-3" and owner["controller"]
    # The generated name, read back by jsonPath (kubectl get), reaches the next task.
    assert result.steps["wait"]["outputs"] == {"name": name}
    assert [a[1:4] for a in asked] == [
        ["create", "kubeflow.org", "tfjobs"],
        ["get", "kubeflow.org", "tfjobs"],
    ]
    assert f"tfjob/{name} created" in (out / "logs" / "tfjob.log").read_text()

    with pytest.raises(WorkflowError, match="'tfjob' is a resource template"):
        run_workflow(template, {}, tmp_path / "again", on_progress=lines.append)


def test_apply_creates_then_merge_patches(
    tmp_path: Path, api: tuple[ClusterAccess, Objects, list[list[str]]]
) -> None:
    access, objects, asked = api
    manifest = TFJOB_MANIFEST.replace("generateName: {{workflow.name}}-", "name: trainer")
    template = resource_workflow("apply", manifest, owner=False)
    for workers, generation in (("2", 1), ("4", 2)):
        result, lines = run(
            template, tmp_path / f"run-{workers}", {"workers": workers}, cluster=access
        )
        assert result.status == "Succeeded", lines
        job = objects.get(TFJOB, "default", "trainer")
        assert job["spec"]["workers"] == int(workers)
        assert job["metadata"]["generation"] == generation
    verbs = [a[1] for a in asked]
    assert verbs == ["get", "create", "get", "get", "patch", "get"]


def test_an_object_the_api_refuses_fails_its_task_with_the_apis_message(
    tmp_path: Path, api: tuple[ClusterAccess, Objects, list[list[str]]]
) -> None:
    access, objects, _ = api
    template = resource_workflow("create", TFJOB_MANIFEST + "  bad: true\n")
    result, lines = run(template, tmp_path / "run", cluster=access)
    assert result.steps["tfjob"]["status"] == "Failed"
    assert result.steps["wait"]["status"] == "Omitted"
    assert "spec.bad: not allowed" in result.steps["tfjob"]["message"]
    assert any("task 'tfjob' failed" in line for line in lines)
    assert objects.list_of(TFJOB) == []


def test_apply_drops_what_the_manifest_no_longer_sets(
    tmp_path: Path, api: tuple[ClusterAccess, Objects, list[list[str]]]
) -> None:
    """As `kubectl apply` does: a field the last apply set and this one does not is
    removed (switching a predictor's runtime must not leave the old one beside it)."""
    access, objects, _ = api
    manifest = TFJOB_MANIFEST.replace("generateName: {{workflow.name}}-", "name: trainer")
    first = resource_workflow("apply", manifest + "  old: {runtime: a, keep: 1}\n", owner=False)
    second = resource_workflow("apply", manifest + "  new: {runtime: b}\n", owner=False)
    for n, template in enumerate((first, second)):
        result, lines = run(template, tmp_path / f"run-{n}", cluster=access)
        assert result.status == "Succeeded", lines
    job = objects.get(TFJOB, "default", "trainer")
    assert job["spec"] == {"workers": 2, "new": {"runtime": "b"}}
