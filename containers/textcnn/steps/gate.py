"""gate: deploy the new model only if it is at least as good as the one that serves now.

Both are scored on this run's test set by the same code (textcnn.evaluation), so the
comparison is fair even when the test data changed since the serving model was trained.
The verdict is a `Blessing` in ML Metadata, made by a `Gate` execution from both models,
and the step's outputs `decision` (`deploy` or `skip`) and `reason` steer the DAG.

It also weighs the data (textcnn.drift): this run's training data against the data the
serving model learned from, as ML Metadata recorded it, or with nothing serving this
run's test data against its training data. A vanished class, or a drift beyond its
threshold, withholds the deploy whatever the scores (`--force_deploy` overrides). Here,
not in check-data: what serves changes between runs, and check-data is cached.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textcnn import metadata, registry, storage
from textcnn.cluster import kube, rollout
from textcnn.drift import Drift, Profile, Thresholds, compare, oov_rate
from textcnn.errors import InputError
from textcnn.model import read_json
from textcnn.prepared import training_texts
from textcnn.report import with_data_checks, with_gate

DEPLOY, SKIP = "deploy", "skip"


# Both scores are ratios of counts on one test set: figures closer than this are equal,
# whatever floating point made of their difference (0.3 - 0.2 < 0.1).
TOLERANCE = 1e-9


def decide(
    metric: str,
    candidate: float,
    serving: float | None,
    min_improvement: float,
    force: bool,
    why_none: str = "nothing serves yet",
) -> tuple[str, str]:
    """(decision, reason) for the candidate's and the serving model's figures: deploy when
    the candidate beats the serving model by at least `min_improvement` (a negative one is
    a tolerated loss). The reason states the comparison made."""
    if serving is None:
        return DEPLOY, f"{why_none}; candidate {metric} {candidate:.4f}"
    gain = candidate - serving
    figures = f"candidate {metric} {candidate:.4f}, serving {serving:.4f} ({_signed(gain)})"
    if gain >= min_improvement - TOLERANCE:
        if min_improvement > 0:
            why = f"better by at least the required {_signed(min_improvement)}"
        elif gain >= -TOLERANCE:
            why = "at least as good as the serving model"
        else:
            why = f"worse, but within the tolerated {-min_improvement:g}"
        return DEPLOY, f"{why}: {figures}"
    if force:
        return DEPLOY, f"forced (--force_deploy): {figures}"
    if gain >= -TOLERANCE:
        why = f"not better by the required {_signed(min_improvement)}"
    elif min_improvement < 0:
        why = f"worse than the serving model by more than the tolerated {-min_improvement:g}"
    else:
        why = "worse than the serving model"
    return SKIP, f"{why}: {figures}; needed {serving + min_improvement:.4f}"


def _signed(x: float) -> str:
    # Six significant digits: a gain just short of the margin never reads as the margin.
    return "+0" if abs(x) < TOLERANCE else f"{x:+.6g}"


def _score_serving(
    uri: str, test_path: str, text_column: str, label_column: str, classes: list[str]
) -> dict[str, Any]:
    """The serving model's metrics on this test set; InputError when it cannot be read."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        try:
            storage.download_dir(uri, local)
        except OSError as e:  # FileNotFoundError included
            raise InputError(f"cannot read it: {e}") from None
        try:
            # Here, not at the top: TensorFlow loads only when a model serves to be scored.
            from textcnn.evaluation import score_csv

            return score_csv(str(local), test_path, text_column, label_column, classes)
        except InputError:
            raise
        except Exception as e:  # a broken SavedModel: TensorFlow's own error types
            raise InputError(f"cannot load it: {type(e).__name__}: {e}") from None


def _live_storage_uri(namespace: str, name: str) -> str | None:
    """The live InferenceService's storageUri, on a cluster (None here or when absent)."""
    if "KUBERNETES_SERVICE_HOST" not in os.environ:
        return None
    return rollout.spec_uri(kube.endpoint(namespace, name).get())


