"""`python -m workflows submit`: start the pipeline on an Argo Server with Hera's
`WorkflowsService`.

A run is a `Workflow` that references the `textcnn-pipeline` WorkflowTemplate
(`workflowTemplateRef`) and passes every option as an argument, so the cluster runs the
template it has. `--install` first creates or updates that WorkflowTemplate and the
`textcnn-retrain` CronWorkflow from `workflows.dag.pipeline.render(params)`. `--lightweight`
builds this checkout's wheel, uploads it to gs://<gcp_bucket>/packages/ (once per
content) and installs the lightweight template, which names it. `--dry_run` prints the
objects as YAML and sends nothing.

Authentication, from the environment so no secret lands in shell history:

- `ARGO_TOKEN`: a bearer token for the Argo Server (with or without the `Bearer ` prefix);
- GKE IAP in front of the server (`--client_id` of the IAP OAuth client and
  `--other_client_id` of a desktop OAuth client): the desktop client's secret in
  `ARGO_IAP_CLIENT_SECRET` and a refresh token, obtained once with that desktop client, in
  `ARGO_IAP_REFRESH_TOKEN`. They are exchanged for an OpenID Connect ID token whose
  audience is the IAP client. With `ARGO_TOKEN` set as well, the ID token goes in
  `Proxy-Authorization`, which IAP consumes, and the Argo token in `Authorization`.

See manifests/README.md for obtaining the refresh token.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import google.auth.exceptions
import google.auth.transport.requests
import requests
import yaml
from hera.exceptions import AlreadyExists, HeraException
from hera.shared._pydantic import APIBaseModel
from hera.workflows.models import (
    CreateCronWorkflowRequest,
    CronWorkflow,
    UpdateCronWorkflowRequest,
    Workflow,
    WorkflowCreateRequest,
    WorkflowTemplate,
    WorkflowTemplateCreateRequest,
    WorkflowTemplateUpdateRequest,
)
from hera.workflows.service import WorkflowsService

from textcnn.params import ParamsError, PipelineParams
from workflows.credentials import ARGO_TOKEN, IAP_CLIENT_SECRET, IAP_REFRESH_TOKEN
from workflows.dag import pipeline
from workflows.dag.lightweight import Package

# Read at call time, so a test can point the exchange at a local server.
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
TOKEN_EXCHANGE_TIMEOUT_S = 30
# How Hera 7.1 words a server error: "... status code 403 with message: `<Argo's message>`".
_HERA_ERROR = re.compile(r"status code (\d+) with message: `(.*)`\Z", re.DOTALL)


class SubmitError(Exception):
    """Submission failed: the message says what was sent where and what came back."""


@dataclass(frozen=True)
class Login:
    """The submitting client's options of the original CLI: where the Argo Server is and how
    to pass GKE IAP in front of it. They never reach the cluster; the desktop client's
    secret comes from ARGO_IAP_CLIENT_SECRET, never from the command line."""

    host: str = ""
    client_id: str = ""
    other_client_id: str = ""

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> Login:
        """The login options, checked; ParamsError naming the option otherwise."""
        problems = []
        if args.host and not re.match(r"^https?://[^\s/]+", args.host):
            problems.append(f"--host: {args.host!r} is not an http(s):// URL of the Argo Server")
        if args.client_id and not args.other_client_id:
            problems.append("--client_id (IAP) needs --other_client_id as well")
        if args.other_client_secret:
            problems.append(
                "--other_client_secret: a secret on the command line lands in shell "
                "history and process lists; set ARGO_IAP_CLIENT_SECRET instead"
            )
        if problems:
            raise ParamsError("invalid options:\n  " + "\n  ".join(problems))
        return cls(args.host, args.client_id, args.other_client_id)


# --- the objects ---------------------------------------------------------------------


def workflow_object(params: PipelineParams, template_name: str) -> dict[str, Any]:
    """A Workflow that runs the installed WorkflowTemplate with every option as argument."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{template_name}-", "namespace": params.namespace},
        "spec": {
            "workflowTemplateRef": {"name": template_name},
            "arguments": {
                "parameters": [
                    {"name": name, "value": value} for name, value in params.to_strings().items()
                ]
            },
        },
    }


def _model(cls: type[APIBaseModel], doc: Mapping[str, Any]) -> Any:
    """`doc` as Hera's model, refusing any field the model would silently drop (Hera's
    models ignore unknown keys, and the request carries only what the model kept)."""
    model = cls.model_validate(doc)
    kept = model.model_dump(
        mode="json", exclude_none=True, by_alias=True, exclude_unset=True, exclude_defaults=True
    )  # what Hera's service puts in the request
    if kept != doc:
        raise SubmitError(
            f"{doc.get('kind')}/{doc['metadata'].get('name')}: Hera's {cls.__name__} model "
            "does not carry every field of the rendered document; upgrade hera or fix the field"
        )
    return model


# --- authentication ------------------------------------------------------------------


