"""Read and write local paths and `gs://bucket/key` URIs, files and whole folders.

Local writes are atomic (a temporary name in the same folder, then a rename), so a failed
step never leaves a half-written file or folder. GCS objects appear whole when an upload
completes; a folder upload is a series of such objects. The GCS client is created on first
use (pods that only touch local files never import it); with `STORAGE_EMULATOR_HOST` set it
talks to that emulator with anonymous credentials.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from google.cloud import storage as gcs

GS = "gs://"
# The emulator ignores the project, but the client needs one without credentials.
EMULATOR_PROJECT = "textcnn-local"
CHUNK_BYTES = 8 << 20  # what a streamed GCS read holds at a time


def is_gcs(uri: str) -> bool:
    return uri.startswith(GS)


def join(root: str, key: str) -> str:
    """`root/key` for a folder URI or a local path."""
    if is_gcs(root):
        return f"{root.rstrip('/')}/{key.lstrip('/')}"
    return os.path.join(root, key)


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len(GS) :].partition("/")
    if not bucket:
        raise ValueError(f"{uri}: expected gs://BUCKET/KEY")
    return bucket, key


@functools.cache
def _client_for(emulator_host: str | None) -> gcs.Client:
    from google.cloud import storage

    if emulator_host:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())
    return storage.Client()


def _client() -> gcs.Client:
    # Keyed on the emulator setting so a changed environment gets a matching client.
    return _client_for(os.environ.get("STORAGE_EMULATOR_HOST") or None)


def _blob(uri: str) -> gcs.Blob:
    bucket, key = _split(uri)
    if not key:
        raise ValueError(f"{uri}: expected gs://BUCKET/KEY")
    return _client().bucket(bucket).blob(key)


@contextlib.contextmanager
def _gcs_not_found_as_file_not_found(uri: str) -> Iterator[None]:
    from google.api_core.exceptions import NotFound

    try:
        yield
    except NotFound:
        raise FileNotFoundError(f"no such object: {uri}") from None


def exists(uri: str) -> bool:
    """True for an existing file or folder (a GCS object, or objects under `uri/`)."""
    if not is_gcs(uri):
        return os.path.exists(uri)
    if _blob(uri).exists():
        return True
    bucket, key = _split(uri)
    return any(_client().list_blobs(bucket, prefix=key.rstrip("/") + "/", max_results=1))


def file_problem(uri: str, *, must_exist: bool = True) -> str | None:
    """Why a local path cannot be read or written as a file, or None: a FIFO would block
    its reader for ever, a folder or a device is no CSV. gs:// objects are plain files."""
    if is_gcs(uri):
        return None
    try:
        mode = os.stat(uri).st_mode
    except FileNotFoundError:
        return "no such file" if must_exist else None
    except OSError as e:
        return e.strerror or str(e)
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "folder", stat.S_ISFIFO: "FIFO (named pipe)"}
    kind = next((k for test, k in kinds.items() if test(mode)), "device or special file")
    return f"is a {kind}, not a regular file"


def read_bytes(uri: str) -> bytes:
    """The whole file; FileNotFoundError when there is none (locally or on GCS)."""
    if not is_gcs(uri):
        return Path(uri).read_bytes()
    with _gcs_not_found_as_file_not_found(uri):
        return _blob(uri).download_as_bytes()


class ChangedWhileRead(OSError):
    """The GCS object opened was rewritten or deleted before it was read to the end: a
    step that fails with this reads the new one when it runs again (it is not a user
    error, so the templates' retryStrategy retries it)."""


