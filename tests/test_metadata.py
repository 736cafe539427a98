"""textcnn.metadata against the real ml-metadata library on SQLite files in tmp_path."""

from __future__ import annotations

import contextlib
import fcntl
import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from textcnn import metadata
from textcnn.errors import InputError
from textcnn.params import PipelineParams


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:{tmp_path / 'mlmd' / 'metadata.sqlite'}"


def _context_names(
    s, *, artifact_id: int | None = None, execution_id: int | None = None
) -> set[tuple[str, str]]:
    contexts = (
        s.get_contexts_by_artifact(artifact_id)
        if artifact_id is not None
        else s.get_contexts_by_execution(execution_id)
    )
    return {(c.type, c.name) for c in contexts}


# --- store strings ----------------------------------------------------------------------


def test_open_store_sqlite_creates_the_file_and_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "metadata.sqlite"
    s = metadata.open_store(f"sqlite:{path}")
    assert path.is_file()
    assert s.get_artifact_types() == []


def test_open_store_grpc_targets_host_and_port() -> None:
    # Port 1 on loopback refuses connections: the client really dials HOST:PORT.
    s = metadata.open_store("grpc:127.0.0.1:1")
    with pytest.raises(errors.UnavailableError, match="127.0.0.1:1"):
        s.get_artifact_types()


def test_the_default_store_option_is_a_valid_grpc_store() -> None:
    # Opening a gRPC store only builds a channel; nothing is dialled yet.
    default = PipelineParams().metadata_store
    assert default.startswith("grpc:")
    assert isinstance(metadata.open_store(default), metadata_store.MetadataStore)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sqlite:",
        "sqlite:  ",
        "grpc:host",
        "grpc::8080",
        "grpc:host:port",
        "grpc:host:0",
        "grpc:host:70000",
        "mysql:db",
        "/tmp/metadata.sqlite",
    ],
)
def test_bad_store_string_names_the_option(bad: str) -> None:
    with pytest.raises(InputError, match="--metadata_store.*sqlite:PATH.*grpc:HOST:PORT"):
        metadata.open_store(bad)


# --- a file that is no store ------------------------------------------------------------


def _truncated(path: Path) -> None:
    """A real store cut short, as `head -c 20000` cuts it."""
    metadata.record_artifact(f"sqlite:{path}", run_name="r", type_name="D", uri="/d", properties={})
    path.write_bytes(path.read_bytes()[:20000])


def _foreign(path: Path) -> None:
    """Another application's SQLite database."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")


NOT_A_STORE = {
    # Before: RuntimeError "database disk image is malformed", retried as bad luck.
    "truncated": (_truncated, "database disk image is malformed"),
    # Before: RuntimeError "file is not a database".
    "garbage": (lambda p: p.write_bytes(random.Random(0).randbytes(50_000)), "not a database"),
    # Before: taken for a fresh store.
    "empty": (lambda p: p.write_bytes(b""), "an empty file"),
    # Before: ML Metadata wrote its tables into it.
    "foreign": (_foreign, "a SQLite database without ML Metadata's tables"),
    "folder": (lambda p: p.mkdir(), "a folder"),
}


@pytest.mark.parametrize("kind", list(NOT_A_STORE))
def test_a_file_that_is_no_store_is_refused_by_every_opener_and_left_as_it_is(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "metadata.sqlite"
    make, why = NOT_A_STORE[kind]
    make(path)
    before = path.read_bytes() if path.is_file() else None
    store = f"sqlite:{path}"
    expected = (
        re.escape(f"{path}: not an ML Metadata store (")
        + f".*{re.escape(why)}.*"
        + re.escape(
            "); move it aside (a fresh store is created where there is none) or pass "
            "--metadata_store sqlite:ANOTHER_PATH"
        )
    )
    openers = {
        "open_store": lambda: metadata.open_store(store),
        "record_artifact": lambda: metadata.record_artifact(
            store, run_name="r", type_name="D", uri="/d", properties={}
        ),
        "record_run_status": lambda: metadata.record_run_status(
            store, run_name="r", status="Failed"
        ),
        "named_artifact": lambda: metadata.named_artifact(store, "Model", "m"),
        "lineage": lambda: metadata.lineage(store, "r"),
        "check_store": lambda: metadata.check_store(store),
    }
    for name, opener in openers.items():
        with pytest.raises(InputError, match=expected):
            opener()
        assert (path.read_bytes() if path.is_file() else None) == before, name


def test_a_store_a_killed_writer_left_a_hot_journal_in_is_still_a_store(
    store: str, tmp_path: Path
) -> None:
    """SQLite rolls a hot journal back on opening; a read-only check would refuse it."""
    path = Path(store.removeprefix("sqlite:"))
    kept = metadata.record_artifact(store, run_name="r", type_name="D", uri="/d", properties={})
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_WRITE, str(path)], capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert Path(f"{path}-journal").stat().st_size > 0  # the hot journal is there
    metadata.check_store(store)
    metadata.record_artifact(store, run_name="r", type_name="D", uri="/e", properties={})
    assert [a["uri"] for a in metadata.lineage(store, "r")["artifacts"]] == ["/d", "/e"]
    assert metadata.artifact_types(store, [kept]) == {kept: "D"}
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'scratch'").fetchall() == []


# A writer that dies mid-transaction, after SQLite spilled its changes into the file.
_KILLED_MID_WRITE = textwrap.dedent("""
    import os, signal, sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("PRAGMA cache_size = 1")
    db.execute("BEGIN")
    db.execute("CREATE TABLE scratch (x BLOB)")
    db.execute("INSERT INTO scratch SELECT randomblob(1000) FROM "
               "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c LIMIT 2000) "
               "SELECT i FROM c)")
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_grpc_store_is_not_dialled_by_the_check() -> None:
    metadata.check_store("grpc:127.0.0.1:1")  # port 1 refuses: nothing was dialled


