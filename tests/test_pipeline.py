"""The compiled DAG: golden YAML, wiring, conditions, GPU scheduling, cron, and agreement
with the step functions.

Golden files: the checked-in manifests/workflows/*.yaml are the expected render() output.
After an intended change, regenerate them with `make compile` and review the diff.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import dag_tasks, simulate

from textcnn import cli
from textcnn.params import PipelineParams
from workflows.dag import caching, pipeline, templates
from workflows.dag.parameters import workflow_parameters
from workflows.expressions import Depends, ancestors

ROOT = Path(__file__).resolve().parent.parent
TASKS = [
    "validate-params",
    "dataset-metadata-train",
    "dataset-metadata-test",
    "prepare-data",
    "check-data",
    "embeddings",
    "model-metadata",
    "train",
    "train-gpu",
    "workdir-claim",
    "stage-data",
    "tfjob",
    "wait-tfjob",
    "tfjob-gpu",
    "wait-tfjob-gpu",
    "trainjob",
    "wait-trainjob",
    "trainjob-gpu",
    "wait-trainjob-gpu",
    "collect-model",
    "fit-ngrams",
    "export",
    "evaluate",
    "log-training-metadata",
    "gate",
    "deploy-tensorflow",
    "deploy-custom",
    "deploy-wait",
    "canary-check",
]
# The task that produces the `cnn` artifact in each training branch.
TRAINERS = ("train", "train-gpu", "collect-model")
ARTIFACTS = {
    "train-report",
    "test-report",
    "prepared",
    "data-checks",
    "embeddings",
    "spec",
    "cnn",
    "ngrams",
    "model",
    "training",
    "metrics",
    "gate",
}
REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return pipeline.render()


@pytest.fixture(scope="module")
def wt(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return docs[0]


def templates_by_name(wt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in wt["spec"]["templates"]}


def containers(wt: dict[str, Any]) -> Iterator[dict[str, Any]]:
    return (t for t in wt["spec"]["templates"] if "container" in t)


def refs(obj: Any) -> list[str]:
    """Every `{{...}}` reference in a document fragment."""
    return REF.findall(json.dumps(obj))


def depends_names(expression: str) -> frozenset[str]:
    return Depends.parse(expression).tasks if expression else frozenset()


def output_parameters(template: dict[str, Any]) -> list[str]:
    return [p["name"] for p in template.get("outputs", {}).get("parameters", [])]


def combinations() -> Iterator[tuple[bool, bool, str]]:
    """(gpu_support, dist_training, dist_backend): one pod on CPU or GPU, or either backend's
    CPU or GPU job."""
    for gpu in (False, True):
        yield gpu, False, "tfjob"
        for backend in ("tfjob", "trainjob"):
            yield gpu, True, backend


# --- golden YAML and checked-in manifests ---------------------------------------------


@pytest.mark.parametrize("index", [0, 1])
def test_render_matches_the_checked_in_manifests(docs: list[dict[str, Any]], index: int) -> None:
    doc = docs[index]
    path = ROOT / "manifests" / "workflows" / f"{doc['metadata']['name']}.yaml"
    text, expected = pipeline.to_yaml(doc), path.read_text()
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(True), text.splitlines(True), str(path), "render()"
        )
    )
    assert text == expected, f"{path} is stale (`make compile` rewrites it):\n{diff}"


def test_write_manifests_writes_both_documents(tmp_path: Path) -> None:
    params = PipelineParams(epochs=3, namespace="ml")
    paths = pipeline.write_manifests(tmp_path / "out", params)
    assert [p.name for p in paths] == ["textcnn-pipeline.yaml", "textcnn-retrain.yaml"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in paths]
    wt, cron = (yaml.safe_load(p.read_text()) for p in paths)
    assert (wt, cron) == tuple(pipeline.render(params))
    assert {p["name"]: p["value"] for p in wt["spec"]["arguments"]["parameters"]}["epochs"] == "3"
    assert wt["metadata"]["namespace"] == cron["metadata"]["namespace"] == "ml"


# --- parameters -----------------------------------------------------------------------


def test_workflow_parameters_are_every_option_in_order(wt: dict[str, Any]) -> None:
    assert wt["spec"]["arguments"]["parameters"] == workflow_parameters()


def test_every_workflow_parameter_used_is_declared(docs: list[dict[str, Any]]) -> None:
    declared = {p["name"] for p in docs[0]["spec"]["arguments"]["parameters"]}
    used = {
        r.removeprefix("workflow.parameters.")
        for r in refs(docs)
        if r.startswith("workflow.parameters.")
    }
    assert used and used <= declared, used - declared


# --- DAG wiring -----------------------------------------------------------------------


def test_dag_has_the_architecture_tasks(wt: dict[str, Any]) -> None:
    assert wt["metadata"]["name"] == "textcnn-pipeline"
    assert wt["spec"]["entrypoint"] == "pipeline"
    assert list(dag_tasks(wt)) == TASKS


def test_pods_run_as_the_workflow_service_account(wt: dict[str, Any]) -> None:
    rbac = yaml.safe_load_all((ROOT / "manifests" / "rbac.yaml").read_text())
    accounts = {d["metadata"]["name"] for d in rbac if d and d["kind"] == "ServiceAccount"}
    assert wt["spec"]["serviceAccountName"] in accounts


def test_every_template_referenced_exists(wt: dict[str, Any]) -> None:
    names = templates_by_name(wt)
    assert wt["spec"]["entrypoint"] in names
    for task in dag_tasks(wt).values():
        assert task["template"] in names, task


def test_dependencies_are_explicit_and_name_existing_tasks(wt: dict[str, Any]) -> None:
    tasks = dag_tasks(wt)
    for name, task in tasks.items():
        assert "dependencies" not in task
        if name != "validate-params":
            assert depends_names(task["depends"]) <= set(tasks) - {name}, task


def test_task_arguments_match_template_inputs(wt: dict[str, Any]) -> None:
    names = templates_by_name(wt)
    for task in dag_tasks(wt).values():
        given = [p["name"] for p in task.get("arguments", {}).get("parameters", [])]
        inputs = names[task["template"]].get("inputs", {})
        wanted = [p["name"] for p in inputs.get("parameters", [])]
        assert sorted(given) == sorted(wanted), task["name"]


def test_a_task_using_outputs_of_another_depends_on_it(wt: dict[str, Any]) -> None:
    tasks, names = dag_tasks(wt), templates_by_name(wt)
    found = ancestors({n: depends_names(t.get("depends", "")) for n, t in tasks.items()})
    used_somewhere = False
    for name, task in tasks.items():
        for ref in refs(task.get("arguments", {})):
            m = re.fullmatch(r"tasks\.([\w-]+)\.outputs\.parameters\.([\w-]+)", ref)
            assert m, ref
            producer, key = m.groups()
            assert producer in found[name], (name, producer)
            assert key in output_parameters(names[tasks[producer]["template"]]), ref
            used_somewhere = True
    assert used_somewhere


def test_dag_outputs(wt: dict[str, Any]) -> None:
    dag = templates_by_name(wt)["pipeline"]
    outputs = {p["name"]: p["valueFrom"] for p in dag["outputs"]["parameters"]}
    # From log-training-metadata, which always runs (evaluate's metrics may be reused).
    lineage = "{{tasks.log-training-metadata.outputs.parameters"
    assert outputs["accuracy"] == {"parameter": f"{lineage}.accuracy}}}}"}
    assert outputs["macro_f1"] == {"parameter": f"{lineage}.macro_f1}}}}"}
    lineage_outputs = output_parameters(templates_by_name(wt)["log-training-metadata"])
    assert {"accuracy", "macro_f1"} <= set(lineage_outputs)
    # The model URI is the one recorded in ML Metadata, which is also what gets deployed.
    assert outputs["model_uri"] == {
        "parameter": "{{tasks.log-training-metadata.outputs.parameters.model_uri}}"
    }
    assert "model_uri" in output_parameters(templates_by_name(wt)["log-training-metadata"])
    # The gate's verdict shows in the Argo UI.
    for key in ("decision", "reason"):
        assert outputs[f"gate_{key}"] == {
            "parameter": f"{{{{tasks.gate.outputs.parameters.{key}}}}}"
        }


@pytest.mark.parametrize(("decision", "deployed"), [("deploy", True), ("skip", False)])
def test_the_gate_decides_whether_the_deploy_tasks_run(
    wt: dict[str, Any], decision: str, deployed: bool
) -> None:
    phases = simulate(
        wt,
        PipelineParams().to_strings(),
        {"tasks.gate.outputs.parameters.decision": decision},
    )
    assert phases["gate"] == "Succeeded"
    assert phases["deploy-tensorflow"] == ("Succeeded" if deployed else "Skipped")
    assert phases["deploy-custom"] == "Skipped"
    assert phases["deploy-wait"] == ("Succeeded" if deployed else "Omitted")
    assert phases["canary-check"] == ("Skipped" if deployed else "Omitted")


def test_a_canary_is_checked(wt: dict[str, Any]) -> None:
    params = PipelineParams(serving_deployment_mode="Serverless", canary_traffic_percent=10)
    assert simulate(wt, params.to_strings())["canary-check"] == "Succeeded"


# --- conditions -----------------------------------------------------------------------


@pytest.mark.parametrize(("gpu", "dist", "backend"), list(combinations()))
def test_exactly_one_training_branch_runs(
    gpu: bool, dist: bool, backend: str, wt: dict[str, Any]
) -> None:
    params = PipelineParams(gpu_support=gpu, dist_training=dist, dist_backend=backend)
    phases = simulate(wt, params.to_strings())
    ran = [t for t, phase in phases.items() if phase == "Succeeded"]
    job = f"{backend}-gpu" if gpu else backend
    if dist:
        branch = ["workdir-claim", "stage-data", job, f"wait-{job}", "collect-model"]
    else:
        branch = ["train-gpu" if gpu else "train"]
    training = TASKS[TASKS.index("train") : TASKS.index("fit-ngrams")]
    assert [t for t in training if t in ran] == branch
    assert [t for t in TRAINERS if t in ran] == [branch[-1]]
    # Everything outside the training branches runs, whichever branch it was (deploying
    # with the default serving runtime, fully: no canary).
    assert set(TASKS) - set(training) - {"deploy-custom", "canary-check"} <= set(ran)
    assert set(phases.values()) <= {"Succeeded", "Skipped", "Omitted"}


def test_join_waits_for_a_branch_that_succeeded() -> None:
    assert pipeline.join_branches(["a", "b-c"]) == "a.Succeeded || b-c.Succeeded"
    join = pipeline.join_branches(["train", "train-gpu"])
    assert Depends.parse(join).holds({"train": "Skipped", "train-gpu": "Succeeded"})
    assert not Depends.parse(join).holds({"train": "Skipped", "train-gpu": "Skipped"})
    assert not Depends.parse(join).holds({"train": "Failed", "train-gpu": "Skipped"})


@pytest.mark.parametrize(("gpu", "dist", "backend"), list(combinations()))
def test_every_artifact_read_was_written_by_a_task_that_ran(
    gpu: bool, dist: bool, backend: str, wt: dict[str, Any]
) -> None:
    tasks, names = dag_tasks(wt), templates_by_name(wt)
    params = PipelineParams(gpu_support=gpu, dist_training=dist, dist_backend=backend)
    phases = simulate(wt, params.to_strings())

    def keys(task: str, side: str) -> set[str]:
        template = names[tasks[task]["template"]]
        return {a["gcs"]["key"] for a in template.get(side, {}).get("artifacts", [])}

    found = ancestors({n: depends_names(t.get("depends", "")) for n, t in tasks.items()})
    for task in (t for t, phase in phases.items() if phase == "Succeeded"):
        written = set().union(
            *(keys(a, "outputs") for a in found[task] if phases[a] == "Succeeded")
        )
        assert keys(task, "inputs") <= written, task


# --- templates ------------------------------------------------------------------------


def test_step_templates_run_the_step_cli(wt: dict[str, Any]) -> None:
    for template in containers(wt):
        c = template["container"]
        assert c["command"][:3] == ["python", "-m", "textcnn"]
        assert c["command"][3] in cli.STEPS
        assert all(re.fullmatch(r"--\w+=.*", a) for a in c["args"]), template["name"]
        image = "gpu_image" if template["name"] == "train-gpu" else "image"
        assert c["image"] == f"{{{{workflow.parameters.{image}}}}}"
        assert c["env"] == [
            {"name": "ARTIFACT_ROOT", "value": "gs://{{workflow.parameters.gcp_bucket}}"},
            {"name": "KERAS_HOME", "value": "/tmp/keras"},  # the root filesystem is read-only
            # The step's threads follow its CPU request (textcnn.cpus), rounded up.
            {
                "name": "CPU_REQUEST",
                "valueFrom": {"resourceFieldRef": {"divisor": "1", "resource": "requests.cpu"}},
            },
        ]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"])
        assert "memory" in c["resources"]["limits"]
        if any(a.startswith("--run_name=") for a in c["args"]):
            assert "--run_name={{workflow.name}}" in c["args"]


def test_output_parameters_are_read_from_the_outputs_folder(wt: dict[str, Any]) -> None:
    for template in containers(wt):
        args = template["container"]["args"]
        params = template.get("outputs", {}).get("parameters", [])
        assert ("--outputs=/tmp/outputs/params" in args) == bool(params), template["name"]
        for p in params:
            assert p["valueFrom"] == {"path": f"/tmp/outputs/params/{p['name']}"}


def test_artifacts_are_key_only_unarchived_and_referenced(wt: dict[str, Any]) -> None:
    for template in containers(wt):
        declared = {"inputs": set(), "outputs": set()}
        for side, folder in (("inputs", "in"), ("outputs", "out")):
            for a in template.get(side, {}).get("artifacts", []):
                if a["name"] == caching.ENTRY:  # a cached stage's entry, written last
                    assert a == template["outputs"]["artifacts"][-1]
                    assert a["gcs"] == {"key": "{{inputs.parameters.entry}}"}
                    continue
                assert a["name"] in ARTIFACTS
                # No bucket: a cached stage's artifact at the key validate-params gives.
                key = (
                    f"{{{{inputs.parameters.key-{a['name']}}}}}"
                    if a["name"] in caching.ARTIFACTS
                    else f"{{{{workflow.name}}}}/{a['name']}"
                )
                assert a["gcs"] == {"key": key}
                assert a["path"] == f"/tmp/artifacts/{folder}/{a['name']}"
                if side == "outputs":
                    assert a["archive"] == {"none": {}}
                    cached = a["name"] in caching.ARTIFACTS
                    assert ("artifactGC" in a) == cached
                declared[side].add(a["name"])
        used = {side: set() for side in declared}
        for ref in refs(template["container"]):
            if m := re.fullmatch(r"(inputs|outputs)\.artifacts\.([\w-]+)\.path", ref):
                used[m.group(1)].add(m.group(2))
        assert used == declared, template["name"]
        input_params = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        used_params = {
            r.removeprefix("inputs.parameters.")
            for r in refs(
                [
                    template["container"],
                    template.get("volumes"),
                    template.get("inputs"),
                    template.get("outputs"),
                ]
            )
            if r.startswith("inputs.parameters.")
        }
        assert used_params == input_params, template["name"]


def test_every_training_branch_writes_the_same_artifacts(wt: dict[str, Any]) -> None:
    names = templates_by_name(wt)
    cpu, gpu = names["train"], names["train-gpu"]
    assert cpu["outputs"] == gpu["outputs"] == names["collect-model"]["outputs"]
    assert cpu["inputs"] == gpu["inputs"]
    assert cpu["container"]["args"] == gpu["container"]["args"]
    assert wt["spec"]["artifactRepositoryRef"] == {
        "configMap": "artifact-repositories",
        "key": "gcs",
    }


def test_gpu_scheduling_only_on_the_gpu_template(wt: dict[str, Any]) -> None:
    names = templates_by_name(wt)
    gpu = names["train-gpu"]
    # A quantity field is decoded before substitution: the count comes through the patch.
    assert "nvidia.com/gpu" not in gpu["container"]["resources"]["limits"]
    assert json.loads(gpu["podSpecPatch"]) == {
        "containers": [
            {
                "name": "main",
                "resources": {"limits": {"nvidia.com/gpu": "{{workflow.parameters.gpu_count}}"}},
            }
        ]
    }
    key, value = "gpu_node_selector_key", "gpu_node_selector_value"
    assert gpu["nodeSelector"] == {
        f"{{{{workflow.parameters.{key}}}}}": f"{{{{workflow.parameters.{value}}}}}"
    }
    assert gpu["tolerations"] == [
        {
            "key": "{{workflow.parameters.gpu_toleration_key}}",
            "operator": "Exists",
            "effect": "NoSchedule",
        }
    ]
    [tmp, shm] = gpu["volumes"]
    assert tmp == {"name": "tmp", "emptyDir": {}}
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": shm["name"], "mountPath": "/dev/shm"} in gpu["container"]["volumeMounts"]
    workdir = {"name": "workdir", "mountPath": "{{workflow.parameters.workdir}}"}
    for template in containers(wt):
        if template["name"] != "train-gpu":
            assert "nvidia.com/gpu" not in json.dumps(template), template["name"]
            assert not {"nodeSelector", "tolerations", "affinity", "podSpecPatch"} & set(template)
            # Only /tmp and the TFJob branch's shared volume (on the claim given) are mounted.
            tmp = {"name": "tmp", "mountPath": "/tmp"}
            assert template["container"]["volumeMounts"] in ([tmp], [tmp, workdir])
            assert template["volumes"][1:] in ([], [templates.workdir_volume()])


def test_display_names_are_template_annotations(wt: dict[str, Any]) -> None:
    for template in wt["spec"]["templates"]:
        assert template["annotations"][templates.DISPLAY_NAME], template["name"]
        assert "metadata" not in template, template["name"]
    ui = wt["spec"]["workflowMetadata"]["annotations"]
    assert {"workflows.argoproj.io/title", "workflows.argoproj.io/description"} <= set(ui)


def test_hoist_keeps_other_pod_annotations() -> None:
    doc = {
        "spec": {
            "templates": [
                {"name": "a", "metadata": {"annotations": {templates.DISPLAY_NAME: "A", "x": "1"}}},
                {
                    "name": "b",
                    "metadata": {
                        "annotations": {templates.DISPLAY_NAME: "B"},
                        "labels": {"l": "v"},
                    },
                },
                {"name": "c"},
            ]
        }
    }
    pipeline.hoist_template_annotations(doc)
    assert doc["spec"]["templates"] == [
        {
            "name": "a",
            "metadata": {"annotations": {"x": "1"}},
            "annotations": {templates.DISPLAY_NAME: "A"},
        },
        {
            "name": "b",
            "metadata": {"labels": {"l": "v"}},
            "annotations": {templates.DISPLAY_NAME: "B"},
        },
        {"name": "c"},
    ]


def test_no_memoize_and_string_retry_limits(docs: list[dict[str, Any]]) -> None:
    # v3.7 rejects Hera's memoize form; IntOrString is string-only in the Argo schema.
    def walk(obj: Any) -> Iterator[tuple[str, Any]]:
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield k, v
                yield from walk(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from walk(v)

    for key, value in walk(docs):
        assert key != "memoize"
        if key == "retryStrategy" and "limit" in value:
            assert isinstance(value["limit"], str)


# --- the CronWorkflow -----------------------------------------------------------------


def test_cron_workflow_runs_the_template_on_a_schedule(docs: list[dict[str, Any]]) -> None:
    from croniter import croniter

    wt, cron = docs
    spec = cron["spec"]
    assert cron["kind"] == "CronWorkflow" and cron["metadata"]["name"] == "textcnn-retrain"
    assert spec["schedules"] == ["0 3 * * 1"] and all(
        croniter.is_valid(s) for s in spec["schedules"]
    )
    assert spec["timezone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] > 0 and spec["failedJobsHistoryLimit"] > 0
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": wt["metadata"]["name"]}
    args = spec["workflowSpec"]["arguments"]["parameters"]
    assert [a["name"] for a in args] == [p["name"] for p in wt["spec"]["arguments"]["parameters"]]


def test_cron_arguments_and_schedule_are_settable() -> None:
    params = PipelineParams(epochs=7, gpu_support=True)
    cron = pipeline.build_cron_workflow(params, schedule="30 1 * * *", timezone="Europe/Paris")
    spec = cron.to_dict()["spec"]
    assert spec["schedules"] == ["30 1 * * *"] and spec["timezone"] == "Europe/Paris"
    args = {a["name"]: a["value"] for a in spec["workflowSpec"]["arguments"]["parameters"]}
    assert args == params.to_strings()


# --- agreement with the step functions --------------------------------------------------


def _step_function(step: str) -> Callable[..., Any]:
    module = cli.STEPS[step].partition(":")[0]
    try:
        return cli.load_step(step)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        pytest.skip(f"{module} is not written yet")


def _placeholder(ref: str) -> str:
    """A plausible runtime value for a `{{...}}` reference, to parse the step's arguments."""
    defaults = PipelineParams().to_strings()
    if ref.startswith("workflow.parameters."):
        return defaults[ref.removeprefix("workflow.parameters.")]
    if ref == "inputs.parameters.hyperparameters":
        return PipelineParams().model_dump_json()
    if ref.startswith("inputs.parameters."):
        return "1"  # MLMD ids
    return {"workflow.name": "textcnn-pipeline-x1"}.get(ref, f"/tmp/{ref}")


