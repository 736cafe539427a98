"""The project's KServe model server: raw texts in, labels and class scores out.

A `kserve.Model` over the exported SavedModel's `serving_default` signature (called as a
concrete function: `model.predict` is ~60x slower per request). It speaks both KServe
protocols on one port, through KServe's own REST endpoints and error handlers:

- V1: `POST /v1/models/NAME:predict` with `{"instances": ["text", ...]}` ->
  `{"predictions": [{"label": "pos", "scores": {"neg": 0.1, "pos": 0.9}}, ...]}`;
  `GET /v1/models/NAME` (readiness).
- V2 (Open Inference Protocol): `POST /v2/models/NAME/infer` with one BYTES input `text`
  of shape [N] -> outputs `label` (BYTES [N]), `scores` (FP32 [N, C]) and `classes`
  (BYTES [C], the column names of `scores`); `/v2/health/live`, `/v2/models/NAME/ready`.
- `GET /metrics`: KServe's Prometheus histograms (pre/post-process and predict latency).

Concurrent requests are batched into one signature call (textcnn.batcher: up to
--max_batch_size texts, waiting at most --max_latency_ms under load).

Limits: a request body of at most 1 MiB and at most 1000 texts, else 413; headers within
10 s, the whole request within 60 s, else 408 and the connection is closed (see
textcnn.http_protocol). Every bad request gets a 4xx with `{"error": "..."}` and the
server keeps serving.

Entrypoint of the serving image: `python -m textcnn.serving --model_dir D --model_name N
--port P [--host H]`. `ModelServer.start()` always binds 0.0.0.0 (and opens gRPC), so the
app is built here and served by uvicorn on the host asked for.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import tensorflow as tf
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import FastAPIDeprecationWarning, RequestValidationError
from fastapi.responses import JSONResponse
from kserve import Model, ModelServer
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
    generic_exception_handler,
    inference_error_handler,
    model_not_ready_handler,
    not_implemented_error_handler,
    server_not_live_handler,
    server_not_ready_handler,
    unsupported_protocol_error_handler,
)
from kserve.logging import logger
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.server import metrics_handler
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

from textcnn.batcher import Batcher
from textcnn.errors import InputError
from textcnn.http_protocol import DEFAULTS, Timeouts, server_config
from textcnn.params import PipelineParams

SIGNATURE = "serving_default"
INPUT = "text"
MAX_BODY_BYTES = 1 << 20
MAX_TEXTS = 1000
# Adaptive batching (textcnn.batcher): the pipeline's --max_batch_size and --max_latency_ms.
MAX_BATCH_SIZE: int = PipelineParams.model_fields["max_batch_size"].default
MAX_LATENCY_MS: int = PipelineParams.model_fields["max_latency_ms"].default

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
    Awaitable[None],
]


class PayloadTooLarge(InvalidInput):
    """More data than one request may carry (HTTP 413)."""


def _client_error(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering `status` with KServe's `{"error": ...}` body and one log line
    (KServe's own handlers log a full traceback, which a client's mistake does not need)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        message = str(exc)
        if isinstance(exc, RequestValidationError):  # FastAPI's 422 {"detail": ...}
            message = "invalid V2 request: " + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                for e in exc.errors()
            )
        logger.warning("%s %s: %d %s", request.method, request.url.path, status, message)
        return JSONResponse(status_code=status, content={"error": message})

    return handler


def texts_from_request(payload: dict[str, Any] | InferRequest | bytes | str) -> list[str]:
    """The texts of a V1 body (decoded JSON) or a V2 request; InvalidInput (400) or
    PayloadTooLarge (413) naming what is wrong. The one place where requests are checked."""
    if isinstance(payload, InferRequest):
        items = _v2_items(payload)
    else:
        if isinstance(payload, (bytes, str)):  # a content type KServe did not decode as JSON
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError as e:
                raise InvalidInput(f"request body is not JSON: {e}") from None
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InvalidInput('expected a JSON object {"instances": ["text", ...]}')
        items = payload["instances"]
        if not isinstance(items, list):
            raise InvalidInput('"instances" must be a list of strings')
    if not items:
        raise InvalidInput("no texts: send at least one")
    if len(items) > MAX_TEXTS:
        raise PayloadTooLarge(f"{len(items)} texts in one request; send at most {MAX_TEXTS}")
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInput(f"text {i} is {type(item).__name__}, not a string")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (\ud800) that JSON lets through
            raise InvalidInput(f"text {i} is not valid Unicode (a lone surrogate)") from None
    return list(items)


def _v2_items(request: InferRequest) -> list[Any]:
    """The data of the one input `text`, a BYTES tensor of shape [N] given as N elements.

    KServe has decoded the binary tensor extension into such a list already. The Open
    Inference Protocol lets a tensor's data be nested as its shape is, so the data of shape
    [N] is flat: numpy would flatten nested data into the shape, hiding the mismatch.
    """
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT:
        names = [i.name for i in request.inputs]
        raise InvalidInput(f"expected exactly one input named {INPUT!r}, got {names}")
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"input {INPUT!r} must have datatype BYTES, not {tensor.datatype}")
    shape, data = list(tensor.shape), tensor.data
    if len(shape) != 1 or shape[0] < 0:  # KServe's request model makes them integers
        raise InvalidInput(
            f"input {INPUT!r} has shape {shape}; it must have shape [N], N the number of "
            "texts (a non-negative integer)"
        )
    nested = next((i for i, item in enumerate(data) if isinstance(item, list)), None)
    if nested is not None:
        raise InvalidInput(
            f"input {INPUT!r} of shape {shape}: data element {nested} is a list; "
            "send the texts as a flat list"
        )
    if len(data) != shape[0]:
        raise InvalidInput(
            f"input {INPUT!r}: data of {len(data)} elements does not match shape {shape}"
        )
    return list(data)


def find_saved_model(model_dir: str | Path) -> Path:
    """`model_dir` itself if it holds saved_model.pb, else its highest numeric version folder."""
    base = Path(model_dir)
    if (base / "saved_model.pb").is_file():
        return base
    versions = (
        [
            (int(p.name), p)
            for p in base.iterdir()
            if p.name.isdigit() and (p / "saved_model.pb").is_file()
        ]
        if base.is_dir()
        else []
    )
    if versions:
        return max(versions)[1]
    raise InputError(
        f"{base}: no saved_model.pb in it nor in a numeric version folder such as "
        f"{base / '1'}; point --model_dir at the exported model folder"
    )


class TextClassifier(Model):
    """A KServe model serving the `serving_default(text) -> scores, classes, label` signature."""

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        max_batch_size: int = MAX_BATCH_SIZE,
        max_latency_ms: float = MAX_LATENCY_MS,
    ) -> None:
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.classes: list[str] = []
        self.batcher = Batcher(self._rows, max_batch_size, max_latency_ms)

    def load(self) -> bool:
        path = find_saved_model(self.model_dir)
        self._loaded = tf.saved_model.load(str(path))  # the signature only weakly refers to it
        signatures = self._loaded.signatures
        if SIGNATURE not in signatures:
            raise InputError(f"{path}: no {SIGNATURE!r} signature; re-export the model")
        self._signature = signatures[SIGNATURE]
        inputs = self._signature.structured_input_signature[1]
        outputs = self._signature.structured_outputs
        if set(inputs) != {INPUT} or not {"scores", "classes", "label"} <= set(outputs):
            raise InputError(
                f"{path}: {SIGNATURE} takes {sorted(inputs)} and returns {sorted(outputs)}; "
                f"expected text -> scores, classes, label"
            )
        self.classes = self.infer(["warm-up"])[1]  # one call up front: the first is slow
        self.ready = True
        return self.ready

    def infer(self, texts: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
        """Scores [N, C], the class names [C] and the labels [N] of a batch of texts."""
        out = self._signature(text=tf.constant(texts, dtype=tf.string))
        classes = [c.decode("utf-8") for c in out["classes"].numpy()[0]]
        labels = [s.decode("utf-8") for s in out["label"].numpy()]
        return out["scores"].numpy().astype(np.float32), classes, labels

    def _rows(self, texts: list[str]) -> list[tuple[str, np.ndarray]]:
        scores, _, labels = self.infer(texts)
        return list(zip(labels, scores, strict=True))

    async def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        texts = texts_from_request(payload)
        rows = await self.batcher.submit(texts)  # with other requests' texts, in one call
        labels = [label for label, _ in rows]
        scores = np.stack([row for _, row in rows])
        classes = self.classes
        if not isinstance(payload, InferRequest):
            return {
                "predictions": [
                    {"label": label, "scores": dict(zip(classes, map(float, row), strict=True))}
                    for label, row in zip(labels, scores, strict=True)
                ]
            }
        outputs = [
            InferOutput("label", [len(labels)], "BYTES", np.array(labels, dtype=np.object_)),
            InferOutput("scores", list(scores.shape), "FP32", scores),
            InferOutput("classes", [len(classes)], "BYTES", np.array(classes, dtype=np.object_)),
        ]
        return InferResponse(
            response_id=payload.id or uuid.uuid4().hex,  # V2 responses need a string id
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, len(self.classes)]},
            {"name": "classes", "datatype": "BYTES", "shape": [len(self.classes)]},
        ]


class DecodingDataPlane(DataPlane):
    """KServe's data plane, but a binary tensor extension request that does not decode is
    the client's error (400): KServe's decoder (InferRequest.from_bytes) fails on a shape
    or size the bytes do not fill, or text that is not UTF-8, with errors answered 500."""

    def decode_inference_request(
        self, body: Any, headers: dict[str, str], model_name: str
    ) -> InferRequest:
        if not isinstance(body, bytes):  # JSON, which FastAPI has validated by its model
            return super().decode_inference_request(body, headers, model_name)
        try:
            return super().decode_inference_request(body, headers, model_name)
        except InvalidInput:
            raise
        except (ValueError, TypeError, KeyError, struct.error, InferenceError) as e:
            reason = f"{e} is missing" if isinstance(e, KeyError) else str(e)
            raise InvalidInput(f"binary tensor data does not decode: {reason}") from None


JSON_TYPE = b"application/json"


def _parses_as_json(body: bytes) -> bool:
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return True


class RequestBody:
    """ASGI middleware: answer 413 to a request body over `max_bytes`, before any parsing;
    and read a body sent with no content type as JSON when it parses as JSON.

    KServe's own `InferenceRESTClient` sends V2 JSON without a content type, which KServe's
    REST server takes for the binary extension (and rejects for lack of its
    `inference-header-content-length`); only a declared type selects the binary form.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, send)
            return
        # Read the whole (small) body here so a chunked upload is bounded too, then replay it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._reject(scope, send)
                return
        body = b"".join(chunks)
        if b"content-type" not in dict(scope["headers"]) and body and _parses_as_json(body):
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", JSON_TYPE)]}
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: MutableMapping[str, Any], send: Any) -> None:
        logger.warning(
            "%s %s: 413 body over %d bytes", scope["method"], scope["path"], self.max_bytes
        )
        body = orjson.dumps(
            {
                "error": f"request body larger than {self.max_bytes} bytes; "
                f"send at most {MAX_TEXTS} texts per request"
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", JSON_TYPE),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def build_app(*models: Model) -> FastAPI:
    """KServe's REST app (V1, V2, /metrics and its error handlers) serving `models`."""
    server = ModelServer(enable_grpc=False)
    for model in models:
        server.register_model(model)
    dataplane = DecodingDataPlane(server.registered_models, server.dataplane.predictor_config)
    app = FastAPI(title="textcnn model server", docs_url=None, redoc_url=None)
    app.add_api_route("/", dataplane.live, methods=["GET"])
    app.add_api_route("/metrics", metrics_handler, methods=["GET"])
    register_v1_endpoints(app, dataplane, server.model_repository_extension)
    register_v2_endpoints(app, dataplane, server.model_repository_extension)
    for exc, handler in [
        (PayloadTooLarge, _client_error(413)),
        (InvalidInput, _client_error(400)),
        (RequestValidationError, _client_error(400)),
        (ModelNotFound, _client_error(404)),
        (InferenceError, inference_error_handler),
        (ModelNotReady, model_not_ready_handler),
        (NotImplementedError, not_implemented_error_handler),
        (UnsupportedProtocol, unsupported_protocol_error_handler),
        (ServerNotLive, server_not_live_handler),
        (ServerNotReady, server_not_ready_handler),
        (Exception, generic_exception_handler),
    ]:
        app.add_exception_handler(exc, handler)
    app.add_middleware(RequestBody)
    return app


def load_model(
    model_dir: str | Path,
    model_name: str,
    max_batch_size: int = MAX_BATCH_SIZE,
    max_latency_ms: float = MAX_LATENCY_MS,
) -> TextClassifier:
    model = TextClassifier(model_name, model_dir, max_batch_size, max_latency_ms)
    model.load()
    return model


class LocalServer:
    """A model server on a loopback port in a background thread (tests, benchmarks, local runs).

    Use as a context manager: `with LocalServer(build_app(model)) as server: server.url`.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        timeouts: Timeouts = DEFAULTS,
    ) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))  # bound here, so the port is known and free
        self.url = f"http://{host}:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(server_config(app, timeouts))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self, timeout_s: float = 30.0) -> LocalServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"model server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def serve(
    model_dir: str,
    model_name: str,
    port: int,
    host: str = "127.0.0.1",
    timeouts: Timeouts = DEFAULTS,
    max_batch_size: int = MAX_BATCH_SIZE,
    max_latency_ms: float = MAX_LATENCY_MS,
) -> None:
    """Load the model and serve it until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    app = build_app(load_model(model_dir, model_name, max_batch_size, max_latency_ms))
    serve_app(app, port, host, timeouts)


def serve_app(
    app: FastAPI, port: int, host: str = "127.0.0.1", timeouts: Timeouts = DEFAULTS
) -> None:
    """Serve `app` until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    uvicorn.Server(server_config(app, timeouts, host=host, port=port)).run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m textcnn.serving",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model_dir",
        required=True,
        help="SavedModel folder, or a base folder with numeric versions",
    )
    parser.add_argument("--model_name", required=True, help="name in the /v1 and /v2 routes")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 in a pod")
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=MAX_BATCH_SIZE,
        help=f"most texts per model call when requests are batched (default: {MAX_BATCH_SIZE})",
    )
    parser.add_argument(
        "--max_latency_ms",
        type=float,
        default=MAX_LATENCY_MS,
        help="most milliseconds a batch waits for more texts under load (default: "
        f"{MAX_LATENCY_MS}); a lone request never waits",
    )
    for name, about in (
        ("header_s", "seconds a client has to send a request's headers"),
        ("request_s", "seconds a client has to send a whole request"),
        ("keep_alive_s", "seconds an idle kept-alive connection stays open"),
    ):
        default = getattr(DEFAULTS, name)
        parser.add_argument(
            f"--{name.replace('_s', '_timeout_s')}",
            dest=name,
            type=float,
            default=default,
            help=f"{about} (default: {default:g}); a stalled connection is closed",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # KServe's endpoints use ORJSONResponse, which FastAPI deprecates: nothing to act on here.
    warnings.filterwarnings("ignore", category=FastAPIDeprecationWarning)
    try:
        timeouts = Timeouts(args.header_s, args.request_s, args.keep_alive_s)
        serve(
            args.model_dir,
            args.model_name,
            args.port,
            args.host,
            timeouts,
            args.max_batch_size,
            args.max_latency_ms,
        )
    except InputError as e:
        print(f"error: serving: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
