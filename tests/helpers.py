"""Helpers several test modules share (fixtures live in conftest.py).

- `write_inputs` and friends: prepared/, embeddings/ and spec/ for a tiny learnable data
  set, by the formats of docs/ARCHITECTURE.md with the real tokeniser, so tests of the
  training and evaluation steps do not depend on prepare-data or embeddings;
- `FakeApiServer`, `recorded`, `replay`: recorded Kubernetes objects, served on loopback
  or returned in order;
- `simulate`: the phase of every DAG task for given parameters (and gate decision), by
  the DAG rules of workflows.expressions (the ones the local runner and the lint use);
- `save_toy`: a tiny SavedModel with the serving signature (labels by cue words);
- `children`: this process's child processes, read from /proc (see the `no_orphans`
  fixture).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from textcnn.model import ModelConfig
from textcnn.prepared import write_shards
from textcnn.steps import export, fit_ngrams, train
from textcnn.text import make_vectorizer, standardize
from workflows.dag import caching
from workflows.expressions import Depends, evaluate_when
from workflows.kube.gateway import Gateway
from workflows.local.substitution import substitute

REPO = Path(__file__).resolve().parents[1]
GCS_BUCKET = "test-bucket"  # the GCS emulator's (conftest)
# Options that make the whole pipeline quick on a slice of the bundled data.
SMALL = [
    "--epochs",
    "2",
    "--num_filters",
    "16",
    "--embbeding_dim",
    "32",
    "--filter_sizes",
    "3,4",
    "--patience",
    "1",
]

CLASSES = ["fresh", "rotten"]
CUES = {"fresh": ["good", "great", "superb", "lovely"], "rotten": ["bad", "awful", "dull", "poor"]}
FILLER = ["the", "movie", "film", "plot", "actor", "scene", "story", "it", "was", "a", "very"]
# "poor" is left out of the vocabulary, so some texts carry an out-of-vocabulary word.
VOCABULARY = ["", "[UNK]", *sorted({*CUES["fresh"], *CUES["rotten"], *FILLER} - {"poor"})]
MAX_LENGTH = 12
MAX_TEXT_CHARS = 200  # prepare-data's cut (--max_text_chars), small enough to reach here


def make_texts(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Texts whose class is given by one cue word among filler words (learnable in 1 epoch)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = CLASSES[rng.integers(len(CLASSES))]
        words = list(rng.choice(FILLER, size=rng.integers(3, 10)))
        words.insert(rng.integers(len(words) + 1), str(rng.choice(CUES[label])))
        texts.append(" ".join(words).capitalize() + "!")
        labels.append(label)
    return texts, labels


@dataclass(frozen=True)
class Inputs:
    prepared: Path
    embeddings: Path
    model_spec: Path
    config: ModelConfig


def write_inputs(
    root: Path, n_train: int = 400, n_val: int = 100, dim: int = 8, **hyper: object
) -> Inputs:
    """prepared/, embeddings/ and spec/ for a small model; `hyper` overrides the spec."""
    vectorize = make_vectorizer(MAX_LENGTH, vocabulary=VOCABULARY)
    prepared, embeddings, spec = root / "prepared", root / "embeddings", root / "spec"
    for folder in (prepared, embeddings, spec):
        folder.mkdir(parents=True)
    for name, n, seed in (("train", n_train, 1), ("val", n_val, 2)):
        texts, labels = make_texts(n, seed)
        write_shards(
            prepared,
            name,
            vectorize(texts).numpy().astype("int32"),
            np.array([CLASSES.index(c) for c in labels], dtype="int32"),
        )
        std = [t.decode() for t in standardize(tf.constant(texts)).numpy()]
        (prepared / f"{name}_tokens.txt").write_text("".join(t + "\n" for t in std))
    (prepared / "vocab.json").write_text(
        json.dumps(
            {
                "vocabulary": VOCABULARY,
                "max_length": MAX_LENGTH,
                "num_words": len(VOCABULARY),
                "max_text_chars": MAX_TEXT_CHARS,
            }
        )
    )
    (prepared / "labels.json").write_text(json.dumps({"classes": CLASSES}))
    matrix = np.random.default_rng(0).uniform(-0.25, 0.25, (len(VOCABULARY), dim))
    matrix[0] = 0.0
    np.save(embeddings / "embeddings.npy", matrix.astype("float32"))
    (embeddings / "embeddings.json").write_text(
        json.dumps(
            {
                "dim": dim,
                "source": "random",
                "oov_rate": 1.0,
                "oov_count": len(VOCABULARY),
                "vocab_size": len(VOCABULARY),
            }
        )
    )
    settings = (
        dict(
            filter_sizes=[2, 3],
            num_filters=8,
            num_conv_layers=1,
            maxpool_strides=2,
            dropout=0.2,
            learning_rate=0.01,
        )
        | hyper
    )
    config = ModelConfig(
        vocab_size=len(VOCABULARY),
        max_length=MAX_LENGTH,
        num_classes=len(CLASSES),
        classes=CLASSES,
        embedding_dim=dim,
        **settings,
    )
    (spec / "model_config.json").write_text(config.to_json())
    return Inputs(prepared, embeddings, spec, config)


def run_train(inputs: Inputs, out: Path, **overrides: int) -> dict[str, float | int]:
    """What the pipeline does from the spec to the serving model: train the CNN (out/cnn),
    fit the wide branch (out/ngrams), export (out/model, out/training); train's outputs
    with the exported model's val_accuracy."""
    args = dict(epochs=3, batch_size=32, patience=2, seed=7) | overrides
    trained = train.run(
        prepared_dir=str(inputs.prepared),
        embeddings_dir=str(inputs.embeddings),
        model_spec_dir=str(inputs.model_spec),
        cnn_dir=str(out / "cnn"),
        **args,
    )
    fit_ngrams.run(str(inputs.prepared), str(inputs.model_spec), str(out / "ngrams"))
    exported = export.run(
        cnn_dir=str(out / "cnn"),
        ngrams_dir=str(out / "ngrams"),
        prepared_dir=str(inputs.prepared),
        model_spec_dir=str(inputs.model_spec),
        model_dir=str(out / "model"),
        training_dir=str(out / "training"),
    )
    return trained | exported


