"""`python -m workflows lint`: clean on the real manifests, and exactly the expected
problem lines on deliberately broken documents. The broken documents are mutated copies of
the real ones (the rendered DAG, the InferenceService builder, manifests/), so they
cannot drift from what the project ships."""

from __future__ import annotations

import argparse
import copy
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflows.checks import lint, paths, yaml_bounded
from workflows.dag import pipeline
from workflows.dag.inference_service import build_inference_service
from workflows.dag.tfjob import build_tfjob, manifest_yaml
from workflows.dag.workload import Workload

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
FIXTURES = Path(__file__).parent / "fixtures" / "lint"
SOURCE = "broken.yaml"
WT = f"{SOURCE}:0 WorkflowTemplate/{pipeline.TEMPLATE_NAME}: "
CRON = f"{SOURCE}:1 CronWorkflow/{pipeline.CRON_NAME}: "
DAG = f"spec.templates[{pipeline.ENTRYPOINT}].dag.tasks"

Docs = list[dict[str, Any]]


def _templates(docs: Docs) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in docs[0]["spec"]["templates"]}


def _task(docs: Docs, name: str) -> dict[str, Any]:
    tasks = _templates(docs)[pipeline.ENTRYPOINT]["dag"]["tasks"]
    return next(t for t in tasks if t["name"] == name)


def _parameter(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in spec["arguments"]["parameters"] if p["name"] == name)


def _lint_mutated(mutate: Callable[[Docs], object]) -> list[str]:
    docs = copy.deepcopy(pipeline.render())
    mutate(docs)
    return lint.lint_documents(docs, SOURCE)


def _manifest_docs(name: str) -> Docs:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


# ---- clean -------------------------------------------------------------------------------


def test_the_committed_manifests_are_clean() -> None:
    assert lint.lint_paths([MANIFESTS]) == []


def test_the_rendered_workflows_are_clean() -> None:
    assert lint.lint_documents(pipeline.render(), "rendered") == []


def test_main_exits_0_on_the_manifests_and_1_with_one_line_per_problem(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert lint.main(argparse.Namespace(paths=[MANIFESTS])) == 0
    out, err = capsys.readouterr()
    assert out == "" and "no problems" in err

    broken = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, broken)
    role, binding = _manifest_docs("rbac.yaml")[2:]
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    (broken / "rbac.yaml").write_text(yaml.safe_dump_all([role, binding]))
    assert lint.main(argparse.Namespace(paths=[broken])) == 1
    out, err = capsys.readouterr()
    prefix = f"{broken / 'rbac.yaml'}:0 Role/textcnn-workflow: rules[0]: "
    assert out.splitlines() == [
        f"{prefix}'verbs' is a required property",
        f"{prefix}Additional properties are not allowed ('verb' was unexpected)",
    ]
    assert "2 problem(s)" in err


def test_the_module_runs_as_a_command() -> None:
    # The CronWorkflow alone: its WorkflowTemplate is not among the linted documents.
    cron = MANIFESTS / "workflows" / f"{pipeline.CRON_NAME}.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "workflows.checks.lint", str(cron)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{cron}:0 CronWorkflow/{pipeline.CRON_NAME}: spec.workflowSpec.workflowTemplateRef."
        f"name: WorkflowTemplate '{pipeline.TEMPLATE_NAME}' is not among the linted documents"
    ]
    both = [str(MANIFESTS / "workflows")]
    result = subprocess.run(
        [sys.executable, "-m", "workflows.checks.lint", *both],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "")


# ---- broken Argo documents ---------------------------------------------------------------


def _unreached_cache(task: str) -> list[str]:
    """What lint says of cached-stage `task` when validate-params is not its ancestor."""
    where = f"{WT}{DAG}[{task}]"
    unreached = "is not among the dependencies of this task; add it to depends"
    return [
        *(
            f"{where}.arguments.parameters[{name}].value: "
            f"{{{{tasks.validate-params.outputs.parameters.{output}}}}} does not resolve: "
            f"task 'validate-params' {unreached}"
            for name, output in (
                ("key-embeddings", "key-embeddings"),
                ("key-prepared", "key-prepared"),
                ("entry", f"entry-{task}"),
            )
        ),
        f"{where}.when: {{{{tasks.validate-params.outputs.parameters.{task}}}}} does not "
        f"resolve: task 'validate-params' {unreached}",
    ]


def _misspell_depends(docs: Docs) -> None:
    task = _task(docs, "embeddings")
    task["dependss"] = task.pop("depends")