def run(
    metadata_store: str,
    run_name: str,
    namespace: str,
    isvc_name: str,
    model_id: int,
    model_uri: str,
    prepared_dir: str,
    metrics_dir: str,
    report_dir: str,
    test_path: str,
    text_column: str,
    label_column: str,
    data_checks_dir: str,
    report_uri: str,
    gate_metric: str = "accuracy",
    min_improvement: float = 0.0,
    force_deploy: bool = False,
    deploy: bool = True,
    max_label_drift: float = 0.1,
    max_length_drift: float = 0.25,
    max_oov_rate: float = 0.3,
) -> dict[str, str]:
    """Compare the candidate (its evaluate metrics in METRICS_DIR) with the model that
    serves ISVC_NAME in NAMESPACE per ML Metadata, scored on the same test CSV, and this
    run's data (check-data's DATA_CHECKS_DIR) with that model's; record the verdict, write
    it to REPORT_DIR (gate.json, and evaluate's report.html with the verdict and the data
    comparison, which is REPORT_URI in the artifact repository) and output `decision`,
    `reason`, the drift figures and `report`."""
    if gate_metric not in ("accuracy", "macro_f1"):
        raise InputError(f"--gate_metric {gate_metric!r}: use accuracy or macro_f1")
    key = registry.endpoint_key(namespace, isvc_name)
    # The candidate is the model ML Metadata registered: its deploy uses model_uri.
    registered = metadata.artifact_uri(metadata_store, model_id)
    if registered != model_uri:
        raise InputError(
            f"--model_id {model_id} is {registered} in ML Metadata, not --model_uri "
            f"{model_uri[:200]}: pass the outputs of this run's log-training-metadata"
        )
    candidate = json.loads(storage.read_text(storage.join(metrics_dir, "metrics.json")))
    checks = read_json(
        Path(data_checks_dir) / "checks.json",
        ("profiles", "test_oov_rate", "overlap", "dataset_ids"),
        "check-data",
    )
    served = registry.serving(metadata_store, key)
    thresholds = Thresholds(max_label_drift, max_length_drift, max_oov_rate)
    drift, reference_id = data_drift(metadata_store, served, checks, prepared_dir, thresholds)
    page = Page(metrics_dir, report_dir, report_uri, checks, drift)
    if not deploy:
        return page.write(SKIP, "deploy is off (--deploy no)", {})
    serving_score: float | None = None
    why_none = f"nothing serves {key} yet"
    notes: list[str] = []
    same = served is not None and served.model_uri.rstrip("/") == model_uri.rstrip("/")
    if same and not force_deploy:
        # A run that reused every stage up to here (textcnn.cache) has the serving model
        # as its candidate: deploying it again would change nothing of the model.
        return page.write(
            SKIP,
            f"the candidate is the model that serves {key} ({model_uri}, reused from an "
            "earlier run): nothing to deploy (--force_deploy deploys it again, with this "
            "run's serving options)",
            {},
        )
    if served is not None:
        live = _live_storage_uri(namespace, isvc_name)
        if live is not None and live.rstrip("/") != served.model_uri.rstrip("/"):
            notes.append(
                f"the live InferenceService serves {live}, ML Metadata says {served.model_uri}"
                " (changed outside the pipeline?); comparing with ML Metadata's"
            )
        classes = read_json(Path(prepared_dir) / "labels.json", ("classes",), "prepare-data")
        try:
            scored = _score_serving(
                served.model_uri, test_path, text_column, label_column, classes["classes"]
            )
            serving_score = float(scored[gate_metric])
        except InputError as e:
            why_none = (
                f"the serving model {served.model_uri} (id {served.model_id}) cannot be "
                f"evaluated, so nothing usable serves: {e}"
            )
    decision, reason = decide(
        gate_metric,
        float(candidate[gate_metric]),
        serving_score,
        min_improvement,
        force_deploy,
        why_none,
    )
    if drift.blocks:  # named whatever the scores say, so a user sees both reasons
        why = f"data drift ({'; '.join(drift.blocks)}; {drift.current} against {drift.reference})"
        if force_deploy:
            reason = f"{why} overridden by --force_deploy; {reason}"
        else:
            decision, reason = SKIP, f"{why}; {reason}"
    reason = "; ".join([reason, *notes])
    serving_id = served.model_id if served is not None else -1
    models = [model_id, *([serving_id] if serving_id >= 0 and serving_id != model_id else [])]
    datasets = {int(checks["dataset_ids"]["train"]), *([reference_id] if reference_id else [])}
    metadata.record_execution(
        metadata_store,
        run_name=run_name,
        type_name="Gate",
        properties={
            "gate_metric": gate_metric,
            "min_improvement": min_improvement,
            **asdict(thresholds),
        },
        # The models compared, and the data sets whose drift was weighed.
        inputs=[*models, *sorted(datasets)],
        outputs=[
            (
                registry.BLESSING,
                model_uri,
                {
                    "decision": decision,
                    "reason": reason,
                    "gate_metric": gate_metric,
                    "candidate": float(candidate[gate_metric]),
                    "serving": -1.0 if serving_score is None else serving_score,
                    # Which model it was compared with: a later deploy can tell.
                    "serving_model_id": serving_id,
                    "serving_model_uri": served.model_uri if served is not None else "",
                    "forced": force_deploy,
                    "label_drift": drift.label_drift,
                    "length_drift": drift.length_drift,
                    "oov_rate": drift.oov_rate,
                    "data_reference": drift.reference,
                    "data_blocks": drift.blocks,
                },
            )
        ],
    )
    figures = {f"candidate {gate_metric}": float(candidate[gate_metric])}
    if serving_score is not None:
        figures[f"serving {gate_metric}"] = serving_score
    return page.write(decision, reason, figures)


