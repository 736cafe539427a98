"""What the API server and the admission webhooks accept of the two custom resources the
DAG creates, side by side: the CRD schema with unknown keys refused (crd.py) and the
webhooks' own rules, which no schema expresses.

- TFJob (kubeflow.org/v1, Training Operator v1.9.4: tfjob_webhook.go and the defaulter);
- InferenceService (serving.kserve.io/v1beta1, KServe 0.15: the v1beta1 validator).

Every function returns `path: message` strings; an empty list means accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from textcnn.params import DNS_1035_LABEL
from workflows.checks.crd import SCHEMA_DIR, validate_custom_resource
from workflows.checks.paths import shown

TFJOB_API_VERSION, TFJOB_KIND = "kubeflow.org/v1", "TFJob"
TFJOB_SCHEMA = SCHEMA_DIR / "kubeflow" / "v1.9.4" / "tfjob-kubeflow.org-v1.schema.json"
CONTAINER = "tensorflow"  # the operator injects TF_CONFIG into this container only
ISVC_SCHEMA = (
    SCHEMA_DIR / "kserve" / "v0.15.2" / ("inferenceservice-serving.kserve.io-v1beta1.schema.json")
)
# The admission rules the CRD schema leaves out (tfjob_webhook.go and the defaulter, v1.9.4).
REPLICA_TYPES = ("Chief", "Master", "Worker", "PS", "Evaluator")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
CLEAN_POD_POLICIES = ("All", "Running", "None")
SUCCESS_POLICIES = ("", "AllWorkers")
GENERATED_SUFFIX = 5  # characters the API server appends to metadata.generateName
# PredictorSpec's implementations in KServe 0.15 (GetImplementations); `containers` is the
# custom predictor.
PREDICTOR_IMPLEMENTATIONS = (
    "xgboost",
    "pytorch",
    "triton",
    "sklearn",
    "tensorflow",
    "onnx",
    "pmml",
    "lightgbm",
    "paddle",
    "huggingface",
    "model",
)
COMPONENTS = ("predictor", "transformer", "explainer")


def dns_1035_label_errors(name: Any, path: str) -> list[str]:
    """The API machinery's DNS-1035 label rule (names of Services, and of the objects whose
    controllers name Services after them), as a `path: message` list."""
    if isinstance(name, str) and DNS_1035_LABEL.match(name):
        return []
    return [
        f"{path}: {shown(name)} is not a DNS-1035 label (lower-case letters, digits and '-', "
        "starting with a letter, at most 63 characters)"
    ]


# ---- TFJob ----------------------------------------------------------------------------


def _replica_key(key: Any) -> str | None:
    """The canonical replica type the defaulter makes of `key` (any capitalisation)."""
    return next(
        (t for t in REPLICA_TYPES if isinstance(key, str) and key.lower() == t.lower()), None
    )


def _replica_errors(key: str, spec: Any) -> list[str]:
    where = f"spec.tfReplicaSpecs.{key}"
    if not isinstance(spec, Mapping):
        return []  # a type error, already reported by the schema
    out = []
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in RESTART_POLICIES:
        out.append(
            f"{where}.restartPolicy: {shown(policy)} is not one of {', '.join(RESTART_POLICIES)}"
        )
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        return [*out, f"{where}.template.spec.containers: must be specified"]
    for i, c in enumerate(containers):
        if isinstance(c, Mapping) and not c.get("image"):
            out.append(f"{where}.template.spec.containers[{i}].image: must be specified")
    if not any(isinstance(c, Mapping) and c.get("name") == CONTAINER for c in containers):
        out.append(
            f"{where}.template.spec.containers: needs a container named {CONTAINER!r} "
            "(the only one that gets TF_CONFIG)"
        )
    return out


def kind_errors(doc: Mapping[str, Any], api_version: str, kind: str) -> list[str]:
    """The document's apiVersion and kind, against what a validator takes."""
    out = []
    if doc.get("apiVersion") != api_version:
        out.append(f"apiVersion: expected {api_version}, got {shown(doc.get('apiVersion'))}")
    if doc.get("kind") != kind:
        out.append(f"kind: expected {kind}, got {shown(doc.get('kind'))}")
    return out