# --- artifacts --------------------------------------------------------------------------


def test_record_artifact_infers_property_types_and_joins_both_contexts(store: str) -> None:
    properties = {
        "rows": 12,
        "share": 0.25,
        "split": "train",
        "clean": True,
        "classes": {"neg": 5, "pos": 7},
        "sizes": [3, 4],
    }
    artifact_id = metadata.record_artifact(
        store,
        run_name="run-1",
        type_name="Dataset",
        uri="/data/train.csv",
        properties=properties,
    )
    s = metadata.open_store(store)
    [artifact] = s.get_artifacts_by_id([artifact_id])
    [artifact_type] = s.get_artifact_types_by_id([artifact.type_id])
    assert artifact_type.name == "Dataset"
    assert dict(artifact_type.properties) == {
        "rows": mlmd.INT,
        "share": mlmd.DOUBLE,
        "split": mlmd.STRING,
        "clean": mlmd.INT,
        "classes": mlmd.STRING,
        "sizes": mlmd.STRING,
    }
    assert artifact.uri == "/data/train.csv"
    assert artifact.state == mlmd.Artifact.LIVE
    p = artifact.properties
    assert (p["rows"].int_value, p["share"].double_value, p["split"].string_value) == (
        12,
        0.25,
        "train",
    )
    assert p["clean"].int_value == 1
    assert json.loads(p["classes"].string_value) == properties["classes"]
    assert json.loads(p["sizes"].string_value) == properties["sizes"]
    assert _context_names(s, artifact_id=artifact_id) == {
        ("Pipeline", "textcnn"),
        ("PipelineRun", "run-1"),
    }
    run = s.get_context_by_type_and_name("PipelineRun", "run-1")
    assert [c.name for c in s.get_parent_contexts_by_context(run.id)] == ["textcnn"]


def test_type_accepts_later_added_and_omitted_properties(store: str) -> None:
    first = metadata.record_artifact(
        store, run_name="r", type_name="Dataset", uri="a", properties={"rows": 1}
    )
    second = metadata.record_artifact(
        store, run_name="r", type_name="Dataset", uri="b", properties={"rows": 2, "split": "test"}
    )
    third = metadata.record_artifact(
        store, run_name="r", type_name="Dataset", uri="c", properties={"split": "train"}
    )
    s = metadata.open_store(store)
    assert dict(s.get_artifact_type("Dataset").properties) == {
        "rows": mlmd.INT,
        "split": mlmd.STRING,
    }
    by_id = {a.id: a for a in s.get_artifacts_by_id([first, second, third])}
    assert by_id[first].properties["rows"].int_value == 1
    assert by_id[second].properties["split"].string_value == "test"
    assert "rows" not in by_id[third].properties


def test_property_of_another_type_is_an_input_error(store: str) -> None:
    metadata.record_artifact(
        store, run_name="r", type_name="Dataset", uri="a", properties={"rows": 1}
    )
    with pytest.raises(InputError, match="--metadata_store.*'Dataset'.*rows"):
        metadata.record_artifact(
            store, run_name="r", type_name="Dataset", uri="b", properties={"rows": "many"}
        )