def _drop_dependency(docs: Docs) -> None:
    _task(docs, "canary-check")["depends"] = "validate-params"


def _wrong_argument(docs: Docs) -> None:
    parameters = _task(docs, "log-training-metadata")["arguments"]["parameters"]
    parameters[0]["name"] = "hyperparameter"


def _add_env(docs: Docs, template: str, value: str) -> None:
    _templates(docs)[template]["container"]["env"].append({"name": "EXTRA", "value": value})


def _cron(docs: Docs) -> dict[str, Any]:
    return docs[1]["spec"]


def _pod_templates() -> list[tuple[str, str]]:
    """(name, kind) of the rendered templates that make a pod of their own container."""
    return [
        (t["name"], k)
        for t in pipeline.render()[0]["spec"]["templates"]
        for k in ("container", "script")
        if k in t
    ]


ARGO_CASES: dict[str, tuple[Callable[[Docs], object], list[str]]] = {
    "misspelled key": (
        _misspell_depends,
        [
            f"{WT}{DAG}[embeddings]: Additional properties are not allowed ('dependss' was "
            "unexpected) [Argo v4.0.5, v3.7.18]",
            *_unreached_cache("embeddings"),
        ],
    ),
    "depends on a missing task": (
        lambda d: _task(d, "embeddings").update(depends="prepare-data && prepare"),
        [f"{WT}{DAG}[embeddings].depends: no task 'prepare' in this DAG"],
    ),
    "unparsable depends": (
        lambda d: _task(d, "embeddings").update(depends="prepare-data.Finished"),
        [
            f"{WT}{DAG}[embeddings].depends: depends expression 'prepare-data.Finished': "
            "'prepare-data.Finished' is not supported; use one of Daemoned, Errored, "
            "Failed, Omitted, Skipped, Succeeded",
            *_unreached_cache("embeddings"),
        ],
    ),
    "output used without depending on its task": (
        _drop_dependency,
        [
            f"{WT}{DAG}[canary-check].arguments.parameters[{name}].value: "
            f"{{{{tasks.log-training-metadata.outputs.parameters.{name}}}}} does not resolve: "
            "task 'log-training-metadata' is not among the dependencies of this task; "
            "add it to depends"
            for name in ("model_id", "model_uri")
        ],
    ),
    "undeclared output": (
        lambda d: _task(d, "log-training-metadata")["arguments"]["parameters"][0].update(
            value="{{tasks.validate-params.outputs.parameters.param}}"
        ),
        [
            f"{WT}{DAG}[log-training-metadata].arguments.parameters[hyperparameters].value: "
            "{{tasks.validate-params.outputs.parameters.param}} does not resolve: "
            "the template of task 'validate-params' has no such output"
        ],
    ),
    "dependency cycle": (
        lambda d: _task(d, "embeddings").update(depends="model-metadata"),
        [
            f"{WT}{DAG}: dependency cycle (each task depends on the next): "
            "embeddings -> model-metadata -> embeddings"
        ],
    ),
    "missing template": (
        lambda d: _task(d, "embeddings").update(template="embedding"),
        [f"{WT}{DAG}[embeddings].template: no template 'embedding' in this workflow"],
    ),
    "missing exit handler": (
        lambda d: d[0]["spec"].update(onExit="exit-handler"),
        [
            f"{WT}spec.onExit: no template 'exit-handler' in this workflow",
            *(
                f"{WT}spec.templates[record-status].container.args[{i}]: {{{{workflow.{v}}}}} does "
                "not resolve: only exit handlers (onExit, hooks) see it"
                for i, v in ((2, "status"), (3, "failures"))
            ),
        ],
    ),
    "argument not among the inputs": (
        _wrong_argument,
        [
            f"{WT}{DAG}[log-training-metadata].arguments.parameters[hyperparameter]: template "
            "'log-training-metadata' has no input parameter 'hyperparameter'",
            f"{WT}{DAG}[log-training-metadata].arguments.parameters: missing 'hyperparameters', "
            "an input of template 'log-training-metadata' without a default",
        ],
    ),
    "parameter default outside its enum": (
        lambda d: _parameter(d[0]["spec"], "gpu_support").update(value="yes"),
        [
            f"{WT}spec.arguments.parameters[gpu_support].value: 'yes' is not one of the enum "
            "['true', 'false']"
        ],
    ),
    "cron argument outside the template's enum": (
        lambda d: _parameter(_cron(d)["workflowSpec"], "dist_training").update(value="no"),
        [
            f"{CRON}spec.workflowSpec.arguments.parameters[dist_training].value: 'no' is not "
            f"one of the enum ['true', 'false'] of WorkflowTemplate {pipeline.TEMPLATE_NAME}"
        ],
    ),
    "cron argument the template does not declare": (
        lambda d: _cron(d)["workflowSpec"]["arguments"]["parameters"].append(
            {"name": "epoch", "value": "3"}
        ),
        [
            f"{CRON}spec.workflowSpec.arguments.parameters[epoch]: not a parameter of "
            f"WorkflowTemplate {pipeline.TEMPLATE_NAME}"
        ],
    ),
    "undeclared workflow parameter": (
        lambda d: _add_env(d, "prepare-data", "{{workflow.parameters.nope}}"),
        [
            f"{WT}spec.templates[prepare-data].container.env[EXTRA].value: "
            "{{workflow.parameters.nope}} does not resolve: no workflow parameter 'nope'"
        ],
    ),
    "undeclared input": (
        lambda d: _add_env(d, "evaluate", "x{{ inputs.parameters.threshold }}"),
        [
            f"{WT}spec.templates[evaluate].container.env[EXTRA].value: "
            "{{inputs.parameters.threshold}} does not resolve: template 'evaluate' declares "
            "no input parameter 'threshold'"
        ],
    ),
    "workflow status outside an exit handler": (
        lambda d: _add_env(d, "evaluate", "{{workflow.status}}"),
        [
            f"{WT}spec.templates[evaluate].container.env[EXTRA].value: {{{{workflow.status}}}} "
            "does not resolve: only exit handlers (onExit, hooks) see it"
        ],
    ),
    "when that does not parse": (
        lambda d: _task(d, "train").update(when="{{workflow.parameters.gpu_support}} =="),
        [
            f"{WT}{DAG}[train].when: when expression 'false ==': ends too early "
            "(with the parameter defaults)"
        ],
    ),
    "bad cron schedule": (
        lambda d: _cron(d).update(schedules=["0 3 * * 1", "0 24 * * *"]),
        [
            f"{CRON}spec.schedules[1]: '0 24 * * *' is not a valid cron schedule (five fields: "
            "minute hour day-of-month month day-of-week, or @daily, @every 1h, ...)"
        ],
    ),
    "parameter in a resource quantity": (
        lambda d: _templates(d)["train-gpu"]["container"]["resources"]["limits"].update(
            {"nvidia.com/gpu": "{{workflow.parameters.gpu_count}}"}
        ),
        [
            f"{WT}spec.templates[train-gpu].container.resources.limits.nvidia.com/gpu: "
            "'{{workflow.parameters.gpu_count}}' is not a resource quantity (e.g. 1, 500m, "
            "4Gi); Argo decodes this field before it substitutes parameters, so a {{...}} "
            "placeholder cannot stand here: use podSpecPatch or a resource manifest "
            "[Argo v4.0.5 full CRD, v3.7.18 full CRD]"
        ],
    ),
    "pod spec patch of a container the pod lacks": (
        lambda d: _templates(d)["train-gpu"].update(
            podSpecPatch=_templates(d)["train-gpu"]["podSpecPatch"].replace('"main"', '"trainer"')
        ),
        [
            f"{WT}spec.templates[train-gpu].podSpecPatch.containers[0].name: 'trainer' is not "
            "a container of this template (main): the patch would add a container with no "
            "image"
        ],
    ),
    "pod spec patch that is not a pod spec": (
        lambda d: _templates(d)["train-gpu"].update(
            podSpecPatch='{"containers": [{"name": "main", "resources": {"limit": {}}}]}'
        ),
        [
            f"{WT}spec.templates[train-gpu].podSpecPatch: containers[main].resources: Additional "
            "properties are not allowed ('limit' was unexpected)"
        ],
    ),
    "a step container that is not restricted": (
        lambda d: _templates(d)["evaluate"]["container"].pop("securityContext"),
        [
            f"{WT}spec.templates[evaluate].container.securityContext.allowPrivilegeEscalation: "
            "must be false (restricted)",
            f"{WT}spec.templates[evaluate].container.securityContext.capabilities.drop: must "
            "include ALL (restricted)",
        ],
    ),
    "a workflow whose pods run as root": (
        lambda d: d[0]["spec"]["securityContext"].update(runAsUser=0),
        [
            f"{WT}spec.templates[{name}].{kind}.securityContext.runAsUser: must not be 0 "
            "(restricted)"
            for name, kind in _pod_templates()
        ],
    ),
    "a metric name or label Prometheus refuses": (
        lambda d: (
            _templates(d)["log-training-metadata"]["metrics"]["prometheus"][1].update(
                name="test.accuracy"
            ),
            _templates(d)["gate"]["metrics"]["prometheus"][1]["labels"][0].update(key="is-vc"),
        ),
        [
            f"{WT}spec.templates[log-training-metadata].metrics.prometheus[test.accuracy].name: "
            "'test.accuracy' does not match '^[a-zA-Z_][a-zA-Z0-9_]*$' [Argo v4.0.5 full CRD]",
            f"{WT}spec.templates[gate].metrics.prometheus[textcnn_gate_decisions_total]."
            "labels[0].key: 'is-vc' does not match '^[a-zA-Z_][a-zA-Z0-9_]*$' "
            "[Argo v4.0.5 full CRD]",
        ],
    ),
    "a real-time gauge of resource use, and a metric of two kinds": (
        lambda d: (
            _templates(d)["evaluate"]["metrics"]["prometheus"][0]["gauge"].update(
                realtime=True, value="{{resourcesDuration.cpu}}"
            ),
            _templates(d)["gate"]["metrics"]["prometheus"][0].update(counter={"value": "1"}),
        ),
        [
            f"{WT}spec.templates[evaluate].metrics.prometheus[textcnn_step_duration_seconds]."
            "gauge: 'resourcesDuration.*' cannot be used in real time",
            f"{WT}spec.templates[gate].metrics.prometheus[textcnn_step_duration_seconds]: "
            "give exactly one of gauge, counter, histogram",
        ],
    ),
    "a metric value that does not resolve": (
        lambda d: _templates(d)["log-training-metadata"]["metrics"]["prometheus"][1][
            "gauge"
        ].update(value="{{outputs.parameters.f1}}"),
        [
            f"{WT}spec.templates[log-training-metadata].metrics.prometheus[textcnn_test_accuracy]"
            ".gauge.value: {{outputs.parameters.f1}} does not resolve: template "
            "'log-training-metadata' declares no output parameter 'f1'"
        ],
    ),
    "bad time zone": (
        lambda d: _cron(d).update(timezone="Europe/Pariss"),
        [
            f"{CRON}spec.timezone: 'Europe/Pariss' is not an IANA time zone "
            "(e.g. Etc/UTC, Europe/Paris)"
        ],
    ),
}


