"""The pipeline options as Argo workflow parameters: `{{workflow.parameters.X}}`
references, and the parameter list (defaults, descriptions, enums for the Argo UI's
drop-downs) rendered from `textcnn.params.PipelineParams`, the one model of the options."""

from __future__ import annotations

import typing
from typing import Any, Literal

from textcnn.params import PipelineParams, to_string

RUN_NAME = "{{workflow.name}}"


def wp(name: str) -> str:
    """Reference to a workflow parameter (an option of PipelineParams)."""
    if name not in PipelineParams.model_fields:
        raise KeyError(f"{name!r} is not a pipeline option")
    return f"{{{{workflow.parameters.{name}}}}}"


def inputs_parameter(name: str) -> str:
    return f"{{{{inputs.parameters.{name}}}}}"


def workflow_parameters() -> list[dict[str, Any]]:
    """Name, default, description and enum of every option, as Argo parameters."""
    out = []
    for name, field in PipelineParams.model_fields.items():
        spec: dict[str, Any] = {
            "name": name,
            "value": to_string(field.default),
            "description": field.description,
        }
        if field.annotation is bool:
            spec["enum"] = ["true", "false"]
        elif typing.get_origin(field.annotation) is Literal:
            spec["enum"] = [str(a) for a in typing.get_args(field.annotation)]
        out.append(spec)
    return out
