"""What a request asks of the API: its kind, namespace, name, subresource and verb, read
from the method, path and query as the API server's `RequestInfoFactory` reads them
(`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`
`NewRequestInfo`); authorization and the handlers both work from it.

Only namespaced resources of KINDS are served: `/api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]`
and `/apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME[/SUB]]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workflows.kube.objects import Kind, kind_at

# HTTP method -> verb (NewRequestInfo's switch); a GET is a get, a list or a watch.
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class RequestInfo:
    kind: Kind
    namespace: str
    name: str  # the object's, or the one a collection's field selector picks; "" for none
    subresource: str  # "" or e.g. "status"
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    collection: bool  # the path ends at the resource, not at an object

    @property
    def resource(self) -> str:
        """The resource as RBAC rules name it: `tfjobs`, or `tfjobs/status`."""
        return f"{self.kind.plural}/{self.subresource}" if self.subresource else self.kind.plural


def is_watch(query: Mapping[str, str]) -> bool:
    # `watch` is a boolean query parameter; the client sends True as "true", kubectl "1".
    return query.get("watch", "").lower() in ("true", "1")


def name_selected(query: Mapping[str, str]) -> str:
    """The name a `fieldSelector=metadata.name=X` picks, "" if none: a list or watch of one
    object (how the python client watches one), authorized as a request naming it."""
    for term in query.get("fieldSelector", "").split(","):
        key, _, value = term.partition("=")
        if key == "metadata.name":
            return value.removeprefix("=")  # `==` means `=`
    return ""


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo | None:
    """The request's information, or None for a path that names no resource served here."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if len(rest) < 3 or len(rest) > 5 or rest[0] != "namespaces":
        return None
    kind = kind_at(group, rest[2])
    if kind is None or kind.version != version:
        return None
    namespace, collection = rest[1], len(rest) == 3
    name = "" if collection else rest[3]
    subresource = rest[4] if len(rest) > 4 else ""
    if method == "GET" and is_watch(query):
        # A watch of the collection, or of one object (the older spelling, by path).
        verb, name = "watch", name or name_selected(query)
    elif method == "GET" and collection:
        verb, name = "list", name_selected(query)
    else:
        verb = _VERBS.get(method, method.lower())
        verb = "deletecollection" if collection and verb == "delete" else verb
    return RequestInfo(kind, namespace, name, subresource, verb, collection)
