"""ML Metadata (MLMD) for the pipeline: artifacts, executions and their lineage.

A store is named by a string, `sqlite:PATH` or `grpc:HOST:PORT`, so every step takes it as
a plain `--metadata_store` option. Everything a step records is attributed to two
contexts: the `Pipeline` named `textcnn` and the `PipelineRun` named after the workflow.

Types are registered on the fly from the properties given: int -> INT, float -> DOUBLE,
str -> STRING, bool -> INT (0/1: every MLMD server version has INT, not all have BOOLEAN),
dicts and lists -> STRING holding their JSON. A later call may add or omit properties.

The local runner runs independent steps in parallel against one SQLite file. Each write
holds an exclusive `fcntl` lock on `PATH.lock` (and each read a shared one), so writers
take turns instead of failing with "database is locked" and readers see whole writes.
A SQLite file is checked before ML Metadata opens it (`check_store`): a damaged, empty or
foreign file is the user's to move aside, not bad luck to retry.
A gRPC server serialises writes itself; there, a context created by a racing step is
re-read after MLMD's AlreadyExistsError.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from textcnn.errors import InputError

PIPELINE_TYPE = "Pipeline"
PIPELINE_NAME = "textcnn"
RUN_TYPE = "PipelineRun"
# A step talking to an unreachable gRPC server fails after this long instead of hanging.
GRPC_TIMEOUT_S = 60.0

Property = int | float | str | bool | Mapping[str, Any] | Sequence[Any]
Properties = Mapping[str, Property]

_GRPC = re.compile(r"^(?P<host>[^\s:]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def _config(store: str) -> mlmd.ConnectionConfig | mlmd.MetadataStoreClientConfig:
    kind, _, rest = store.partition(":")
    if kind == "sqlite" and rest.strip():
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = str(Path(rest).expanduser().absolute())
        config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return config
    match = _GRPC.match(rest) if kind == "grpc" else None
    if match and 0 < int(match["port"]) < 65536:
        return mlmd.MetadataStoreClientConfig(
            host=match["host"], port=int(match["port"]), client_timeout_sec=GRPC_TIMEOUT_S
        )
    raise InputError(
        f"--metadata_store: {store!r} is not a metadata store; give sqlite:PATH "
        "(e.g. sqlite:runs/metadata.sqlite) or grpc:HOST:PORT "
        "(e.g. grpc:metadata-grpc-service.textcnn:8080)"
    )


@contextlib.contextmanager
def _lock(
    config: mlmd.ConnectionConfig | mlmd.MetadataStoreClientConfig, *, exclusive: bool
) -> Iterator[None]:
    """Hold a lock on `PATH.lock` beside a SQLite store; nothing for a gRPC server."""
    if not isinstance(config, mlmd.ConnectionConfig):
        yield
        return
    path = Path(config.sqlite.filename_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


# SQLite's result codes for a file that is damaged or no database at all; any other
# failure (a lock, an I/O error) says nothing about the file and is raised as it is.
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _store_problem(path: Path) -> str | None:
    """Why the file at `path` is no ML Metadata store; None when it is one or when there is
    none yet (ML Metadata creates it). ML Metadata itself would fail on a damaged file with
    a raw RuntimeError, take an empty file for a fresh store, and write its tables into
    another application's database."""
    if not path.exists():
        return None
    if not path.is_file():
        return "a folder" if path.is_dir() else "not a regular file"
    if path.stat().st_size == 0:
        return "an empty file"
    try:
        # Read-write, not read-only: a writer killed mid-write leaves a hot journal, which
        # opening rolls back (as ML Metadata's own connection would); read-only refuses it.
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True)) as db:
            damage = [row[0] for row in db.execute("PRAGMA quick_check")]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as e:
        if e.sqlite_errorcode not in _DAMAGED:
            raise
        return f"SQLite: {e}"
    if damage != ["ok"]:
        return f"SQLite's quick_check: {damage[0]}"
    if "MLMDEnv" not in tables:
        return "a SQLite database without ML Metadata's tables"
    return None


def _check_file(path: Path) -> None:
    """InputError naming a file that ML Metadata must not open, and what to do."""
    if problem := _store_problem(path):
        raise InputError(
            f"{path}: not an ML Metadata store ({problem}); move it aside (a fresh store is "
            "created where there is none) or pass --metadata_store sqlite:ANOTHER_PATH"
        )


def _connect(
    config: mlmd.ConnectionConfig | mlmd.MetadataStoreClientConfig,
) -> metadata_store.MetadataStore:
    """ML Metadata's connection; a SQLite file is checked first (under the caller's lock)."""
    if isinstance(config, mlmd.ConnectionConfig):
        _check_file(Path(config.sqlite.filename_uri))
    return metadata_store.MetadataStore(config)