@pytest.mark.parametrize("case", list(ARGO_CASES))
def test_a_broken_workflow_gives_exactly_the_expected_lines(case: str) -> None:
    mutate, expected = ARGO_CASES[case]
    assert _lint_mutated(mutate) == expected


def test_an_exit_handler_may_read_the_workflow_status() -> None:
    handler = _templates(pipeline.render())["record-status"]
    assert "--status={{workflow.status}}" in handler["container"]["args"]
    assert lint.lint_documents(pipeline.render(), "ok.yaml") == []


def test_expressions_and_kubernetes_variables_are_left_alone() -> None:
    def add(docs: Docs) -> None:
        _templates(docs)["evaluate"]["container"]["args"] += [
            "--when={{=sprig.date('2006', workflow.creationTimestamp)}}",
            "--home=$(HOME)",
            "--day={{workflow.creationTimestamp.d}}",
        ]

    assert _lint_mutated(add) == []


def test_a_step_cannot_read_a_step_of_its_own_group() -> None:
    def add_steps(docs: Docs) -> None:
        docs[0]["spec"]["templates"].append(
            {
                "name": "twice",
                "steps": [
                    [
                        {"name": "first", "template": "validate-params"},
                        {
                            "name": "second",
                            "template": "wait-tfjob",
                            "arguments": {
                                "parameters": [
                                    {
                                        "name": n,
                                        "value": "{{steps.first.outputs.parameters.params}}",
                                    }
                                    for n in ("name",)
                                ]
                            },
                        },
                    ],
                    [
                        {
                            "name": "third",
                            "template": "wait-tfjob",
                            "arguments": {
                                "parameters": [
                                    {
                                        "name": n,
                                        "value": "{{steps.first.outputs.parameters.params}}",
                                    }
                                    for n in ("name",)
                                ]
                            },
                        }
                    ],
                ],
            }
        )

    lines = _lint_mutated(add_steps)
    assert len(lines) == 1  # the argument of `second`; `third` runs after `first`
    assert lines[0] == (
        f"{WT}spec.templates[twice].steps[0][second].arguments.parameters[name]."
        "value: {{steps.first.outputs.parameters.params}} does not resolve: step 'first' "
        "does not run in an earlier step group"
    )


