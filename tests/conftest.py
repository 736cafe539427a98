"""Shared fixtures: small synthetic text/label CSVs and a real GCS emulator on loopback."""

from __future__ import annotations

import csv
import ctypes
import json
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import (
    GCS_BUCKET,
    NEW_CUES,
    OLD_CUES,
    REPO,
    ClusterNetwork,
    FakeApiServer,
    children,
    save_toy,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@pytest.fixture(scope="session")
def _subreaper() -> None:
    """Make the test process adopt orphaned descendants, so a leak shows in /proc."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")


@pytest.fixture
def no_orphans(_subreaper: None) -> Iterator[None]:
    """Fail a test that leaves a process behind: every process it started, and every
    process those started, must be gone (reaped) when it ends (within a few seconds, the
    time a stop takes)."""
    before = set(children())
    yield
    deadline = time.monotonic() + 10
    while True:
        left = {pid: info for pid, info in children().items() if pid not in before}
        for pid, (state, _) in list(left.items()):
            if state == "Z":  # an adopted orphan that has ended: reap it
                os.waitpid(pid, os.WNOHANG)
                del left[pid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not left, f"processes left behind: {left}"


# Each class has cue words, so a tiny model can learn the synthetic data.
_CUES = {
    "negative": ["awful", "boring", "dull", "terrible", "weak"],
    "positive": ["great", "moving", "brilliant", "superb", "fun"],
    "neutral": ["okay", "average", "plain", "ordinary", "fair"],
}
_FILLER = (
    "the a film movie story plot actors cast scenes script director music ending "
    "characters camera pace dialogue drama comedy year audience screen sequel hero "
    "villain city night summer family friends road house war love time world"
).split()


@pytest.fixture
def make_csv(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a CSV of short distinct texts (header `text,label` by default).

    `make_csv(rows=300, classes=3, seed=0, name="data.csv", columns=("text", "label"),
    extra=[(text, label), ...])`: rows are spread evenly over the first `classes` of
    negative/positive/neutral; `extra` rows are appended as given.
    """

    def make(
        rows: int = 300,
        classes: int = 3,
        seed: int = 0,
        name: str = "data.csv",
        columns: Sequence[str] = ("text", "label"),
        extra: Sequence[tuple[str, str]] = (),
    ) -> Path:
        rng = random.Random(seed)
        labels = list(_CUES)[:classes]
        seen: set[str] = set()
        records: list[tuple[str, str]] = []
        while len(records) < rows:
            label = labels[len(records) % len(labels)]
            words = rng.sample(_FILLER, rng.randint(3, 9)) + rng.sample(_CUES[label], 2)
            rng.shuffle(words)
            text = " ".join(words).capitalize() + "."
            if text not in seen:
                seen.add(text)
                records.append((text, label))
        path = tmp_path / name
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([*records, *extra])
        return path

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _gcs_server() -> Iterator[str]:
    from gcp_storage_emulator.server import create_server

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=GCS_BUCKET)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs_emulator(_gcs_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real GCS JSON API (bucket `test-bucket`) for this test; yields its URL.

    The server lives for the session; objects persist between tests, so use `gcs_root`
    (a fresh prefix) or distinct keys.
    """
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", _gcs_server)
    return _gcs_server


@pytest.fixture
def gcs_root(gcs_emulator: str) -> str:
    """A `gs://test-bucket/<unique>` prefix no other test uses."""
    return f"gs://{GCS_BUCKET}/{uuid.uuid4().hex}"


@pytest.fixture
def kube_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., FakeApiServer]]:
    """Start a FakeApiServer over the given objects (and their sequences after each
    patch), with a kubeconfig (token `t0ken`) pointing at it, as a step sees it outside a
    pod."""
    servers: list[FakeApiServer] = []

    def start(
        objects: list[dict[str, Any]] | dict[str, list[dict[str, Any]]],
        after_patches: Sequence[dict[str, list[dict[str, Any]]]] = (),
    ) -> FakeApiServer:
        server = FakeApiServer(objects, after_patches)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [
                        {
                            "name": "local",
                            "cluster": {"server": f"http://127.0.0.1:{server.server_address[1]}"},
                        }
                    ],
                    "users": [{"name": "step", "user": {"token": "t0ken"}}],
                    "contexts": [{"name": "test", "context": {"cluster": "local", "user": "step"}}],
                }
            )
        )
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def toy_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The SavedModel base folders (`<name>/1/`) of the toy models OLD and NEW."""
    root = tmp_path_factory.mktemp("toy-models")
    return {
        "old": save_toy(root / "old" / "1", OLD_CUES).parent,
        "new": save_toy(root / "new" / "1", NEW_CUES).parent,
    }


@pytest.fixture(scope="session")
def toy_servers(toy_models: dict[str, Path]) -> Iterator[dict[str, str]]:
    """OLD and NEW served on loopback as the model `textcnn`: their URLs."""
    from textcnn.serving import LocalServer, build_app, load_model

    with (
        LocalServer(build_app(load_model(toy_models["old"], "textcnn"))) as old,
        LocalServer(build_app(load_model(toy_models["new"], "textcnn"))) as new,
    ):
        yield {"old": old.url, "new": new.url}


@pytest.fixture
def network(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Any], ClusterNetwork]]:
    """The cluster's names for the step's HTTP requests (HTTP_PROXY), loopback direct."""
    started: list[ClusterNetwork] = []

    def start(routes: Any) -> ClusterNetwork:
        proxy = ClusterNetwork(routes)
        started.append(proxy)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        return proxy

    yield start
    for proxy in started:
        proxy.close()


@pytest.fixture(scope="session")
def data_slice(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Train and test CSVs: a balanced slice of the bundled data (800 and 200 rows)."""
    folder = tmp_path_factory.mktemp("slice")
    for name, rows in (("train", 800), ("test", 200)):
        df = pd.read_csv(REPO / "data" / "rt" / f"{name}.csv")
        df.groupby("label").head(rows // 2).to_csv(folder / f"{name}.csv", index=False)
    return folder / "train.csv", folder / "test.csv"
