"""What a served model answered, and whether those are the candidate model's answers.

An endpoint that answers is not proof that the new model serves: during a rollout the old
one answers too. The proof is that its answers for some texts are the candidate's own
offline answers (the exported signature run here): the same label and, within
`SCORE_TOLERANCE`, the same scores, which two different trainings practically never share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Room for float differences between runtimes (TF Serving against TensorFlow here, other
# CPUs); two trainings differ by far more.
SCORE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Answer:
    label: str
    scores: dict[str, float]  # class name -> probability

    def __str__(self) -> str:
        return f"{self.label} ({', '.join(f'{k} {v:.4f}' for k, v in self.scores.items())})"


def parse(body: Any, count: int) -> list[Answer]:
    """The answers of a V1 response to `count` texts: this project's server's
    {"label", "scores": {class: p}} or TF Serving's row {"label", "scores": [p, ...],
    "classes": [class, ...]}. RuntimeError naming what is wrong otherwise."""
    predictions = body.get("predictions") if isinstance(body, Mapping) else None
    if not isinstance(predictions, list) or len(predictions) != count:
        raise RuntimeError(f"expected {count} predictions, got {str(body)[:500]}")
    return [_answer(i, p) for i, p in enumerate(predictions)]


def _answer(i: int, prediction: Any) -> Answer:
    if not isinstance(prediction, Mapping) or not isinstance(prediction.get("label"), str):
        raise RuntimeError(f"prediction {i} has no string label: {prediction!r}")
    scores = prediction.get("scores")
    if isinstance(scores, Mapping):
        classes, values = list(scores), list(scores.values())
    elif isinstance(scores, list) and isinstance(prediction.get("classes"), list):
        classes, values = prediction["classes"], scores
    else:
        raise RuntimeError(f"prediction {i} has no class scores: {prediction!r}")
    if len(classes) != len(values) or not values:
        raise RuntimeError(f"prediction {i}: {len(values)} scores for {len(classes)} classes")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1 for v in values):
        raise RuntimeError(f"prediction {i}: scores are not probabilities: {values}")
    if prediction["label"] not in classes:
        raise RuntimeError(
            f"prediction {i}: label {prediction['label']!r} is not one of the classes {classes}"
        )
    by_class = {str(c): float(v) for c, v in zip(classes, values, strict=True)}
    return Answer(prediction["label"], by_class)


def offline(model_dir: str, texts: Sequence[str]) -> list[Answer]:
    """The candidate's answers, from its exported signature (as TF Serving runs it)."""
    from textcnn.evaluation import latest_version  # TensorFlow: only when it runs
    from textcnn.export import load_serving_model

    out = load_serving_model(latest_version(model_dir))(list(texts))
    return [
        Answer(str(label), {str(c): float(s) for c, s in zip(classes, scores, strict=True)})
        for label, classes, scores in zip(out["label"], out["classes"], out["scores"], strict=True)
    ]


def same(served: Answer, expected: Answer) -> bool:
    """Whether an answer is the candidate's: its label, and its scores within tolerance."""
    return (
        served.label == expected.label
        and served.scores.keys() == expected.scores.keys()
        and all(abs(served.scores[k] - v) <= SCORE_TOLERANCE for k, v in expected.scores.items())
    )


def differing(served: Sequence[Answer | None], expected: Sequence[Answer]) -> list[int]:
    """Indices where an answer was given and is not the candidate's."""
    return [
        i
        for i, (got, want) in enumerate(zip(served, expected, strict=True))
        if got is not None and not same(got, want)
    ]