# ---- resource templates: the embedded manifest ------------------------------------------


def _isvc() -> dict[str, Any]:
    return build_inference_service(
        name="textcnn",
        namespace="{{workflow.parameters.namespace}}",
        storage_uri="{{inputs.parameters.model_uri}}",
        service_account="textcnn-serving",
    )


def _tfjob() -> dict[str, Any]:
    return build_tfjob(
        Workload(
            image="{{workflow.parameters.image}}",
            command=["python", "-m", "textcnn", "train"],
            args=["--epochs=1"],
            cpu="1",
            memory="2Gi",
            claim_name="{{workflow.name}}-workdir",
            mount_path="{{workflow.parameters.workdir}}",
            active_deadline_seconds=3600,
            workflow_name="{{workflow.name}}",
        ),
        generate_name="{{workflow.name}}-tfjob-",
        workers="{{workflow.parameters.workers}}",
        backoff_limit=2,
    )


def _add_resource(manifest: dict[str, Any]) -> Callable[[Docs], None]:
    """A resource template applying `manifest` (text as the TFJob builder writes it), run
    after the lineage task with its model URI as input."""

    def mutate(docs: Docs) -> None:
        docs[0]["spec"]["templates"].append(
            {
                "name": "lint-resource",
                "inputs": {"parameters": [{"name": "model_uri"}]},
                "resource": {
                    "action": "create",
                    "setOwnerReference": True,
                    "manifest": manifest_yaml(manifest),
                },
            }
        )
        _templates(docs)[pipeline.ENTRYPOINT]["dag"]["tasks"].append(
            {
                "name": "lint-resource",
                "template": "lint-resource",
                "depends": "log-training-metadata",
                "arguments": {
                    "parameters": [
                        {
                            "name": "model_uri",
                            "value": "{{tasks.log-training-metadata.outputs.parameters.model_uri}}",
                        }
                    ]
                },
            }
        )

    return mutate


