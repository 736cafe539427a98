"""Static validation of Argo documents: the strict JSON Schemas and the full CRDs.

Two checks, each against v4.0.5 and v3.7.18 (see PROVENANCE.md in `schemas/argo/`):

- `validate`: the JSON Schema (`schema.json`) in strict mode, which catches misspelled keys;
- `validate_crd`: the full CRD's `openAPIV3Schema`, what the API server enforces. It types
  resource quantities with their pattern, as Argo's Go types do (`resource.Quantity`), so
  a `{{...}}` placeholder in `resources.limits` is refused there while `schema.json`, which
  types a quantity as any string, lets it pass.

The upstream schema is loose: no definition forbids unknown keys, so a misspelled
`dependss` or `sucessCondition` passes. Strict mode sets `additionalProperties: false`
on every definition that has `properties` and says nothing about extra keys (tested
upstream on all of Argo's own examples with no false positive). It also fixes
`IntOrString`, which the upstream schema types as string only (argo-workflows#6060).
Both changes happen in memory; the files in `schemas/argo/` are byte-for-byte copies
(see PROVENANCE.md there).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, Draft202012Validator, ValidationError

from workflows.checks.paths import pretty, schema_message, shown, slash_parts

SCHEMA_DIR = Path(__file__).parent / "schemas" / "argo"
VERSIONS: tuple[str, ...] = ("v4.0.5", "v3.7.18")
KINDS: tuple[str, ...] = (
    "Workflow",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
    "WorkflowEventBinding",
)
_PREFIX = "io.argoproj.workflow.v1alpha1."
# The kinds whose full CRD is vendored, and its file (`crds/argoproj.io_<plural>.yaml`).
CRD_PLURALS: dict[str, str] = {
    "Workflow": "workflows",
    "WorkflowTemplate": "workflowtemplates",
    "CronWorkflow": "cronworkflows",
}


@functools.cache
def _strict_schema(version: str) -> dict[str, Any]:
    if version not in VERSIONS:
        raise ValueError(f"unknown Argo schema version {version!r}; known: {', '.join(VERSIONS)}")
    schema = json.loads((SCHEMA_DIR / version / "schema.json").read_text())
    defs = schema["definitions"]
    defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": ["string", "integer"]}
    for definition in defs.values():
        if "properties" in definition and "additionalProperties" not in definition:
            definition["additionalProperties"] = False
    return schema


@functools.cache
def _validator(version: str, kind: str) -> Draft202012Validator:
    schema = _strict_schema(version)
    # Validate against the kind's own definition: the top-level oneOf over all kinds
    # reports any failure as one unreadable message.
    return Draft202012Validator(
        {
            "$schema": schema["$schema"],
            "definitions": schema["definitions"],
            "$ref": f"#/definitions/{_PREFIX}{kind}",
        }
    )


def _path(parts: Iterable[Any]) -> str:
    return "/".join(str(p) for p in parts) or "(root)"


def validate(doc: Mapping[str, Any], version: str) -> list[str]:
    """Strict schema errors of one Argo document, as `path: message` lines (none: valid)."""
    kind = doc.get("kind")
    if kind not in KINDS:
        return [f"kind: expected one of {', '.join(KINDS)}, got {shown(kind)}"]
    errors = _validator(version, kind).iter_errors(doc)
    return sorted(f"{_path(e.absolute_path)}: {schema_message(e)}" for e in errors)


@functools.cache
def _crd_validator(version: str, kind: str) -> Draft4Validator:
    if version not in VERSIONS:
        raise ValueError(f"unknown Argo schema version {version!r}; known: {', '.join(VERSIONS)}")
    path = SCHEMA_DIR / version / "crds" / f"argoproj.io_{CRD_PLURALS[kind]}.yaml"
    # libyaml: the pure-Python loader takes seconds per file.
    crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    (served,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return Draft4Validator(served["schema"]["openAPIV3Schema"])


def validate_crd(doc: Mapping[str, Any], version: str) -> list[str]:
    """Errors of one Argo document against the full CRD of its kind, as the API server
    reports them (`path: message`); none for a kind without a vendored CRD."""
    kind = doc.get("kind")
    if kind not in CRD_PLURALS:
        return []
    errors = _crd_validator(version, str(kind)).iter_errors(doc)
    return sorted(f"{_path(e.absolute_path)}: {_crd_message(e)}" for e in errors)


def _crd_message(error: ValidationError) -> str:
    if error.validator == "pattern" and error.schema.get("x-kubernetes-int-or-string"):
        return (
            f"{shown(error.instance)} is not a resource quantity (e.g. 1, 500m, 4Gi); Argo "
            "decodes this field before it substitutes parameters, so a {{...}} "
            "placeholder cannot stand here: use podSpecPatch or a resource manifest"
        )
    return schema_message(error)


def problems(doc: Mapping[str, Any]) -> list[str]:
    """Strict schema and full-CRD errors of both Argo versions; an error that several
    checks report is one line, tagged with each (`[Argo v4.0.5, v4.0.5 full CRD]`)."""
    checks: dict[str, list[str]] = {}
    for version in VERSIONS:
        for rule, lines in (
            (version, validate(doc, version)),
            (f"{version} full CRD", validate_crd(doc, version)),
        ):
            for line in lines:
                path, _, message = line.partition(": ")
                checks.setdefault(f"{pretty(doc, slash_parts(doc, path))}: {message}", []).append(
                    rule
                )
    return [f"{line} [Argo {', '.join(rules)}]" for line, rules in checks.items()]
