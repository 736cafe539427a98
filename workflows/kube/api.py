"""The local Kubernetes API server: the object store (objects.py) over HTTP on loopback,
for the processes a local run starts (the steps use the official kubernetes client) and
the local Argo. Controllers in this process use the store directly.

A small stdlib server rather than a maintained mock (such as kmock): no new dependency,
and it enforces what we need a cluster to enforce. Each request is, in the API server's
order: authenticated (a bearer token, else 401), read (request_info.py), authorized
(RBAC, else 403), then served; a write is admitted (`admit`, else 422) before it is
stored. Every error is a `Status` body (status.py).

Served for each kind of KINDS, namespaced: get, list, watch (also of one object, by
`fieldSelector=metadata.name=X`), create, update (PUT), patch (JSON merge patch only) and
delete; `GET .../NAME/status`. Field selectors on `metadata.name` and
`metadata.namespace`; no label selectors, no dry runs, no server-side apply.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from workflows.kube import status
from workflows.kube.admit import admit as admit_by_kind
from workflows.kube.loopback import LoopbackServer
from workflows.kube.objects import Check, Conflict, Event, Kind, NotFound, Objects, Stale
from workflows.kube.request_info import RequestInfo, request_info
from workflows.kube.status import ApiError

# (kind, doc) -> problems; (user, verb, group, resource, namespace, name) -> allowed
Admit = Callable[[Kind, dict[str, Any]], list[str]]
Authorize = Callable[[str, str, str, str, str, str], bool]

MERGE_PATCH = "application/merge-patch+json"
ON_COLLECTION, ON_OBJECT = ("list", "create"), ("get", "patch", "update", "delete")
WATCH_TIMEOUT_S = 1800  # the API server's --min-request-timeout, when the client names none
WATCH_POLL_S = 0.5  # how often an idle watch looks whether its client or the server is gone
# Deleting one of these answers a Status, not the object (its registry's
# `ReturnDeletedObject` is false); custom resources and core kinds answer the object.
STATUS_ON_DELETE = {("apps", "deployments")}
log = logging.getLogger(__name__)


class KubeApi(LoopbackServer):
    """The API server at `.url`, serving from a daemon thread until `close()` (or the end
    of a `with` block). `tokens`: bearer token -> user name; it may grow while serving."""

    def __init__(
        self,
        objects: Objects,
        tokens: Mapping[str, str],
        authorize: Authorize,
        admit: Admit = admit_by_kind,
    ) -> None:
        self.objects = objects
        self.tokens = dict(tokens)
        self.authorize = authorize
        self.admit = admit
        super().__init__(_Handler)


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"null")
    except ValueError as e:
        raise status.bad_request(f"the request body is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise status.bad_request("the request body must be a JSON object")
    return doc


def _field_selector(query: Mapping[str, str]) -> list[tuple[str, bool, str]]:
    """(field, equal, value) of each term of `fieldSelector` (`f=v`, `f==v`, `f!=v`)."""
    terms = []
    for term in filter(None, query.get("fieldSelector", "").split(",")):
        key, op, value = term.partition("!=") if "!=" in term else term.partition("=")
        if key not in ("metadata.name", "metadata.namespace"):
            raise status.bad_request(f"field label not supported: {key or term}")
        terms.append((key, op == "=", value.removeprefix("=")))
    if "labelSelector" in query:
        raise status.bad_request("label selectors are not supported by the local API server")
    return terms


def _selects(doc: Mapping[str, Any], terms: list[tuple[str, bool, str]]) -> bool:
    meta = doc.get("metadata", {})
    return all((meta.get(key.split(".")[1]) == value) == equal for key, equal, value in terms)


def _admission(api: KubeApi, kind: Kind) -> Check:
    def check(doc: dict[str, Any]) -> None:
        problems = api.admit(kind, doc)
        if problems:
            raise status.invalid(kind, doc["metadata"].get("name", ""), problems)

    return check


def _placed(info: RequestInfo, doc: dict[str, Any]) -> dict[str, Any]:
    """The body of a create or update, checked against the path as the API server checks
    it (`handlers/create.go`, `rest.EnsureObjectNamespaceMatchesRequestNamespace`,
    `handlers/update.go`)."""
    kind, meta = info.kind, doc.setdefault("metadata", {})
    version = doc.get("apiVersion", kind.api_version)
    if version != kind.api_version:
        raise status.bad_request(
            f"the API version in the data ({version}) does not match the expected API "
            f"version ({kind.api_version})"
        )
    if doc.get("kind", kind.kind) != kind.kind:
        # The custom resource handler's check; built-in kinds fail to decode instead.
        problem = f'kind: Invalid value: "{doc["kind"]}": must be {kind.kind}'
        raise status.invalid(kind, meta.get("name", ""), [problem])
    if meta.get("namespace", info.namespace) != info.namespace:
        raise status.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if info.name and meta.get("name", info.name) != info.name:
        raise status.bad_request(
            f"the name of the object ({meta['name']}) does not match the name on the URL "
            f"({info.name})"
        )
    return doc


def _list(api: KubeApi, info: RequestInfo, query: Mapping[str, str]) -> dict[str, Any]:
    terms = _field_selector(query)
    items, version = api.objects.snapshot(info.kind, info.namespace)
    return {
        "apiVersion": info.kind.api_version,
        "kind": f"{info.kind.kind}List",
        "metadata": {"resourceVersion": str(version)},
        "items": [doc for doc in items if _selects(doc, terms)],
    }


def _deleted(kind: Kind, doc: dict[str, Any]) -> dict[str, Any]:
    if (kind.group, kind.plural) not in STATUS_ON_DELETE:
        return doc
    meta = doc["metadata"]
    details = {"name": meta["name"], "group": kind.group, "kind": kind.plural, "uid": meta["uid"]}
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def serve(
    api: KubeApi, info: RequestInfo, query: Mapping[str, str], body: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    """The answer to an authorized request other than a watch: (HTTP code, body)."""
    kind, namespace, name, objects = info.kind, info.namespace, info.name, api.objects
    if info.subresource not in ("", "status"):
        raise status.no_such_path()
    if info.subresource and info.verb != "get":
        raise status.method_not_allowed(kind, info.verb)  # status writes: controllers only
    if info.verb not in (ON_COLLECTION if info.collection else ON_OBJECT):
        raise status.method_not_allowed(kind, info.verb)  # e.g. deletecollection, POST to NAME
    try:
        if info.verb == "list":
            return 200, _list(api, info, query)
        if info.verb == "get":
            return 200, objects.get(kind, namespace, name)
        if info.verb == "create":
            doc = _placed(info, _json(body))
            name = doc["metadata"].get("name", "")
            return 201, objects.create(kind, namespace, doc, _admission(api, kind))
        if info.verb == "patch":
            if content_type != MERGE_PATCH:
                raise status.unsupported_media_type([MERGE_PATCH])
            return 200, objects.patch(kind, namespace, name, _json(body), _admission(api, kind))
        if info.verb == "update":
            doc = _placed(info, _json(body))
            return 200, objects.replace(kind, namespace, name, doc, _admission(api, kind))
        if info.verb == "delete":
            return 200, _deleted(kind, objects.delete(kind, namespace, name))
    except NotFound as e:
        raise status.not_found(kind, name) from e
    except Conflict as e:
        raise status.already_exists(kind, name) from e
    except Stale as e:
        raise status.conflict(kind, name) from e
    raise AssertionError(f"verb {info.verb} unserved")  # ON_COLLECTION and ON_OBJECT's


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked watch streams
    server: KubeApi

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            user = self._user()
            info = request_info(self.command, url.path, query)
            if info is None:
                raise status.no_such_path()
            kind = info.kind
            if not self.server.authorize(
                user, info.verb, kind.group, info.resource, info.namespace, info.name
            ):
                raise status.forbidden(
                    kind, info.name, user, info.verb, info.resource, info.namespace
                )
            if info.verb == "watch":
                self._watch(info, query)
                return
            code, answer = serve(self.server, info, query, body, content_type)
        except ApiError as e:
            code, answer = e.code, e.body
        except Exception as e:  # a fault here: answer it, and say so
            log.exception("%s %s", self.command, self.path)
            error = status.internal_error(e)
            code, answer = error.code, error.body
        payload = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _user(self) -> str:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        user = self.server.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise status.unauthorized()
        return user

    def _watch(self, info: RequestInfo, query: Mapping[str, str]) -> None:
        """A chunked stream of `{"type", "object"}` lines: with no resourceVersion (or
        "0"), an ADDED for each object there is, then every change from there; with one,
        every change after it. Ends after `timeoutSeconds`, when the client goes, or when
        the server closes."""
        terms = _field_selector(query)
        if not info.collection:
            terms.append(("metadata.name", True, info.name))
        try:
            timeout_s = int(query.get("timeoutSeconds") or WATCH_TIMEOUT_S)
            since = int(query.get("resourceVersion") or 0)
        except ValueError as e:
            raise status.bad_request(f"invalid watch parameter: {e}") from e
        initial: list[dict[str, Any]] = []
        if since == 0:
            initial, since = self.server.objects.snapshot(info.kind, info.namespace)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + timeout_s
        try:
            for doc in filter(lambda d: _selects(d, terms), initial):
                self._chunk({"type": "ADDED", "object": doc})
            while (left := deadline - time.monotonic()) > 0 and self._listening():
                for event in self.server.objects.events(since, min(left, WATCH_POLL_S)):
                    since = event.version
                    if self._watched(info, terms, event):
                        self._chunk({"type": event.type, "object": event.object})
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went, or close() shut the connection
            self.close_connection = True

    @staticmethod
    def _watched(info: RequestInfo, terms: list[tuple[str, bool, str]], event: Event) -> bool:
        namespace = event.object["metadata"]["namespace"]
        return (
            event.kind == info.kind
            and namespace == info.namespace
            and _selects(event.object, terms)
        )

    def _chunk(self, event: dict[str, Any]) -> None:
        line = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()

    def _listening(self) -> bool:
        """Is the server open and the client still there? A client that has gone leaves
        its socket readable at end of file."""
        if self.server.closing.is_set():
            return False
        readable, _, _ = select.select([self.connection], [], [], 0)
        try:
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def log_message(self, *_: object) -> None:
        pass
