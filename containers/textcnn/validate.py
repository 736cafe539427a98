"""validate-params: the DAG's first step, so Argo UI submissions meet the CLI's rules."""

from __future__ import annotations

from textcnn.params import PipelineParams


def run(**options: str) -> dict[str, str]:
    """Validate every pipeline option; fail naming each bad one."""
    params = PipelineParams.parse(options)
    print(params.model_dump_json(indent=1))
    return {"params": params.model_dump_json()}