class FakeApiServer(ThreadingHTTPServer):
    """Kubernetes API stand-in on loopback that replays recorded objects.

    `objects` is a list served for any path, or sequences by path (404 for other paths);
    each GET of a path returns the next object of its sequence, the last one from then on.
    Each PATCH is recorded, answered with the path's current object, and switches the
    sequences to those of the next entry of `after_patches` (what the controllers write
    after that change). Every GET's path and Authorization header is kept."""

    def __init__(
        self,
        objects: list[dict[str, Any]] | dict[str, list[dict[str, Any]]],
        after_patches: Sequence[dict[str, list[dict[str, Any]]]] = (),
    ) -> None:
        super().__init__(("127.0.0.1", 0), _ReplayHandler)
        self.objects = objects if isinstance(objects, dict) else {"": objects}
        self.after_patches = list(after_patches)
        self.served: dict[str, int] = {}  # GETs served by path, since the last PATCH
        self.requests: list[tuple[str, str | None]] = []
        self.patches: list[tuple[str, dict[str, Any], str | None]] = []  # path, body, type

    def current(self, path: str) -> dict[str, Any] | None:
        sequence = self.objects.get(path, self.objects.get(""))
        if not sequence:
            return None
        return sequence[min(self.served.get(path, 1), len(sequence)) - 1]

    def gets(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)