@pytest.mark.parametrize("build", [_isvc, _tfjob])
def test_valid_embedded_manifests_pass(build: Callable[[], dict[str, Any]]) -> None:
    # The TFJob's replicas are `{{workflow.parameters.workers}}`: a number once substituted.
    assert _lint_mutated(_add_resource(build())) == []


def test_an_embedded_inference_service_with_an_unknown_key() -> None:
    isvc = _isvc()
    isvc["spec"]["predictor"]["canaryTraficPercent"] = 10
    assert _lint_mutated(_add_resource(isvc)) == [
        f"{WT}spec.templates[lint-resource].resource.manifest: "
        "spec.predictor.canaryTraficPercent: unknown field"
    ]


def test_an_embedded_tfjob_with_a_pre_v1_key_and_a_bad_restart_policy() -> None:
    job = _tfjob()
    job["spec"]["cleanPodPolicy"] = job["spec"]["runPolicy"].pop("cleanPodPolicy")
    job["spec"]["tfReplicaSpecs"]["Worker"]["restartPolicy"] = "Sometimes"
    where = f"{WT}spec.templates[lint-resource].resource.manifest: "
    assert _lint_mutated(_add_resource(job)) == [
        f"{where}spec.cleanPodPolicy: unknown field",
        f"{where}spec.tfReplicaSpecs.Worker.restartPolicy: 'Sometimes' is not one of Always, "
        "OnFailure, Never, ExitCode",
    ]


def test_an_embedded_manifest_with_an_undeclared_parameter() -> None:
    isvc = _isvc()
    isvc["metadata"]["labels"]["model"] = "{{workflow.parameters.model_name}}"
    assert _lint_mutated(_add_resource(isvc)) == [
        f"{WT}spec.templates[lint-resource].resource.manifest: "
        "{{workflow.parameters.model_name}} does not resolve: no workflow parameter "
        "'model_name'"
    ]


# ---- InferenceService, core Kubernetes, unknown kinds, kustomization ----------------------


def test_an_inference_service_with_two_predictors() -> None:
    isvc = _isvc()
    isvc["spec"]["predictor"]["tensorflow"] = {"storageUri": "gs://bucket/model"}
    assert lint.lint_documents([isvc], "isvc.yaml") == [
        "isvc.yaml:0 InferenceService/textcnn: spec.predictor: exactly one of [xgboost, "
        "pytorch, triton, sklearn, tensorflow, onnx, pmml, lightgbm, paddle, huggingface, "
        "model, containers] must be specified, found ['tensorflow', 'model']"
    ]