def step_container(template: dict[str, Any]) -> dict[str, Any]:
    """The container that runs the step: the template's, the TFJob replicas' one, or the
    TrainJob's trainer (as the cluster gets it, parameters substituted)."""
    if "resource" not in template:
        return template["container"]
    manifest = yaml.safe_load(
        REF.sub(lambda m: _placeholder(m.group(1)), template["resource"]["manifest"])
    )
    if manifest["kind"] == "TrainJob":
        return manifest["spec"]["trainer"]
    (container,) = manifest["spec"]["tfReplicaSpecs"]["Chief"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize(
    "name", [t for t in TASKS if not t.startswith("deploy-") and t != "workdir-claim"]
)
def test_step_arguments_match_the_step_function(name: str, wt: dict[str, Any]) -> None:
    container = step_container(templates_by_name(wt)[dag_tasks(wt)[name]["template"]])
    assert container["command"][:3] == ["python", "-m", "textcnn"]
    step = container["command"][3]
    func = _step_function(step)
    signature = inspect.signature(func).parameters
    # The step's own parser accepts the arguments once Argo and Kubernetes substitute them.
    argv = [
        REF.sub(lambda m: _placeholder(m.group(1)), a).replace("$(ARTIFACT_ROOT)", "gs://b")
        for a in container["args"]
    ]
    parser = cli.build_parser(step, func)
    try:
        if any(s.kind is s.VAR_KEYWORD for s in signature.values()):
            parser.parse_known_args(argv)
        else:
            parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"python -m textcnn {step} rejects {argv}")