class _ReplayHandler(BaseHTTPRequestHandler):
    server: FakeApiServer

    def _answer(self, obj: dict[str, Any] | None) -> None:
        if obj is None:
            code, obj = (
                404,
                {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404},
            )
        else:
            code = 200
        payload = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Authorization")))
        server.served[self.path] = server.served.get(self.path, 0) + 1
        self._answer(server.current(self.path))

    def do_PATCH(self) -> None:
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        server.patches.append((self.path, body, self.headers.get("Content-Type")))
        if server.after_patches:
            server.objects = {**server.objects, **server.after_patches.pop(0)}
            server.served = {}
        self._answer(server.current(self.path))

    def log_message(self, *_: object) -> None:
        pass


class ClusterNetwork(Gateway):
    """The cluster's DNS and gateway for a test (workflows.kube.gateway), over fixed
    `routes` or those a function gives at each request: give its `url` to a process as
    HTTP_PROXY; it keeps each request's host."""

    def __init__(self, routes: Mapping[str, str] | Callable[[], Mapping[str, str]]) -> None:
        super().__init__(routes if callable(routes) else lambda: routes)


FIXTURES = Path(__file__).parent / "fixtures"


def recorded(kind: str, name: str) -> dict[str, Any]:
    """A recorded Kubernetes object: tests/fixtures/<kind>/<name>.json."""
    return json.loads((FIXTURES / kind / f"{name}.json").read_text())


def replay(kind: str, *names: str) -> tuple[Callable[[], dict[str, Any]], list[str]]:
    """A `get` returning the recorded objects in order (the last one from then on), and
    the list of names it has returned."""
    seen: list[str] = []

    def get() -> dict[str, Any]:
        seen.append(names[min(len(seen), len(names) - 1)])
        return recorded(kind, seen[-1])

    return get, seen


