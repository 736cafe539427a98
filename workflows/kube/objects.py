"""The object store behind the local Kubernetes API: what etcd and the API server's
registry keep, for the few resources the pipeline uses.

Each object gets what the API server gives it on create (kubernetes
`staging/src/k8s.io/apiserver/pkg/registry/rest/create.go` `BeforeCreate`,
`FillObjectMetaSystemFields`): a name from `generateName` plus 5 random characters, the
namespace, a `uid`, a `creationTimestamp`, and `resourceVersion`; `metadata.generation`
starts at 1 and grows on a change to anything but `metadata` and `status`
(`customresource_handler.go`/`strategy.go` `PrepareForUpdate`). Status is written only
through `write_status`, as the `/status` subresource separates it. Every change is an
event (`ADDED`, `MODIFIED`, `DELETED`) that watchers and controllers wait on.

The API server (api.py) writes through the same methods, with a `check` (validation and
admission) run on the object as it would be stored, and `replace` for a PUT.
"""

from __future__ import annotations

import copy
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Kubernetes' alphabet for generated name suffixes (apimachinery `util/rand.String`).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
GENERATED_SUFFIX = 5


@dataclass(frozen=True)
class Kind:
    """A resource the local API serves: `group` "" is the core API."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS = (
    Kind("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    Kind("", "v1", "services", "Service"),
    Kind("apps", "v1", "deployments", "Deployment"),
    Kind("kubeflow.org", "v1", "tfjobs", "TFJob"),
    Kind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"),
    Kind("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"),
    Kind("serving.knative.dev", "v1", "services", "Service"),
    Kind("argoproj.io", "v1alpha1", "workflowtaskresults", "WorkflowTaskResult"),
)


def kind_of(api_version: str, kind: str) -> Kind | None:
    return next((k for k in KINDS if (k.api_version, k.kind) == (api_version, kind)), None)


def kind_at(group: str, plural: str) -> Kind | None:
    return next((k for k in KINDS if (k.group, k.plural) == (group, plural)), None)


Key = tuple[Kind, str, str]  # kind, namespace, name


@dataclass(frozen=True)
class Event:
    """One change, as a watch stream carries it (`type`, `object`)."""

    type: str  # ADDED, MODIFIED, DELETED
    kind: Kind
    object: dict[str, Any]
    version: int  # the store's resourceVersion after the change


class Conflict(Exception):
    """The object exists already (the API answers 409 AlreadyExists)."""


class NotFound(Exception):
    """No such object (404 NotFound)."""


class Stale(Exception):
    """The write named a resourceVersion the object has moved on from (409 Conflict)."""


# Called on the object a write would store, before it is stored; raising refuses the write
# (the API server's validation and admission, which see the generated name and the
# result of a patch). It gets a copy.
Check = Callable[[dict[str, Any]], None]


# metav1.Time as the API server writes it: RFC 3339, whole seconds, UTC.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def age_seconds(stamp: str) -> float:
    """Seconds since a timestamp the API server or a controller wrote."""
    return (
        datetime.now(UTC) - datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=UTC)
    ).total_seconds()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, anything else (lists too) replaces, null
    deletes. Returns the patched copy."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _spec_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("metadata", "status")}


class Objects:
    """Thread-safe store of objects, keyed by kind, namespace and name. Every object
    handed out is a copy."""

    def __init__(self) -> None:
        self._objects: dict[Key, dict[str, Any]] = {}
        self._events: list[Event] = []
        # Like etcd's revision, never 0 once serving: a list's resourceVersion "0" would
        # read, to a watch, as "from any version" (the API's meaning of "0").
        self._version = 1
        self._changed = threading.Condition()

    @property
    def version(self) -> int:
        with self._changed:
            return self._version

    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        with self._changed:
            found = self._objects.get((kind, namespace, name))
            if found is None:
                raise NotFound(f'{kind.plural}{"." + kind.group if kind.group else ""} "{name}"')
            return copy.deepcopy(found)

    def list_of(self, kind: Kind, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._changed:
            return [
                copy.deepcopy(doc)
                for (k, ns, _), doc in sorted(self._objects.items(), key=lambda i: i[0][1:])
                if k == kind and namespace in (None, ns)
            ]

    def snapshot(
        self, kind: Kind, namespace: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """The objects of a kind and the resourceVersion they are at, read together (a
        list, from which a watch goes on without missing or repeating a change)."""
        with self._changed:
            return self.list_of(kind, namespace), self._version

    def create(
        self, kind: Kind, namespace: str, doc: dict[str, Any], check: Check | None = None
    ) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        with self._changed:
            if not meta.get("name"):
                while True:
                    suffix = "".join(
                        secrets.choice(SUFFIX_ALPHABET) for _ in range(GENERATED_SUFFIX)
                    )
                    name = f"{meta.get('generateName', '')}{suffix}"
                    if (kind, namespace, name) not in self._objects:
                        break
                meta["name"] = name
            if (kind, namespace, meta["name"]) in self._objects:
                raise Conflict(f'{kind.plural} "{meta["name"]}" already exists')
            meta.update(
                namespace=namespace,
                uid=str(uuid.uuid4()),
                creationTimestamp=now(),
                generation=1,
            )
            doc.update(apiVersion=kind.api_version, kind=kind.kind)
            doc.pop("status", None)
            if check:
                check(copy.deepcopy(doc))
            return self._store("ADDED", kind, doc)

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        check: Check | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch of the object, its status left alone (the main resource
        ignores status, as `PrepareForUpdate` does); the generation grows if the spec
        changed."""
        with self._changed:
            old = self.get(kind, namespace, name)
            new = merge_patch(old, {k: v for k, v in patch.items() if k != "status"})
            return self._update(kind, old, new, check)

    def replace(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        doc: dict[str, Any],
        check: Check | None = None,
    ) -> dict[str, Any]:
        """An update of the main resource (PUT): the object becomes `doc`, keeping its
        status and system metadata; a `metadata.resourceVersion` in `doc` must be the
        current one (optimistic concurrency, `GuaranteedUpdate`), else Stale."""
        with self._changed:
            old = self.get(kind, namespace, name)
            new = copy.deepcopy(doc)
            new.setdefault("metadata", {})
            wanted = new["metadata"].get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise Stale(f"{kind.plural} {name!r}: resourceVersion {wanted} is not current")
            new.pop("status", None)
            if "status" in old:
                new["status"] = old["status"]
            return self._update(kind, old, new, check)

    def _update(
        self, kind: Kind, old: dict[str, Any], new: dict[str, Any], check: Check | None
    ) -> dict[str, Any]:
        """Store `new` in place of `old`: what the client may not change is kept, and the
        generation grows if the spec changed."""
        new.update(apiVersion=kind.api_version, kind=kind.kind)
        meta = new["metadata"]
        for fixed in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            meta[fixed] = old["metadata"][fixed]
        if _spec_of(new) != _spec_of(old):
            meta["generation"] = old["metadata"]["generation"] + 1
        if check:
            check(copy.deepcopy(new))
        return self._store("MODIFIED", kind, new)

    def write_status(
        self, kind: Kind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace the object's status (a controller's update of the status subresource)."""
        with self._changed:
            doc = self.get(kind, namespace, name)
            if doc.get("status") == status:
                return doc
            doc["status"] = copy.deepcopy(status)
            return self._store("MODIFIED", kind, doc)

    def put(self, kind: Kind, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object wholesale, status included: what a controller does
        to the objects it owns (a Deployment, a Knative Service)."""
        name = doc["metadata"]["name"]
        with self._changed:
            old = self._objects.get((kind, namespace, name))
            doc = copy.deepcopy(doc)
            doc.update(apiVersion=kind.api_version, kind=kind.kind)
            meta = doc["metadata"]
            meta["namespace"] = namespace
            if old is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now())
                meta.setdefault("generation", 1)
                return self._store("ADDED", kind, doc)
            for fixed in ("uid", "creationTimestamp"):
                meta[fixed] = old["metadata"][fixed]
            meta.setdefault("generation", old["metadata"].get("generation", 1))
            return self._store("MODIFIED", kind, doc)

    def delete(self, kind: Kind, namespace: str, name: str) -> dict[str, Any]:
        with self._changed:
            doc = self.get(kind, namespace, name)
            del self._objects[(kind, namespace, name)]
            self._version += 1
            doc["metadata"]["resourceVersion"] = str(self._version)
            self._record(Event("DELETED", kind, doc, self._version))
            return doc

    def _store(self, change: str, kind: Kind, doc: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        doc["metadata"]["resourceVersion"] = str(self._version)
        meta = doc["metadata"]
        self._objects[(kind, meta["namespace"], meta["name"])] = doc
        self._record(Event(change, kind, copy.deepcopy(doc), self._version))
        return copy.deepcopy(doc)

    def _record(self, event: Event) -> None:
        self._events.append(event)
        self._changed.notify_all()

    def events(self, since: int, timeout_s: float | None = None) -> list[Event]:
        """The events after resourceVersion `since`, waiting up to `timeout_s` for one."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > since, timeout=timeout_s)
            return [e for e in self._events if e.version > since]