def test_step_arguments_come_from_the_signature_and_the_renames() -> None:
    # Every rename names a real option, and some step takes each renamed parameter.
    assert set(templates.RENAMES.values()) <= set(PipelineParams.model_fields)
    taken = {name for step in cli.STEPS for name, _ in cli.step_parameters(step)}
    assert set(templates.RENAMES) <= taken
    args = templates.step_args("prepare-data", output_dir="/out")
    assert "--train_path={{workflow.parameters.train_data_path}}" in args
    assert "--text_column={{workflow.parameters.column_text_value}}" in args
    assert args[-2:] == [
        "--output_dir=/out",
        "--json_tokenizer_path={{workflow.parameters.json_tokenizer_path}}",
    ]
    with pytest.raises(TypeError, match="parameter 'output_dir' is no option"):
        templates.step_args("prepare-data")
    with pytest.raises(TypeError, match="no parameter"):
        templates.step_args("prepare-data", output_dir="/out", outptu_dir="/x")


def test_validate_params_takes_every_option(wt: dict[str, Any]) -> None:
    args = templates_by_name(wt)["validate-params"]["container"]["args"]
    options = [a[2:].partition("=")[0] for a in args if a != "--outputs=/tmp/outputs/params"]
    # Every option, then what it needs to decide which stages run.
    assert options == [*PipelineParams.model_fields, "cache_plan", "artifact_root", "run_name"]


