"""``tritonize gateway``: a real uvicorn process (the CLI) in front of the local Triton serving the bundled glyphs
(PNG in) and reviews (text in) ensembles and a tensor model; real HTTP uploads with httpx equal the eager model
on the same raw inputs; bad input is a 4xx with one line; /health follows Triton; /metrics counts; the docs page
renders in Debian's headless Chromium with every route in the screenshot."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from debian import require

from tritonize.core.distribution import softmax
from tritonize.core.observability import DRIFT_PSI, DRIFT_WINDOW, GATEWAY_LATENCY, GATEWAY_REQUESTS
from tritonize.deploy.local import LocalTriton, free_port
from tritonize.generator.build import BuiltModel, build
from tritonize.generator.preprocess import reference
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parents[1] / "unit" / "toy_models.py")
EXAMPLES = "tritonize.generator.examples"
ROUTES = ["glyphs_onnx", "glyphs_onnx_ensemble", "reviews_onnx", "reviews_onnx_ensemble", "toy_onnx"]


def build_gateway_repo(repo: Path) -> dict[str, BuiltModel]:
    """The glyphs and reviews examples (ONNX, behind their preprocessing) and a tensor model."""
    return {b.name: b for b in build([
        ModelRequest("glyphs", f"{EXAMPLES}.glyphs:build_glyph_classifier", formats=("onnx",), max_batch_size=8),
        ModelRequest("reviews", f"{EXAMPLES}.reviews:build_review_classifier", formats=("onnx",), max_batch_size=8),
        ModelRequest("toy", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",))], repo)}


def start_gateway(repo: Path, triton_url: str, port: int, log: Path, protocol: str = "grpc"
                  ) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from tritonize.cli import main; main()", "gateway", str(repo), "--url",
           triton_url, "--protocol", protocol, "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the gateway exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the gateway did not answer in 60 s: {log.read_text()[-2000:]}")


@dataclass
class Gateway:
    http: httpx.Client
    triton: LocalTriton
    built: dict[str, BuiltModel]
    repo: Path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    built = build_gateway_repo(tmp / "repo")
    port = free_port()
    with LocalTriton(tmp / "repo") as triton:
        proc = start_gateway(tmp / "repo", triton.grpc_url, port, tmp / "gateway.log")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as http:
                yield Gateway(http, triton, built, tmp / "repo")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _pngs(count: int, seed: int) -> list[bytes]:
    from tritonize.generator.examples.glyphs import STEPS

    return reference.synthesized_images(STEPS, count=count, seed=seed)


def test_an_upload_equals_the_eager_model_on_the_same_bytes(gateway: Gateway) -> None:
    ensemble = gateway.built["glyphs_onnx_ensemble"]
    labels = (gateway.repo / "glyphs_onnx" / "labels.txt").read_text().splitlines()
    for png in _pngs(4, seed=3):
        got = gateway.http.post("/predict/glyphs_onnx_ensemble", files={"image_bytes": ("x.png", png, "image/png")})
        assert got.status_code == 200, got.text
        logits = ensemble.reference({"image_bytes": np.array([[png]], dtype=object)})[0][0]  # torchvision + eager
        probs = softmax(np.asarray(logits))
        order = np.argsort(-probs, kind="stable")
        body = got.json()
        assert body["model"] == "glyphs_onnx_ensemble"
        assert body["class"] == labels[order[0]]
        assert body["confidence"] == pytest.approx(probs[order[0]], abs=1e-5)
        assert [x["label"] for x in body["labels"]][:2] == [labels[i] for i in order[:2]]
        assert [x["score"] for x in body["labels"]] == pytest.approx(list(probs[order[:5]]), abs=1e-5)


def test_text_equals_the_tokenizer_and_the_eager_model(gateway: Gateway) -> None:
    ensemble = gateway.built["reviews_onnx_ensemble"]
    for text in ("a wonderful film, loved it", "terrible. boring and too long", "naïve but fine"):
        got = gateway.http.post("/predict/reviews_onnx_ensemble", data={"text": text})
        assert got.status_code == 200, got.text
        logits = ensemble.reference({"text": np.array([[text.encode()]], dtype=object)})[0][0]
        probs = softmax(np.asarray(logits))
        assert got.json()["class"] == ["negative", "neutral", "positive"][int(np.argmax(probs))]
        assert got.json()["confidence"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_json_tensors_one_sample_or_a_batch(gateway: Gateway) -> None:
    toy = gateway.built["toy_onnx"]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    expected = toy.reference({"features": x})
    batch = gateway.http.post("/predict/toy_onnx", json={"features": x.tolist()})
    assert batch.status_code == 200, batch.text
    (name,) = batch.json()["predictions"][0]["outputs"]
    got = np.array([p["outputs"][name] for p in batch.json()["predictions"]])
    np.testing.assert_allclose(got, expected[0], atol=1e-5)
    one = gateway.http.post("/predict/toy_onnx", json={"features": x[1].tolist()})
    np.testing.assert_allclose(one.json()["outputs"][name], expected[0][1], atol=1e-5)


@pytest.mark.parametrize(("path", "kwargs", "status", "line"), [
    ("/predict/glyphs_onnx_ensemble", {"files": {"image_bytes": ("a.png", b"\x89PNG not really", "image/png")}},
     400, "image_bytes[0]: not an image this step can read"),
    ("/predict/glyphs_onnx_ensemble", {"files": {"image_bytes": ("a.png", b"", "image/png")}}, 400,
     "image_bytes: an empty upload ('a.png', 0 bytes), expected an image file"),
    ("/predict/glyphs_onnx_ensemble", {"data": {"other": "x"}}, 422, "image_bytes: Field required, expected an "
     "uploaded image file (multipart form field 'image_bytes')"),
    ("/predict/reviews_onnx_ensemble", {"data": {}}, 422, "text: Field required"),
    ("/predict/toy_onnx", {"json": {"features": [1.0, 2.0]}}, 400,
     "input 'features' of model 'toy_onnx': shape [2], expected [4] for one sample or [-1, 4] for a batch"),
    ("/predict/toy_onnx", {"json": {"features": [["a", "b", "c", "d"]]}}, 400,
     "input 'features' of model 'toy_onnx': strings, expected float32 (TYPE_FP32)"),
    ("/predict/toy_onnx", {"json": {"feature": [1.0, 2.0, 3.0, 4.0]}}, 400, "input 'feature' of model 'toy_onnx': "
     "not an input; expected features: float32 [-1, 4]"),
    ("/predict/toy_onnx", {"json": [1, 2]}, 400, "body of model 'toy_onnx': list, expected a JSON object"),
    ("/predict/nope", {"json": {}}, 404, "model 'nope': not served by this gateway, expected one of glyphs_onnx"),
])
def test_bad_input_is_a_4xx_with_one_line(gateway: Gateway, path: str, kwargs: dict[str, object], status: int,
                                          line: str) -> None:
    got = gateway.http.post(path, **kwargs)  # type: ignore[arg-type]
    assert got.status_code == status, got.text
    assert line in got.json()["error"]
    assert "\n" not in got.json()["error"]


def test_metrics_count_requests_and_export_drift(gateway: Gateway) -> None:
    for png in _pngs(3, seed=5):
        assert gateway.http.post("/predict/glyphs_onnx_ensemble", files={"image_bytes": png}).status_code == 200
    page = gateway.http.get("/metrics").text
    ok = [line for line in page.splitlines()
          if line.startswith(GATEWAY_REQUESTS) and 'model="glyphs_onnx_ensemble"' in line and 'code="200"' in line]
    assert len(ok) == 1 and float(ok[0].split()[-1]) >= 3
    assert f'{GATEWAY_LATENCY}_count{{model="glyphs_onnx_ensemble"}}' in page
    assert any(line.startswith(GATEWAY_REQUESTS) and 'code="400"' in line for line in page.splitlines())
    assert f"# TYPE {DRIFT_PSI} gauge" in page and f"# TYPE {DRIFT_WINDOW} gauge" in page


def test_drift_gauges_fill_from_every_response(gateway: Gateway) -> None:
    """The monitor takes the ensemble's outputs against its model's reference (glyphs_onnx's manifest)."""
    def gauge(page: str, name: str) -> float | None:
        prefix = f'{name}{{model="glyphs_onnx_ensemble",output="logits"}} '
        return next((float(line[len(prefix):]) for line in page.splitlines() if line.startswith(prefix)), None)

    pngs = _pngs(20, seed=9)
    for i in range(200):  # the monitor's min_samples
        gateway.http.post("/predict/glyphs_onnx_ensemble", files={"image_bytes": pngs[i % 20]})
    page = gateway.http.get("/metrics").text
    window = gauge(page, DRIFT_WINDOW)
    assert window is not None and window >= 200
    psi = gauge(page, DRIFT_PSI)
    assert psi is not None and psi >= 0


def test_the_docs_page_renders_every_route_offline(gateway: Gateway, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = require("chromium", "chromium")
    html = gateway.http.get("/docs").text
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html  # swagger-ui served by the gateway
    shot = tmp_path / "docs.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(str(gateway.http.base_url).rstrip("/") + "/docs", wait_until="networkidle")
        page.wait_for_selector(".opblock-summary-path")
        page.screenshot(path=str(shot), full_page=True)
        size = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        boxes = {}
        for el in page.query_selector_all(".opblock-summary-path"):
            boxes[el.inner_text().strip()] = el.bounding_box()
        browser.close()
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert image.std() > 10  # not blank
    for route in ROUTES:
        box = boxes[f"/predict/{route}"]
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= image.shape[1] <= size[0] + 1
        assert box["y"] >= 0 and box["y"] + box["height"] <= image.shape[0]
    assert sorted(b for b in boxes if b.startswith("/predict/")) == [f"/predict/{r}" for r in ROUTES]


def test_health_follows_triton(gateway: Gateway) -> None:  # last: stops the server
    ready = gateway.http.get("/health")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    gateway.triton.stop()
    down = gateway.http.get("/health")
    assert down.status_code == 503, down.text
    assert down.json()["status"] == "unavailable" and down.json()["reason"]
    refused = gateway.http.post("/predict/toy_onnx", json={"features": [0.0] * 4})  # retried, then refused
    assert refused.status_code in (503, 504), refused.text
    assert "\n" not in refused.json()["error"]
