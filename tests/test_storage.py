"""storage: local paths and gs:// URIs (against a real GCS emulator), files and folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from textcnn import storage


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha", "sub/b.bin": bytes(range(256)), "sub/deeper/c.json": b"{}"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_join() -> None:
    assert storage.join("gs://b/run/", "/prepared/vocab.json") == "gs://b/run/prepared/vocab.json"
    assert storage.join("gs://b", "x") == "gs://b/x"
    assert storage.join("/tmp/run", "x/y") == os.path.join("/tmp/run", "x/y")


def test_local_write_read_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "f.json"
    storage.write_text(str(target), "first")
    storage.write_bytes(str(target), "second é".encode())
    assert storage.read_text(str(target)) == "second é"
    assert storage.exists(str(target)) and storage.exists(str(tmp_path / "a"))
    assert not storage.exists(str(tmp_path / "nope"))
    assert os.listdir(target.parent) == ["f.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_local_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    storage.write_text(str(target), "old")
    with pytest.raises(TypeError):
        storage.write_bytes(str(target), "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_local_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError), storage.local_copy(str(tmp_path / "missing.csv")):
        pass


def test_local_copy_of_local_path_is_the_path(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("x")
    with storage.local_copy(str(f)) as p:
        assert p == f


def test_atomic_dir_replaces_existing_folder(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "stale.txt").write_text("stale")
    with storage.atomic_dir(final) as tmp:
        assert tmp.parent == tmp_path and not final.joinpath("new.txt").exists()
        (tmp / "new.txt").write_text("new")
    assert _tree(final) == {"new.txt": b"new"}
    assert os.listdir(tmp_path) == ["out"]
    assert stat.S_IMODE(final.stat().st_mode) == 0o755


def test_atomic_dir_failure_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), storage.atomic_dir(final) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_local_dir_copy_both_ways(tmp_path: Path) -> None:
    files = _make_tree(tmp_path / "src")
    storage.upload_dir(tmp_path / "src", str(tmp_path / "dst"))
    storage.download_dir(str(tmp_path / "dst"), tmp_path / "back")
    assert _tree(tmp_path / "dst") == files
    assert _tree(tmp_path / "back") == files
    with pytest.raises(FileNotFoundError):
        storage.upload_dir(tmp_path / "nope", str(tmp_path / "x"))


def test_gcs_files(gcs_root: str) -> None:
    uri = storage.join(gcs_root, "data/train.csv")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"text,label\n\xc3\xa9t\xc3\xa9,pos\n")
    assert storage.exists(uri)
    assert storage.exists(storage.join(gcs_root, "data"))  # a "folder" with objects under it
    assert not storage.exists(storage.join(gcs_root, "dat"))
    assert storage.read_text(uri) == "text,label\nété,pos\n"
    with storage.local_copy(uri) as p:
        assert p.name == "train.csv"
        assert p.read_bytes() == b"text,label\n\xc3\xa9t\xc3\xa9,pos\n"
        local = p
    assert not local.exists()  # the download is temporary


def test_gcs_missing_object_is_file_not_found(gcs_root: str) -> None:
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        storage.read_bytes(storage.join(gcs_root, "missing.csv"))
    with pytest.raises(FileNotFoundError), storage.local_copy(storage.join(gcs_root, "m.csv")):
        pass
    with pytest.raises(FileNotFoundError):
        storage.download_dir(storage.join(gcs_root, "nothing"), "/nonexistent/never-created")


def test_gcs_stream_reads_the_object_in_ranges(
    gcs_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several ranged downloads make the whole object. (That they are all of the generation
    opened cannot be shown here: the emulator keeps no old generations.)"""
    monkeypatch.setattr(storage, "CHUNK_BYTES", 256 * 1024)  # the client's smallest chunk
    uri = storage.join(gcs_root, "big.csv")
    content = os.urandom(600_000)
    storage.write_bytes(uri, content)
    with storage.open_read(uri) as stream:
        parts = [stream.read(100_000), stream.read(300_000), stream.read()]
    assert b"".join(parts) == content and len(parts[1]) == 300_000
    missing = storage.join(gcs_root, "missing.csv")
    with pytest.raises(FileNotFoundError, match="missing.csv"), storage.open_read(missing):
        pass


def test_gcs_object_deleted_while_read_is_not_a_missing_file(
    gcs_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not "file not found" (a user error, never retried), but an error a retry cures."""
    monkeypatch.setattr(storage, "CHUNK_BYTES", 256 * 1024)
    uri = storage.join(gcs_root, "big.csv")
    storage.write_bytes(uri, os.urandom(600_000))
    with (  # noqa: PT012 (the delete must come between the reads)
        pytest.raises(storage.ChangedWhileRead, match="while it was read") as e,
        storage.open_read(uri) as stream,
    ):
        stream.read(100_000)
        storage._blob(uri).delete()
        stream.read()
    assert not isinstance(e.value, FileNotFoundError)


def test_gcs_dir_round_trip(gcs_root: str, tmp_path: Path) -> None:
    files = _make_tree(tmp_path / "model")
    storage.upload_dir(tmp_path / "model", storage.join(gcs_root, "model"))
    storage.write_text(storage.join(gcs_root, "model-other/x.txt"), "not under model/")
    storage.download_dir(storage.join(gcs_root, "model") + "/", tmp_path / "back")
    assert _tree(tmp_path / "back") == files
