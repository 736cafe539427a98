"""Strict validation against the vendored Argo JSON Schemas (workflows/checks/argo_schema.py)."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import pytest

from workflows.checks import argo_schema as schema
from workflows.dag import pipeline


def _workflow(**template: Any) -> dict[str, Any]:
    """A minimal Workflow around one extra template, called from a one-task DAG."""
    template = copy.deepcopy(template)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "probe-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": [{"name": "a", "template": template["name"]}]}},
                template,
            ],
        },
    }


CONTAINER = {"name": "c", "container": {"image": "busybox", "command": ["true"]}}


def test_vendored_schemas_are_the_files_named_in_provenance() -> None:
    provenance = (schema.SCHEMA_DIR / "PROVENANCE.md").read_text()
    rows = dict(
        re.findall(
            r"^\| `(v[\d.]+)/schema\.json` \|.*`([0-9a-f]{64})` \|$", provenance, re.MULTILINE
        )
    )
    assert set(rows) == set(schema.VERSIONS)
    for version, sha256 in rows.items():
        data = (schema.SCHEMA_DIR / version / "schema.json").read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, version
    assert "Apache License" in (schema.SCHEMA_DIR / "LICENSE").read_text()


@pytest.mark.parametrize("version", schema.VERSIONS)
@pytest.mark.parametrize("index", [0, 1], ids=["WorkflowTemplate", "CronWorkflow"])
def test_rendered_documents_validate_strictly(version: str, index: int) -> None:
    doc = pipeline.render()[index]
    assert schema.validate(doc, version) == []


@pytest.mark.parametrize("version", schema.VERSIONS)
def test_strict_mode_rejects_a_misspelled_task_key(version: str) -> None:
    doc = _workflow(**CONTAINER)
    assert schema.validate(doc, version) == []
    doc["spec"]["templates"][0]["dag"]["tasks"][0]["dependss"] = "a"
    assert schema.validate(doc, version) == [
        "spec/templates/0/dag/tasks/0: Additional properties are not allowed "
        "('dependss' was unexpected)"
    ]


@pytest.mark.parametrize("version", schema.VERSIONS)
def test_strict_mode_rejects_a_misspelled_resource_condition(version: str) -> None:
    resource = {"action": "create", "manifest": "kind: ConfigMap", "successCondition": "a = b"}
    assert schema.validate(_workflow(name="r", resource=resource), version) == []
    resource["sucessCondition"] = resource.pop("successCondition")
    [error] = schema.validate(_workflow(name="r", resource=resource), version)
    assert error.startswith("spec/templates/1/resource: ")
    assert "'sucessCondition' was unexpected" in error


@pytest.mark.parametrize("version", schema.VERSIONS)
def test_wrong_type_is_reported_at_its_path(version: str) -> None:
    doc = _workflow(**CONTAINER)
    doc["spec"]["templates"][1]["container"]["command"] = "true"
    assert schema.validate(doc, version) == [
        "spec/templates/1/container/command: 'true' is not of type 'array'"
    ]


@pytest.mark.parametrize("version", schema.VERSIONS)
@pytest.mark.parametrize("limit", [3, "3"])
def test_int_or_string_accepts_both(version: str, limit: int | str) -> None:
    # Upstream types IntOrString as string only; Kubernetes and Argo accept both.
    doc = _workflow(**CONTAINER, retryStrategy={"limit": limit})
    assert schema.validate(doc, version) == []
    doc["spec"]["templates"][1]["retryStrategy"]["limit"] = [limit]
    assert len(schema.validate(doc, version)) == 1


def test_schedules_is_required_by_v4_only() -> None:
    cron = copy.deepcopy(pipeline.render()[1])
    del cron["spec"]["schedules"]
    assert schema.validate(cron, "v3.7.18") == []
    assert schema.validate(cron, "v4.0.5") == ["spec: 'schedules' is a required property"]


def test_unknown_kind_and_version() -> None:
    assert schema.validate({"kind": "Pod"}, "v4.0.5") == [
        f"kind: expected one of {', '.join(schema.KINDS)}, got 'Pod'"
    ]
    with pytest.raises(ValueError, match="unknown Argo schema version 'v9'"):
        schema.validate(_workflow(**CONTAINER), "v9")


def test_problems_checks_a_document_against_every_version() -> None:
    template, cron = copy.deepcopy(pipeline.render())
    assert schema.problems(template) == schema.problems(cron) == []
    cron["spec"]["concurrencyPolicy"] = ["Forbid"]
    template["spec"]["entrypointt"] = "pipeline"
    # The strict schema of each version reports both errors; the full CRDs only the type
    # error (the API server prunes unknown keys rather than refusing them).
    assert schema.problems(template) == [
        "spec: Additional properties are not allowed ('entrypointt' was unexpected) "
        "[Argo v4.0.5, v3.7.18]"
    ]
    assert (
        "spec.concurrencyPolicy: ['Forbid'] is not of type 'string' "
        "[Argo v4.0.5, v4.0.5 full CRD, v3.7.18, v3.7.18 full CRD]"
    ) in schema.problems(cron)


def test_vendored_crds_are_the_files_named_in_provenance() -> None:
    provenance = (schema.SCHEMA_DIR / "PROVENANCE.md").read_text()
    rows = re.findall(
        r"^\| `(v[\d.]+)` \| `(crds/[\w.]+\.yaml)` \|.*`([0-9a-f]{64})` \|$",
        provenance,
        re.MULTILINE,
    )
    assert {
        (v, f"crds/argoproj.io_{plural}.yaml")
        for v in schema.VERSIONS
        for plural in schema.CRD_PLURALS.values()
    } == {(v, f) for v, f, _ in rows}
    for version, file, sha256 in rows:
        data = (schema.SCHEMA_DIR / version / file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha256, (version, file)


@pytest.mark.parametrize("version", schema.VERSIONS)
@pytest.mark.parametrize("index", [0, 1], ids=["WorkflowTemplate", "CronWorkflow"])
def test_rendered_documents_pass_the_full_crds(version: str, index: int) -> None:
    assert schema.validate_crd(pipeline.render()[index], version) == []


@pytest.mark.parametrize("version", schema.VERSIONS)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("container", "resources", "limits", "nvidia.com/gpu"), "{{workflow.parameters.n}}"),
        (("container", "resources", "requests", "memory"), "{{inputs.parameters.memory}}"),
    ],
)
def test_a_placeholder_in_a_quantity_is_refused_by_the_full_crd(
    version: str, field: tuple[str, ...], value: str
) -> None:
    """What `schema.json` lets through and the API server (and Argo's Go types) refuse."""
    template = copy.deepcopy(CONTAINER)
    node = template
    for key in field[:-1]:
        node = node.setdefault(key, {})
    node[field[-1]] = value
    doc = _workflow(**template)
    assert schema.validate(doc, version) == []
    (problem,) = schema.validate_crd(doc, version)
    assert problem.startswith(
        f"spec/templates/1/{'/'.join(field)}: {value!r} is not a resource quantity"
    )
    assert "podSpecPatch" in problem
