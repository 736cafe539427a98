"""The one validated model of every pipeline option.

It feeds the CLI (`python -m workflows ...`), the Argo parameters (workflows/dag/
parameters.py renders names, defaults, descriptions and enums), the local runner, the
step CLIs (`textcnn.cli` parses each step option with the converter of the option it
comes from) and the benchmarks, and it runs again inside the cluster as the
`validate-params` step, so a submission from the Argo UI is checked by the same rules
before any other step starts. Every value travels as a string, so parsing from strings
(`parse`) and back (`to_strings`) is part of the model, each in one place.

The options of the original CLI that belong to the submitting client (`--host`,
`--client_id`, `--other_client_id`, `--other_client_secret`) live with that client
(workflows/submit.py) and never become pipeline options.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off", ""}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
# Kubernetes' DNS-1035 label (Service names, and objects named after them): also what the
# admission checks (workflows/checks/admission.py) use.
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters in all.
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# A Kubernetes resource quantity (cpu, memory, storage), e.g. 500m, 2, 4Gi, 1Ti.
_QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$")
# What no option may hold: values land in command lines, in resource manifests (YAML that
# Argo substitutes as text, then parses) and in paths. Control characters (a newline
# would start new YAML), `{{`/`}}` (Argo substitutes in several passes), `$(` (Kubernetes
# expands it in command and args), and anything over 1 KiB.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORBIDDEN = ("{{", "}}", "$(")
MAX_VALUE_LENGTH = 1024
# A path (local or gs://) additionally holds no quote or backtick: it is quoted where it
# lands in a manifest, and a quote would end that quoting.
_PATH_FORBIDDEN = ("'", '"', "`")
_MOUNT_PATH = re.compile(r"^(/[A-Za-z0-9._-]+)+$")
# Kubernetes label keys ([prefix/]name) and values, the taint key of a toleration.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
# An image reference: [registry[:port]/]path[:tag][@sha256:digest].
_IMAGE = re.compile(
    r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# An https URL without spaces, quotes or shell characters (pip refuses a plain-http index
# on any host but localhost, so an http mirror would fail every pod's install).
_INDEX_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+-]*)?$")

# Options whose historical spelling is kept as the canonical name, with a correct alias.
ALIASES: dict[str, tuple[str, ...]] = {"embbeding_dim": ("embedding_dim",)}


class ParamsError(ValueError):
    """Invalid options: one line per problem, each naming the option."""


def parse_bool(text: str) -> bool:
    """yes/no, true/false, on/off, 1/0 (any case); anything else is an error."""
    s = text.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"expected yes/no/true/false, got {text!r}")


def parse_int_list(text: str) -> list[int]:
    """`3,4,5` (also `3, 4, 5`, `3 4 5` or `[3, 4, 5]`). An empty item (`3,,4`) is an
    error, not skipped: it is a typo for a number the user meant."""
    inner = text.strip().removeprefix("[").removesuffix("]")
    parts = [p.strip() for p in inner.split(",")] if "," in inner else inner.split()
    if not any(parts):
        raise ValueError("expected a comma-separated list of integers such as 3,4,5")
    if "" in parts:
        raise ValueError(f"{text!r} has an empty item; give integers such as 3,4,5")
    # Plain digits only: int() would also read "3_4" as 34.
    if not all(_INTEGER.fullmatch(p) for p in parts):
        raise ValueError(f"expected integers such as 3,4,5, got {text!r}")
    return [int(p) for p in parts]


def check_path(v: str) -> str:
    """A local path or gs://BUCKET/OBJECT, with no quote or backtick."""
    if found := [c for c in _PATH_FORBIDDEN if c in v]:
        raise ValueError(f"a path holds no {found[0]!r}")
    if v.startswith("gs://"):
        bucket, _, key = v[5:].partition("/")
        if not _BUCKET.match(bucket) or not key:
            raise ValueError("expected gs://BUCKET/OBJECT")
    return v