def data_drift(
    store: str,
    served: registry.Serving | None,
    checks: dict[str, Any],
    prepared_dir: str,
    thresholds: Thresholds,
) -> tuple[Drift, int | None]:
    """This run's data against the serving model's (and the id of that model's training
    Dataset), or with nothing serving (or its data unrecorded) its test data against its
    training data."""
    train, test = (Profile(**checks["profiles"][split]) for split in ("train", "test"))
    data = registry.training_data(store, served.model_id) if served is not None else None
    baseline = Profile.from_properties(data.properties) if data is not None else None
    if served is None or data is None or baseline is None:
        why = "nothing serves" if served is None else "the serving model's data is unrecorded"
        return compare(
            train,
            test,
            names=("this run's training data", f"this run's test data ({why})"),
            oov_rate=float(checks["test_oov_rate"]),
            oov_against="this run's vocabulary",
            thresholds=thresholds,
            # A class the test set lacks is one the model learned but the test cannot
            # measure: reported, and weighed by the label drift.
            vanished_blocks=False,
        ), None
    vocabulary = _vocabulary(data.prepared_uri)
    if vocabulary is not None:
        rate = oov_rate(training_texts(prepared_dir), vocabulary)
        against = "the serving model's vocabulary"
    else:
        rate = float(checks["test_oov_rate"])
        against = f"this run's vocabulary ({data.prepared_uri}/vocab.json is unreadable)"
    reference = f"the serving model's training data ({served.run_name}, model {served.model_id})"
    return compare(
        baseline,
        train,
        names=(reference, "this run's training data"),
        oov_rate=rate,
        oov_against=against,
        thresholds=thresholds,
    ), data.dataset_id


def overlap_summary(checks: dict[str, Any]) -> str:
    overlap = checks["overlap"]
    return (
        f"test rows also in the training data: {overlap['rows']} ({overlap['share']:.2%}), "
        f"{overlap['dropped']} dropped, {overlap['short_texts']} of fewer than "
        f"{overlap['min_words']} words not compared"
    )


def _vocabulary(prepared_uri: str) -> list[str] | None:
    """The vocabulary in a prepared/ folder of the artifact repository (None: unreadable,
    for example removed since)."""
    try:
        vocab = json.loads(storage.read_text(storage.join(prepared_uri, "vocab.json")))
        return [str(w) for w in vocab["vocabulary"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Page:
    """Where the verdict goes: gate.json, the report with the verdict and the data
    comparison, and the step's outputs."""

    metrics_dir: str
    report_dir: str
    report_uri: str
    checks: dict[str, Any]
    drift: Drift

    def write(self, decision: str, reason: str, figures: dict[str, float]) -> dict[str, str]:
        verdict = {
            "decision": decision,
            "reason": reason,
            "figures": figures,
            "data": self.drift.to_dict(),
        }
        storage.write_text(
            storage.join(self.report_dir, "gate.json"), json.dumps(verdict, indent=2)
        )
        page = storage.join(self.metrics_dir, "report.html")
        if storage.exists(page):
            html = with_gate(storage.read_text(page), decision, reason, figures)
            html = with_data_checks(html, self.checks, self.drift)
            storage.write_text(storage.join(self.report_dir, "report.html"), html)
        print(json.dumps(verdict))
        return {
            "decision": decision,
            "reason": reason,
            "data_checks": f"{self.drift.summary()}; {overlap_summary(self.checks)}",
            "label_drift": str(self.drift.label_drift),
            "length_drift": str(self.drift.length_drift),
            "oov_rate": str(self.drift.oov_rate),
            "test_overlap": str(float(self.checks["overlap"]["share"])),
            "report": self.report_uri,
        }
