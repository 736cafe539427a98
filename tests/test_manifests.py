"""The cluster manifests: Kubernetes schemas (strict), least-privilege RBAC, the artifact
repository, the MLMD server wiring, no committed secrets, and a complete kustomization."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from textcnn.params import PipelineParams
from workflows.checks import argo_schema as schema
from workflows.checks import rbac
from workflows.dag import pipeline

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"
KUSTOMIZATION = MANIFESTS / "kustomization.yaml"
NAMESPACE = "textcnn"


# What the workflow pods may do, and nothing more (see the comments in rbac.yaml).
def manifest_files() -> list[Path]:
    """The cluster objects in manifests/ (not the generated workflows/, not kustomization)."""
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p != KUSTOMIZATION)


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (p.name, doc)
        for p in manifest_files()
        for doc in yaml.safe_load_all(p.read_text())
        if doc is not None
    ]


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def containers() -> list[dict[str, Any]]:
    return [
        c
        for d in objects("Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text())


@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.latest_version()])
@pytest.mark.parametrize(
    ("file", "doc"),
    documents(),
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in documents()],
)
def test_every_object_validates_strictly(file: str, doc: dict[str, Any], version: str) -> None:
    # strict: unknown fields (a misspelled key) fail too.
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_manifests_hold_the_expected_objects() -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for _, doc in documents())
    assert kinds == sorted(
        [
            ("Namespace", NAMESPACE),
            ("ServiceAccount", "textcnn-workflow"),
            ("ServiceAccount", "textcnn-serving"),
            ("Role", "textcnn-workflow"),
            ("RoleBinding", "textcnn-workflow"),
            ("ConfigMap", "artifact-repositories"),
            ("PersistentVolumeClaim", "mlmd-mysql"),
            ("Deployment", "mlmd-mysql"),
            ("Service", "mlmd-mysql"),
            ("Deployment", "metadata-grpc-deployment"),
            ("Service", "metadata-grpc-service"),
            ("NetworkPolicy", "mlmd-mysql"),
            ("NetworkPolicy", "metadata-grpc-server"),
        ]
    )


def test_workflow_role_grants_exactly_what_the_dag_needs() -> None:
    (role,) = objects("Role").values()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, "no resourceNames/URLs"
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
    # Nothing unused, nothing missing; an existing claim needs no claim rights.
    assert rbac.granted_rules(role) == rbac.required_rules(pipeline.render()[0])
    existing = pipeline.render(rendering=pipeline.Rendering(existing_claim="shared"))[0]
    assert rbac.granted_rules(role) - rbac.required_rules(existing) == {
        ("", "persistentvolumeclaims", "create"),
        ("", "persistentvolumeclaims", "get"),
    }
    assert not objects("ClusterRole") and not objects("ClusterRoleBinding")


def test_the_role_is_bound_to_the_workflow_service_account_only() -> None:
    (binding,) = objects("RoleBinding").values()
    (role,) = objects("Role").values()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "textcnn-workflow", "namespace": NAMESPACE}
    ]


def test_workflow_pods_run_as_the_bound_service_account() -> None:
    (binding,) = objects("RoleBinding").values()
    (subject,) = binding["subjects"]
    template = pipeline.render()[0]
    assert template["spec"]["serviceAccountName"] == subject["name"]


@pytest.mark.parametrize("account", ["textcnn-workflow", "textcnn-serving"])
def test_service_accounts_use_workload_identity(account: str) -> None:
    annotations = objects("ServiceAccount")[account]["metadata"]["annotations"]
    gsa = annotations["iam.gke.io/gcp-service-account"]
    assert re.fullmatch(
        r"[a-z][-a-z0-9]{4,28}[a-z0-9]@[-A-Za-z0-9_]+\.iam\.gserviceaccount\.com", gsa
    ), gsa


def _argo_validator(version: str, definition: str) -> Draft202012Validator:
    strict = schema._strict_schema(version)  # the strict in-memory schema the lint uses
    return Draft202012Validator(
        {
            "$schema": strict["$schema"],
            "definitions": strict["definitions"],
            "$ref": f"#/definitions/io.argoproj.workflow.v1alpha1.{definition}",
        }
    )


def test_artifact_repository_is_the_default_gcs_bucket_with_workload_identity() -> None:
    config = objects("ConfigMap")["artifact-repositories"]
    key = config["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    repository = yaml.safe_load(config["data"][key])
    for version in schema.VERSIONS:
        errors = [
            e.message
            for e in _argo_validator(version, "ArtifactRepository").iter_errors(repository)
        ]
        assert errors == [], f"{version}: {errors}"
    gcs = repository["gcs"]
    assert gcs["bucket"] == PipelineParams().gcp_bucket
    assert "{{workflow.name}}" in gcs["keyFormat"]
    assert "serviceAccountKeySecret" not in gcs  # Workload Identity, no key
    # The WorkflowTemplate looks its repository up by exactly this ConfigMap and key.
    template = pipeline.render()[0]
    assert template["spec"]["artifactRepositoryRef"] == {
        "configMap": config["metadata"]["name"],
        "key": key,
    }


def _args(container: dict[str, Any]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)


def _port(container: dict[str, Any], name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name_or_number]
    return port


def _selected(service: dict[str, Any]) -> dict[str, Any]:
    """The one container behind a Service (its selector matches the pod labels)."""
    (deployment,) = [
        d
        for d in objects("Deployment").values()
        if service["spec"]["selector"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_mlmd_service_reaches_the_grpc_server_which_reaches_mysql() -> None:
    services = objects("Service")
    grpc_service = services["metadata-grpc-service"]
    (port,) = grpc_service["spec"]["ports"]
    server = _selected(grpc_service)
    flags = _args(server)
    assert port["port"] == 8080
    assert _port(server, port["targetPort"]) == int(flags["grpc_port"])

    mysql_service = services[flags["mysql_config_host"]]
    (mysql_port,) = mysql_service["spec"]["ports"]
    mysql = _selected(mysql_service)
    assert mysql_port["port"] == int(flags["mysql_config_port"])
    assert _port(mysql, mysql_port["targetPort"]) == 3306
    env = {e["name"]: e for e in mysql["env"]}
    assert env["MYSQL_DATABASE"]["value"] == flags["mysql_config_database"]
    assert env["MYSQL_USER"]["value"] == flags["mysql_config_user"]
    # Both sides read the one password of the same Secret key: MySQL as a file, the server
    # (which takes it as a flag only) from the environment.
    server_env = {e["name"]: e for e in server["env"]}
    assert flags["mysql_config_password"] == "$(MYSQL_PASSWORD)"
    secret = server_env["MYSQL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    spec = objects("Deployment")["mlmd-mysql"]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in mysql["volumeMounts"]}
    (volume,) = [v for v in spec["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == secret["name"]
    assert env["MYSQL_PASSWORD_FILE"]["value"] == f"{mounts[volume['name']]}/{secret['key']}"


def test_mysql_keeps_its_data_on_the_claim() -> None:
    mysql = objects("Deployment")["mlmd-mysql"]
    spec = mysql["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] in objects("PersistentVolumeClaim")
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts[volume["name"]] == "/var/lib/mysql"
    # The rest of what MySQL writes goes to emptyDirs: its root filesystem is read-only.
    assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert mysql["spec"]["strategy"]["type"] == "Recreate"  # one writer on a RWO volume


def test_images_are_pinned() -> None:
    for container in containers():
        image = container["image"]
        assert re.search(r"@sha256:[0-9a-f]{64}$|:\d+\.\d+\.\d+$", image), image


def test_no_secret_is_committed_and_referenced_ones_are_documented() -> None:
    for file, doc in documents():
        assert not (doc["kind"] == "Secret" and ({"data", "stringData"} & doc.keys())), file
    readme = (MANIFESTS / "README.md").read_text()
    refs = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for c in containers()
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs
    for name, key in refs:
        assert re.search(
            rf"kubectl create secret generic {name}\b[^\n]*--from-literal={key}=", readme
        ), f"README does not say how to create Secret {name} ({key})"


def test_kustomization_lists_every_manifest_and_nothing_else() -> None:
    kz = kustomization()
    assert kz["namespace"] == NAMESPACE == objects("Namespace")[NAMESPACE]["metadata"]["name"]
    listed = kz["resources"]
    assert len(listed) == len(set(listed))
    present = {
        p.relative_to(MANIFESTS).as_posix()
        for p in [*manifest_files(), *MANIFESTS.glob("workflows/*.yaml")]
    }
    generated = {f"workflows/{d['metadata']['name']}.yaml" for d in pipeline.render()}
    assert set(listed) == present | generated
    missing = [r for r in listed if not (MANIFESTS / r).is_file()]
    assert missing == [], f"listed but absent (run `python -m workflows compile`): {missing}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (built-in kustomize) absent")
def test_kustomize_builds_everything_into_the_namespace() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=120
    )
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert names == {(d["kind"], d["metadata"]["name"]) for _, d in documents()} | {
        (d["kind"], d["metadata"]["name"]) for d in pipeline.render()
    }
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
