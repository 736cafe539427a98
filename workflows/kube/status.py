"""The API server's errors: a `Status` body and its HTTP code, worded as Kubernetes words
them, since clients (and our steps) read `reason` and people read `message`.

The wording is apimachinery's `staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go`
(`NewNotFound`, `NewAlreadyExists`, `NewConflict`, `NewUnauthorized`, `NewForbidden`,
`NewInvalid`, `NewBadRequest`, `NewMethodNotSupported`, `NewGenericServerResponse`), the
apiserver's `endpoints/handlers/responsewriters/errors.go` `forbiddenMessage`, and
`endpoints/handlers/negotiation/errors.go` `errUnsupportedMediaType`.
"""

from __future__ import annotations

from typing import Any

from workflows.kube.objects import Kind


class ApiError(Exception):
    """An answer other than success: `code` and the `Status` body to send."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            **({"details": details} if details else {}),
            "code": code,
        }


def resource_of(kind: Kind) -> str:
    """`schema.GroupResource.String()`: `tfjobs.kubeflow.org`, or `services` in the core."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def _about(kind: Kind, name: str = "") -> dict[str, Any]:
    # StatusDetails of a resource: its `kind` field holds the plural, as upstream's does.
    return {k: v for k, v in (("name", name), ("group", kind.group), ("kind", kind.plural)) if v}


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource_of(kind)} "{name}" not found', _about(kind, name))


def no_such_path() -> ApiError:
    """A path that names no resource served here (`NewGenericServerResponse`, 404)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(kind: Kind, name: str) -> ApiError:
    message = f'{resource_of(kind)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _about(kind, name))


def conflict(kind: Kind, name: str) -> ApiError:
    """A write from a stale resourceVersion (`NewConflict` with the registry's
    `OptimisticLockErrorMsg`)."""
    message = (
        f'Operation cannot be fulfilled on {resource_of(kind)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _about(kind, name))


def unauthorized() -> ApiError:
    """No or an unknown bearer token: the authentication filter's answer."""
    return ApiError(401, "Unauthorized", "Unauthorized", {})


def forbidden(
    kind: Kind, name: str, user: str, verb: str, resource: str, namespace: str
) -> ApiError:
    """`responsewriters.Forbidden`: `forbiddenMessage` (the resource with its subresource)
    wrapped by `NewForbidden` (the qualified resource, and the name when there is one). The
    RBAC authorizer gives no reason when no rule allows, so none is appended."""
    why = (
        f'User "{user}" cannot {verb} resource "{resource}" in API group "{kind.group}" '
        f'in the namespace "{namespace}"'
    )
    subject = f'{resource_of(kind)} "{name}"' if name else resource_of(kind)
    return ApiError(403, "Forbidden", f"{subject} is forbidden: {why}", _about(kind, name))


def invalid(kind: Kind, name: str, problems: list[str]) -> ApiError:
    """`NewInvalid`: each problem (`field.path: message`) a cause; one problem is the
    message's tail as it is, several are `[a, b]` (`utilerrors.NewAggregate`)."""
    causes = []
    for problem in problems:
        field, _, body = problem.partition(": ")
        causes.append({"reason": "FieldValueInvalid", "message": body or field, "field": field})
    errors = problems[0] if len(problems) == 1 else f"[{', '.join(problems)}]"
    group_kind = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    details = {"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}
    details = {k: v for k, v in details.items() if v}
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {errors}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message, {})


def method_not_allowed(kind: Kind, action: str) -> ApiError:
    message = f'{action} is not supported on resources of kind "{resource_of(kind)}"'
    return ApiError(405, "MethodNotAllowed", message, _about(kind))


def unsupported_media_type(accepted: list[str]) -> ApiError:
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )
    return ApiError(415, "UnsupportedMediaType", message, {})


def internal_error(error: Exception) -> ApiError:
    """A fault of this server (`NewInternalError`), answered rather than dropped."""
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {error}",
        {"causes": [{"message": str(error)}]},
    )
