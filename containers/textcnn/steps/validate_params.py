"""validate-params: the DAG's first step, so Argo UI submissions meet the CLI's rules."""

from __future__ import annotations

from textcnn.params import PipelineParams


def run(**options: str) -> dict[str, str]:
    """Validate every pipeline option; fail naming each bad one. The output `params` (the
    validated options as JSON) is what ML Metadata records as hyperparameters."""
    dumped = PipelineParams.parse(options).model_dump_json()
    print(dumped)
    return {"params": dumped}