def check_store(store: str) -> None:
    """What every connection here checks, for a runner to check before any step runs:
    InputError unless `store` is a SQLite store, no file yet, or a gRPC address (not
    dialled). Creates nothing."""
    config = _config(store)
    if isinstance(config, mlmd.ConnectionConfig) and Path(config.sqlite.filename_uri).exists():
        with _lock(config, exclusive=False):  # no writer is half-way through
            _check_file(Path(config.sqlite.filename_uri))


def open_store(store: str) -> metadata_store.MetadataStore:
    """Connect to `sqlite:PATH` (created with its folders if missing) or `grpc:HOST:PORT`."""
    config = _config(store)
    with _lock(config, exclusive=True):  # the first connection creates the schema
        return _connect(config)


@contextlib.contextmanager
def _session(store: str, *, exclusive: bool = True) -> Iterator[metadata_store.MetadataStore]:
    config = _config(store)
    with _lock(config, exclusive=exclusive):
        yield _connect(config)


# --- properties and types ---------------------------------------------------------------


def _property_type(value: Property) -> int:
    if isinstance(value, bool | int):
        return mlmd.INT
    if isinstance(value, float):
        return mlmd.DOUBLE
    if isinstance(value, str | Mapping | list | tuple):
        return mlmd.STRING
    raise TypeError(f"unsupported MLMD property value {value!r} ({type(value).__name__})")


def _set_properties(message: mlmd.Artifact | mlmd.Execution, properties: Properties) -> None:
    for key, value in properties.items():
        slot = message.properties[key]
        if isinstance(value, bool | int):
            slot.int_value = int(value)
        elif isinstance(value, float):
            slot.double_value = value
        elif isinstance(value, str):
            slot.string_value = value
        else:
            slot.string_value = json.dumps(value, sort_keys=True)


def _put_type(
    store: metadata_store.MetadataStore,
    message: mlmd.ArtifactType | mlmd.ExecutionType,
    properties: Properties,
    store_name: str,
) -> int:
    for key, value in properties.items():
        message.properties[key] = _property_type(value)
    put = (
        store.put_artifact_type
        if isinstance(message, mlmd.ArtifactType)
        else store.put_execution_type
    )
    try:
        return put(message, can_add_fields=True, can_omit_fields=True)
    except errors.AlreadyExistsError as e:  # a stored property has another value type
        kinds = {k: mlmd.PropertyType.Name(v) for k, v in message.properties.items()}
        raise InputError(
            f"--metadata_store {store_name}: type {message.name!r} is already registered with "
            f"different property types than {kinds} ({e}); use a fresh store or the types "
            "it holds"
        ) from None


def _new_artifact(
    store: metadata_store.MetadataStore,
    store_name: str,
    type_name: str,
    uri: str,
    properties: Properties,
    name: str | None = None,
) -> mlmd.Artifact:
    type_id = _put_type(store, mlmd.ArtifactType(name=type_name), properties, store_name)
    artifact = mlmd.Artifact(type_id=type_id, uri=uri, state=mlmd.Artifact.LIVE)
    if name is not None:
        artifact.name = name
        # A retried step records the same named artifact again: update it in place.
        existing = store.get_artifact_by_type_and_name(type_name, name)
        if existing is not None:
            artifact.id = existing.id
    _set_properties(artifact, properties)
    return artifact


# --- contexts ---------------------------------------------------------------------------


def _context(store: metadata_store.MetadataStore, type_name: str, name: str) -> mlmd.Context:
    """Get or create; a step racing us to create it makes ours fail, so read theirs."""
    type_id = store.put_context_type(mlmd.ContextType(name=type_name))
    try:
        [context_id] = store.put_contexts([mlmd.Context(type_id=type_id, name=name)])
    except errors.AlreadyExistsError:
        return store.get_context_by_type_and_name(type_name, name)
    return store.get_contexts_by_id([context_id])[0]


def _contexts(store: metadata_store.MetadataStore, run_name: str) -> list[mlmd.Context]:
    if not run_name:
        raise InputError("--run_name: empty; give the workflow name ({{workflow.name}})")
    pipeline = _context(store, PIPELINE_TYPE, PIPELINE_NAME)
    run = _context(store, RUN_TYPE, run_name)
    with contextlib.suppress(errors.AlreadyExistsError):  # linked by an earlier step
        store.put_parent_contexts([mlmd.ParentContext(child_id=run.id, parent_id=pipeline.id)])
    return [pipeline, run]


# --- recording --------------------------------------------------------------------------