def test_validate_params_returns_its_declared_output(wt: dict[str, Any], tmp_path: Path) -> None:
    validate = importlib.import_module("textcnn.steps.validate_params")
    args = templates_by_name(wt)["validate-params"]["container"]["args"]
    (plan,) = [a.partition("=")[2] for a in args if a.startswith("--cache_plan=")]
    outputs = validate.run(
        cache_plan=plan,
        artifact_root=str(tmp_path),
        run_name="textcnn-pipeline-x",
        **PipelineParams().to_strings(),
    )
    assert set(output_parameters(templates_by_name(wt)["validate-params"])) <= set(outputs)
    assert PipelineParams.model_validate_json(outputs[templates.PARAMS]) == PipelineParams()


def test_argo_prometheus_metrics_of_quality_duration_and_the_gate(wt: dict[str, Any]) -> None:
    by_name = {t["name"]: t for t in wt["spec"]["templates"]}

    def metrics(template: str) -> dict[str, dict[str, Any]]:
        return {m["name"]: m for m in by_name[template].get("metrics", {}).get("prometheus", [])}

    for name, template in by_name.items():
        if "container" in template:  # every step pod reports how long it ran
            duration = metrics(name)["textcnn_step_duration_seconds"]
            assert duration["gauge"]["value"] == "{{duration}}"
            assert duration["labels"] == [{"key": "step", "value": name}]
    quality = metrics("log-training-metadata")  # it always runs; evaluate may be reused
    for metric, output in (
        ("textcnn_test_accuracy", "accuracy"),
        ("textcnn_test_macro_f1", "macro_f1"),
    ):
        assert quality[metric]["gauge"]["value"] == f"{{{{outputs.parameters.{output}}}}}"
        assert quality[metric]["when"] == "{{status}} == Succeeded"
    gate = metrics("gate")["textcnn_gate_decisions_total"]
    assert gate["counter"]["value"] == "1"
    assert {"key": "decision", "value": "{{outputs.parameters.decision}}"} in gate["labels"]


