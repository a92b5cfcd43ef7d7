"""The gateway's FastAPI app: ``POST /predict/<model>`` per model (explicit routes, so the docs show each
body), ``/health`` (Triton's readiness), ``/metrics`` (requests, latency, output drift) and the docs served
offline. One ``AsyncTritonClient`` per process, opened in the lifespan."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.datastructures import UploadFile as StarletteUpload

from tritonize.client import AsyncModelClient, AsyncTritonClient
from tritonize.client.drift import DriftMonitor, load_references
from tritonize.client.errors import (
    InferenceTimeoutError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    ServerUnavailableError,
    TritonClientError,
)
from tritonize.core.errors import TritonizeError
from tritonize.core.log import logger
from tritonize.core.observability import DRIFT_KS, DRIFT_PSI, DRIFT_WINDOW, GATEWAY_LATENCY, GATEWAY_REQUESTS

from .routes import IMAGE, TEXT, ModelRoute, classify, read_routes

Handler = Callable[[Request], Awaitable[Response]]
_log = logger(__name__)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(GATEWAY_REQUESTS, "Gateway requests by model and HTTP status", ["model", "code"],
                                registry=self.registry)
        self.latency = Histogram(GATEWAY_LATENCY, "Gateway request duration (seconds)", ["model"],
                                 registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.psi = Gauge(DRIFT_PSI, "Output drift: PSI over the window", ["model", "output"], registry=self.registry)
        self.ks = Gauge(DRIFT_KS, "Output drift: KS statistic over the window", ["model", "output"],
                        registry=self.registry)
        self.window = Gauge(DRIFT_WINDOW, "Output drift: samples in the window", ["model", "output"],
                            registry=self.registry)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def _status(exc: TritonizeError) -> int:
    if isinstance(exc, InvalidInputError):
        return 400
    if isinstance(exc, ModelNotFoundError):
        return 404
    if isinstance(exc, (ModelNotReadyError, ServerUnavailableError)):
        return 503
    if isinstance(exc, InferenceTimeoutError):
        return 504
    return 502 if isinstance(exc, TritonClientError) else 400


def _answer(route: ModelRoute, outputs: dict[str, Any], single: bool) -> dict[str, Any]:
    """Classified outputs (class, confidence, labels) and the others as lists; one sample or a batch."""
    def sample(i: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        rest = {}
        for key, value in outputs.items():
            row = value[i] if route.info.batching else value
            if key in route.labels and not out:
                out.update(classify(np.asarray(row), route.labels[key]))
            else:
                rest[key] = np.asarray(row).tolist()
        if rest:
            out["outputs"] = rest
        return out

    count = len(next(iter(outputs.values()))) if route.info.batching and outputs else 1
    if single:
        return {"model": route.name, **sample(0)}
    return {"model": route.name, "predictions": [sample(i) for i in range(count)]}


def _tensors(route: ModelRoute, body: Any) -> tuple[dict[str, Any], bool]:
    """A JSON body as arrays by input name, with the batch added for a single sample."""
    if not isinstance(body, dict):
        raise InvalidInputError(f"body of model '{route.name}': {type(body).__name__}, expected a JSON object of "
                                "inputs: " + ", ".join(t.describe(route.info.batching) for t in route.info.inputs))
    arrays: dict[str, Any] = {}
    for name, value in body.items():
        try:
            arrays[name] = np.asarray(value)
        except ValueError:
            raise InvalidInputError(f"input '{name}' of model '{route.name}': a ragged nested list, expected a "
                                    "rectangular array") from None
        if arrays[name].dtype.kind in "US" and not any(t.key == name and t.dtype.is_string for t in route.info.inputs):
            spec = next((t for t in route.info.inputs if t.key == name), None)
            if spec is not None:
                raise InvalidInputError(f"input '{name}' of model '{route.name}': strings, expected "
                                        f"{spec.dtype.numpy.name} ({spec.dtype.config})")
    specs = {t.key: t for t in route.info.inputs}
    single = route.info.batching and all(
        name in specs and arrays[name].ndim == len(specs[name].dims) for name in arrays) and bool(arrays)
    if single:
        for name, a in arrays.items():
            dims = specs[name].dims
            if any(d not in (-1, n) for d, n in zip(dims, a.shape)):
                raise InvalidInputError(f"input '{name}' of model '{route.name}': shape {list(a.shape)}, expected "
                                        f"{list(dims)} for one sample or {specs[name].shape(True)} for a batch")
        arrays = {name: a[None] for name, a in arrays.items()}
    return arrays, single


def create_app(repo: Path, url: str = "localhost:8001", protocol: str | None = None,
               timeout_s: float = 10.0, drift_window: int = 1000, drift_min_samples: int = 200) -> Gateway:
    """The gateway for the models of ``repo`` (see ``read_routes``), calling the Triton at ``url``; a request
    Triton does not answer within ``timeout_s`` (retries included) is a 503/504."""
    routes = read_routes(repo)
    metrics = _Metrics()
    monitors: dict[str, DriftMonitor] = {}
    for route in routes:
        try:
            references = load_references(route.drift_dir)
        except TritonizeError as exc:  # built before references were recorded, or no manifest: no drift gauges
            _log.info("gateway: no drift reference for %s (%s)", route.name, exc)
            continue
        if references:
            monitors[route.name] = DriftMonitor(references, window=drift_window, min_samples=drift_min_samples)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        client = AsyncTritonClient(url, protocol=protocol, timeout_s=timeout_s)
        state["client"] = client
        state["models"] = {r.name: AsyncModelClient(client, r.info) for r in routes}
        try:
            yield
        finally:
            await client.close()

    app = FastAPIOffline(title="tritonize gateway", lifespan=lifespan,
                         description=f"Models of {repo} served by Triton at {url}: POST /predict/<model>.")

    async def predict(route: ModelRoute, arrays: dict[str, Any], single: bool) -> Response:
        began = time.perf_counter()
        try:
            model: AsyncModelClient = state["models"][route.name]
            outputs = await model.infer(arrays, cast=True)
            monitor = monitors.get(route.name)
            if monitor is not None:
                monitor.observe(outputs)
            response: Response = JSONResponse(_answer(route, outputs, single))
        except TritonizeError as exc:
            response = _error(_status(exc), str(exc))
        metrics.requests.labels(route.name, str(response.status_code)).inc()
        metrics.latency.labels(route.name).observe(time.perf_counter() - began)
        return response

    def refuse(route: ModelRoute, message: str, status: int = 400) -> Response:
        metrics.requests.labels(route.name, str(status)).inc()
        return _error(status, message)

    # The predict endpoints take the Starlette request and parse it themselves (FastAPI's dependency solving
    # and body validation cost more than the rest of the gateway here); openapi_extra documents each body.
    async def form_value(route: ModelRoute, request: Request, expected: str) -> Any:
        field = route.raw_input.key
        try:
            value = (await request.form()).get(field)
        except Exception as exc:  # a malformed multipart body
            raise _Refused(400, f"{field}: an unreadable form ({type(exc).__name__}: {exc}), expected {expected}"
                           ) from None
        if value is None:
            raise _Refused(422, f"{field}: Field required, expected {expected}")
        return value

    async def image_endpoint(route: ModelRoute, request: Request) -> Response:
        field = route.raw_input.key
        upload = await form_value(route, request, f"an uploaded image file (multipart form field '{field}')")
        if not isinstance(upload, StarletteUpload):
            raise _Refused(422, f"{field}: a text field, expected an uploaded image file (multipart form field "
                                f"'{field}')")
        data = await upload.read()
        if not data:
            raise _Refused(400, f"{field}: an empty upload ('{upload.filename}', 0 bytes), expected an image file "
                                "(PNG, JPEG, ...)")
        return await predict(route, {field: np.array([[data]], dtype=object)}, True)

    async def text_endpoint(route: ModelRoute, request: Request) -> Response:
        field = route.raw_input.key
        text = await form_value(route, request, f"a form field '{field}' (UTF-8)")
        if not isinstance(text, str):
            text = (await text.read()).decode("utf-8", "replace")
        return await predict(route, {field: np.array([[text.encode()]], dtype=object)}, True)

    async def tensor_endpoint(route: ModelRoute, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise _Refused(400, f"body of model '{route.name}': not JSON ({exc}), expected a JSON object of "
                                "inputs") from None
        try:
            arrays, single = _tensors(route, body)
        except InvalidInputError as exc:
            raise _Refused(400, str(exc)) from None
        return await predict(route, arrays, single)

    def endpoint(route: ModelRoute) -> Handler:
        run = {IMAGE: image_endpoint, TEXT: text_endpoint}.get(route.kind, tensor_endpoint)

        async def handle(request: Request) -> Response:
            try:
                return await run(route, request)
            except _Refused as refused:
                return refuse(route, refused.message, refused.status)
        return handle

    handlers: dict[str, Handler] = {}
    for route in routes:
        inputs = "; ".join(t.describe(route.info.batching) for t in route.info.inputs)
        outputs = ", ".join(t.key + (" (classes)" if t.key in route.labels else "") for t in route.info.outputs)
        handlers[route.path] = endpoint(route)
        app.add_api_route(route.path, handlers[route.path], methods=["POST"], name=route.name,
                          summary=f"Predict with {route.name}", description=f"Inputs: {inputs}. Outputs: {outputs}.",
                          tags=["predict"], openapi_extra={"requestBody": _body_doc(route)})
    known = ", ".join(r.name for r in routes)

    @app.post("/predict/{model}", include_in_schema=False)
    async def unknown(model: str) -> Response:
        return _error(404, f"model '{model}': not served by this gateway, expected one of {known}")

    @app.get("/health")
    async def health() -> Response:
        try:
            if await state["client"].is_ready(timeout_s=2.0):
                return JSONResponse({"status": "ready", "triton": url})
            reason = "Triton answered: not ready"
        except TritonizeError as exc:
            reason = str(exc)
        return JSONResponse({"status": "unavailable", "triton": url, "reason": " ".join(reason.split())},
                            status_code=503)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        for name, monitor in monitors.items():
            for output, score in monitor.scores().items():
                metrics.psi.labels(name, output).set(score.psi)
                metrics.ks.labels(name, output).set(score.ks)
                metrics.window.labels(name, output).set(score.samples)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Gateway(app, handlers)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _body_doc(route: ModelRoute) -> dict[str, Any]:
    """The OpenAPI request body of a predict route."""
    field = route.raw_input.key
    if route.kind == IMAGE:
        schema = {"type": "object", "required": [field], "properties": {
            field: {"type": "string", "format": "binary", "description": "an image file (PNG, JPEG, ...)"}}}
        return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    if route.kind == TEXT:
        schema = {"type": "object", "required": [field], "properties": {
            field: {"type": "string", "description": "the text to classify (UTF-8)"}}}
        return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema},
                                              "multipart/form-data": {"schema": schema}}}
    example = {t.key: np.zeros([max(d, 1) for d in t.dims], dtype=t.dtype.numpy).tolist()
               for t in route.info.inputs if not t.dtype.is_string}
    return {"required": True, "description": "inputs by name: nested lists, one sample or a batch (first dimension)",
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}}}


class Gateway:
    """The ASGI app: POST /predict/<model> goes straight to its endpoint, past FastAPI's middleware stack
    (benchmarks/results/gateway_overhead.md); everything else, the same routes' docs included, is FastAPI's."""

    def __init__(self, app: FastAPI, handlers: dict[str, Handler]) -> None:
        self.app, self.handlers = app, handlers

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self.handlers.get(scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        response = await handler(Request(scope, receive))
        await response(scope, receive, send)