@contextlib.contextmanager
def open_read(uri: str) -> Iterator[BinaryIO]:
    """The file as a binary stream, read as it is consumed; FileNotFoundError when there
    is none. A GCS object is read in ranged downloads of CHUNK_BYTES, each asking for the
    generation opened: GCS serves that one or answers 404 (ChangedWhileRead), so an object
    rewritten meanwhile is never read half old, half new."""
    if not is_gcs(uri):
        with open(uri, "rb") as f:
            yield f
        return
    from google.api_core.exceptions import NotFound

    with _gcs_not_found_as_file_not_found(uri):
        blob = _blob(uri)
        blob.reload()
    pinned = blob.bucket.blob(blob.name, generation=blob.generation)
    try:
        with pinned.open("rb", chunk_size=CHUNK_BYTES) as f:
            yield f
    except NotFound:
        raise ChangedWhileRead(
            f"{uri}: generation {blob.generation} was rewritten or deleted while it was "
            "read; run the step again to read the new one"
        ) from None


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file, creating parent folders; atomic for local paths."""
    if is_gcs(uri):
        _blob(uri).upload_from_string(data)
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide artifacts from other readers
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


@contextlib.contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """A local file holding `uri`: the path itself, or a temporary download of a GCS object.

    The download keeps the object's file name, since some readers go by the extension.
    """
    if not is_gcs(uri):
        if not os.path.isfile(uri):
            raise FileNotFoundError(f"no such file: {uri}")
        yield Path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="textcnn-") as tmp:
        path = Path(tmp) / (Path(_split(uri)[1]).name or "object")
        with _gcs_not_found_as_file_not_found(uri):
            _blob(uri).download_to_filename(str(path))
        yield path


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty sibling folder to fill; on success it replaces `path` in one rename.

    On an exception the sibling is removed and `path` is left as it was.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide artifacts from other readers
        yield tmp
        if final.exists():
            # rename() cannot replace a non-empty folder: move the old one aside first.
            old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
            os.replace(final, old / final.name)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _files(local_dir: Path) -> list[Path]:
    return sorted(p for p in local_dir.rglob("*") if p.is_file())


def _copy_dir(src: Path, dst: str | Path) -> None:
    if not src.is_dir():
        raise FileNotFoundError(f"no such folder: {src}")
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def upload_dir(local_dir: str | Path, uri: str) -> None:
    """Copy a local folder's files to `uri` (a gs:// prefix, or a local folder, atomically)."""
    src = Path(local_dir)
    if not is_gcs(uri):
        _copy_dir(src, uri)
        return
    if not src.is_dir():
        raise FileNotFoundError(f"no such folder: {src}")
    for file in _files(src):
        _blob(join(uri, file.relative_to(src).as_posix())).upload_from_filename(str(file))


def list_prefix(uri: str) -> list[str]:
    """The gs:// URIs of the objects whose name starts with `uri`'s key, as a raw prefix
    (no `/` added, so `gs://b/model` also lists `gs://b/model-2/x`)."""
    bucket, key = _split(uri)
    return sorted(
        f"gs://{bucket}/{b.name}"
        for b in _client().list_blobs(bucket, prefix=key)
        if not b.name.endswith("/")
    )


def download_dir(uri: str, local_dir: str | Path) -> None:
    """Copy every file under `uri` (gs:// prefix or local folder) into `local_dir`, atomically."""
    if not is_gcs(uri):
        _copy_dir(Path(uri), local_dir)
        return
    bucket, key = _split(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    blobs = [b for b in _client().list_blobs(bucket, prefix=prefix) if not b.name.endswith("/")]
    if not blobs:
        raise FileNotFoundError(f"no objects under {uri}")
    with atomic_dir(local_dir) as tmp:
        for blob in blobs:
            target = tmp / blob.name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))


def fingerprint(uri: str) -> str:
    """What a file's content is, without reading a GCS object: its stored crc32c (or
    md5) hash; for a local file, the sha256 of its bytes, streamed."""
    if is_gcs(uri):
        blob = _blob(uri)
        with _gcs_not_found_as_file_not_found(uri):
            blob.reload()
        if blob.crc32c:
            return f"crc32c:{blob.crc32c}:{blob.size}"
        if blob.md5_hash:
            return f"md5:{blob.md5_hash}:{blob.size}"
        raise OSError(f"{uri}: the object has neither a crc32c nor an md5 hash")
    digest = hashlib.sha256()
    with open(uri, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def listing(uri: str) -> dict[str, tuple[int, str | None]]:
    """Every file under the folder or gs:// prefix `uri`, by its path below it: its size,
    and for a GCS object its stored MD5 (base64, as GCS gives it; None for a local file,
    which is not read)."""
    if is_gcs(uri):
        bucket, key = _split(uri)
        prefix = key.rstrip("/") + "/"
        return {
            b.name[len(prefix) :]: (int(b.size), b.md5_hash)
            for b in _client().list_blobs(bucket, prefix=prefix)
            if not b.name.endswith("/")
        }
    root = Path(uri)
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): (p.stat().st_size, None) for p in _files(root)}