# --- caching (workflows/dag/caching.py) --------------------------------------------------

REUSED = {
    "nothing": set(),
    "all": set(caching.STAGES),
    "before training": set(caching.STAGES) - {"train", "export", "evaluate"},
    "only the CNN": {"train"},
}


@pytest.mark.parametrize("reused", list(REUSED))
@pytest.mark.parametrize(("gpu", "dist", "backend"), list(combinations()))
def test_a_reused_stage_is_skipped_and_what_runs_finds_its_artifacts(
    wt: dict[str, Any], reused: str, gpu: bool, dist: bool, backend: str
) -> None:
    tasks, names = dag_tasks(wt), templates_by_name(wt)
    stages = REUSED[reused]
    said = {
        f"tasks.validate-params.outputs.parameters.{stage}": (
            "cached from textcnn-pipeline-x" if stage in stages else "run"
        )
        for stage in caching.STAGES
    }
    params = PipelineParams(gpu_support=gpu, dist_training=dist, dist_backend=backend)
    decision = {"tasks.gate.outputs.parameters.decision": "deploy"}
    phases = simulate(wt, params.to_strings(), {**said, **decision})
    ran = {t for t, phase in phases.items() if phase == "Succeeded"}

    def keys(task: str, side: str) -> set[str]:
        template = names[tasks[task]["template"]]
        return {
            a["gcs"]["key"]
            for a in template.get(side, {}).get("artifacts", [])
            if a["name"] != caching.ENTRY
        }

    def stage(task: str) -> str | None:
        written = [
            a["name"]
            for a in names[tasks[task]["template"]].get("outputs", {}).get("artifacts", [])
        ]
        found = caching.stage_of(written) if written else None
        branch = ("workdir-claim", "stage-data", "tfjob", "tfjob-gpu", "trainjob", "trainjob-gpu")
        if found is None and task in branch:
            return "train"  # the distributed branch, which ends in collect-model
        return found

    for task in tasks:
        if stage(task) in stages:
            assert phases[task] in ("Skipped", "Omitted"), (task, phases[task])
    for kept in caching.STAGES:  # a stage runs (one of its writers) unless reused
        writers = {t for t in ran if stage(t) == kept}
        assert bool(writers) == (kept not in stages), (kept, writers)
    # Always run: the decision, this run's lineage, the gate and what deploys.
    assert {"validate-params", "log-training-metadata", "gate", "deploy-wait"} <= ran
    reused_keys = {
        f"{{{{inputs.parameters.{caching.key_parameter(a)}}}}}"
        for s in stages
        for a in caching.STAGES[s]
    }
    found = ancestors({n: depends_names(t.get("depends", "")) for n, t in tasks.items()})
    for task in ran:
        written = set().union(*(keys(a, "outputs") for a in found[task] if a in ran))
        assert keys(task, "inputs") <= written | reused_keys, task


def test_a_stage_writes_its_entry_last_at_the_key_validate_params_gives(
    wt: dict[str, Any],
) -> None:
    tasks, names = dag_tasks(wt), templates_by_name(wt)
    for task in tasks.values():
        template = names[task["template"]]
        artifacts = template.get("outputs", {}).get("artifacts", [])
        if not artifacts or artifacts[-1]["name"] != caching.ENTRY:
            continue
        stage = caching.stage_of(a["name"] for a in artifacts)
        given = {p["name"]: p["value"] for p in task["arguments"]["parameters"]}
        validate = "{{tasks.validate-params.outputs.parameters"
        assert given[caching.ENTRY] == f"{validate}.{caching.entry_parameter(stage)}}}}}"
        # collect-model follows the TFJob's tasks, which carry the `when`.
        gate = task["when"] if task["name"] != "collect-model" else tasks["stage-data"]["when"]
        assert f"{validate}.{stage}}}}}' == 'run'" in gate
        args = template["container"]["args"]
        assert "--cache_entry=/tmp/artifacts/out/entry" in args
        assert "--cache_run={{workflow.name}}" in args
        assert artifacts[-1]["artifactGC"] == {"strategy": "Never"}
