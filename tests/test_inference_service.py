"""The InferenceService manifest and the strict CRD validation it is checked with."""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from textcnn.serving import build_parser
from workflows.checks.admission import ISVC_SCHEMA, validate_inference_service
from workflows.checks.crd import unknown_fields
from workflows.dag.inference_service import build_inference_service

BASE = {
    "name": "textcnn",
    "namespace": "textcnn",
    "storage_uri": "gs://bucket/wf-1/model",
    "service_account": "textcnn-serving",
}


def isvc(**overrides: Any) -> dict[str, Any]:
    return build_inference_service(**{**BASE, **overrides})


def keys(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}"
            yield from keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for item in value:
            yield from keys(item, path)


def test_tensorflow_runtime_manifest() -> None:
    doc = isvc()
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert doc["metadata"]["name"] == "textcnn" and doc["metadata"]["namespace"] == "textcnn"
    predictor = doc["spec"]["predictor"]
    assert predictor["model"]["modelFormat"] == {"name": "tensorflow"}
    assert predictor["model"]["storageUri"] == "gs://bucket/wf-1/model"
    # Pinned: KServe's default TF Serving (2.6.2) cannot load a Keras 3 export.
    assert predictor["model"]["runtimeVersion"] == "2.19.1"
    assert predictor["model"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    assert predictor["serviceAccountName"] == "textcnn-serving"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    assert "canaryTrafficPercent" not in predictor and "containers" not in predictor
    assert validate_inference_service(doc) == []


def test_manifest_is_camel_case_and_survives_yaml() -> None:
    for doc in (
        isvc(canary_traffic_percent=10, deployment_mode="Serverless"),
        isvc(runtime="custom", image="img:1"),
    ):
        assert yaml.safe_load(yaml.safe_dump(doc)) == doc
        snake = [
            k
            for k in keys(doc)
            if "_" in k.rsplit(".", 1)[1]
            and not k.startswith((".metadata.labels.", ".metadata.annotations."))
        ]
        assert snake == []


def test_options_reach_the_manifest() -> None:
    doc = isvc(
        runtime_version="2.20.0",
        min_replicas=0,
        max_replicas=3,
        canary_traffic_percent=25,
        cpu_request="1",
        cpu_limit="2",
        memory_request="2Gi",
        memory_limit="4Gi",
        deployment_mode="Serverless",
    )
    assert doc["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Serverless",
        "serving.kserve.io/enable-tag-routing": "true",  # the canary check's revision URLs
    }
    predictor = doc["spec"]["predictor"]
    assert predictor["model"]["runtimeVersion"] == "2.20.0"
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 3)
    assert predictor["canaryTrafficPercent"] == 25
    assert predictor["model"]["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_custom_runtime_runs_the_project_server_on_the_downloaded_model() -> None:
    doc = isvc(runtime="custom", image="ghcr.io/textcnn-argo/serving:0.1.0")
    predictor = doc["spec"]["predictor"]
    assert "model" not in predictor
    (container,) = predictor["containers"]
    # KServe finds the predictor container by this name and downloads STORAGE_URI for it.
    assert container["name"] == "kserve-container"
    assert container["image"] == "ghcr.io/textcnn-argo/serving:0.1.0"
    assert container["env"] == [{"name": "STORAGE_URI", "value": "gs://bucket/wf-1/model"}]
    assert container["command"] == ["python", "-m", "textcnn.serving"]
    args = build_parser().parse_args(container["args"])  # the entrypoint accepts them
    assert (args.model_dir, args.model_name, args.port, args.host) == (
        "/mnt/models",
        "textcnn",
        8080,
        "0.0.0.0",
    )
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    # The server binds once the model is loaded; RawDeployment has no default probe.
    assert container["readinessProbe"]["tcpSocket"] == {"port": 8080}
    assert validate_inference_service(doc) == []


@pytest.mark.parametrize("percent", [0, 100])
def test_canary_bounds_are_accepted(percent: int) -> None:
    doc = isvc(canary_traffic_percent=percent, deployment_mode="Serverless")
    assert doc["spec"]["predictor"]["canaryTrafficPercent"] == percent


def test_the_deployment_mode_is_explicit_and_raw_by_default() -> None:
    assert isvc()["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "RawDeployment",
        "serving.kserve.io/enable-tag-routing": "true",
    }
    assert isvc(canary_traffic_percent=100)["spec"]["predictor"]["canaryTrafficPercent"] == 100


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"canary_traffic_percent": 101}, "canary_traffic_percent: 101 is not in 0..100"),
        ({"canary_traffic_percent": -1}, "canary_traffic_percent: -1 is not in 0..100"),
        ({"runtime": "sklearn"}, "runtime: 'sklearn' is not one of tensorflow, custom"),
        ({"runtime": "custom"}, "image: runtime 'custom' needs the serving image"),
        ({"image": "img:1"}, "image: only runtime 'custom' takes an image"),
        ({"storage_uri": ""}, "storage_uri: empty"),
        ({"min_replicas": 3, "max_replicas": 2}, "minReplicas: 3 is greater than maxReplicas 2"),
        ({"min_replicas": -1, "deployment_mode": "Serverless"}, "minReplicas: -1 is less than 0"),
        (
            {"canary_traffic_percent": 50},
            "canary_traffic_percent: a canary needs deployment mode "
            "Serverless; KServe ignores it in RawDeployment",
        ),
        ({"min_replicas": 0}, "min_replicas: scale to zero needs deployment mode Serverless"),
        (
            {"deployment_mode": "Knative"},
            "deployment_mode: 'Knative' is not one of RawDeployment, Serverless",
        ),
        ({"name": "TextCNN_v2"}, "metadata.name: 'TextCNN_v2' is not a DNS-1035 label"),
        ({"name": "2nd-model"}, "not a DNS-1035 label"),
        ({"name": "m" * 64}, "not a DNS-1035 label"),
    ],
)
def test_bad_options_raise_value_errors_naming_them(overrides: dict, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        isvc(**overrides)


def test_unknown_keys_are_reported_with_their_paths() -> None:
    doc = isvc(runtime="custom", image="img:1")
    doc["metadata"]["lables"] = {"a": "b"}
    doc["spec"]["predictor"]["canaryTraficPercent"] = 10
    doc["spec"]["predictor"]["containers"][0]["imagePullPolcy"] = "Always"
    doc["spec"]["predictor"]["containers"][0]["env"][0]["valeu"] = "x"
    doc["spec"]["sepc"] = {}
    assert sorted(validate_inference_service(doc)) == [
        "metadata.lables: unknown field",
        "spec.predictor.canaryTraficPercent: unknown field",
        "spec.predictor.containers[0].env[0].valeu: unknown field",
        "spec.predictor.containers[0].imagePullPolcy: unknown field",
        "spec.sepc: unknown field",
    ]


def test_open_maps_and_preserved_fields_are_not_unknown() -> None:
    doc = isvc()
    doc["metadata"]["labels"]["team.example.com/owner"] = "ml"
    doc["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] = "1"
    doc["spec"]["predictor"]["nodeSelector"] = {"cloud.google.com/gke-nodepool": "serving"}
    doc["status"] = {"anything": {"the": "controller writes"}}  # preserve-unknown-fields
    assert validate_inference_service(doc) == []


def test_schema_type_errors_have_paths() -> None:
    doc = isvc()
    doc["spec"]["predictor"]["minReplicas"] = "one"
    doc["spec"]["predictor"]["model"]["modelFormat"] = {}
    doc["metadata"]["labels"]["version"] = 2
    assert sorted(validate_inference_service(doc)) == [
        "metadata.labels.version: value must be a string, not int",
        "spec.predictor.minReplicas: 'one' is not of type 'integer'",
        "spec.predictor.model.modelFormat: 'name' is a required property",
    ]


def test_webhook_rules() -> None:
    doc = isvc()
    both = copy.deepcopy(doc)
    both["spec"]["predictor"]["tensorflow"] = {"storageUri": "gs://bucket/wf-1/model"}
    assert any(
        "exactly one of" in p and "found ['tensorflow', 'model']" in p
        for p in validate_inference_service(both)
    )
    none = copy.deepcopy(doc)
    del none["spec"]["predictor"]["model"]
    assert any("found none" in p for p in validate_inference_service(none))
    unbounded = copy.deepcopy(doc)
    unbounded["spec"]["predictor"].update(minReplicas=3, maxReplicas=0)  # 0: no maximum
    assert validate_inference_service(unbounded) == []
    canary = copy.deepcopy(doc)
    canary["spec"]["predictor"]["canaryTrafficPercent"] = 150
    assert validate_inference_service(canary) == [
        "spec.predictor.canaryTrafficPercent: 150 is not in 0..100"
    ]
    transformer = copy.deepcopy(doc)
    transformer["spec"]["transformer"] = {
        "containers": [{"name": "kserve-container", "image": "t:1"}],
        "minReplicas": -2,
    }
    assert validate_inference_service(transformer) == [
        "spec.transformer.minReplicas: -2 is less than 0"
    ]
    other = copy.deepcopy(doc)
    other.update(apiVersion="serving.kserve.io/v1alpha1", kind="Service")
    assert validate_inference_service(other)[:2] == [
        "apiVersion: expected serving.kserve.io/v1beta1, got 'serving.kserve.io/v1alpha1'",
        "kind: expected InferenceService, got 'Service'",
    ]


def test_generic_unknown_field_walker() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "items": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"a": {"type": "string"}}},
                    },
                    "byName": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "object",
                            "properties": {"size": {"type": "integer"}},
                        },
                    },
                    "free": {"type": "object", "additionalProperties": True},
                    "kept": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "properties": {"known": {"type": "object", "properties": {}}},
                    },
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "properties": {"spec": {"type": "object"}},
                    },
                    "mixed": {
                        "allOf": [
                            {"properties": {"x": {"type": "integer"}}},
                            {"properties": {"y": {"type": "integer"}}},
                        ]
                    },
                },
            },
        },
    }
    doc = {
        "apiVersion": "v1",
        "kind": "K",
        "metadata": {"name": "n", "nmae": "typo"},
        "spec": {
            "items": [{"a": "ok"}, {"b": "unknown"}],
            "byName": {"one": {"size": 1}, "two": {"szie": 2}},
            "free": {"whatever": {"deep": 1}},
            "kept": {"extra": 1, "known": {"inner": 2}},
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"labels": {"a": "b"}},
                "spec": {},
                "status": {},
            },
            "mixed": {"x": 1, "y": 2, "z": 3},
        },
    }
    assert unknown_fields(doc, schema) == [
        # Root apiVersion/kind are undeclared in this schema, as a CRD schema must declare them.
        "apiVersion: unknown field",
        "kind: unknown field",
        "metadata.nmae: unknown field",
        "spec.items[1].b: unknown field",
        "spec.byName.two.szie: unknown field",
        "spec.kept.known.inner: unknown field",
        "spec.template.status: unknown field",
        "spec.mixed.z: unknown field",
    ]


def test_vendored_schema_is_the_one_in_provenance() -> None:
    digest = hashlib.sha256(ISVC_SCHEMA.read_bytes()).hexdigest()
    provenance = (ISVC_SCHEMA.parent.parent / "PROVENANCE.md").read_text()
    assert f"this file's sha256 | `{digest}`" in provenance
    licence = hashlib.sha256((ISVC_SCHEMA.parent.parent / "LICENSE").read_bytes())
    assert f"sha256 `{licence.hexdigest()}`" in provenance
