"""Strict offline validation of custom resources against their CRD's openAPIV3Schema.

A CRD schema alone is loose: it rarely forbids unknown keys, so a typo such as
`canaryTraficPercent` passes JSON-Schema validation, and the API server would silently
prune it. `validate_custom_resource` adds what `kubectl apply --validate=strict` reports:
keys the schema does not declare, unless `additionalProperties` or
`x-kubernetes-preserve-unknown-fields: true` allows them (metadata is checked against
ObjectMeta, as the API server does). `validate_inference_service` adds the KServe
admission webhook's rules (workflows/schemas/kserve/PROVENANCE.md names the schema).
Every function returns a list of `path: message` strings; an empty list means valid.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator

SCHEMA_DIR = Path(__file__).parent / "schemas"
ISVC_SCHEMA = SCHEMA_DIR / "kserve" / "v0.15.2" / (
    "inferenceservice-serving.kserve.io-v1beta1.schema.json")

# Fields of metav1.ObjectMeta: the API server checks `metadata` against these, not the CRD.
OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# PredictorSpec's implementations in KServe 0.15 (GetImplementations); `containers` is the
# custom predictor.
PREDICTOR_IMPLEMENTATIONS = (
    "xgboost", "pytorch", "triton", "sklearn", "tensorflow", "onnx", "pmml", "lightgbm",
    "paddle", "huggingface", "model",
)
COMPONENTS = ("predictor", "transformer", "explainer")


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
    return sorted(f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc))


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
        out += [f"{path}.{key}.{k}: value must be a string, not {type(v).__name__}"
                for k, v in entries.items() if not isinstance(v, str)]
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


def dns_1035_label_errors(name: Any, path: str) -> list[str]:
    """The API machinery's DNS-1035 label rule (names of Services, and of the objects whose
    controllers name Services after them), as a `path: message` list."""
    if isinstance(name, str) and len(name) <= 63 and _DNS_1035.match(name):
        return []
    return [f"{path}: {name!r} is not a DNS-1035 label (lower-case letters, digits and '-', "
            "starting with a letter, at most 63 characters)"]


def validate_custom_resource(doc: Any, schema_path: Path) -> list[str]:
    """Schema errors plus strict unknown-field errors of one custom resource."""
    return schema_errors(doc, _validator(schema_path)) + unknown_fields(
        doc, load_schema(schema_path))


def _replicas_errors(component: Mapping[str, Any], path: str) -> list[str]:
    # Mirrors KServe's validateReplicas: minReplicas defaults to 1, maxReplicas 0 = no limit.
    low, high = component.get("minReplicas", 1), component.get("maxReplicas", 0)
    if not (isinstance(low, int) and isinstance(high, int)):
        return []  # a type error, already reported by the schema
    out = []
    if low < 0:
        out.append(f"{path}.minReplicas: {low} is less than 0")
    if high < 0:
        out.append(f"{path}.maxReplicas: {high} is less than 0")
    if high != 0 and low > high:
        out.append(f"{path}.minReplicas: {low} is greater than maxReplicas {high}")
    return out


def webhook_errors(doc: Mapping[str, Any]) -> list[str]:
    """The KServe v1beta1 admission webhook's rules that the schema does not express."""
    meta = doc.get("metadata")
    out = dns_1035_label_errors(meta.get("name") if isinstance(meta, Mapping) else None,
                                "metadata.name")
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return out
    predictor = spec.get("predictor")
    if isinstance(predictor, Mapping):
        found = [k for k in PREDICTOR_IMPLEMENTATIONS if predictor.get(k) is not None]
        if predictor.get("containers"):
            found.append("containers")
        if len(found) != 1:
            out.append(
                f"spec.predictor: exactly one of [{', '.join(PREDICTOR_IMPLEMENTATIONS)}, "
                f"containers] must be specified, found {found or 'none'}")
    for key in COMPONENTS:
        component = spec.get(key)
        if not isinstance(component, Mapping):
            continue
        out += _replicas_errors(component, f"spec.{key}")
        percent = component.get("canaryTrafficPercent")
        if isinstance(percent, int) and not 0 <= percent <= 100:
            out.append(f"spec.{key}.canaryTrafficPercent: {percent} is not in 0..100")
    return out


def validate_inference_service(doc: Any) -> list[str]:
    """All problems of a serving.kserve.io/v1beta1 InferenceService: schema, strict keys
    and webhook rules."""
    if not isinstance(doc, Mapping):
        return ["(root): an InferenceService must be an object"]
    out = []
    if doc.get("apiVersion") != "serving.kserve.io/v1beta1":
        out.append(f"apiVersion: expected serving.kserve.io/v1beta1, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != "InferenceService":
        out.append(f"kind: expected InferenceService, got {doc.get('kind')!r}")
    return out + validate_custom_resource(doc, ISVC_SCHEMA) + webhook_errors(doc)
