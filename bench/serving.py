"""Serving benchmark: HTTP latency and throughput of the KServe model server against calling
the same SavedModel signature in-process. Prints a table; not a test.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/serving.py [--model_dir DIR]
        [--singles 300] [--batches 100]

The model is --model_dir, else the `model` artifact of the last local run
(runs/latest/run.json), else an untrained Kim CNN of the default size (20,000 words,
128 dimensions, filters 3,4,5 x 100, 64 tokens), which costs the same to run as a trained
one. The server runs as `python -m textcnn.serving` in its own process on a free
loopback port (as in a pod). First requests go one at a time over a keep-alive
connection; then 1, 4, 8 and 16 concurrent clients each send single-text V1 requests one
after another for --seconds in all (taking turns, in rounds), against the server with its
default batching and with batching off (`--max_batch_size 1`), the baseline of the same
run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
import tensorflow as tf

from textcnn.params import PipelineParams
from textcnn.serving import find_saved_model

LAST_RUN = Path("runs/latest/run.json")
BATCH = 32
WARM_UP = 10
CLIENTS = (1, 4, 8, 16)
ROUNDS = 4  # turns each number of clients takes (see clients_rows)


def untrained_model(base: Path) -> tuple[Path, list[str]]:
    """An untrained default-size Kim CNN export and its vocabulary."""
    from textcnn.export import export_serving_model
    from textcnn.model import ModelConfig, build_model

    defaults = PipelineParams()
    vocabulary = ["", "[UNK]", *(f"w{i}" for i in range(defaults.num_words - 2))]
    config = ModelConfig(
        vocab_size=len(vocabulary),
        max_length=64,
        num_classes=2,
        classes=["neg", "pos"],
        embedding_dim=defaults.embbeding_dim,
        filter_sizes=defaults.filter_sizes,
        num_filters=defaults.num_filters,
        num_conv_layers=defaults.num_conv_layers,
        maxpool_strides=defaults.maxpool_strides,
        dropout=defaults.dropout,
        learning_rate=defaults.learning_rate,
    )
    export_serving_model(build_model(config), vocabulary, 64, config.classes, base)
    return base, vocabulary


def pick_model(model_dir: str | None, scratch: Path) -> tuple[Path, str, list[str]]:
    """(model folder, where it came from, words to make texts of)."""
    words = (
        "the a film movie story plot good bad great dull funny long moving acting "
        "script director ending characters boring brilliant"
    ).split()
    if model_dir:
        return Path(model_dir), "--model_dir", words
    if LAST_RUN.is_file():
        model = json.loads(LAST_RUN.read_text()).get("artifacts", {}).get("model", "")
        if model and Path(model).is_dir():
            return Path(model), f"{LAST_RUN} artifacts.model", words
        print(
            f"note: {LAST_RUN} names model {model!r}, not a local folder; using an untrained model",
            file=sys.stderr,
        )
    base, vocabulary = untrained_model(scratch / "model")
    return base, "untrained default-size Kim CNN", vocabulary[2:]


def timed(call: Callable[[], object], n: int) -> np.ndarray:
    for _ in range(WARM_UP):
        call()
    seconds = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        call()
        seconds[i] = time.perf_counter() - start
    return seconds


def concurrent(
    url: str, texts: list[str], clients: int, seconds: float
) -> tuple[np.ndarray, float]:
    """`clients` threads, each on its own keep-alive connection sending single-text V1
    requests one after another for `seconds`: every latency, and requests per second."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [json.dumps({"instances": [t]}).encode() for t in texts]
    headers = {"content-type": "application/json"}
    start = threading.Barrier(clients)
    stop_at: list[float] = []

    def client(k: int) -> list[float]:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        latencies = []
        if start.wait() == 0:
            stop_at.append(time.perf_counter() + seconds)
        start.wait()
        i = k
        while time.perf_counter() < stop_at[0]:
            began = time.perf_counter()
            conn.request(
                "POST", "/v1/models/bench:predict", body=bodies[i % len(bodies)], headers=headers
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status} from the server")
            latencies.append(time.perf_counter() - began)
            i += clients
        conn.close()
        return latencies

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - began
    seconds_each = np.array([x for r in results for x in r])
    return seconds_each, len(seconds_each) / wall