def test_unsupported_property_value_is_refused(store: str) -> None:
    with pytest.raises(TypeError, match="None"):
        metadata.record_artifact(
            store, run_name="r", type_name="Dataset", uri="a", properties={"rows": None}
        )  # type: ignore[dict-item]


def test_named_artifact_recorded_again_is_updated_in_place(store: str) -> None:
    # A retried step records the same named artifact: one artifact, the latest values.
    first = metadata.record_artifact(
        store,
        run_name="r",
        type_name="ModelSpec",
        uri="/v1",
        properties={"vocab_size": 10},
        name="r/spec",
    )
    again = metadata.record_artifact(
        store,
        run_name="r",
        type_name="ModelSpec",
        uri="/v2",
        properties={"vocab_size": 20},
        name="r/spec",
    )
    assert again == first
    [artifact] = metadata.open_store(store).get_artifacts_by_type("ModelSpec")
    assert (artifact.uri, artifact.properties["vocab_size"].int_value) == ("/v2", 20)


def test_empty_run_name_is_an_input_error(store: str) -> None:
    with pytest.raises(InputError, match="--run_name"):
        metadata.record_artifact(store, run_name="", type_name="Dataset", uri="a", properties={})


# --- executions -------------------------------------------------------------------------


def test_record_execution_links_inputs_and_new_outputs(store: str) -> None:
    a = metadata.record_artifact(store, run_name="r", type_name="Dataset", uri="/a", properties={})
    b = metadata.record_artifact(
        store, run_name="r", type_name="ModelSpec", uri="/b", properties={}
    )
    execution_id, outputs = metadata.record_execution(
        store,
        run_name="r",
        type_name="Train",
        properties={"epochs": 3, "lr": 0.01},
        inputs=[a, b],
        outputs=[("Model", "/m", {"format": "saved_model"}), ("Metrics", "/x", {"acc": 0.5})],
    )
    s = metadata.open_store(store)
    [execution] = s.get_executions_by_id([execution_id])
    assert s.get_execution_types_by_id([execution.type_id])[0].name == "Train"
    assert execution.last_known_state == mlmd.Execution.COMPLETE
    assert execution.properties["epochs"].int_value == 3
    assert execution.properties["lr"].double_value == 0.01
    events = {(e.artifact_id, e.type) for e in s.get_events_by_execution_ids([execution_id])}
    assert events == {
        (a, mlmd.Event.INPUT),
        (b, mlmd.Event.INPUT),
        (outputs[0], mlmd.Event.OUTPUT),
        (outputs[1], mlmd.Event.OUTPUT),
    }
    model, metrics = s.get_artifacts_by_id(outputs)  # ids come back in `outputs` order
    assert (model.uri, model.properties["format"].string_value) == ("/m", "saved_model")
    assert (metrics.uri, metrics.properties["acc"].double_value) == ("/x", 0.5)
    both = {("Pipeline", "textcnn"), ("PipelineRun", "r")}
    assert _context_names(s, execution_id=execution_id) == both
    assert all(_context_names(s, artifact_id=i) == both for i in outputs)


def test_unknown_input_id_is_an_input_error_and_writes_nothing(store: str) -> None:
    a = metadata.record_artifact(store, run_name="r", type_name="Dataset", uri="/a", properties={})
    with pytest.raises(InputError, match=r"--metadata_store.*\[999\]"):
        metadata.record_execution(
            store,
            run_name="r",
            type_name="Train",
            properties={},
            inputs=[a, 999],
            outputs=[("Model", "/m", {})],
        )
    s = metadata.open_store(store)
    assert s.get_executions() == []
    assert [x.id for x in s.get_artifacts()] == [a]


def test_artifact_types_maps_ids_to_type_names(store: str) -> None:
    a = metadata.record_artifact(store, run_name="r", type_name="Dataset", uri="/a", properties={})
    b = metadata.record_artifact(
        store, run_name="r", type_name="ModelSpec", uri="/b", properties={}
    )
    assert metadata.artifact_types(store, [b, a]) == {a: "Dataset", b: "ModelSpec"}
    with pytest.raises(InputError, match=r"\[42\]"):
        metadata.artifact_types(store, [a, 42])


# --- lineage query ----------------------------------------------------------------------