def record_artifact(
    store: str,
    *,
    run_name: str,
    type_name: str,
    uri: str,
    properties: Properties,
    name: str | None = None,
) -> int:
    """Record a LIVE artifact of `type_name` in the run's contexts; return its id.

    With a `name` (unique per type in the store), recording it again updates it.
    """
    with _session(store) as s:
        contexts = _contexts(s, run_name)
        artifact = _new_artifact(s, store, type_name, uri, properties, name)
        # One call stores the artifact and its attributions together.
        _, [artifact_id], _ = s.put_lineage_subgraph(
            executions=[], artifacts=[artifact], contexts=contexts, event_edges=[]
        )
        return artifact_id


def record_run_status(store: str, *, run_name: str, status: str, message: str = "") -> None:
    """Record how the run ended (Argo's `workflow.status`) on its PipelineRun context, so a
    failed run is visible in ML Metadata even when no step reached log-training-metadata.

    A retried run (`argo retry`, `--resume`) ends again in the same context: `status` is
    the last end, `attempts` counts the ends and `history` lists them (JSON)."""
    with _session(store) as s:
        run = _contexts(s, run_name)[1]
        props = run.custom_properties
        history = json.loads(props["history"].string_value) if "history" in props else []
        history.append({"status": status, "at": time.time()})
        props["status"].string_value = status
        props["message"].string_value = message
        props["history"].string_value = json.dumps(history)
        props["attempts"].int_value = len(history)
        s.put_contexts([run])


