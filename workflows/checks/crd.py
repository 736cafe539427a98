"""Strict offline validation of custom resources against their CRD's openAPIV3Schema.

A CRD schema alone is loose: it rarely forbids unknown keys, so a typo such as
`canaryTraficPercent` passes JSON-Schema validation, and the API server would silently
prune it. `validate_custom_resource` adds what `kubectl apply --validate=strict` reports:
keys the schema does not declare, unless `additionalProperties` or
`x-kubernetes-preserve-unknown-fields: true` allows them (metadata is checked against
ObjectMeta, as the API server does). The webhooks' own rules are in admission.py;
schemas/*/PROVENANCE.md names each schema.
Every function returns a list of `path: message` strings; an empty list means valid.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

from workflows.checks.paths import schema_message

SCHEMA_DIR = Path(__file__).parent / "schemas"

# Fields of metav1.ObjectMeta: the API server checks `metadata` against these, not the CRD.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


@functools.cache
def load_schema(path: Path) -> dict[str, Any]:
    """A CRD openAPIV3Schema stored as JSON, read once."""
    return json.loads(Path(path).read_text())


@functools.cache
def _validator(path: Path) -> Draft4Validator:
    return Draft4Validator(load_schema(path))


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(root)"


def schema_errors(doc: Any, validator: Draft4Validator) -> list[str]:
    """JSON-Schema (draft-04, as CRD schemas are) errors of `doc`."""
    return sorted(
        f"{_path(e.absolute_path)}: {schema_message(e)}" for e in validator.iter_errors(doc)
    )


def _known(schema: Mapping[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    """Declared properties, additionalProperties and preserve-unknown of a node (with the
    branches of allOf/anyOf/oneOf, which structural schemas may use to add properties)."""
    properties = dict(schema.get("properties", {}))
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key, []):
            properties.update(branch.get("properties", {}))
            preserve |= branch.get("x-kubernetes-preserve-unknown-fields") is True
    return properties, additional, preserve


def _metadata_unknown(value: Any, path: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{path}: must be an object"]
    out = [f"{path}.{key}: unknown field" for key in value if key not in OBJECT_META_FIELDS]
    for key in ("labels", "annotations"):
        entries = value.get(key, {})
        if not isinstance(entries, Mapping):
            out.append(f"{path}.{key}: must be a map of strings")
            continue
        out += [
            f"{path}.{key}.{k}: value must be a string, not {type(v).__name__}"
            for k, v in entries.items()
            if not isinstance(v, str)
        ]
    return out


def unknown_fields(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Keys that `kubectl --validate=strict` would reject as unknown, with their paths."""
    out: list[str] = []
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(value):
            out += unknown_fields(item, schema["items"], f"{path}[{i}]")
        return out
    if not isinstance(value, Mapping):
        return out
    properties, additional, preserve = _known(schema)
    embedded = schema.get("x-kubernetes-embedded-resource") is True
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key == "metadata" and (not path or embedded):
            out += _metadata_unknown(item, where)
        elif key in properties:
            out += unknown_fields(item, properties[key], where)
        elif embedded and key in ("apiVersion", "kind"):
            continue
        elif isinstance(additional, Mapping):
            out += unknown_fields(item, additional, where)
        elif not (additional is True or preserve):
            out.append(f"{where}: unknown field")
    return out


def validate_custom_resource(doc: Any, schema_path: Path) -> list[str]:
    """Schema errors plus strict unknown-field errors of one custom resource."""
    return schema_errors(doc, _validator(schema_path)) + unknown_fields(
        doc, load_schema(schema_path)
    )