def test_an_inference_service_with_more_min_than_max_replicas() -> None:
    isvc = _isvc()
    isvc["spec"]["predictor"].update(minReplicas=3, maxReplicas=2)
    assert lint.lint_documents([isvc], "isvc.yaml") == [
        "isvc.yaml:0 InferenceService/textcnn: spec.predictor.minReplicas: 3 is greater than "
        "maxReplicas 2"
    ]


def test_a_config_map_with_a_non_string_value() -> None:
    (config,) = _manifest_docs("artifact-repositories.yaml")
    config["data"]["retries"] = 3
    assert lint.lint_documents([config], "cm.yaml") == [
        "cm.yaml:0 ConfigMap/artifact-repositories: data.retries: 3 is not of type 'string', 'null'"
    ]


def _cut(text: str) -> str:
    """`text` as a problem line shows a long one: its start, an ellipsis and its length."""
    return f"{text[: paths.MAX_SHOWN]}... ({len(text):,} characters)"


def test_long_values_and_keys_are_shortened_in_problem_lines() -> None:
    (config,) = _manifest_docs("artifact-repositories.yaml")
    key, value = "k" * 500, list(range(1000))
    config["data"][key] = value
    assert lint.lint_documents([config], "cm.yaml") == [
        f"cm.yaml:0 ConfigMap/artifact-repositories: data.{_cut(key)}: {_cut(repr(value))} "
        "is not of type 'string', 'null'"
    ]


def test_a_long_value_is_shortened_by_every_check_that_quotes_it() -> None:
    fits = "x" * (paths.MAX_SHOWN - 2)  # its repr, quotes and all, is shown whole
    long, items = "yes" * 1000, list(range(1000))

    def mutate(docs: Docs) -> None:
        _parameter(docs[0]["spec"], "gpu_support").update(value=long)
        _parameter(_cron(docs)["workflowSpec"], "dist_training").update(value=fits)
        _templates(docs)["validate-params"]["container"]["args"][0] = items

    assert _lint_mutated(mutate) == [
        f"{WT}spec.templates[validate-params].container.args[0]: {_cut(repr(items))} is not of "
        "type 'string' [Argo v4.0.5, v4.0.5 full CRD, v3.7.18, v3.7.18 full CRD]",
        f"{WT}spec.arguments.parameters[gpu_support].value: {_cut(repr(long))} is not one of "
        "the enum ['true', 'false']",
        f"{CRON}spec.workflowSpec.arguments.parameters[dist_training].value: '{fits}' is not "
        f"one of the enum ['true', 'false'] of WorkflowTemplate {pipeline.TEMPLATE_NAME}",
    ]


