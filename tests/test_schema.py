"""Strict validation against the vendored Argo JSON Schemas (workflows/schema.py)."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import pytest

from workflows import pipeline, schema


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
    rows = dict(re.findall(r"^\| `(v[\d.]+)/schema\.json` \|.*`([0-9a-f]{64})` \|$", provenance,
                           re.MULTILINE))
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


def test_validate_all_checks_every_document_against_every_version() -> None:
    template, cron = copy.deepcopy(pipeline.render())
    assert schema.validate_all([template, cron]) == []
    cron["spec"]["concurrencyPolicy"] = ["Forbid"]
    template["spec"]["entrypointt"] = "pipeline"
    problems = schema.validate_all([template, cron])
    assert len(problems) == 4
    for version in schema.VERSIONS:
        assert (f"{version} WorkflowTemplate/textcnn-pipeline: spec: Additional properties are "
                "not allowed ('entrypointt' was unexpected)") in problems
        assert (f"{version} CronWorkflow/textcnn-retrain: spec/concurrencyPolicy: ['Forbid'] is "
                "not of type 'string'") in problems
