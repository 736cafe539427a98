"""The KServe model server (textcnn.serving) over real SavedModels, on a loopback port.

One server per module serves two models: `toy`, a tiny SavedModel with the serving
contract's signature built here (so these tests do not depend on the training code), and
`textcnn`, a small untrained Kim CNN written by textcnn.export.export_serving_model.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import tensorflow as tf
from helpers import TOY_CUES, save_toy
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import serialize_byte_tensor
from prometheus_client.parser import text_string_to_metric_families

from textcnn.errors import InputError
from textcnn.export import export_serving_model
from textcnn.http_protocol import TimedHttpToolsProtocol, Timeouts
from textcnn.model import ModelConfig, build_model
from textcnn.serving import (
    MAX_BODY_BYTES,
    MAX_TEXTS,
    LocalServer,
    build_app,
    load_model,
    texts_from_request,
)
from textcnn.serving import main as serving_main

# KServe's own endpoints return ORJSONResponse, which FastAPI now deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::fastapi.exceptions.FastAPIDeprecationWarning")


def in_process(version_dir: Path, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The reference: the same signature called directly, without HTTP."""
    out = tf.saved_model.load(str(version_dir)).signatures["serving_default"](
        text=tf.constant(list(texts))
    )
    return {k: v.numpy() for k, v in out.items()}


KIM_CLASSES = ["fresh", "rotten"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    save_toy(root / "toy" / "1")
    vocabulary = ["", "[UNK]", "bad", "film", "good", "great", "the"]
    config = ModelConfig(
        vocab_size=len(vocabulary),
        max_length=8,
        num_classes=2,
        classes=KIM_CLASSES,
        embedding_dim=4,
        filter_sizes=[2, 3],
        num_filters=3,
        num_conv_layers=1,
        maxpool_strides=2,
        dropout=0.5,
        learning_rate=1e-3,
    )
    export_serving_model(build_model(config), vocabulary, 8, KIM_CLASSES, root / "textcnn")
    return {"toy": root / "toy", "textcnn": root / "textcnn"}


@pytest.fixture(scope="module")
def url(model_dirs: dict[str, Path]) -> Iterator[str]:
    app = build_app(*(load_model(path, name) for name, path in model_dirs.items()))
    with LocalServer(app) as server:
        yield server.url


def v1(url: str, body: object, model: str = "toy") -> requests.Response:
    return requests.post(f"{url}/v1/models/{model}:predict", json=body, timeout=30)


def v2_body(texts: list, **extra: object) -> dict:
    return {
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
        **extra,
    }


def test_v1_predictions_are_the_signature_s(url: str, model_dirs: dict[str, Path]) -> None:
    texts = ["A good, great film", "awful and bad", "nothing to say", ""]
    response = v1(url, {"instances": texts})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    expected = in_process(model_dirs["toy"] / "1", texts)
    assert [p["label"] for p in predictions] == [s.decode() for s in expected["label"]]
    assert [list(p["scores"]) for p in predictions] == [list(TOY_CUES)] * len(texts)
    served = np.array([list(p["scores"].values()) for p in predictions])
    np.testing.assert_allclose(served, expected["scores"], rtol=1e-6)
    # The toy counts cue words, so the first two texts have clear answers.
    assert [p["label"] for p in predictions[:2]] == ["pos", "neg"]


def test_v2_infer_returns_label_scores_classes_and_a_string_id(
    url: str, model_dirs: dict[str, Path]
) -> None:
    texts = ["good", "bad bad", "great film"]
    response = requests.post(f"{url}/v2/models/toy/infer", json=v2_body(texts), timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["id"], str) and body["id"]
    outputs = {o["name"]: o for o in body["outputs"]}
    expected = in_process(model_dirs["toy"] / "1", texts)
    assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["shape"] == [3]
    assert outputs["label"]["data"] == [s.decode() for s in expected["label"]]
    assert outputs["scores"]["datatype"] == "FP32" and outputs["scores"]["shape"] == [3, 2]
    np.testing.assert_allclose(
        np.reshape(outputs["scores"]["data"], (3, 2)), expected["scores"], rtol=1e-6
    )
    assert outputs["classes"]["data"] == list(TOY_CUES)

    # A client's id comes back, and requested outputs limit the response.
    body = requests.post(
        f"{url}/v2/models/toy/infer",
        timeout=30,
        json=v2_body(texts, id="req-7", outputs=[{"name": "label"}]),
    ).json()
    assert body["id"] == "req-7" and [o["name"] for o in body["outputs"]] == ["label"]


def test_kserve_s_own_client_speaks_v1_and_v2(url: str, model_dirs: dict[str, Path]) -> None:
    """The pinned kserve's InferenceRESTClient, whose V2 JSON has no content type."""
    texts = ["good", "bad bad", "great film"]
    expected = in_process(model_dirs["toy"] / "1", texts)

    async def both() -> tuple[dict, InferResponse]:
        clients = [InferenceRESTClient(RESTConfig(protocol=p)) for p in ("v1", "v2")]
        try:
            v1_out = await clients[0].infer(url, {"instances": texts}, model_name="toy")
            text = InferInput(name="text", shape=[len(texts)], datatype="BYTES", data=texts)
            request = InferRequest(model_name="toy", infer_inputs=[text])
            return v1_out, await clients[1].infer(url, request, model_name="toy")
        finally:
            for client in clients:
                await client.close()

    v1_out, v2_out = asyncio.run(both())
    assert isinstance(v1_out, dict) and isinstance(v2_out, InferResponse)
    labels = [s.decode() for s in expected["label"]]
    assert [p["label"] for p in v1_out["predictions"]] == labels
    outputs = {o.name: o for o in v2_out.outputs}
    assert outputs["label"].data == labels
    np.testing.assert_allclose(
        np.reshape(outputs["scores"].data, (3, 2)), expected["scores"], rtol=1e-6
    )


def binary_v2(url: str, shape: list, texts: list[bytes], cut: int = 0) -> requests.Response:
    """A V2 request in the binary tensor extension: its JSON, then the texts laid out as
    KServe's client lays them out (each text after its 4-byte length), less `cut` bytes."""
    raw = serialize_byte_tensor(np.array(texts, dtype=np.object_)).item()
    raw = raw[: len(raw) - cut]
    parameters = {"binary_data_size": len(raw)}
    text = {"name": "text", "shape": shape, "datatype": "BYTES", "parameters": parameters}
    head = json.dumps({"inputs": [text]}).encode()
    return requests.post(
        f"{url}/v2/models/toy/infer",
        data=head + raw,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(head)),
        },
        timeout=30,
    )