def clients_rows(
    url: str, texts: list[str], seconds: float, suffix: str, rates: dict[str, float]
) -> list[tuple[str, int, np.ndarray]]:
    """A row per number of CLIENTS; each row's requests per second go into `rates`.

    The counts take turns, ROUNDS times `seconds / ROUNDS` each, in an order that reverses
    every round: a shared machine's speed drifts over seconds, and the ratios between the
    rows are the figures that matter, so each count samples the same stretch of time."""
    latencies: dict[int, list[np.ndarray]] = {clients: [] for clients in CLIENTS}
    walls = dict.fromkeys(CLIENTS, 0.0)
    for round_ in range(ROUNDS):
        for clients in CLIENTS if round_ % 2 == 0 else CLIENTS[::-1]:
            each, rate = concurrent(url, texts, clients, seconds / ROUNDS)
            latencies[clients].append(each)
            walls[clients] += len(each) / rate
    rows = []
    for clients in CLIENTS:
        name = f"HTTP V1, 1 text, {clients} clients{suffix}"
        every = np.concatenate(latencies[clients])
        rows.append((name, 1, every))
        rates[name] = len(every) / walls[clients]
    return rows


def start_server(model_dir: Path, *options: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "textcnn.serving",
            "--model_dir",
            str(model_dir),
            "--model_name",
            "bench",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            *options,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/v1/models/bench", timeout=1).status_code == 200:
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the model server over {model_dir} did not start")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_dir", default=None)
    parser.add_argument("--singles", type=int, default=300, help="single-text requests")
    parser.add_argument("--batches", type=int, default=100, help=f"{BATCH}-text requests")
    parser.add_argument(
        "--seconds",
        type=float,
        default=4.0,
        help="time each number of concurrent clients runs, over all its rounds",
    )
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as scratch:
        model_dir, source, words = pick_model(args.model_dir, Path(scratch))
        version = find_saved_model(model_dir)
        texts = [" ".join(rng.choices(words, k=rng.randint(8, 30))) for _ in range(BATCH)]
        signature = tf.saved_model.load(str(version)).signatures["serving_default"]
        one, batch = tf.constant(texts[:1]), tf.constant(texts)
        rows: list[tuple[str, int, np.ndarray]] = [
            (
                "in-process signature, 1 text",
                1,
                timed(lambda: signature(text=one)["label"].numpy(), args.singles),
            ),
            (
                f"in-process signature, {BATCH} texts",
                BATCH,
                timed(lambda: signature(text=batch)["label"].numpy(), args.batches),
            ),
        ]
        rates: dict[str, float] = {}  # concurrent rows: requests per second over the wall
        process, url = start_server(model_dir)
        try:
            session = requests.Session()
            v1, v2 = f"{url}/v1/models/bench:predict", f"{url}/v2/models/bench/infer"

            def post(endpoint: str, body: dict) -> None:
                session.post(endpoint, json=body, timeout=30).raise_for_status()

            def v2_body(items: list[str]) -> dict:
                return {
                    "inputs": [
                        {"name": "text", "shape": [len(items)], "datatype": "BYTES", "data": items}
                    ]
                }

            rows += [
                (
                    "HTTP V1, 1 text",
                    1,
                    timed(lambda: post(v1, {"instances": texts[:1]}), args.singles),
                ),
                (
                    f"HTTP V1, {BATCH} texts",
                    BATCH,
                    timed(lambda: post(v1, {"instances": texts}), args.batches),
                ),
                ("HTTP V2, 1 text", 1, timed(lambda: post(v2, v2_body(texts[:1])), args.singles)),
                (
                    f"HTTP V2, {BATCH} texts",
                    BATCH,
                    timed(lambda: post(v2, v2_body(texts)), args.batches),
                ),
            ]
            rows += clients_rows(url, texts, args.seconds, "", rates)
        finally:
            process.terminate()
            process.wait(timeout=30)
        process, url = start_server(model_dir, "--max_batch_size", "1")  # batching off
        try:
            rows += clients_rows(url, texts, args.seconds, ", no batching", rates)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"model: {version} ({source}); {os.cpu_count()} CPUs; loopback")
    print(f"{'':46} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'texts/s':>9}")
    for name, size, seconds in rows:
        p50, p99 = np.percentile(seconds, [50, 99]) * 1000
        rate = rates.get(name, len(seconds) / seconds.sum())
        print(f"{name:46} {len(seconds):8d} {p50:8.2f} {p99:8.2f} {rate:8.0f} {rate * size:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