def object_name(doc: Mapping[str, Any]) -> Any:
    """The object's name, or the one the API server will make of its generateName (plus 5
    letters and digits, here `x`); as given when neither is a string."""
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    if "name" in meta or "generateName" not in meta:
        return meta.get("name")
    prefix = meta["generateName"]
    return f"{prefix}{'x' * GENERATED_SUFFIX}" if isinstance(prefix, str) else prefix


def name_errors(doc: Mapping[str, Any]) -> list[str]:
    """`dns_1035_label_errors` of the object's name, or of the name the API server will
    make of its generateName."""
    meta = doc.get("metadata")
    generated = isinstance(meta, Mapping) and "name" not in meta and "generateName" in meta
    where = "metadata.generateName (+ 5 generated characters)" if generated else "metadata.name"
    return dns_1035_label_errors(object_name(doc), where)


def tfjob_admission_errors(doc: Mapping[str, Any]) -> list[str]:
    """The TFJob webhook's and defaulter's rules that the CRD schema does not express."""
    out = name_errors(doc)
    spec = doc.get("spec")
    if not isinstance(spec, Mapping):
        return out
    replicas = spec.get("tfReplicaSpecs")
    if isinstance(replicas, Mapping):
        seen: dict[str, Any] = {}
        for key, replica in replicas.items():
            canonical = _replica_key(key)
            if canonical is None:
                out.append(
                    f"spec.tfReplicaSpecs.{key}: not a replica type; use one of "
                    f"{', '.join(REPLICA_TYPES)}"
                )
                continue
            if canonical in seen:
                out.append(
                    f"spec.tfReplicaSpecs.{key}: {shown(seen[canonical])} is the same replica type"
                )
            seen[canonical] = key
            out += _replica_errors(key, replica)
        if sum(t in seen for t in ("Chief", "Master")) > 1:
            out.append("spec.tfReplicaSpecs: at most one Chief or Master replica type")
    run_policy = spec.get("runPolicy")
    clean = run_policy.get("cleanPodPolicy") if isinstance(run_policy, Mapping) else None
    if clean is not None and clean not in CLEAN_POD_POLICIES:
        out.append(
            f"spec.runPolicy.cleanPodPolicy: {shown(clean)} is not one of "
            f"{', '.join(CLEAN_POD_POLICIES)}"
        )
    success = spec.get("successPolicy")
    if success is not None and success not in SUCCESS_POLICIES:
        out.append(
            f"spec.successPolicy: {shown(success)} is not one of "
            f"{', '.join(repr(s) for s in SUCCESS_POLICIES)}"
        )
    return out


def validate_tfjob(doc: Any) -> list[str]:
    """All problems of a kubeflow.org/v1 TFJob: CRD schema, strict keys and admission rules,
    as `path: message` strings (none: valid)."""
    if not isinstance(doc, Mapping):
        return ["(root): a TFJob must be an object"]
    return (
        kind_errors(doc, TFJOB_API_VERSION, TFJOB_KIND)
        + validate_custom_resource(doc, TFJOB_SCHEMA)
        + tfjob_admission_errors(doc)
    )


# ---- InferenceService -------------------------------------------------------------------


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


def kserve_webhook_errors(doc: Mapping[str, Any]) -> list[str]:
    """The KServe v1beta1 admission webhook's rules that the schema does not express."""
    meta = doc.get("metadata")
    out = dns_1035_label_errors(
        meta.get("name") if isinstance(meta, Mapping) else None, "metadata.name"
    )
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
                f"containers] must be specified, found {found or 'none'}"
            )
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
    return (
        kind_errors(doc, "serving.kserve.io/v1beta1", "InferenceService")
        + validate_custom_resource(doc, ISVC_SCHEMA)
        + kserve_webhook_errors(doc)
    )