def test_the_binary_tensor_extension_is_read(url: str, model_dirs: dict[str, Path]) -> None:
    texts = ["good", "bad bad", "great film"]
    response = binary_v2(url, [3], [t.encode() for t in texts])
    assert response.status_code == 200, response.text
    labels = {o["name"]: o for o in response.json()["outputs"]}["label"]["data"]
    assert labels == [s.decode() for s in in_process(model_dirs["toy"] / "1", texts)["label"]]


BAD_BINARY = {
    "shape -1": ([-1], [b"good", b"bad"], 0, "shape [2,], expected [-1]"),
    "shape larger than the data": ([3], [b"good", b"bad"], 0, "size 2 into shape (3,)"),
    "shape not a number": ([True], [b"good"], 0, "integer"),
    "data cut short": ([2], [b"good", b"bad"], 2, "unpack"),
    "text not UTF-8": ([1], [b"\xff"], 0, "UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD_BINARY))
def test_binary_tensor_data_that_does_not_decode_is_a_json_400(url: str, case: str) -> None:
    """KServe's decoder fails on these with errors its handlers answer 500."""
    shape, texts, cut, words = BAD_BINARY[case]
    response = binary_v2(url, shape, texts, cut)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("binary tensor data does not decode: ") and words in error, error
    assert v1(url, {"instances": ["great"]}).json()["predictions"][0]["label"] == "pos"


def test_a_body_without_content_type_is_json_only_when_it_parses(url: str) -> None:
    body = json.dumps(v2_body(["good"])).encode()
    ok = requests.post(f"{url}/v2/models/toy/infer", data=body, timeout=30)
    assert ok.request.headers.get("content-type") is None
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == ["pos"]
    # Not JSON, no content type: KServe reads it as the binary extension, and refuses it.
    bad = requests.post(f"{url}/v2/models/toy/infer", data=b"\x00\x01 not json", timeout=30)
    assert bad.status_code == 400 and "error" in bad.json()
    assert requests.post(f"{url}/v2/models/toy/infer", json=v2_body(["bad"]), timeout=30).ok


def test_exported_kim_cnn_is_served(url: str, model_dirs: dict[str, Path]) -> None:
    texts = ["the good film", "a bad , bad film !", "words it has never seen"]
    predictions = v1(url, {"instances": texts}, model="textcnn").json()["predictions"]
    expected = in_process(model_dirs["textcnn"] / "1", texts)
    assert [p["label"] for p in predictions] == [s.decode() for s in expected["label"]]
    np.testing.assert_allclose(
        [list(p["scores"].values()) for p in predictions], expected["scores"], rtol=1e-5
    )
    assert all(list(p["scores"]) == KIM_CLASSES for p in predictions)
    body = requests.post(f"{url}/v2/models/textcnn/infer", json=v2_body(texts), timeout=30)
    labels = {o["name"]: o for o in body.json()["outputs"]}["label"]["data"]
    assert labels == [p["label"] for p in predictions]


def test_health_readiness_and_metadata(url: str) -> None:
    assert requests.get(f"{url}/v1/models/toy", timeout=5).json() == {"name": "toy", "ready": True}
    assert requests.get(f"{url}/v2/health/live", timeout=5).json() == {"live": True}
    assert requests.get(f"{url}/v2/models/textcnn/ready", timeout=5).json()["ready"] is True
    metadata = requests.get(f"{url}/v2/models/textcnn", timeout=5).json()
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"]: o["shape"] for o in metadata["outputs"]} == {
        "label": [-1],
        "scores": [-1, 2],
        "classes": [2],
    }
    assert requests.get(f"{url}/v1/models/nope", timeout=5).status_code == 404


def predict_count(url: str, model: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "request_predict_seconds_count"
                and sample.labels.get("model_name") == model
            ):
                return sample.value
    return 0.0


def test_prometheus_metrics_count_predictions(url: str) -> None:
    before = predict_count(url, "toy")
    for _ in range(3):
        assert v1(url, {"instances": ["good"]}).status_code == 200
    assert predict_count(url, "toy") == before + 3


def _chunks(payload: bytes) -> Iterator[bytes]:
    # A generator body is sent chunked, without a Content-Length to check up front.
    for i in range(0, len(payload), 65536):
        yield payload[i : i + 65536]


BIG_TEXT = "good " * (MAX_BODY_BYTES // 5 + 1)
BAD_REQUESTS = {
    "malformed JSON": ("v1", {"data": b'{"instances": ["good"'}, 400, "request format"),
    "malformed JSON, text/plain": (
        "v1",
        {"data": b"{oops", "headers": {"content-type": "text/plain"}},
        400,
        "not JSON",
    ),
    "no instances": ("v1", {"json": {"texts": ["good"]}}, 400, "instances"),
    "not an object": ("v1", {"json": ["good"]}, 400, "instances"),
    "instances not a list": ("v1", {"json": {"instances": "good"}}, 400, "list"),
    "non-string instance": ("v1", {"json": {"instances": ["good", 3]}}, 400, "text 1 is int"),
    "empty list": ("v1", {"json": {"instances": []}}, 400, "at least one"),
    "nested lists": ("v1", {"json": {"instances": [["good"]]}}, 400, "text 0 is list"),
    "unknown model": ("v1", {"json": {"instances": ["good"]}, "model": "nope"}, 404, "nope"),
    "oversized body": ("v1", {"json": {"instances": [BIG_TEXT]}}, 413, str(MAX_BODY_BYTES)),
    "oversized chunked body": (
        "v1",
        {"data": _chunks(b'{"instances": ["' + BIG_TEXT.encode() + b'"]}')},
        413,
        str(MAX_BODY_BYTES),
    ),
    "too many texts": (
        "v1",
        {"json": {"instances": ["a"] * (MAX_TEXTS + 1)}},
        413,
        f"at most {MAX_TEXTS}",
    ),
    "V2 wrong input name": (
        "v2",
        {
            "json": {
                "inputs": [{"name": "txt", "shape": [1], "datatype": "BYTES", "data": ["good"]}]
            }
        },
        400,
        "named 'text'",
    ),
    "V2 two inputs": (
        "v2",
        {"json": {"inputs": [v2_body(["a"])["inputs"][0]] * 2}},
        400,
        "exactly one",
    ),
    "V2 wrong datatype": (
        "v2",
        {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}},
        400,
        "BYTES",
    ),
    "V2 2-D shape": (
        "v2",
        {
            "json": {
                "inputs": [{"name": "text", "shape": [1, 1], "datatype": "BYTES", "data": ["good"]}]
            }
        },
        400,
        "shape [N]",
    ),
    "V2 shape not matching data": (
        "v2",
        {
            "json": {
                "inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["good"]}]
            }
        },
        400,
        "does not match shape",
    ),
    "V2 shape -1": (
        "v2",
        {"json": {"inputs": [{"name": "text", "shape": [-1], "datatype": "BYTES", "data": ["a"]}]}},
        400,
        "input 'text' has shape [-1]; it must have shape [N]",
    ),
    "V2 nested data": (
        "v2",
        {
            "json": {
                "inputs": [
                    {"name": "text", "shape": [2], "datatype": "BYTES", "data": [["a"], ["b"]]}
                ]
            }
        },
        400,
        "input 'text' of shape [2]: data element 0 is a list",
    ),
    "V2 nested data, one row": (
        "v2",
        {
            "json": {
                "inputs": [
                    {"name": "text", "shape": [2], "datatype": "BYTES", "data": [["a", "b"]]}
                ]
            }
        },
        400,
        "input 'text' of shape [2]: data element 0 is a list",
    ),
    "V2 more data than its shape": (
        "v2",
        {
            "json": {
                "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a", "b"]}]
            }
        },
        400,
        "input 'text': data of 2 elements does not match shape [1]",
    ),
    "V2 non-string data": (
        "v2",
        {"json": {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [5]}]}},
        400,
        "not a string",
    ),
    "V2 empty": ("v2", {"json": v2_body([])}, 400, "at least one"),
    "V2 inputs not a list": ("v2", {"json": {"inputs": "good"}}, 400, "inputs"),
    "V2 unknown model": ("v2", {"json": v2_body(["good"]), "model": "nope"}, 404, "nope"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_json_4xx_and_the_server_keeps_serving(url: str, case: str) -> None:
    protocol, kwargs, status, words = BAD_REQUESTS[case]
    kwargs = dict(kwargs)
    model = kwargs.pop("model", "toy")
    path = f"/v1/models/{model}:predict" if protocol == "v1" else f"/v2/models/{model}/infer"
    response = requests.post(url + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    good = v1(url, {"instances": ["great"]})
    assert good.status_code == 200 and good.json()["predictions"][0]["label"] == "pos"


def test_highest_numeric_version_is_loaded(tmp_path: Path) -> None:
    # 10 > 9 as numbers, not as strings; a folder that is not a version is ignored.
    save_toy(tmp_path / "9", {"a": ["x"], "b": ["y"]})
    save_toy(tmp_path / "10", {"up": ["x"], "down": ["y"]})
    (tmp_path / "99-notes").mkdir()
    assert load_model(tmp_path, "m").classes == ["up", "down"]
    assert load_model(tmp_path / "9", "m").classes == ["a", "b"]  # a version folder itself


def test_model_folder_problems_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing: no saved_model\.pb .*--model_dir"):
        load_model(tmp_path / "missing", "m")

    module = tf.Module()
    module.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(
        module, str(tmp_path / "other" / "1"), signatures={"serving_default": module.f}
    )
    with pytest.raises(InputError, match=r"expected text -> scores, classes, label"):
        load_model(tmp_path / "other", "m")


def test_the_entrypoint_says_a_model_folder_is_missing_in_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serving_main(["--model_dir", str(tmp_path / "gone"), "--model_name", "m"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: serving: {tmp_path / 'gone'}: no saved_model.pb") and (
        "point --model_dir at the exported model folder" in err
    )


def test_command_line_entrypoint_serves(model_dirs: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "textcnn.serving",
            "--model_dir",
            str(model_dirs["toy"]),
            "--model_name",
            "cli-toy",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                if requests.get(f"{base}/v1/models/cli-toy", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        label = v1(base, {"instances": ["awful"]}, model="cli-toy").json()["predictions"][0]
        assert label["label"] == "neg"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _closed_within(conn: socket.socket, seconds: float) -> bytes:
    """What the server sends before it closes `conn`; fails if it is still open after
    `seconds`."""
    conn.settimeout(seconds)
    received = b""
    try:
        while chunk := conn.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"connection still open after {seconds} s; received {received!r}")
    return received


def _response(conn: socket.socket) -> bytes:
    """One whole response (headers and a content-length body) from `conn`."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += conn.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(4096)
    return head + b"\r\n\r\n" + body


# Deadlines short enough to watch expire in a test.
SHORT_TIMEOUTS = Timeouts(header_s=0.5, request_s=1.0, keep_alive_s=2.0)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _predict_request(body: bytes = b'{"instances": ["awful"]}') -> bytes:
    return (
        b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def test_stalled_connections_are_closed_and_the_server_keeps_serving(
    model_dirs: dict[str, Path],
) -> None:
    app = build_app(load_model(model_dirs["toy"], "toy"))
    with LocalServer(app, timeouts=SHORT_TIMEOUTS) as server:
        address = _address(server.url)
        silent = [socket.create_connection(address) for _ in range(50)]  # send nothing
        partial = socket.create_connection(address)
        partial.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n")  # no end
        slow_body = socket.create_connection(address)
        slow_body.sendall(_predict_request(b"{" + b" " * 99)[:-99])  # 1 byte of 100
        # Kept-alive connections after one request: the second stalls in its headers;
        # one sends only the CRLFs a parser skips; one stays idle, healthy, past request_s.
        second, crlf, idle = (socket.create_connection(address) for _ in range(3))
        for c in (second, crlf, idle):
            c.sendall(_predict_request())
            assert _response(c).startswith(b"HTTP/1.1 200 ")
        second.sendall(b"POST /v1/models/toy:predict HTTP/1.1\r\n")
        crlf.sendall(b"\r\n\r\n")
        # Answered 413 before its body is read; the rest of the body never comes.
        too_big = socket.create_connection(address)
        too_big.sendall(_predict_request(b"{" + b" " * (2 << 20))[: -(2 << 20)])
        start = time.monotonic()
        # Meanwhile the server answers others.
        assert v1(server.url, {"instances": ["awful"]}).status_code == 200

        assert all(_closed_within(c, 5) == b"" for c in silent)  # closed, no answer
        answer = _closed_within(partial, 5)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"headers not received" in answer
        answer = _closed_within(slow_body, 5)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"request not received" in answer
        answer = _closed_within(second, 5)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"headers not received" in answer
        assert _closed_within(crlf, 5) == b""
        answer = _closed_within(too_big, 5)  # one answer to one request: no 408 after it
        assert answer.startswith(b"HTTP/1.1 413 ") and answer.count(b"HTTP/1.1 ") == 1
        assert time.monotonic() - start < 5
        idle.sendall(_predict_request())  # idle for longer than request_s: still served
        assert _response(idle).startswith(b"HTTP/1.1 200 ")
        for c in (*silent, partial, slow_body, second, crlf, too_big, idle):
            c.close()
        assert v1(server.url, {"instances": ["awful"]}).json()["predictions"][0]["label"] == "neg"


def test_a_request_pipelined_behind_a_slow_answer_keeps_its_time_and_that_answer(
    model_dirs: dict[str, Path],
) -> None:
    """HTTP/1.1 pipelining: while an answer runs, uvicorn reads no further, so the next
    request's deadline waits its turn; the answer in flight is never cut off by it."""
    model = load_model(model_dirs["toy"], "toy")
    infer = model.batcher.infer

    def slow(texts: list[str]) -> list[tuple[str, np.ndarray]]:
        time.sleep(2.5)  # longer than request_s
        return list(infer(texts))

    model.batcher.infer = slow
    with LocalServer(build_app(model), timeouts=SHORT_TIMEOUTS) as server:
        conn = socket.create_connection(_address(server.url))
        # A whole request, then the next one's headers and 1 byte of its 100-byte body.
        conn.sendall(_predict_request() + _predict_request(b"{" + b" " * 99)[:-99])
        answers = _closed_within(conn, 10)
        conn.close()
    first, _, second = answers.partition(b"HTTP/1.1 408 ")
    assert first.startswith(b"HTTP/1.1 200 ") and b'"label":"neg"' in first, answers
    assert b"request not received" in second, answers


def _answers(raw: bytes) -> list[tuple[int, str, bytes]]:
    """The status, content type and body of each response in `raw` (content-length bodies)."""
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        length = int(headers["content-length"])
        answers.append((int(status_line.split()[1]), headers["content-type"], rest[:length]))
        raw = rest[length:]
    return answers


def _json_error(answer: tuple[int, str, bytes]) -> tuple[int, str]:
    status, content_type, body = answer
    assert content_type == "application/json", answer
    return status, json.loads(body)["error"]


def _label(answer: tuple[int, str, bytes]) -> str:
    status, _, body = answer
    assert status == 200, answer
    return json.loads(body)["predictions"][0]["label"]


POST = b"POST /v1/models/toy:predict HTTP/1.1\r\nHost: x\r\n"
# Requests the HTTP parser refuses, and what its reason says.
MALFORMED = {
    "request line": (b"GARBAGE\r\n\r\n", "Invalid method"),
    "HTTP version": (b"GET / HTTP/9.x\r\n\r\n", "Invalid minor version"),
    "negative Content-Length": (POST + b"Content-Length: -5\r\n\r\n", "Content-Length"),
    "Content-Length with Transfer-Encoding": (
        POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding can't be present with Content-Length",
    ),
    "URL": (b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n", "invalid url"),
    "chunk size": (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_request_the_parser_refuses_gets_a_json_400_and_its_connection_is_closed(
    url: str, case: str
) -> None:
    request, reason = MALFORMED[case]
    with socket.create_connection(_address(url)) as conn:
        conn.sendall(request)
        (answer,) = _answers(_closed_within(conn, 10))
    status, error = _json_error(answer)
    assert status == 400 and error.startswith("invalid HTTP request: ") and reason in error
    assert v1(url, {"instances": ["awful"]}).json()["predictions"][0]["label"] == "neg"


@pytest.mark.parametrize(
    "broken",
    [b"GARBAGE\r\n\r\n", POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"],
    ids=["next request line", "next request's body"],
)
def test_a_valid_request_sent_with_a_broken_one_is_answered_first(url: str, broken: bytes) -> None:
    """One packet, two requests: the error in the second must not cut off the first's
    answer, which is still being computed when the parser reaches it."""
    with socket.create_connection(_address(url)) as conn:
        conn.sendall(_predict_request() + broken)
        answers = _answers(_closed_within(conn, 10))
    assert len(answers) == 2, answers
    assert _label(answers[0]) == "neg"
    status, error = _json_error(answers[1])
    assert status == 400 and error.startswith("invalid HTTP request: ")


UPGRADE = {
    "WebSocket": b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    "h2c": b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n",
}


@pytest.mark.parametrize("protocol", list(UPGRADE))
def test_an_upgrade_is_declined_and_the_request_answered_as_http_1_1(
    url: str, protocol: str
) -> None:
    """The server takes no upgrade (it has no WebSocket route): it answers the request as
    HTTP/1.1, as RFC 9110 7.8 lets it, and reads on: a request sent after it in the same
    packet is answered too."""
    ready = b"GET /v1/models/toy HTTP/1.1\r\nHost: x\r\n" + UPGRADE[protocol] + b"\r\n"
    last = _predict_request().replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    with socket.create_connection(_address(url)) as conn:
        conn.sendall(ready + last)
        answers = _answers(_closed_within(conn, 30))
    assert len(answers) == 2, answers
    assert answers[0][:2] == (200, "application/json"), answers
    assert json.loads(answers[0][2]) == {"name": "toy", "ready": True}
    assert _label(answers[1]) == "neg"


def test_an_upgrade_with_a_body_is_refused_with_a_json_400(url: str) -> None:
    """The parser skips the body of any request asking to upgrade, so the server cannot
    answer one with a body as HTTP/1.1: it says so, where uvicorn would answer the request
    as if it had no body and read the body as the next request."""
    request = _predict_request().replace(b"Host: x\r\n", b"Host: x\r\n" + UPGRADE["h2c"])
    with socket.create_connection(_address(url)) as conn:
        conn.sendall(request)
        (answer,) = _answers(_closed_within(conn, 30))
    status, error = _json_error(answer)
    assert status == 400 and "Upgrade" in error and "without" in error, error


def test_a_deadline_missed_behind_an_answer_being_computed_waits_for_that_answer(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next request's headers stall while the first answer is computed (uvicorn reads
    on: it is not queued): its 408 comes after that answer, not instead of it."""
    expired = threading.Event()
    expire = TimedHttpToolsProtocol._expire

    def observed(self: TimedHttpToolsProtocol, what: str) -> None:
        expire(self, what)
        expired.set()

    monkeypatch.setattr(TimedHttpToolsProtocol, "_expire", observed)
    model = load_model(model_dirs["toy"], "toy")
    infer = model.batcher.infer

    def after_the_deadline(texts: list[str]) -> list[tuple[str, np.ndarray]]:
        assert expired.wait(timeout=30), "the header deadline never expired"
        return list(infer(texts))

    model.batcher.infer = after_the_deadline
    with (
        LocalServer(build_app(model), timeouts=SHORT_TIMEOUTS) as server,
        socket.create_connection(_address(server.url)) as conn,
    ):
        conn.sendall(_predict_request() + POST)  # the next request's headers never end
        answers = _answers(_closed_within(conn, 30))
    assert len(answers) == 2, answers
    assert _label(answers[0]) == "neg"
    assert _json_error(answers[1]) == (408, "request timed out: headers not received in time")


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    model_dirs: dict[str, Path],
) -> None:
    model = load_model(model_dirs["toy"], "toy", max_batch_size=64, max_latency_ms=20)
    texts = [f"{'good ' * (i % 3)}{'bad ' * (i % 2)}film {i}" for i in range(24)]
    expected = in_process(model_dirs["toy"] / "1", texts)["label"]
    with LocalServer(build_app(model)) as server:
        for _ in range(5):  # until the server has had requests in flight together
            start = threading.Barrier(len(texts))

            def ask(i: int, start: threading.Barrier = start) -> str:
                start.wait()
                response = v1(server.url, {"instances": [texts[i]]})
                assert response.status_code == 200, response.text
                return response.json()["predictions"][0]["label"]

            with ThreadPoolExecutor(len(texts)) as pool:
                labels = list(pool.map(ask, range(len(texts))))
            assert labels == [s.decode() for s in expected]
            if max(model.batcher.sizes) > 1:
                break
    assert max(model.batcher.sizes) > 1, model.batcher.sizes
    # Every text went through the batcher once (the warm-up call at load does not).
    assert sum(n * calls for n, calls in model.batcher.sizes.items()) % len(texts) == 0


def test_a_lone_surrogate_is_a_400_not_a_failed_batch(url: str) -> None:
    r"""JSON can escape `\ud800`, no text TensorFlow can take: the client's error, so it
    never reaches a batch shared with other requests (`texts_from_request` refuses it too,
    where a decoder lets it through)."""
    bad = "bad \ud800"
    for response in (
        v1(url, {"instances": ["fine", bad]}),
        requests.post(f"{url}/v2/models/toy/infer", json=v2_body([bad]), timeout=30),
    ):
        assert response.status_code == 400 and "surrogate" in response.json()["error"]
    with pytest.raises(InvalidInput, match="text 1 is not valid Unicode"):
        texts_from_request({"instances": ["fine", bad]})
    assert v1(url, {"instances": ["good film"]}).status_code == 200