def test_lineage_returns_one_run_as_plain_data(store: str) -> None:
    data = metadata.record_artifact(
        store, run_name="r1", type_name="Dataset", uri="/d", properties={"rows": 4}
    )
    execution_id, [model] = metadata.record_execution(
        store,
        run_name="r1",
        type_name="Train",
        properties={"epochs": 2},
        inputs=[data],
        outputs=[("Model", "/m", {"tags": ["a"]})],
    )
    metadata.record_artifact(store, run_name="r2", type_name="Dataset", uri="/other", properties={})
    result = metadata.lineage(store, "r1")
    assert json.loads(json.dumps(result)) == result
    assert result["pipeline"] == "textcnn" and result["run"] == "r1"
    assert result["artifacts"] == [
        {"id": data, "type": "Dataset", "uri": "/d", "state": "LIVE", "properties": {"rows": 4}},
        {
            "id": model,
            "type": "Model",
            "uri": "/m",
            "state": "LIVE",
            "properties": {"tags": '["a"]'},
        },
    ]
    assert result["executions"] == [
        {"id": execution_id, "type": "Train", "state": "COMPLETE", "properties": {"epochs": 2}}
    ]
    assert result["events"] == [
        {"execution_id": execution_id, "artifact_id": data, "type": "INPUT"},
        {"execution_id": execution_id, "artifact_id": model, "type": "OUTPUT"},
    ]
    s = metadata.open_store(store)
    assert len(s.get_contexts_by_type("Pipeline")) == 1
    assert {c.name for c in s.get_contexts_by_type("PipelineRun")} == {"r1", "r2"}


def test_lineage_of_unknown_run_or_store_is_an_input_error(store: str, tmp_path: Path) -> None:
    metadata.record_artifact(store, run_name="r1", type_name="Dataset", uri="/d", properties={})
    with pytest.raises(InputError, match="--run_name: no run 'r2'"):
        metadata.lineage(store, "r2")
    missing = tmp_path / "nowhere.sqlite"
    with pytest.raises(InputError, match="no such SQLite file"):
        metadata.lineage(f"sqlite:{missing}", "r1")
    assert not missing.exists()


# --- concurrency (real processes) -------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from textcnn import metadata
    store, go, tag, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for i in range(count):
        a = metadata.record_artifact(store, run_name="shared", type_name="Dataset",
                                     uri=f"{tag}/in/{i}", properties={tag: i})
        metadata.record_execution(store, run_name="shared", type_name="Step",
                                  properties={"i": i}, inputs=[a],
                                  outputs=[("Out", f"{tag}/out/{i}", {"i": i})])
""")


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_two_processes_write_one_fresh_store_at_once(store: str, tmp_path: Path) -> None:
    go, count = tmp_path / "go", 15
    # Each writer adds its own property to the shared type, and both race to create the
    # schema, the types and the same two contexts.
    procs = [_start([store, str(go), tag, str(count)], tmp_path) for tag in ("w1", "w2")]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    result = metadata.lineage(store, "shared")
    uris = {a["uri"] for a in result["artifacts"]}
    assert uris == {
        f"{tag}/{kind}/{i}" for tag in ("w1", "w2") for kind in ("in", "out") for i in range(count)
    }
    assert len(result["executions"]) == 2 * count
    assert len(result["events"]) == 4 * count
    s = metadata.open_store(store)
    assert [c.name for c in s.get_contexts_by_type("Pipeline")] == ["textcnn"]
    assert [c.name for c in s.get_contexts_by_type("PipelineRun")] == ["shared"]
    assert set(s.get_artifact_type("Dataset").properties) == {"w1", "w2"}


def test_a_writer_waits_while_another_holds_the_store_lock(store: str, tmp_path: Path) -> None:
    path = Path(store.removeprefix("sqlite:"))
    metadata.open_store(store)  # creates the file and its lock file's folder
    go = tmp_path / "go"
    go.touch()
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = _start([store, str(go), "w", "1"], tmp_path)
        time.sleep(1.0)
        assert proc.poll() is None  # blocked on the lock, not failing or writing
        # (metadata.open_store would wait for this lock too: read the file directly)
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT COUNT(*) FROM Artifact").fetchone() == (0,)
        fcntl.flock(lock, fcntl.LOCK_UN)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert sorted(a.uri for a in metadata.open_store(store).get_artifacts()) == [
        "w/in/0",
        "w/out/0",
    ]
