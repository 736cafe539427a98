"""`python -m workflows submit` against a local stand-in of the Argo Server's REST API.

The stand-in is a real HTTP server on 127.0.0.1 that keeps the objects it is given, answers
like the Argo Server (409 AlreadyExists, resourceVersion checks on update, JSON errors with
`message`), serves Google's token endpoint for the IAP exchange, and records every request,
so the tests check what actually went over the wire through Hera and google-auth.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import GCS_BUCKET

from textcnn import storage
from textcnn.params import PipelineParams
from workflows import submit, wheel
from workflows.checks import argo_schema as schema
from workflows.checks import lint
from workflows.dag import lightweight, pipeline
from workflows.dag.pipeline import Rendering
from workflows.submit import SubmitError

COLLECTIONS = {
    "workflow-templates": "template",
    "cron-workflows": "cronWorkflow",
    "workflows": "workflow",
}
ROOT = Path(__file__).resolve().parents[1]
ENV = ("ARGO_TOKEN", "ARGO_IAP_CLIENT_SECRET", "ARGO_IAP_REFRESH_TOKEN")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ArgoStub:
    """The routes `submit` uses, under an optional path prefix, plus POST /token."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.url = ""  # set once the server listens
        self.requests: list[Request] = []
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        # (method, path) -> (status, body, headers): answered instead of the normal route.
        self.canned: dict[tuple[str, str], tuple[int, Any, dict[str, str]]] = {}
        self.token_answer: tuple[int, Any] = (200, None)
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    def handle(self, req: Request) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append(req)
            if (req.method, req.path) in self.canned:
                return self.canned[(req.method, req.path)]
            if req.path == "/token":
                return self._token(req.body)
            parts = req.path.removeprefix(self.prefix).strip("/").split("/")
            if parts[:2] != ["api", "v1"] or parts[2] not in COLLECTIONS:
                return 404, {"code": 5, "message": f"no route {req.path}"}, {}
            collection, namespace, name = parts[2], parts[3], (parts[4:] or [""])[0]
            return self._object(req.method, collection, namespace, name, req.body)

    def _object(
        self, method: str, collection: str, namespace: str, name: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        field = COLLECTIONS[collection]
        key = (collection, namespace, name)
        if method == "POST":
            obj = json.loads(json.dumps(body[field]))
            meta = obj["metadata"]
            meta.setdefault("name", f"{meta.get('generateName', '')}{next(self._names):05d}")
            key = (collection, namespace, meta["name"])
            if key in self.objects:
                return (
                    409,
                    {"code": 6, "message": f'{collection} "{meta["name"]}" already exists'},
                    {},
                )
            meta.update(namespace=namespace, resourceVersion="1", uid=f"uid-{meta['name']}")
            self.objects[key] = obj
            return 200, obj, {}
        if key not in self.objects:
            return 404, {"code": 5, "message": f'{collection} "{name}" not found'}, {}
        current = self.objects[key]
        if method == "GET":
            return 200, current, {}
        if method == "PUT":
            obj = json.loads(json.dumps(body[field]))
            if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return 409, {"code": 10, "message": "the object has been modified"}, {}
            obj["metadata"].update(
                resourceVersion=str(int(current["metadata"]["resourceVersion"]) + 1),
                uid=current["metadata"]["uid"],
                namespace=namespace,
            )
            self.objects[key] = obj
            return 200, obj, {}
        return 405, {"code": 12, "message": "method not allowed"}, {}

    def _token(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        status, body = self.token_answer
        return (
            status,
            body
            or {
                "id_token": f"id-token-for-{form['audience']}",
                "access_token": "unused",
                "expires_in": 3599,
            },
            {},
        )

    def sent(self, method: str | None = None) -> list[Request]:
        """Requests to the Argo API (not the token endpoint)."""
        return [
            r
            for r in self.requests
            if r.path != "/token" and (method is None or r.method == method)
        ]


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[ArgoStub]:
    argo = ArgoStub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.headers.get("Content-Type", "").startswith("application/x-www-form"):
                body: Any = dict(urllib.parse.parse_qsl(raw))
            else:
                body = json.loads(raw) if raw else None
            path = urllib.parse.urlsplit(self.path).path
            status, answer, headers = argo.handle(
                Request(self.command, path, dict(self.headers.items()), body)
            )
            data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    argo.url = f"http://127.0.0.1:{server.server_port}"
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(submit, "GOOGLE_TOKEN_URI", f"{argo.url}/token")
    yield argo
    server.shutdown()
    server.server_close()


def request_for(
    stub: ArgoStub, client_id: str = "", other_client_id: str = "", **values: str
) -> tuple[PipelineParams, submit.Login]:
    """Pipeline options and the client's login for a submission to the stub."""
    return PipelineParams.parse(values), submit.Login(stub.url, client_id, other_client_id)


def test_submit_creates_a_workflow_from_the_template_with_every_option(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    params, login = request_for(stub, namespace="ml-team", epochs="3", filter_sizes="2,3")
    out = io.StringIO()
    answers = submit.submit(params, login, install=False, dry_run=False, out=out)

    (req,) = stub.sent()
    assert (req.method, req.path) == ("POST", "/api/v1/workflows/ml-team")
    assert req.headers["Authorization"] == "Bearer t0ken"
    workflow = req.body["workflow"]
    template_name = pipeline.render(params)[0]["metadata"]["name"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": template_name}
    assert workflow["metadata"]["generateName"] == f"{template_name}-"
    sent = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert sent == params.to_strings()
    assert sent["epochs"] == "3" and sent["filter_sizes"] == "2,3"
    assert schema.problems(workflow) == []
    # What comes back is the server's object, with its generated name, and a link to it.
    name = answers[-1]["metadata"]["name"]
    assert name.startswith(f"{template_name}-") and len(answers) == 1
    assert f"/workflows/ml-team/{name}" in out.getvalue()


def test_lightweight_publishes_the_wheel_and_installs_the_template_naming_it(
    stub: ArgoStub, gcs_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    params, login = request_for(stub, gcp_bucket=GCS_BUCKET)
    package = wheel.package()
    out = io.StringIO()
    rendering = Rendering(package=package)
    uri = f"gs://{GCS_BUCKET}/{package.key}"
    # A dry run, or no --host, sends nothing anywhere: no wheel either.
    submit.submit(params, login, install=False, dry_run=True, out=out, rendering=rendering)
    with pytest.raises(SubmitError, match="--host"):
        submit.submit(
            params, submit.Login(), install=False, dry_run=False, out=out, rendering=rendering
        )
    assert not storage.exists(uri) and stub.sent() == []
    # install=False: the template is installed anyway, as it names this checkout's wheel;
    # the scheduled retrain is not.
    submit.submit(params, login, install=False, dry_run=False, out=out, rendering=rendering)
    assert f"wheel {uri}" in out.getvalue() and storage.exists(uri)
    ns = params.namespace
    assert [(r.method, r.path) for r in stub.sent()] == [
        ("POST", f"/api/v1/workflow-templates/{ns}"),
        ("POST", f"/api/v1/workflows/{ns}"),
    ]
    template = stub.sent()[0].body["template"]
    assert template["metadata"]["name"] == "textcnn-pipeline-lightweight"
    keys = {
        a["gcs"]["key"]
        for t in template["spec"]["templates"]
        for a in t.get("inputs", {}).get("artifacts", [])
        if a["name"] == "package"
    }
    assert keys == {package.key}
    workflow = stub.sent()[1].body["workflow"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "textcnn-pipeline-lightweight"}
    sent = workflow["spec"]["arguments"]["parameters"]
    assert {p["name"]: p["value"] for p in sent}["image"] == lightweight.IMAGE


def test_a_bearer_prefix_in_argo_token_is_not_doubled(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "Bearer t0ken")
    submit.submit(*request_for(stub), install=False, dry_run=False, out=io.StringIO())
    assert stub.sent()[0].headers["Authorization"] == "Bearer t0ken"


def test_install_creates_template_and_cron_before_the_workflow(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    params, login = request_for(stub, epochs="4")
    answers = submit.submit(params, login, install=True, dry_run=False, out=io.StringIO())

    template, cron = pipeline.render(params)
    ns = params.namespace
    assert [(r.method, r.path) for r in stub.sent()] == [
        ("POST", f"/api/v1/workflow-templates/{ns}"),
        ("POST", f"/api/v1/cron-workflows/{ns}"),
        ("POST", f"/api/v1/workflows/{ns}"),
    ]
    assert stub.sent()[0].body["template"] == template
    assert stub.sent()[1].body["cronWorkflow"] == cron
    assert all(r.headers["Authorization"] == "Bearer t0ken" for r in stub.sent())
    assert [a["kind"] for a in answers] == ["WorkflowTemplate", "CronWorkflow", "Workflow"]


def test_install_updates_existing_objects_with_their_resource_version(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    submit.submit(*request_for(stub), install=True, dry_run=False, out=io.StringIO())
    # A second install with other defaults replaces both objects.
    stub.requests.clear()
    params, login = request_for(stub, epochs="7")
    answers = submit.submit(params, login, install=True, dry_run=False, out=io.StringIO())

    ns, (template, cron) = params.namespace, pipeline.render(params)
    wt_path = f"/api/v1/workflow-templates/{ns}/{template['metadata']['name']}"
    cron_path = f"/api/v1/cron-workflows/{ns}/{cron['metadata']['name']}"
    assert [(r.method, r.path) for r in stub.sent()] == [
        ("POST", f"/api/v1/workflow-templates/{ns}"),
        ("GET", wt_path),
        ("PUT", wt_path),
        ("POST", f"/api/v1/cron-workflows/{ns}"),
        ("GET", cron_path),
        ("PUT", cron_path),
        ("POST", f"/api/v1/workflows/{ns}"),
    ]
    put_template, put_cron = (r.body for r in stub.sent("PUT"))
    expected = {**template, "metadata": {**template["metadata"], "resourceVersion": "1"}}
    assert put_template["template"] == expected
    assert put_cron["cronWorkflow"]["metadata"]["resourceVersion"] == "1"
    assert answers[0]["metadata"]["resourceVersion"] == "2"
    stored = stub.objects[("workflow-templates", ns, template["metadata"]["name"])]
    epochs = {p["name"]: p["value"] for p in stored["spec"]["arguments"]["parameters"]}
    assert epochs["epochs"] == "7"


def test_a_403_gives_the_status_and_argos_message(
    stub: ArgoStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    message = (
        'workflows.argoproj.io is forbidden: User "system:serviceaccount:argo:ci" '
        'cannot create resource "workflows" in the namespace "textcnn"'
    )
    stub.canned[("POST", "/api/v1/workflows/textcnn")] = (403, {"code": 7, "message": message}, {})
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    with pytest.raises(SubmitError, match="HTTP 403") as e:
        submit.submit(*request_for(stub), install=False, dry_run=False, out=io.StringIO())
    assert message in str(e.value)

    parser = argparse.ArgumentParser()
    submit.add_submit_arguments(parser)
    args = parser.parse_args([f"--host={stub.url}"])
    assert submit.run_command(args, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: submit: ") and "HTTP 403" in err and message in err


def test_a_missing_template_suggests_install(stub: ArgoStub) -> None:
    stub.canned[("POST", "/api/v1/workflows/textcnn")] = (
        400,
        {"code": 3, "message": 'workflowtemplates.argoproj.io "textcnn-pipeline" not found'},
        {},
    )
    with pytest.raises(SubmitError, match=r"HTTP 400: .*not found.*--install"):
        submit.submit(*request_for(stub), install=False, dry_run=False, out=io.StringIO())


def test_an_iap_login_redirect_is_reported_not_followed(stub: ArgoStub) -> None:
    login = "https://accounts.google.com/o/oauth2/v2/auth?client_id=x"
    stub.canned[("POST", "/api/v1/workflows/textcnn")] = (302, "", {"Location": login})
    with pytest.raises(SubmitError, match="redirects to https://accounts.google.com/"):
        submit.submit(*request_for(stub), install=False, dry_run=False, out=io.StringIO())
    assert len(stub.sent()) == 1


@pytest.mark.parametrize("install", [False, True])
def test_dry_run_prints_the_objects_and_sends_nothing(stub: ArgoStub, install: bool) -> None:
    out = io.StringIO()
    params, login = request_for(stub, client_id="iap.apps", other_client_id="desktop.apps")
    docs = submit.submit(params, login, install=install, dry_run=True, out=out)

    assert stub.requests == []  # neither Argo nor the token endpoint
    assert list(yaml.safe_load_all(out.getvalue())) == docs
    kinds = ["WorkflowTemplate", "CronWorkflow", "Workflow"] if install else ["Workflow"]
    assert [d["kind"] for d in docs] == kinds
    assert [p for doc in docs for p in schema.problems(doc)] == []


def test_the_iap_client_secret_never_reaches_the_cluster(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_IAP_CLIENT_SECRET", "s3cret-in-env")
    monkeypatch.setenv("ARGO_IAP_REFRESH_TOKEN", "1//refresh")
    params, login = request_for(stub, client_id="iap.apps", other_client_id="desktop.apps")
    out = io.StringIO()
    submit.submit(params, login, install=True, dry_run=True, out=out)
    assert "s3cret-in-env" not in out.getvalue()
    submit.submit(params, login, install=True, dry_run=False, out=io.StringIO())
    assert all("s3cret-in-env" not in json.dumps(r.body) for r in stub.sent())
    assert stub.requests[0].body["client_secret"] == "s3cret-in-env"  # the exchange only


def test_a_secret_on_the_command_line_is_refused_naming_the_variable(
    stub: ArgoStub, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    submit.add_submit_arguments(parser)
    args = parser.parse_args(
        [
            f"--host={stub.url}",
            "--client_id=iap.apps",
            "--other_client_id=desktop.apps",
            "--other_client_secret=s3cret",
        ]
    )
    assert submit.run_command(args, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "--other_client_secret" in err and "ARGO_IAP_CLIENT_SECRET" in err
    assert "s3cret" not in err and stub.requests == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--host=argo.example.com"], "--host: 'argo.example.com' is not an http(s):// URL"),
        (["--host=https://argo", "--client_id=iap"], "--client_id (IAP) needs --other_client_id"),
    ],
)
def test_bad_login_options_exit_2(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    submit.add_submit_arguments(parser)
    assert submit.run_command(parser.parse_args(argv), out=io.StringIO()) == 2
    assert words in capsys.readouterr().err


def test_iap_exchanges_the_refresh_token_for_an_id_token(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_IAP_CLIENT_SECRET", "desktop-secret")
    monkeypatch.setenv("ARGO_IAP_REFRESH_TOKEN", "1//refresh")
    params, login = request_for(stub, client_id="iap.apps", other_client_id="desktop.apps")
    submit.submit(params, login, install=False, dry_run=False, out=io.StringIO())

    token_request, argo_request = stub.requests
    assert (token_request.method, token_request.path) == ("POST", "/token")
    assert token_request.body == {
        "grant_type": "refresh_token",
        "client_id": "desktop.apps",
        "client_secret": "desktop-secret",
        "refresh_token": "1//refresh",
        "audience": "iap.apps",
    }
    assert argo_request.headers["Authorization"] == "Bearer id-token-for-iap.apps"
    assert "Proxy-Authorization" not in argo_request.headers


def test_iap_and_argo_token_together_use_proxy_authorization(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    monkeypatch.setenv("ARGO_IAP_CLIENT_SECRET", "desktop-secret")
    monkeypatch.setenv("ARGO_IAP_REFRESH_TOKEN", "1//refresh")
    params, login = request_for(stub, client_id="iap.apps", other_client_id="desktop.apps")
    submit.submit(params, login, install=True, dry_run=False, out=io.StringIO())

    assert len(stub.sent()) == 3
    for req in stub.sent():
        assert req.headers["Authorization"] == "Bearer t0ken"
        assert req.headers["Proxy-Authorization"] == "Bearer id-token-for-iap.apps"


def test_a_refused_token_exchange_is_a_clear_error(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_IAP_CLIENT_SECRET", "desktop-secret")
    monkeypatch.setenv("ARGO_IAP_REFRESH_TOKEN", "1//expired")
    stub.token_answer = (400, {"error": "invalid_grant", "error_description": "Bad Request"})
    params, login = request_for(stub, client_id="iap.apps", other_client_id="desktop.apps")
    with pytest.raises(SubmitError, match=r"HTTP 400\): invalid_grant: Bad Request"):
        submit.submit(params, login, install=False, dry_run=False, out=io.StringIO())
    assert stub.sent() == []


def test_iap_without_the_refresh_token_names_the_variable(
    stub: ArgoStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGO_IAP_CLIENT_SECRET", "desktop-secret")
    params, login = request_for(stub, client_id="iap.apps", other_client_id="desktop.apps")
    with pytest.raises(SubmitError, match="ARGO_IAP_REFRESH_TOKEN"):
        submit.submit(params, login, install=False, dry_run=False, out=io.StringIO())
    assert stub.requests == []


def test_no_credentials_warns_and_sends_no_authorization(
    stub: ArgoStub, capsys: pytest.CaptureFixture[str]
) -> None:
    submit.submit(*request_for(stub), install=False, dry_run=False, out=io.StringIO())
    assert "Authorization" not in stub.sent()[0].headers
    assert "unauthenticated" in capsys.readouterr().err


def test_a_host_with_a_path_keeps_it(stub: ArgoStub, monkeypatch: pytest.MonkeyPatch) -> None:
    stub.prefix = "/argo"
    params, login = PipelineParams(), submit.Login(f"{stub.url}/argo")
    submit.submit(params, login, install=False, dry_run=False, out=io.StringIO())
    assert stub.sent()[0].path == "/argo/api/v1/workflows/textcnn"


def test_an_unreachable_server_or_no_host_is_a_clear_error(stub: ArgoStub) -> None:
    with pytest.raises(SubmitError, match="--host"):
        submit.submit(
            PipelineParams(), submit.Login(), install=False, dry_run=False, out=io.StringIO()
        )
    closed = submit.Login("http://127.0.0.1:9")
    with pytest.raises(SubmitError, match="cannot reach the Argo Server at http://127.0.0.1:9/"):
        submit.submit(PipelineParams(), closed, install=False, dry_run=False, out=io.StringIO())


def test_a_field_hera_cannot_carry_is_refused() -> None:
    workflow = submit.workflow_object(PipelineParams(), "textcnn-pipeline")
    workflow["spec"]["notAnArgoField"] = 1
    with pytest.raises(SubmitError, match="does not carry every field"):
        submit._model(submit.Workflow, workflow)


def test_bad_options_exit_2_before_anything_is_sent(
    stub: ArgoStub, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    submit.add_submit_arguments(parser)
    args = parser.parse_args([f"--host={stub.url}", "--epochs=0"])
    assert submit.run_command(args, out=io.StringIO()) == 2
    assert "--epochs" in capsys.readouterr().err and stub.requests == []


# --- the DAG module run as a Hera script --------------------------------------------


def _script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("ARGO_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "workflows" / "dag" / "hera_script.py")],
        env={**keep, "NO_PROXY": "127.0.0.1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_hera_script_prints_what_compile_writes() -> None:
    result = _script({})
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == pipeline.render()


def test_the_hera_script_creates_then_updates_on_the_argo_server(stub: ArgoStub) -> None:
    env = {"ARGO_SERVER": stub.url, "ARGO_TOKEN": "t0ken"}
    for _ in range(2):  # the first call creates, the second updates
        result = _script(env)
        assert result.returncode == 0, result.stderr
        assert "WorkflowTemplate textcnn/textcnn-pipeline created or updated" in result.stdout
    template = stub.objects[("workflow-templates", "textcnn", "textcnn-pipeline")]
    assert template["metadata"]["resourceVersion"] == "2"  # created, then updated
    assert template["spec"] == pipeline.render()[0]["spec"]  # annotations hoisted there too
    assert ("cron-workflows", "textcnn", "textcnn-retrain") in stub.objects
    assert {r.headers.get("Authorization") for r in stub.sent()} == {"Bearer t0ken"}


def test_hera_generate_yaml_gives_what_compile_writes_and_passes_the_lint(tmp_path: Path) -> None:
    hera = Path(sys.executable).with_name("hera")
    result = subprocess.run(
        [str(hera), "generate", "yaml", "workflows/dag/hera_script.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == pipeline.render()
    generated = tmp_path / "generated.yaml"
    generated.write_text(result.stdout)
    assert lint.lint_paths([generated]) == []