def dag_tasks(wt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The entrypoint DAG's tasks of a compiled WorkflowTemplate, by name."""
    templates = {t["name"]: t for t in wt["spec"]["templates"]}
    return {task["name"]: task for task in templates[wt["spec"]["entrypoint"]]["dag"]["tasks"]}


GATE_DEPLOYS = {"tasks.gate.outputs.parameters.decision": "deploy"}
# validate-params' word on every cached stage in a run that reuses nothing.
COLD = {f"tasks.validate-params.outputs.parameters.{s}": "run" for s in caching.STAGES}


def simulate(
    wt: dict[str, Any], arguments: dict[str, str], outputs: dict[str, str] = GATE_DEPLOYS
) -> dict[str, str]:
    """Phase of every task when all that run succeed: Succeeded, Skipped or Omitted.
    `outputs`: the task outputs that `when` clauses read (by default the gate deploys)."""
    scope = {f"workflow.parameters.{k}": v for k, v in arguments.items()} | COLD | outputs
    tasks = dag_tasks(wt)
    depends = {n: Depends.parse(t["depends"]) for n, t in tasks.items() if "depends" in t}
    phases: dict[str, str] = {}
    while len(phases) < len(tasks):
        ready = [
            n
            for n in tasks
            if n not in phases and (n not in depends or depends[n].tasks <= set(phases))
        ]
        assert ready, f"cycle among {set(tasks) - set(phases)}"
        for name in ready:
            when = tasks[name].get("when")
            if name in depends and not depends[name].holds(phases):
                phases[name] = "Omitted"
            elif when and not evaluate_when(substitute(when, scope, name)):
                phases[name] = "Skipped"
            else:
                phases[name] = "Succeeded"
    return phases


def children() -> dict[int, tuple[str, str]]:
    """This process's children from /proc: pid -> (state, command line). With the test
    process a child subreaper (conftest), orphaned descendants are among them."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        # The command name, in parentheses, may hold spaces: the fields follow the last ')'.
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == me:
            found[int(entry)] = (state, cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def pipeline_command(out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "workflows", "run", "--output_dir", str(out), *options]


def pipeline_env() -> dict[str, str]:
    """The environment now (fixtures such as the GCS emulator's set variables)."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run_pipeline(out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`python -m workflows run --output_dir OUT OPTIONS...`, as `make run` runs it."""
    return subprocess.run(
        pipeline_command(out, *options),
        cwd=REPO,
        capture_output=True,
        text=True,
        env=pipeline_env(),
    )


TOY_CUES = {"neg": ["bad", "awful"], "pos": ["good", "great"]}
# The deploy tests' two models, which answer differently: OLD serves, NEW is the candidate.
OLD_CUES = {"neg": ["bad", "awful", "dull"], "pos": ["good", "great", "funny"]}
NEW_CUES = {
    "neg": ["bad", "awful", "dull", "predictable", "long"],
    "pos": ["good", "great", "funny", "moving", "beautifully"],
}


class ToyClassifier(tf.Module):
    """Scores each class by how many of its cue words a text holds (softmax over counts)."""

    def __init__(self, cues: dict[str, list[str]]) -> None:
        super().__init__()
        self.names = tf.constant(list(cues))
        self.tables = [
            tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(words, [1.0] * len(words)), 0.0
            )
            for words in cues.values()
        ]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        tokens = tf.strings.split(tf.strings.lower(text))
        counts = tf.stack([tf.reduce_sum(t.lookup(tokens), axis=1) for t in self.tables], axis=1)
        scores = tf.nn.softmax(counts)
        return {
            "scores": scores,
            "classes": tf.tile(self.names[tf.newaxis, :], [tf.shape(text)[0], 1]),
            "label": tf.gather(self.names, tf.argmax(scores, axis=1)),
        }


def save_toy(path: Path, cues: dict[str, list[str]] = TOY_CUES) -> Path:
    module = ToyClassifier(cues)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def check_data(
    store: str,
    root: Path,
    train_csv: Path,
    test_csv: Path,
    run_name: str = "wf-new",
    **options: Any,
) -> Path:
    """ROOT/data-checks for two CSVs, made by the real steps as the DAG runs them
    (prepare-data into ROOT/prepared, dataset-metadata of each, check-data), their
    Datasets recorded in `store` under `run_name`."""
    from textcnn.steps import check_data as step
    from textcnn.steps import dataset_metadata, prepare_data

    columns = {"text_column": "text", "label_column": "label"}
    prepare_data.run(
        train_path=str(train_csv),
        val_data_pct=0.1,
        num_words=20_000,
        max_length=0,
        length_percentile=95.0,
        seed=7,
        max_text_chars=10_000,
        output_dir=str(root / "prepared"),
        **columns,
    )
    for split, path in (("train", train_csv), ("test", test_csv)):
        dataset_metadata.run(
            data_path=str(path),
            split=split,
            report_dir=str(root / f"{split}-report"),
            metadata_store=store,
            run_name=run_name,
            **columns,
        )
    step.run(
        prepared_dir=str(root / "prepared"),
        train_report_dir=str(root / "train-report"),
        test_report_dir=str(root / "test-report"),
        test_path=str(test_csv),
        max_text_chars=10_000,
        output_dir=str(root / "data-checks"),
        **columns,
        **options,
    )
    return root / "data-checks"


def record_trained_on(store: str, data_checks: Path, model_uri: str) -> int:
    """Record in `store` that the model at `model_uri` learned from the data `check_data`
    made DATA_CHECKS from, as log-training-metadata links them (Dataset -> PrepareData ->
    PreparedData -> Train -> Model); the model's id."""
    from textcnn import metadata

    checks = json.loads((data_checks / "checks.json").read_text())
    run_name = "wf-old"
    _, [prepared] = metadata.record_execution(
        store,
        run_name=run_name,
        type_name="PrepareData",
        properties={},
        inputs=[checks["dataset_ids"]["train"]],
        outputs=[("PreparedData", str(data_checks.parent / "prepared"), {})],
    )
    _, [model] = metadata.record_execution(
        store,
        run_name=run_name,
        type_name="Train",
        properties={},
        inputs=[prepared],
        outputs=[("Model", model_uri, {})],
    )
    return model