def iap_id_token(
    *, audience: str, client_id: str, client_secret: str, refresh_token: str, token_uri: str
) -> str:
    """Exchange a refresh token of the desktop OAuth client `client_id` for an ID token
    whose audience is the IAP OAuth client `audience` (Google's documented desktop-app flow
    for programmatic access to IAP)."""
    body = urllib.parse.urlencode(
        {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
            "audience": audience,
        }
    ).encode()
    request = google.auth.transport.requests.Request()
    try:
        response = request(
            url=token_uri,
            method="POST",
            body=body,
            timeout=TOKEN_EXCHANGE_TIMEOUT_S,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    except google.auth.exceptions.TransportError as e:
        raise SubmitError(f"IAP token exchange: cannot reach {token_uri}: {e}") from None
    try:
        answer = json.loads(response.data or b"{}")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    if response.status != 200 or not answer.get("id_token"):
        reason = ": ".join(str(answer[k]) for k in ("error", "error_description") if k in answer)
        raise SubmitError(
            f"IAP token exchange at {token_uri} failed (HTTP {response.status}): "
            f"{reason or 'no id_token in the answer'}; check --other_client_id, "
            "ARGO_IAP_CLIENT_SECRET and ARGO_IAP_REFRESH_TOKEN"
        )
    return str(answer["id_token"])


def auth_headers(login: Login, env: Mapping[str, str], err: TextIO) -> dict[str, str]:
    """The Authorization (and, behind IAP with an Argo token, Proxy-Authorization) headers."""
    argo_token = env.get(ARGO_TOKEN, "").strip()
    argo_token = re.sub(r"^bearer\s+", "", argo_token, flags=re.IGNORECASE)
    headers = {"Authorization": f"Bearer {argo_token}"} if argo_token else {}
    if login.client_id:
        secret = env.get(IAP_CLIENT_SECRET, "")
        refresh_token = env.get(IAP_REFRESH_TOKEN, "")
        missing = [
            name
            for name, value in (
                (IAP_CLIENT_SECRET, secret),
                (IAP_REFRESH_TOKEN, refresh_token),
            )
            if not value
        ]
        if missing:
            raise SubmitError(
                f"--client_id (IAP) needs {' and '.join(missing)} in the "
                "environment; see manifests/README.md"
            )
        id_token = iap_id_token(
            audience=login.client_id,
            client_id=login.other_client_id,
            client_secret=secret,
            refresh_token=refresh_token,
            token_uri=GOOGLE_TOKEN_URI,
        )
        header = "Proxy-Authorization" if argo_token else "Authorization"
        headers[header] = f"Bearer {id_token}"
    if not headers:
        print(
            f"warning: no ARGO_TOKEN and no IAP client id: calling {login.host} unauthenticated",
            file=err,
        )
    return headers


# --- talking to the Argo Server -----------------------------------------------------


def _call(what: str, host: str, send: Callable[[], Any]) -> Any:
    """Run one Hera service call; turn every failure into a SubmitError naming it."""
    try:
        return send()
    except HeraException as e:
        match = _HERA_ERROR.search(str(e))
        status, message = match.groups() if match else ("?", str(e))
        raise SubmitError(
            f"{what}: the Argo Server at {host} answered HTTP {status}: "
            f"{message.strip() or '(no message)'}"
        ) from None
    except requests.TooManyRedirects as e:
        where = e.response.headers.get("Location", "?") if e.response is not None else "?"
        raise SubmitError(
            f"{what}: {host} redirects to {where}: a login page? Behind IAP, "
            "give --client_id and --other_client_id"
        ) from None
    except requests.RequestException as e:
        raise SubmitError(f"{what}: cannot reach the Argo Server at {host}: {e}") from None
    except (ValueError, KeyError) as e:  # not JSON, or not the object asked for
        raise SubmitError(f"{what}: unexpected answer from {host}: {e}") from None


def _publish(package: Package, bucket: str) -> str:
    """Upload the wheel the lightweight steps install to the artifact repository, where
    their input artifact reads it (once per content); its URI."""
    from workflows import wheel

    try:
        return wheel.publish(package, f"gs://{bucket}")
    except wheel.WheelError as e:
        raise SubmitError(f"the lightweight wheel: {e}") from None


# Kind -> (Hera model, create request, update request, the request's field for the object,
# the WorkflowsService method suffix: create_X, get_X, update_X).
_INSTALLABLE: dict[
    str, tuple[type[APIBaseModel], type[APIBaseModel], type[APIBaseModel], str, str]
] = {
    "WorkflowTemplate": (
        WorkflowTemplate,
        WorkflowTemplateCreateRequest,
        WorkflowTemplateUpdateRequest,
        "template",
        "workflow_template",
    ),
    "CronWorkflow": (
        CronWorkflow,
        CreateCronWorkflowRequest,
        UpdateCronWorkflowRequest,
        "cron_workflow",
        "cron_workflow",
    ),
}


def _install(service: WorkflowsService, doc: dict[str, Any], host: str) -> dict[str, Any]:
    """Create the WorkflowTemplate or CronWorkflow `doc`; if it exists, replace it (an
    update carrying the current resourceVersion, as the API requires)."""
    kind, name, ns = doc["kind"], doc["metadata"]["name"], doc["metadata"]["namespace"]
    cls, create_request, update_request, field, method = _INSTALLABLE[kind]
    model = _model(cls, doc)

    def create_or_update() -> Any:
        try:
            return getattr(service, f"create_{method}")(
                create_request(**{field: model, "namespace": ns}), namespace=ns
            )
        except AlreadyExists:
            current = getattr(service, f"get_{method}")(name, namespace=ns)
            meta = {**doc["metadata"], "resourceVersion": current.metadata.resource_version}
            replacement = _model(cls, {**doc, "metadata": meta})
            return getattr(service, f"update_{method}")(
                name, update_request(**{field: replacement, "namespace": ns}), namespace=ns
            )

    answer = _call(f"install {kind} {ns}/{name}", host, create_or_update)
    return answer.model_dump(mode="json", by_alias=True, exclude_none=True)


def submit(
    params: PipelineParams,
    login: Login,
    *,
    install: bool,
    dry_run: bool,
    out: TextIO = sys.stdout,
    rendering: pipeline.Rendering = pipeline.DEFAULTS,
) -> list[dict[str, Any]]:
    """Submit one run of the pipeline (after installing the template and cron with
    `install`). Returns the objects the server answered with (template, cron, then the
    workflow, which carries its generated name), or with `dry_run` the objects that would
    be sent, which it prints as YAML."""
    params = rendering.parameters(params)
    template, cron = pipeline.render(params, rendering)
    workflow = workflow_object(params, template["metadata"]["name"])
    # A lightweight template names this checkout's wheel, so it is installed with it; the
    # scheduled retrain only when asked (--install).
    light = rendering.package is not None
    docs = [*([template] if install or light else []), *([cron] if install else []), workflow]
    if dry_run:
        yaml.safe_dump_all(docs, out, sort_keys=False, width=1_000_000)
        return docs
    if not login.host:
        raise SubmitError(
            "--host (the Argo Server URL) is required to submit; "
            "or use --dry_run to print the objects"
        )
    if rendering.package is not None:
        print(f"wheel {_publish(rendering.package, params.gcp_bucket)}", file=out)
    # urljoin(host, "api/v1/...") drops the last path segment of a host without a slash.
    host = login.host.rstrip("/") + "/"
    session = requests.Session()
    # An IAP login page is a redirect: fail on it rather than parse Google's HTML.
    session.max_redirects = 0
    headers = auth_headers(login, os.environ, sys.stderr)
    session.headers.update({k: v for k, v in headers.items() if k != "Authorization"})
    token = headers.get("Authorization", "").removeprefix("Bearer ") or None
    answers = []
    with WorkflowsService(
        host=host, token=token, namespace=params.namespace, session=session
    ) as service:
        for doc in docs[:-1]:
            answers.append(_install(service, doc, host))
            print(f"{doc['kind']} {params.namespace}/{doc['metadata']['name']} installed", file=out)
        label = (
            f"create Workflow from {template['kind']} {params.namespace}/"
            f"{template['metadata']['name']}"
        )
        request = WorkflowCreateRequest(
            workflow=_model(Workflow, workflow), namespace=params.namespace
        )
        try:
            created = _call(
                label, host, lambda: service.create_workflow(request, namespace=params.namespace)
            )
        except SubmitError as e:
            if install or "not found" not in str(e):
                raise
            raise SubmitError(f"{e}; install the template with --install") from None
        answers.append(created.model_dump(mode="json", by_alias=True, exclude_none=True))
        name = created.metadata.name
        print(
            f"Workflow {params.namespace}/{name} submitted: {service.get_workflow_link(name)}",
            file=out,
        )
    return answers


# --- command line ---------------------------------------------------------------------


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """The `submit` command's options: --install, --dry_run, the login options and every
    pipeline option."""
    parser.add_argument(
        "--install",
        action="store_true",
        help="create or update the WorkflowTemplate and CronWorkflow first",
    )
    parser.add_argument(
        "--dry_run", action="store_true", help="print the objects as YAML and send nothing"
    )
    login = parser.add_argument_group("login (the submitting client only)")
    login.add_argument("--host", default="", help="Argo Server URL (e.g. https://argo.example.com)")
    login.add_argument(
        "--client_id", default="", help="OAuth client id of the IAP-protected Argo Server (GKE IAP)"
    )
    login.add_argument(
        "--other_client_id", default="", help="OAuth client id of the desktop client used for IAP"
    )
    login.add_argument(
        "--other_client_secret", default="", help="refused: set ARGO_IAP_CLIENT_SECRET instead"
    )
    pipeline.add_render_arguments(parser)
    PipelineParams.add_arguments(parser)


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """`python -m workflows submit`: 0 on success, 2 for bad options, 1 when the server
    (or the IAP token exchange) refused."""
    try:
        params, login = PipelineParams.from_namespace(args), Login.from_namespace(args)
        submit(
            params,
            login,
            install=args.install,
            dry_run=args.dry_run,
            out=out,
            rendering=pipeline.Rendering.from_namespace(args),
        )
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SubmitError as e:
        print(f"error: submit: {e}", file=sys.stderr)
        return 1
    return 0
