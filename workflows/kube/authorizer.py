"""RBAC for the local API server: the Roles and RoleBindings of a manifests file, and the
decision whether a user may make a request, as the API server's RBAC authorizer decides.

Not workflows/checks/rbac.py, which derives the Role the pods need by reading the code;
this one enforces a Role that is written down.

The decision follows `plugin/pkg/auth/authorizer/rbac/rbac.go` (`RuleAllows`: the verb,
the API group, the resource with its subresource, and the name must each match one rule)
with the matchers of `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`,
`APIGroupMatches`, `ResourceMatches` with `*` and `*/subresource`, `ResourceNameMatches`);
which bindings apply to a user is `pkg/registry/rbac/validation/rule.go` `appliesToUser`.
Users in `system:masters` may do anything, as the API server's privileged-group authorizer
lets them. ClusterRoles and ClusterRoleBindings are not read: the pipeline has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"


def service_account_user(namespace: str, name: str) -> str:
    """The user name a service account's token authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


def groups_of(user: str) -> set[str]:
    """The groups the API server puts an authenticated service account in."""
    groups = {"system:authenticated"}
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        groups |= {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"}
    return groups


@dataclass(frozen=True)
class Rule:
    """A PolicyRule of a Role."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def allows(self, verb: str, group: str, resource: str, name: str) -> bool:
        """`RuleAllows` for a resource request; `resource` may be `tfjobs/status`."""
        subresource = resource.partition("/")[2]
        return (
            any(v in ("*", verb) for v in self.verbs)
            and any(g in ("*", group) for g in self.api_groups)
            and any(_resource_matches(r, resource, subresource) for r in self.resources)
            and (not self.resource_names or name in self.resource_names)
        )


def _resource_matches(rule: str, combined: str, subresource: str) -> bool:
    # `*` is every resource and subresource; `*/status` the status of every resource.
    return rule in ("*", combined) or bool(subresource) and rule == f"*/{subresource}"


@dataclass(frozen=True)
class Subject:
    kind: str  # User, Group or ServiceAccount
    name: str
    namespace: str = ""

    def applies_to(self, user: str, binding_namespace: str) -> bool:
        if self.kind == "User":
            return self.name == user
        if self.kind == "Group":
            return self.name in groups_of(user)
        if self.kind == "ServiceAccount":
            # A subject without a namespace is the binding's namespace's account.
            return user == service_account_user(self.namespace or binding_namespace, self.name)
        return False


@dataclass(frozen=True)
class Binding:
    namespace: str
    role: str  # the name of a Role in the binding's namespace
    subjects: tuple[Subject, ...]


@dataclass
class Rbac:
    """Roles by (namespace, name), bindings, and the users in `system:masters`. The roles
    may be changed while a server uses them (a test takes a rule away); each request
    reads them afresh."""

    roles: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    masters: frozenset[str] = frozenset()

    def authorize(
        self, user: str, verb: str, group: str, resource: str, namespace: str, name: str = ""
    ) -> bool:
        """May `user` make this request on a namespaced resource? `resource` is the
        resource with its subresource (`tfjobs/status`); `name` is "" on a collection."""
        if user in self.masters:
            return True
        return any(
            rule.allows(verb, group, resource, name)
            for binding in self.bindings
            if binding.namespace == namespace
            and any(s.applies_to(user, namespace) for s in binding.subjects)
            for rule in self.roles.get((namespace, binding.role), ())
        )


def _rule(doc: Mapping[str, Any]) -> Rule:
    return Rule(
        verbs=tuple(doc.get("verbs") or ()),
        api_groups=tuple(doc.get("apiGroups") or ()),
        resources=tuple(doc.get("resources") or ()),
        resource_names=tuple(doc.get("resourceNames") or ()),
    )


def _binding(doc: Mapping[str, Any], namespace: str, placed_from: str) -> Binding | None:
    ref = doc.get("roleRef") or {}
    if ref.get("kind") != "Role":
        return None  # a ClusterRole: none is loaded, so it grants nothing here
    subjects = []
    for s in doc.get("subjects") or ():
        subject_namespace = s.get("namespace", "")
        if s.get("kind") == "ServiceAccount" and subject_namespace in ("", placed_from):
            subject_namespace = namespace  # the account moves with the binding
        subjects.append(Subject(s.get("kind", ""), s.get("name", ""), subject_namespace))
    return Binding(namespace, ref.get("name", ""), tuple(subjects))


def load(path: Path, namespace: str, masters: Iterable[str] = ()) -> Rbac:
    """The Roles and RoleBindings of a multi-document manifests file, placed in
    `namespace` as kustomize's `namespace:` places them (`kubectl apply -n` would refuse a
    file naming another namespace): each object moves there, and so does each
    ServiceAccount subject that was in the object's own namespace."""
    rbac = Rbac(masters=frozenset(masters))
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict) or not str(doc.get("apiVersion", "")).startswith(RBAC_GROUP):
            continue
        meta = doc.get("metadata") or {}
        was = meta.get("namespace", "")
        if doc.get("kind") == "Role":
            rbac.roles[(namespace, meta["name"])] = tuple(_rule(r) for r in doc.get("rules") or ())
        elif doc.get("kind") == "RoleBinding" and (binding := _binding(doc, namespace, was)):
            rbac.bindings.append(binding)
    return rbac