def test_a_deployment_with_a_misspelled_container_field() -> None:
    docs = _manifest_docs("mlmd.yaml")
    container = docs[1]["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = "Always"
    assert lint.lint_documents(docs, "mlmd.yaml") == [
        "mlmd.yaml:1 Deployment/mlmd-mysql: spec.template.spec.containers[mysql]: Additional "
        "properties are not allowed ('imagePullPolicyy' was unexpected)"
    ]


def test_an_unknown_kind_names_its_document() -> None:
    path = FIXTURES / "unknown-kind.yaml"
    assert lint.lint_paths([path]) == [
        f"{path}:1 Widget/gadget: (root): no schema for apiVersion example.com/v1, kind Widget"
    ]


def test_unreadable_yaml_and_missing_paths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    lines = lint.lint_paths([bad, tmp_path / "absent"])
    assert lines[0] == f"{tmp_path / 'absent'}: no such file or folder"
    assert lines[1].startswith(f"{bad}: cannot read YAML: ")
    assert len(lines) == 2


def test_a_kustomization_must_list_existing_files(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, folder)
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    kustomization["resources"].append("tfjob.yaml")
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    index = len(kustomization["resources"]) - 1
    assert lint.lint_paths([folder]) == [
        f"{folder / 'kustomization.yaml'}:0 Kustomization/?: resources[{index}]: 'tfjob.yaml' "
        f"does not exist (relative to {folder})"
    ]


# ---- Argo constructs the DAG does not use, on a hand-written workflow --------------------

HAND_WRITTEN = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: library}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  templates:
  - name: greet
    inputs: {parameters: [{name: who}]}
    container: {image: busybox, command: [echo], args: ["{{inputs.parameters.who}}"],
                securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
    outputs: {parameters: [{name: names, valueFrom: {path: /tmp/names}}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: loops-}
spec:
  entrypoint: main
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  hooks: {exit: {template: notify}}
  templates:
  - name: main
    dag:
      tasks:
      - name: fan-out
        template: echo
        withItems: [{word: a}, {word: b}]
        arguments: {parameters: [{name: msg, value: "{{item.word}}"}]}
      - name: shared
        templateRef: {name: library, template: greet}
        depends: fan-out
        arguments: {parameters: [{name: who, value: "{{tasks.fan-out.outputs.parameters}}"}]}
      - name: per-name
        template: echo
        depends: shared
        withParam: "{{tasks.shared.outputs.parameters.names}}"
        arguments: {parameters: [{name: msg, value: "{{item.first}}"}]}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: busybox, command: [echo], args: ["{{inputs.parameters.msg}}"],
                securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
  - name: notify
    container: {image: busybox, command: [echo], args: ["{{workflow.status}}"],
                securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
"""


def test_loops_template_refs_and_hooks_on_a_hand_written_workflow() -> None:
    docs = list(yaml.safe_load_all(HAND_WRITTEN))
    assert lint.lint_documents(docs, "hand.yaml") == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "{{item.word}}",
            "{{item.colour}}",
            "spec.templates[main].dag.tasks[fan-out].arguments.parameters[msg].value: "
            "{{item.colour}} does not resolve: no such key in withItems (or no withItems/withParam "
            "here)",
        ),
        (
            "template: greet}",
            "template: greets}",
            "spec.templates[main].dag.tasks[shared].templateRef.template: no template 'greets' in "
            "WorkflowTemplate library",
        ),
        # ... and `notify`, no longer an exit handler, cannot read the workflow's status.
        (
            "{template: notify}",
            "{template: notice}",
            "spec.hooks.exit.template: no template 'notice' in this workflow\n"
            "spec.templates[notify].container.args[0]: {{workflow.status}} does not resolve: only "
            "exit handlers (onExit, hooks) see it",
        ),
    ],
)
def test_a_broken_loop_template_ref_or_hook_is_named(old: str, new: str, expected: str) -> None:
    docs = list(yaml.safe_load_all(HAND_WRITTEN.replace(old, new)))
    assert lint.lint_documents(docs, "hand.yaml") == [
        f"hand.yaml:1 Workflow/loops-: {line}" for line in expected.split("\n")
    ]


def test_every_pod_spec_in_a_manifest_must_be_restricted() -> None:
    deployment = next(d for d in _manifest_docs("mlmd.yaml") if d["kind"] == "Deployment")
    assert lint.lint_documents([deployment], SOURCE) == []
    del deployment["spec"]["template"]["spec"]["securityContext"]
    lines = lint.lint_documents([deployment], SOURCE)
    name = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
    where = f"spec.template.spec.containers[{name}].securityContext"
    assert (
        f"{SOURCE}:0 Deployment/{deployment['metadata']['name']}: {where}.runAsNonRoot: "
        "must be true (restricted)" in lines
    )
    # ... and inside a resource template's manifest: the TFJob's replicas.
    job = _tfjob()
    del job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0][
        "securityContext"
    ]
    lines = lint.lint_documents([job], SOURCE)
    assert any(
        ".tfReplicaSpecs.Worker.template.spec.containers[tensorflow].securityContext"
        ".allowPrivilegeEscalation: must be false" in line
        for line in lines
    )


# ---- hostile files: refused in bounded time, memory and output ---------------------------


def _anchors(levels: int) -> str:
    """YAML anchors l0..l{levels-1}: l0 ten strings, each next ten aliases of the one before,
    so `*l{levels-1}` stands for 10**levels strings ("billion laughs")."""
    lines = ["l0: &l0 [" + ", ".join(['"x"'] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "".join(f"{line}\n" for line in lines)


def _alias_bomb(levels: int) -> str:
    """The finding's WorkflowTemplate: its container's args are the largest anchor."""
    return (
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata: {name: bomb}\n"
        + "x-anchors:\n"
        + textwrap.indent(_anchors(levels), "  ")
        + "spec:\n  entrypoint: main\n  templates:\n  - name: main\n"
        + f"    container: {{image: busybox, args: *l{levels - 1}}}\n"
    )


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


MEMORY_LIMIT = 512 * 2**20  # address space: the lint takes under 400 MiB


def test_an_alias_bomb_is_one_line_without_expanding_it(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    text = _alias_bomb(8)  # 10**8 strings: expanded, gigabytes of memory and of output
    path.write_text(text)
    # A subprocess, so that expanding it would fail on the memory limit, not exhaust ours.
    result = subprocess.run(
        [sys.executable, "-m", "workflows", "lint", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = result.stdout.splitlines()
    # l4 is where aliases pass 100,000 nodes: 10 aliases of l3's 11,111 (10 + 100 + ... + 1).
    number = 1 + next(i for i, x in enumerate(text.splitlines()) if x.startswith("  l4:"))
    assert line.startswith(
        f"{path}: cannot read YAML: aliases expand to more than "
        f"{yaml_bounded.MAX_ALIAS_NODES:,} nodes in "
    )
    assert f"line {number}," in line and len(line) < 300


def _creating(manifest: str, name: str, **parameters: str) -> dict[str, Any]:
    """A Workflow whose one template creates `manifest`, with these parameters."""
    arguments = {"parameters": [{"name": k, "value": v} for k, v in parameters.items()]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{name}-"},
        "spec": {
            "entrypoint": "main",
            "arguments": arguments,
            "templates": [{"name": "main", "resource": {"action": "create", "manifest": manifest}}],
        },
    }


def test_an_alias_bomb_in_a_resource_manifest_is_refused() -> None:
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n" + _anchors(5)
    workflow = _creating(manifest, "bomb")
    [line] = [x for x in lint.lint_documents([workflow], SOURCE) if "manifest" in x]
    assert line.startswith(
        f"{SOURCE}:0 Workflow/bomb-: spec.templates[main].resource.manifest: not valid YAML "
        f"after substituting sample values: aliases expand to more than "
        f"{yaml_bounded.MAX_ALIAS_NODES:,} nodes in "
    )


def test_a_manifest_that_substitution_would_blow_up_is_refused() -> None:
    # 1,000 tags of one 10,000-character default: 10 MB built from a 30 KB manifest
    # before the bounded loader saw it. A thousand times more would have taken the lint down.
    tags = "{{workflow.parameters.p}}" * 1_000
    manifest = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\ndata: {{k: '{tags}'}}\n"
    workflow = _creating(manifest, "big", p="x" * 10_000)
    [line] = [x for x in lint.lint_documents([workflow], SOURCE) if "manifest" in x]
    assert line.endswith(
        "not valid YAML after substituting sample values: 10,000,065 characters once "
        f"substituted, past the {yaml_bounded.MAX_FILE_BYTES:,} the lint reads"
    )


def test_deeply_nested_brackets_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000)
    [line] = lint.lint_paths([path])
    depth = yaml_bounded.MAX_DEPTH
    assert line.startswith(f"{path}: cannot read YAML: nested deeper than {depth} levels in ")
    assert f"line 1, column {depth + 1}:" in line


def test_a_file_past_the_size_bound_is_refused_unparsed(tmp_path: Path) -> None:
    path = tmp_path / "large.yaml"
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: large}\n"
    path.write_text(config + "#" * (yaml_bounded.MAX_FILE_BYTES + 1 - len(config)))
    assert lint.lint_paths([path]) == [
        f"{path}: cannot read YAML: the file is larger than {yaml_bounded.MAX_FILE_BYTES:,} bytes"
    ]


def _nested_manifests(levels: int) -> str:
    """A Workflow whose resource template creates a Workflow whose resource template ..."""
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: x-}\n"
        "spec:\n  entrypoint: main\n  templates:\n  - name: main\n"
    )
    inner = text + "    container: {image: busybox}\n"
    for _ in range(levels):
        manifest = textwrap.indent(inner, "        ")
        inner = text + "    resource:\n      action: create\n      manifest: |\n" + manifest
    return inner


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_manifests_nested_past_the_stack_are_one_problem() -> None:
    # The loader bounds each document's depth, not how deep resource manifests nest in each
    # other. A real stack takes some 200 of them (over a minute of checks); a short one, 60.
    docs = list(yaml.safe_load_all(_nested_manifests(60)))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 200)
    try:
        lines = lint.lint_documents(docs, SOURCE)
    finally:
        sys.setrecursionlimit(limit)
    assert lines == [
        f"{SOURCE}:0 Workflow/x-: (root): nested too deeply to check (resource manifests "
        "within manifests)"
    ]