def _require(
    store: metadata_store.MetadataStore, store_name: str, ids: Sequence[int]
) -> list[mlmd.Artifact]:
    found = {a.id: a for a in store.get_artifacts_by_id(list(ids))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InputError(
            f"--metadata_store {store_name}: no artifact with id {missing}; pass the ids that "
            "the dataset-metadata and model-metadata steps output for this run"
        )
    return [found[i] for i in ids]


def artifact_types(store: str, ids: Sequence[int]) -> dict[int, str]:
    """Type name of each stored artifact id; InputError naming any id not in the store."""
    with _session(store, exclusive=False) as s:
        artifacts = _require(s, store, ids)
        types = {
            t.id: t.name for t in s.get_artifact_types_by_id(sorted({a.type_id for a in artifacts}))
        }
        return {a.id: types[a.type_id] for a in artifacts}


def _at_uri(store: metadata_store.MetadataStore, type_name: str, uri: str) -> mlmd.Artifact | None:
    """The newest artifact of `type_name` recorded at `uri`, if any."""
    type_ids = {t.id for t in store.get_artifact_types() if t.name == type_name}
    found = [a for a in store.get_artifacts_by_uri(uri) if a.type_id in type_ids]
    return max(found, key=lambda a: a.id, default=None)


def record_execution(
    store: str,
    *,
    run_name: str,
    type_name: str,
    properties: Properties,
    inputs: Sequence[int],
    outputs: Sequence[tuple[str, str, Properties]],
    cached: bool = False,
) -> tuple[int, list[int]]:
    """Record a COMPLETE (or, `cached`, a CACHED) execution reading artifacts `inputs` and
    writing `outputs`.

    `outputs` are `(type_name, uri, properties)`, each recorded as a new artifact; but a
    `cached` execution (a stage reused from an earlier run) links the artifact of that type
    already at that URI, if any, as KFP links a cached task's outputs. Execution, events, new
    artifacts and their attributions/associations go in one `put_execution` call, so all
    or none land. Returns the execution id and the output artifact ids, in order.
    """
    with _session(store) as s:
        contexts = _contexts(s, run_name)
        execution_type = mlmd.ExecutionType(name=type_name)
        execution = mlmd.Execution(
            type_id=_put_type(s, execution_type, properties, store),
            last_known_state=mlmd.Execution.CACHED if cached else mlmd.Execution.COMPLETE,
        )
        _set_properties(execution, properties)
        pairs = [(a, mlmd.Event(type=mlmd.Event.INPUT)) for a in _require(s, store, inputs)]
        pairs += [
            (
                (cached and _at_uri(s, out_type, uri))
                or _new_artifact(s, store, out_type, uri, props),
                mlmd.Event(type=mlmd.Event.OUTPUT),
            )
            for out_type, uri, props in outputs
        ]
        execution_id, artifact_ids, _ = s.put_execution(
            execution, pairs, contexts, force_reuse_context=True
        )
        return execution_id, artifact_ids[len(inputs) :]


# --- reading ----------------------------------------------------------------------------


def named_artifact(store: str, type_name: str, name: str) -> dict[str, Any] | None:
    """The artifact of `type_name` named `name` as `{id, uri, properties}`, or None (also
    when the store is a SQLite file that does not exist yet)."""
    config = _config(store)
    if isinstance(config, mlmd.ConnectionConfig) and not Path(config.sqlite.filename_uri).exists():
        return None
    with _session(store, exclusive=False) as s:
        found = s.get_artifact_by_type_and_name(type_name, name)
    if found is None:
        return None
    return {"id": found.id, "uri": found.uri, "properties": _plain(found.properties)}


def produced_by(store: str, artifact_id: int, execution_type: str, output_type: str) -> list[int]:
    """Ids of the `output_type` artifacts that `execution_type` executions made from
    `artifact_id` (for example the Metrics an Evaluate made of a Model)."""
    return _hop(store, artifact_id, execution_type, output_type, mlmd.Event.INPUT)


def made_from(store: str, artifact_id: int, execution_type: str, input_type: str) -> list[int]:
    """Ids of the `input_type` artifacts that `execution_type` executions which output
    `artifact_id` read (for example the PreparedData a Train made a Model from):
    `produced_by`, one hop towards the data instead of away from it."""
    return _hop(store, artifact_id, execution_type, input_type, mlmd.Event.OUTPUT)


def _hop(
    store: str, artifact_id: int, execution_type: str, found_type: str, edge: int
) -> list[int]:
    """The `found_type` artifacts at the other end of the `execution_type` executions
    linked to `artifact_id` by an `edge` event (INPUT: what they made of it; OUTPUT: what
    they made it from), in id order."""
    other = mlmd.Event.OUTPUT if edge == mlmd.Event.INPUT else mlmd.Event.INPUT
    with _session(store, exclusive=False) as s:
        types = {t.name: t.id for t in s.get_execution_types() + s.get_artifact_types()}
        if execution_type not in types or found_type not in types:
            return []
        linked = {
            e.execution_id for e in s.get_events_by_artifact_ids([artifact_id]) if e.type == edge
        }
        executions = [
            e.id
            for e in s.get_executions_by_id(sorted(linked))
            if e.type_id == types[execution_type]
        ]
        ends = [e.artifact_id for e in s.get_events_by_execution_ids(executions) if e.type == other]
        found = s.get_artifacts_by_id(sorted(set(ends)))
        return sorted(a.id for a in found if a.type_id == types[found_type])


def artifact_properties(store: str, artifact_id: int) -> dict[str, Any]:
    with _session(store, exclusive=False) as s:
        (artifact,) = _require(s, store, [artifact_id])
    return _plain(artifact.properties)


def artifact_uri(store: str, artifact_id: int) -> str:
    with _session(store, exclusive=False) as s:
        (artifact,) = _require(s, store, [artifact_id])
    return str(artifact.uri)


def _plain(properties: Mapping[str, mlmd.Value]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(properties):
        kind = properties[key].WhichOneof("value")
        out[key] = getattr(properties[key], kind) if kind else None
    return out


def lineage(store: str, run_name: str) -> dict[str, Any]:
    """Everything recorded for one run, as plain data (JSON-serialisable).

    `{"pipeline", "run", "run_properties" (e.g. the final status), "artifacts": [{id, type,
    uri, state, properties}], "executions": [{id, type, state, properties}], "events":
    [{execution_id, artifact_id, type}]}`; JSON-valued properties stay strings, as stored.
    """
    config = _config(store)
    if isinstance(config, mlmd.ConnectionConfig) and not Path(config.sqlite.filename_uri).exists():
        raise InputError(f"--metadata_store {store}: no such SQLite file")
    with _session(store, exclusive=False) as s:
        run = s.get_context_by_type_and_name(RUN_TYPE, run_name)
        if run is None:
            raise InputError(f"--run_name: no run {run_name!r} in metadata store {store}")
        artifacts = s.get_artifacts_by_context(run.id)
        executions = s.get_executions_by_context(run.id)
        events = s.get_events_by_execution_ids([e.id for e in executions])
        artifact_type = {t.id: t.name for t in s.get_artifact_types()}
        execution_type = {t.id: t.name for t in s.get_execution_types()}
    return {
        "pipeline": PIPELINE_NAME,
        "run": run_name,
        "run_properties": _plain(run.custom_properties),
        "artifacts": [
            {
                "id": a.id,
                "type": artifact_type[a.type_id],
                "uri": a.uri,
                "state": mlmd.Artifact.State.Name(a.state),
                "properties": _plain(a.properties),
            }
            for a in sorted(artifacts, key=lambda a: a.id)
        ],
        "executions": [
            {
                "id": e.id,
                "type": execution_type[e.type_id],
                "state": mlmd.Execution.State.Name(e.last_known_state),
                "properties": _plain(e.properties),
            }
            for e in sorted(executions, key=lambda e: e.id)
        ],
        "events": [
            {
                "execution_id": ev.execution_id,
                "artifact_id": ev.artifact_id,
                "type": mlmd.Event.Type.Name(ev.type),
            }
            for ev in sorted(events, key=lambda ev: (ev.execution_id, ev.artifact_id))
        ],
    }