def to_string(value: Any) -> str:
    """The string form of an option value that `parse` reads back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _opt(default: Any, description: str, **kwargs: Any) -> Any:
    return Field(default, description=description, **kwargs)


class PipelineParams(BaseModel):
    """Every option of the original CLI, plus the few the cluster needs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- data -------------------------------------------------------------------------
    train_data_path: str = _opt(
        "data/rt/train.csv", "Training CSV: a local path or gs://bucket/object."
    )
    test_data_path: str = _opt("data/rt/test.csv", "Test CSV: a local path or gs://bucket/object.")
    column_target_value: str = _opt("label", "Name of the CSV column holding the class label.")
    column_text_value: str = _opt("text", "Name of the CSV column holding the text.")
    val_data_pct: float = _opt(
        0.1,
        "Share of the training rows held out for validation (stratified), in (0, 0.5].",
        gt=0.0,
        le=0.5,
    )
    num_words: int = _opt(
        20000,
        "Vocabulary size, counting the padding and out-of-vocabulary ids.",
        ge=3,
        le=2_000_000,
    )
    max_length: int = _opt(
        0,
        "Tokens per text after padding/truncation; 0 picks the length_percentile of the "
        "training texts.",
        ge=0,
        le=10_000,
    )
    length_percentile: float = _opt(
        95.0, "Percentile of training text lengths used when max_length is 0.", gt=0.0, le=100.0
    )
    max_text_chars: int = _opt(
        10_000,
        "Characters of each text the model reads; the rest is cut, by prepare-data for "
        "training and by the served model for every request alike. Bounds what one long "
        "text costs (the n-gram branch sees every character).",
        ge=100,
        le=1_000_000,
    )
    json_tokenizer_path: str = _opt(
        "", "Where to also write the vocabulary JSON (local path or gs://); empty: nowhere else."
    )
    # --- embeddings and model ---------------------------------------------------------
    w2v_model_path: str = _opt(
        "",
        "Pretrained word2vec in any gensim format (KeyedVectors/Word2Vec save, word2vec "
        "text or binary), local or gs://; empty: train Word2Vec on the training texts.",
    )
    embbeding_dim: int = _opt(
        128,
        "Embedding dimension; must equal the pretrained vectors' dimension if given.",
        ge=2,
        le=2048,
    )
    static_embeddings: bool = _opt(
        False,
        "Freeze the word vectors during training (Kim's CNN-static); false fine-tunes "
        "them (CNN-non-static).",
    )
    dropout: float = _opt(0.5, "Dropout rate before the output layer, in [0, 1).", ge=0.0, lt=1.0)
    filter_sizes: list[int] = _opt(
        [3, 4, 5], "Convolution window sizes, one parallel branch each (e.g. 3,4,5)."
    )
    num_filters: int = _opt(100, "Filters per convolution.", ge=1, le=4096)
    num_conv_layers: int = _opt(
        1, "Stacked convolution layers in each branch (1 is Kim's single layer).", ge=1, le=6
    )
    maxpool_strides: int = _opt(
        2,
        "Pool size and stride of the max-pooling between stacked convolution layers "
        "(used when num_conv_layers > 1; the last layer is always max-pooled over time).",
        ge=1,
        le=64,
    )
    architecture: Literal["cnn_ngrams", "cnn"] = _opt(
        "cnn_ngrams",
        "cnn_ngrams: the Kim CNN averaged with two wide linear models, over word and over "
        "character n-gram presence (NB-weighted logistic regression, regularisation chosen "
        "on the validation split); cnn: the plain Kim (2014) CNN.",
    )
    ngram_order: int = _opt(
        2, "Longest word n-gram of the wide branch (2: words and word pairs).", ge=1, le=3
    )
    ngram_features: int = _opt(
        300_000,
        "Most frequent n-grams of the training split that the wide branch weighs, per family "
        "(words, characters).",
        ge=1,
        le=5_000_000,
    )
    epochs: int = _opt(
        10, "Maximum training epochs (early stopping may end sooner).", ge=1, le=1000
    )
    batch_size: int = _opt(
        50,
        "Examples per optimiser step (the global batch): split across the replicas when "
        "training on several GPUs or a TFJob, so the same options train the same model.",
        ge=1,
        le=65536,
    )
    learning_rate: float = _opt(1e-3, "Adam learning rate.", gt=0.0, le=1.0)
    patience: int = _opt(
        3, "Early stopping: epochs without validation-loss improvement before stopping.", ge=0
    )
    seed: int = _opt(42, "Seed for the split, Word2Vec and weight initialisation.", ge=0)
    # --- cluster ----------------------------------------------------------------------
    gcp_bucket: str = _opt(
        "textcnn-artifacts",
        "GCS bucket of the artifact repository; models land under gs://<gcp_bucket>/cache/<key>/ "
        "(gs://<gcp_bucket>/<workflow>/ with cache false).",
    )
    namespace: str = _opt("textcnn", "Kubernetes namespace of the workflow and its resources.")
    pip_index_url: str = _opt(
        "https://pypi.org/simple",
        "Lightweight variant: the package index a step's pod installs its pinned packages "
        "from (a mirror, for a cluster that reaches only that).",
    )
    workdir: str = _opt(
        "/mnt/workdir", "Mount path of the shared volume used by distributed training."
    )
    pvc_storage_class: str = _opt(
        "standard-rwx",
        "Storage class of the ReadWriteMany volume claimed per run for "
        "distributed training (GKE Filestore: standard-rwx).",
    )
    pvc_size: str = _opt(
        "1Ti", "Size of that volume claim (GKE Filestore's basic tier starts at 1Ti)."
    )
    metadata_store: str = _opt(
        "grpc:metadata-grpc-service.textcnn:8080",
        "ML Metadata store: grpc:HOST:PORT, or sqlite:PATH (the local runner's default is a "
        "SQLite file in the run folder).",
    )
    dist_training: bool = _opt(
        False, "Train on several workers: a TFJob or a TrainJob, as dist_backend says."
    )
    dist_backend: Literal["tfjob", "trainjob"] = _opt(
        "tfjob",
        "Distributed training on a Kubeflow Training Operator v1 TFJob (kubeflow.org/v1), or "
        "on a Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) of the "
        "ClusterTrainingRuntime training_runtime.",
    )
    training_runtime: str = _opt(
        "textcnn-tensorflow",
        "The ClusterTrainingRuntime a TrainJob runs on (manifests/trainer/training-runtime.yaml).",
    )
    workers: int = _opt(
        2,
        "TFJob: Worker replicas besides the Chief; TrainJob: its numNodes (node 0 is the chief).",
        ge=1,
        le=64,
    )
    replica_cpu: str = _opt("2", "CPU request of each TFJob replica or TrainJob node.")
    replica_memory: str = _opt("4Gi", "Memory request and limit of each replica or node.")
    tfjob_backoff_limit: int = _opt(
        2,
        "Restarts of failed TFJob replicas (restartPolicy OnFailure) before the job fails "
        "(a TrainJob's restarts are its runtime's failurePolicy.maxRestarts).",
        ge=0,
        le=100,
    )
    tfjob_active_deadline_seconds: int = _opt(
        7200,
        "Seconds the TFJob or TrainJob may run before its controller fails it.",
        ge=60,
    )
    tfjob_wait_timeout_seconds: int = _opt(
        7800,
        "Seconds the wait step waits for the TFJob's or TrainJob's verdict; more than "
        "tfjob_active_deadline_seconds, so the controller's own verdict is seen.",
        ge=60,
    )
    gpu_support: bool = _opt(False, "Train on a GPU node (nvidia.com/gpu limit, toleration).")
    gpu_count: int = _opt(
        1, "GPUs per training pod (or TFJob replica) when gpu_support is set.", ge=1, le=16
    )
    gpu_node_selector_key: str = _opt(
        "cloud.google.com/gke-accelerator", "Node label that selects GPU nodes."
    )
    gpu_node_selector_value: str = _opt("nvidia-tesla-t4", "Value of the GPU node label.")
    gpu_toleration_key: str = _opt("nvidia.com/gpu", "Taint key carried by the GPU nodes.")
    image: str = _opt("ghcr.io/textcnn-argo/steps:0.1.0", "Image of the CPU steps.")
    gpu_image: str = _opt("ghcr.io/textcnn-argo/trainer-gpu:0.1.0", "Image of the GPU trainer.")
    # --- serving ----------------------------------------------------------------------
    deploy: bool = _opt(
        True, "Deploy the model as a KServe InferenceService and send a smoke prediction."
    )
    gate_metric: Literal["accuracy", "macro_f1"] = _opt(
        "accuracy",
        "Test-set metric on which the gate compares the new model with the one that serves "
        "now (both scored on this run's test set).",
    )
    min_improvement: float = _opt(
        0.0,
        "How much better than the serving model (on gate_metric) the new one must be to "
        "deploy; 0: at least as good; negative: tolerate that much worse.",
        ge=-1.0,
        le=1.0,
    )
    force_deploy: bool = _opt(
        False,
        "Deploy whatever the gate finds, data drift included (its figures are still recorded).",
    )
    # --- data checks (check-data, and the gate's drift checks) ---------------------------
    max_test_overlap: float = _opt(
        0.05,
        "Share of test rows whose text also occurs in the training data above which the "
        "run fails in check-data (leakage inflates the test figures).",
        ge=0.0,
        le=1.0,
    )
    drop_test_overlap: bool = _opt(
        False,
        "Remove the test rows whose text also occurs in the training data before "
        "evaluating (the run says how many).",
    )
    max_label_drift: float = _opt(
        0.1,
        "Largest total variation distance between the class shares of the serving model's "
        "training data and this run's (or, with nothing serving, this run's training and "
        "test data) at which the gate still deploys.",
        ge=0.0,
        le=1.0,
    )
    max_length_drift: float = _opt(
        0.25,
        "Largest Kolmogorov-Smirnov distance between the text length distributions (token "
        "counts), compared as for max_label_drift, at which the gate still deploys.",
        ge=0.0,
        le=1.0,
    )
    max_oov_rate: float = _opt(
        0.3,
        "Largest share of this run's training words outside the serving model's "
        "vocabulary (with nothing serving: of the test words outside this run's) at which "
        "the gate still deploys.",
        ge=0.0,
        le=1.0,
    )
    isvc_name: str = _opt(
        "textcnn",
        "InferenceService name, also the model name in the /v1 and /v2 routes; "
        "a rerun updates it (a new revision).",
    )
    serving_runtime: Literal["tensorflow", "custom"] = _opt(
        "tensorflow",
        "tensorflow: KServe's TF Serving runtime; custom: this project's KServe "
        "Python server image (also speaks V2).",
    )
    tf_serving_version: str = _opt(
        "2.19.1",
        "TF Serving runtimeVersion; at least the training TensorFlow (the KServe "
        "default 2.6.2 cannot load a Keras 3 export).",
    )
    serving_image: str = _opt(
        "ghcr.io/textcnn-argo/serving:0.1.0", "Image of the custom serving runtime."
    )
    serving_deployment_mode: Literal["RawDeployment", "Serverless"] = _opt(
        "RawDeployment",
        "KServe deployment mode: RawDeployment (a Deployment and an "
        "autoscaler; runs wherever KServe runs) or Serverless (Knative: canary traffic and "
        "scale to zero, needs Knative installed).",
    )
    canary_traffic_percent: int = _opt(
        100,
        "Traffic share of the new revision; below 100 needs serving_deployment_mode "
        "Serverless (RawDeployment ignores it). 100 rolls out fully.",
        ge=0,
        le=100,
    )
    canary_probes: int = _opt(
        50,
        "Probe predictions the canary check sends to the canary and to the previous "
        "revision (texts of the test set).",
        ge=1,
        le=1000,
    )
    canary_max_latency_ms: float = _opt(
        500.0,
        "The canary passes only with a p99 probe latency within this many milliseconds.",
        gt=0.0,
    )
    serving_min_replicas: int = _opt(
        1,
        "Minimum predictor replicas; 0 (scale to zero) needs serving_deployment_mode Serverless.",
        ge=0,
    )
    serving_max_replicas: int = _opt(1, "Maximum predictor replicas.", ge=1)
    max_batch_size: int = _opt(
        32,
        "Serving: most texts gathered from concurrent requests into one model call (KServe's "
        "batcher maxBatchSize, and the custom server's own batching).",
        ge=1,
        le=1000,
    )
    max_latency_ms: int = _opt(
        1,
        "Serving: most milliseconds a batch waits for more requests (KServe's batcher "
        "maxLatency); the custom server never holds a lone request on an idle model.",
        ge=1,
        le=10_000,
    )
    deploy_timeout_seconds: int = _opt(
        900,
        "Seconds to wait for a new model to roll out on KServe (and again for the previous "
        "one, put back when the new one fails).",
        ge=30,
    )
    cluster_poll_seconds: float = _opt(
        10.0,
        "Seconds between reads of the TFJob or InferenceService while wait-tfjob and "
        "deploy-wait wait for it (each read is one GET on the Kubernetes API).",
        ge=0.1,
        le=300,
    )
    # --- resilience -------------------------------------------------------------------
    retry_limit: int = _opt(
        3,
        "Retries of a step that failed by bad luck (an evicted or preempted pod, a lost "
        "node, a GCS 5xx or timeout), with exponential backoff; user errors (exit code 2) "
        "are never retried.",
        ge=0,
        le=10,
    )
    step_deadline_seconds: int = _opt(
        21_600,
        "Seconds one step may run before Argo stops it (training included; the TFJob "
        "has its own deadline).",
        ge=60,
    )

    cache: bool = _opt(
        True,
        "Reuse each stage's artifacts from an earlier run with the same data, options and "
        "code (validate-params says which); false computes every stage again.",
    )

    # --- parsing from strings (CLI and Argo) ------------------------------------------
    @field_validator(
        "static_embeddings",
        "dist_training",
        "gpu_support",
        "deploy",
        "force_deploy",
        "drop_test_overlap",
        "cache",
        mode="before",
    )
    @classmethod
    def _bool(cls, v: Any) -> Any:
        return parse_bool(v) if isinstance(v, str) else v

    @field_validator("*", mode="before")
    @classmethod
    def _finite(cls, v: Any, info: ValidationInfo) -> Any:
        """Every float option: a finite number. NaN fails every comparison, so a bound
        would misdescribe it ("should be less than 1"); infinity is no setting either (and
        JSON has no form for it). The value stays as given: pydantic parses it."""
        field = cls.model_fields[info.field_name or ""]
        if field.annotation is not float:
            return v
        try:
            number = float(v)
        except (TypeError, ValueError):
            return v  # pydantic's own error says what is wrong
        if not math.isfinite(number):
            what = "not a number" if math.isnan(number) else "not a finite number"
            raise ValueError(f"{v!r} is {what}; give a number such as {field.default}")
        return v

    @field_validator("filter_sizes", mode="before")
    @classmethod
    def _int_list(cls, v: Any) -> Any:
        return parse_int_list(v) if isinstance(v, str) else v

    @field_validator("filter_sizes")
    @classmethod
    def _filter_sizes(cls, v: list[int]) -> list[int]:
        if not 1 <= len(v) <= 8:
            raise ValueError("give between 1 and 8 filter sizes")
        if any(not 1 <= k <= 64 for k in v):
            raise ValueError("each filter size must be between 1 and 64")
        if len(set(v)) != len(v):
            raise ValueError("filter sizes must be distinct")
        return v

    @field_validator("*")
    @classmethod
    def _safe_text(cls, v: Any) -> Any:
        """Every text option: no control character, `{{`, `}}` or `$(`, at most 1 KiB."""
        if isinstance(v, str):
            if len(v) > MAX_VALUE_LENGTH:
                raise ValueError(f"longer than {MAX_VALUE_LENGTH} characters")
            if _CONTROL.search(v):
                raise ValueError("holds a control character (a newline, a tab, NUL, ...)")
            if found := [f for f in _FORBIDDEN if f in v]:
                raise ValueError(
                    f"holds {found[0]!r}, which Argo or Kubernetes would substitute; remove it"
                )
        return v

    @field_validator("train_data_path", "test_data_path", "json_tokenizer_path", "w2v_model_path")
    @classmethod
    def _path(cls, v: str) -> str:
        return check_path(v)

    @field_validator("column_text_value", "column_target_value")
    @classmethod
    def _column(cls, v: str) -> str:
        if not v or not v.isprintable():
            raise ValueError("expected a column name of printable characters")
        return v

    @field_validator("gpu_node_selector_key", "gpu_toleration_key")
    @classmethod
    def _label_key(cls, v: str) -> str:
        if not _LABEL_KEY.match(v):
            raise ValueError("not a Kubernetes label or taint key ([prefix/]name)")
        return v

    @field_validator("gpu_node_selector_value")
    @classmethod
    def _label_value(cls, v: str) -> str:
        if not _LABEL_VALUE.match(v):
            raise ValueError("not a Kubernetes label value (at most 63 of A-Z a-z 0-9 - _ .)")
        return v

    @field_validator("pip_index_url")
    @classmethod
    def _index_url(cls, v: str) -> str:
        if not _INDEX_URL.match(v):
            raise ValueError(
                "not an https URL of a package index (e.g. https://pypi.org/simple; pip "
                "refuses plain http)"
            )
        return v

    @field_validator("image", "gpu_image", "serving_image")
    @classmethod
    def _image(cls, v: str) -> str:
        if not _IMAGE.match(v):
            raise ValueError("not an image reference ([registry/]path[:tag][@sha256:digest])")
        return v

    @field_validator("tf_serving_version")
    @classmethod
    def _version_tag(cls, v: str) -> str:
        if not _TAG.match(v):
            raise ValueError("not an image tag (e.g. 2.19.1)")
        return v

    @field_validator("isvc_name")
    @classmethod
    def _isvc_name(cls, v: str) -> str:
        if not DNS_1035_LABEL.match(v):
            raise ValueError(
                "not a DNS-1035 label (lower case letters, digits and '-', starting with a letter)"
            )
        return v

    @field_validator("gcp_bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not _BUCKET.match(v) or ".." in v:
            raise ValueError("not a valid GCS bucket name (3-63 of a-z 0-9 . _ -)")
        return v

    @field_validator("training_runtime")
    @classmethod
    def _runtime(cls, v: str) -> str:
        if not DNS_SUBDOMAIN.match(v):
            raise ValueError("not a valid ClusterTrainingRuntime name (a DNS-1123 subdomain)")
        return v

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not _DNS_LABEL.match(v):
            raise ValueError("not a valid Kubernetes namespace (a DNS-1123 label)")
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        v = v.rstrip("/")
        if not _MOUNT_PATH.match(v) or {".", ".."} & set(v.split("/")):
            raise ValueError(
                "expected an absolute mount path such as /mnt/workdir "
                "(letters, digits, '.', '_', '-' and '/')"
            )
        return v

    @field_validator("pvc_size", "replica_cpu", "replica_memory")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if not _QUANTITY.match(v):
            raise ValueError("not a Kubernetes quantity (e.g. 500m, 2, 4Gi, 1Ti)")
        return v

    @field_validator("pvc_storage_class")
    @classmethod
    def _object_name(cls, v: str) -> str:
        if v and not DNS_SUBDOMAIN.match(v):
            raise ValueError("not a valid Kubernetes object name (a DNS-1123 subdomain)")
        return v

    @field_validator("metadata_store")
    @classmethod
    def _store(cls, v: str) -> str:
        kind, _, rest = v.partition(":")
        if kind == "sqlite" and rest:
            check_path(rest)
            return v
        if kind == "grpc" and re.match(r"^[^:\s]+:\d{1,5}$", rest):
            return v
        raise ValueError("expected grpc:HOST:PORT or sqlite:PATH")

    @model_validator(mode="after")
    def _cross_field(self) -> PipelineParams:
        if self.max_length:
            # Each stacked layer shrinks the sequence: a valid convolution, then a pooling.
            for k in self.filter_sizes:
                n = self.max_length
                for layer in range(self.num_conv_layers):
                    n = n - k + 1
                    if n < 1:
                        raise ValueError(
                            f"max_length={self.max_length} is too short for filter size {k} "
                            f"with num_conv_layers={self.num_conv_layers}: layer {layer + 1} "
                            "has no output; raise max_length or lower num_conv_layers"
                        )
                    if layer < self.num_conv_layers - 1:
                        n //= self.maxpool_strides
        if self.tfjob_wait_timeout_seconds <= self.tfjob_active_deadline_seconds:
            raise ValueError(
                f"--tfjob_wait_timeout_seconds={self.tfjob_wait_timeout_seconds} must exceed "
                f"--tfjob_active_deadline_seconds={self.tfjob_active_deadline_seconds}, so the "
                "wait step sees the operator's verdict"
            )
        if self.serving_min_replicas > self.serving_max_replicas:
            raise ValueError(
                f"--serving_min_replicas={self.serving_min_replicas} exceeds "
                f"--serving_max_replicas={self.serving_max_replicas}"
            )
        if self.serving_deployment_mode == "RawDeployment":
            # Knative features, which KServe ignores in RawDeployment mode.
            knative = {
                "canary_traffic_percent": self.canary_traffic_percent < 100,
                "serving_min_replicas": self.serving_min_replicas == 0,
            }
            for name in (n for n, used in knative.items() if used):
                raise ValueError(
                    f"--{name}={getattr(self, name)} needs "
                    "--serving_deployment_mode=Serverless (Knative); KServe "
                    "ignores it in RawDeployment mode"
                )
        return self

    # --- constructors -----------------------------------------------------------------
    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> PipelineParams:
        """Validate raw values (strings from a CLI or Argo); raise ParamsError naming options."""
        canonical = {alias: name for name, names in ALIASES.items() for alias in names}
        try:
            return cls.model_validate({canonical.get(k, k): v for k, v in values.items()})
        except ValidationError as e:
            lines = []
            for err in e.errors():
                where = ".".join(str(p) for p in err["loc"]) or "options"
                msg = err["msg"].removeprefix("Value error, ")
                lines.append(f"--{where}: {msg}" if err["loc"] else msg)
            raise ParamsError("invalid options:\n  " + "\n  ".join(lines)) from None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """One `--option` per field (plus aliases); values stay strings until `parse`."""
        group = parser.add_argument_group("pipeline options")
        for name, field in cls.model_fields.items():
            flags = [f"--{name}"] + [f"--{a}" for a in ALIASES.get(name, ())]
            group.add_argument(
                *flags,
                dest=name,
                default=None,
                metavar=name.upper(),
                help=f"{field.description} (default: {to_string(field.default)})",
            )

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace, **overrides: Any) -> PipelineParams:
        given = {k: v for k, v in vars(ns).items() if k in cls.model_fields and v is not None}
        return cls.parse({**given, **overrides})

    def to_strings(self) -> dict[str, str]:
        """Every option as the string `parse` reads back (what a CLI or Argo carries)."""
        return {name: to_string(getattr(self, name)) for name in type(self).model_fields}
