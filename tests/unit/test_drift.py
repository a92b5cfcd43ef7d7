"""tritonize.client.drift: PSI and KS against scipy and hand cases, the reference record, the windowed monitor."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from tritonize.client.drift import (
    EPSILON,
    DriftMonitor,
    OutputReference,
    ks,
    load_references,
    psi,
    reference_cdf,
)
from tritonize.core import distribution as dist
from tritonize.core.errors import SpecError
from tritonize.core.manifest import MANIFEST
from tritonize.core.observability import PSI_ALERT

LEVELS = dist.QUANTILE_LEVELS


# --- psi ------------------------------------------------------------------------------------------------------


def test_psi_by_hand() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(0.9 / 0.5) + 0.4 * math.log(0.5 / 0.1))
    assert psi([1, 1], [9, 1]) == pytest.approx(psi([0.5, 0.5], [0.9, 0.1]))  # counts are normalized
    # an empty bin counts as EPSILON
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        (1.0 - 0.5) * math.log(1.0 / 0.5) + (EPSILON - 0.5) * math.log(EPSILON / 0.5))


def test_psi_is_the_symmetric_kl_divergence_scipy_computes() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        e, o = rng.dirichlet(np.full(10, 5.0)), rng.dirichlet(np.full(10, 5.0))
        assert min(e.min(), o.min()) > EPSILON  # no bin clipped
        assert psi(e, o) == pytest.approx(scipy.stats.entropy(o, e) + scipy.stats.entropy(e, o), rel=1e-9)


def test_psi_refuses_histograms_of_different_bins() -> None:
    with pytest.raises(ValueError, match="equal number of bins"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


# --- ks -------------------------------------------------------------------------------------------------------


def test_reference_cdf_by_hand() -> None:
    q = LEVELS * 10  # uniform on [0, 10]
    assert reference_cdf([-1.0, 0.0, 2.5, 5.0, 10.0, 11.0], q).tolist() == pytest.approx([0, 0, 0.25, 0.5, 1, 1])
    # half the mass at 0 (quantiles 0..0.5 all 0), uniform on [0, 1] above: a jump at 0
    q = np.where(LEVELS <= 0.5, 0.0, (LEVELS - 0.5) * 2)
    assert reference_cdf([0.0], q)[0] == 0.5 and reference_cdf([0.0], q, left=True)[0] == 0.0
    assert reference_cdf([0.5], q)[0] == pytest.approx(0.75)


def test_ks_equals_scipy_kstest_against_the_interpolated_cdf() -> None:
    rng = np.random.default_rng(0)
    q = np.quantile(rng.normal(size=5000), LEVELS)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.interp(x, q, LEVELS, left=0.0, right=1.0)

    for shift in (0.0, 0.2, 1.0):
        x = rng.normal(shift, 1.0, size=700)
        assert ks(x, q) == pytest.approx(scipy.stats.kstest(x, cdf).statistic, abs=1e-12)


def test_ks_approximates_the_two_sample_statistic_against_the_reference_sample() -> None:
    rng = np.random.default_rng(1)
    reference = rng.gamma(2.0, size=20_000)
    q = np.quantile(reference, LEVELS)
    for scale in (1.0, 1.3):
        x = rng.gamma(2.0, scale, size=1000)
        assert ks(x, q) == pytest.approx(scipy.stats.ks_2samp(x, reference).statistic, abs=0.02)


def test_ks_follows_the_jumps_of_tied_quantiles() -> None:
    """ReLU outputs: half the values are exactly 0. A window from the same distribution scores low; one of zeros
    only is as far from it as the mass the reference puts above 0."""
    rng = np.random.default_rng(2)
    q = np.quantile(np.maximum(rng.normal(size=20_000), 0), LEVELS)
    same = np.maximum(rng.normal(size=1000), 0)
    assert ks(same, q) < 0.06
    assert ks(np.zeros(10), q) == pytest.approx(1 - reference_cdf([0.0], q)[0])


# --- the record -----------------------------------------------------------------------------------------------


def test_class_records_know_logits_from_probabilities() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(500, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    from_logits, from_probs = dist.summarize_classes(logits, [4]), dist.summarize_classes(probs, [4])
    assert (from_logits["scores"], from_probs["scores"]) == ("logits", "probabilities")
    assert from_logits["frequencies"] == from_probs["frequencies"] == dist.rounded_list(
        np.bincount(logits.argmax(-1), minlength=4) / 500)
    assert from_logits["confidence"] == from_probs["confidence"]  # softmax at the argmax = the top probability
    assert from_logits["confidence"]["mean"] == dist.rounded(float(probs.max(-1).mean()))


def test_confidences_near_one_keep_their_digits() -> None:
    record = dist.summarize_classes(np.array([[0.0, 11.0]] * 10 + [[0.0, 12.0]] * 10), [2])
    # 1 - sigmoid(-11) = 0.9999833: four significant digits of its distance to 1, not 1.0
    assert record["confidence"]["quantiles"][0] == pytest.approx(1 - 1.67e-5, abs=1e-9)


def test_a_record_of_another_shape_is_one_line() -> None:
    record = dist.summarize_values(np.arange(100.0), [1])
    record["quantiles"] = record["quantiles"][::-1]
    with pytest.raises(SpecError, match=r"^m/tritonize-manifest.json: versions.1.outputs.y: got .*expected a "
                                        r"reference distribution as tritonize records it \(ValueError: 21 finite "
                                        r"non-decreasing quantiles\)$"):
        OutputReference.from_record("y", record, "m/tritonize-manifest.json: versions.1.")


def _model_dir(tmp_path: Path, versions: dict[str, dict]) -> Path:
    model = tmp_path / "m_onnx"
    model.mkdir()
    (model / MANIFEST).write_text(json.dumps({"model": "m_onnx", "versions": versions}))
    return model


def test_load_references_takes_the_latest_version_or_the_one_asked(tmp_path: Path) -> None:
    def entry(offset: float) -> dict:
        return {dist.KEY: {"on": "x", "samples": 100,
                           "outputs": {"y": dist.summarize_values(np.arange(100.0) + offset, [1])}}}

    model = _model_dir(tmp_path, {"1": entry(0), "10": entry(100), "2": entry(50)})
    assert load_references(model)["y"].scalars.mean == pytest.approx(149.5)
    assert load_references(model, 2)["y"].scalars.mean == pytest.approx(99.5)
    with pytest.raises(SpecError, match=r"^version: got 3, expected a version .* records: 1, 2, 10$"):
        load_references(model, 3)


def test_load_references_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"^model_dir: got '.*nowhere', expected a model directory tritonize built "
                                        r"\(no tritonize-manifest.json"):
        load_references(tmp_path / "nowhere")
    model = _model_dir(tmp_path, {"1": {"artifact": {}}})
    with pytest.raises(SpecError, match=r"versions.1.output_distribution: got None, expected the outputs' reference "
                                        r"distribution \(build the model again"):
        load_references(model)


# --- the monitor ----------------------------------------------------------------------------------------------


def _classes(rng: np.random.Generator, count: int, favour: int | None = None) -> np.ndarray:
    logits = rng.normal(size=(count, 5)) * 2
    if favour is not None:
        logits[:, favour] += 3
    return logits.astype(np.float32)


@pytest.fixture()
def class_ref() -> OutputReference:
    return OutputReference.from_record("logits", dist.summarize_classes(_classes(np.random.default_rng(0), 2000), [5]))


def test_no_score_before_min_samples_then_over_the_window(class_ref: OutputReference) -> None:
    rng = np.random.default_rng(1)
    monitor = DriftMonitor({"logits": class_ref}, window=500, min_samples=100)
    monitor.observe({"logits": _classes(rng, 99)})
    assert monitor.scores() == {}
    monitor.observe({"logits": _classes(rng, 1)})
    assert monitor.scores()["logits"].samples == 100
    monitor.observe({"logits": _classes(rng, 600)})
    unshifted = monitor.scores()["logits"]
    assert unshifted.samples == 500 and not unshifted.drifted and unshifted.psi < PSI_ALERT / 2
    # the window forgets: 500 favouring class 3 replace the unshifted ones entirely
    for _ in range(50):
        monitor.observe({"logits": _classes(rng, 10, favour=3)})
    shifted = monitor.scores()["logits"]
    assert shifted.drifted and shifted.detail["classes"][0] > PSI_ALERT and shifted.samples == 500
    fresh = DriftMonitor({"logits": class_ref}, window=500, min_samples=100)
    fresh.observe({"logits": _classes(np.random.default_rng(9), 500, favour=3)})
    assert fresh.scores()["logits"].psi == pytest.approx(shifted.psi, rel=0.3)
    monitor.reset()
    assert monitor.scores() == {}


def test_psi_of_the_classes_is_the_psi_of_their_frequencies(class_ref: OutputReference) -> None:
    window = _classes(np.random.default_rng(5), 400, favour=1)
    monitor = DriftMonitor({"logits": class_ref}, window=400)
    monitor.observe({"logits": window})
    observed = np.bincount(window.argmax(-1), minlength=5)
    assert class_ref.frequencies is not None
    assert monitor.scores()["logits"].detail["classes"][0] == pytest.approx(psi(class_ref.frequencies, observed))
    confidence = dist.top1(window, "logits")[1]
    assert monitor.scores()["logits"].detail["confidence"][1] == pytest.approx(ks(confidence,
                                                                                  class_ref.scalars.quantiles))


def test_values_and_their_norms_are_scored() -> None:
    rng = np.random.default_rng(6)
    reference = rng.normal(size=(2000, 16))
    ref = OutputReference.from_record("embedding", dist.summarize_values(reference, [16],
                                                                        dist.sample_norms(reference)))
    monitor = DriftMonitor({"embedding": ref})
    monitor.observe({"embedding": rng.normal(size=(1000, 16)).astype(np.float32)})
    same = monitor.scores()["embedding"]
    assert set(same.detail) == {"values", "norm"} and not same.drifted
    # each sample scaled to the same norm the reference's have on average: values alike, norms not
    scaled = rng.normal(size=(1000, 16))
    scaled *= np.sqrt(16) / np.linalg.norm(scaled, axis=1, keepdims=True)
    monitor.reset()
    monitor.observe({"embedding": scaled})
    score = monitor.scores()["embedding"]
    assert score.detail["values"][0] < PSI_ALERT < score.detail["norm"][0] and score.drifted


def test_wide_outputs_keep_a_random_subset_of_each_samples_values() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(500, 300)) * np.linspace(0.5, 2, 300)  # each dimension its own spread
    ref = OutputReference.from_record("h", dist.summarize_values(reference, [300], dist.sample_norms(reference)))
    monitor = DriftMonitor({"h": ref}, values_per_sample=16)
    for row in rng.normal(size=(300, 300)) * np.linspace(0.5, 2, 300):
        monitor.observe({"h": row[None]})
    assert monitor.scores()["h"].detail["values"][0] < 0.05


def test_outputs_without_batch_dim_and_unknown_outputs(class_ref: OutputReference) -> None:
    monitor = DriftMonitor({"logits": class_ref}, min_samples=3)
    for row in _classes(np.random.default_rng(8), 3):
        monitor.observe({"logits": row, "other": np.zeros(2)})  # one sample of a model without batching
    assert monitor.scores()["logits"].samples == 3


def test_outputs_of_another_shape_are_one_line(class_ref: OutputReference) -> None:
    monitor = DriftMonitor({"logits": class_ref})
    with pytest.raises(SpecError, match=r"^outputs.logits: got 'shape \[2, 4\]', expected \[batch, \*\[5\]\] or "
                                        r"\[5\], the dims its reference was recorded for$"):
        monitor.observe({"logits": np.zeros((2, 4), np.float32)})
    with pytest.raises(SpecError, match="min_samples"):
        DriftMonitor({"logits": class_ref}, window=100, min_samples=200)


def test_observe_costs_little_per_request(class_ref: OutputReference) -> None:
    """The gateway observes every response: a batch of one must cost well under a millisecond."""
    rng = np.random.default_rng(10)
    reference = rng.normal(size=(500, 64))
    embedding = OutputReference.from_record("e", dist.summarize_values(reference, [64], dist.sample_norms(reference)))
    monitor = DriftMonitor({"logits": class_ref, "e": embedding})
    one = {"logits": _classes(rng, 1), "e": rng.normal(size=(1, 64)).astype(np.float32)}
    for _ in range(50):
        monitor.observe(one)
    times = []
    for _ in range(500):
        start = time.perf_counter()
        monitor.observe(one)
        times.append(time.perf_counter() - start)
    assert float(np.median(times)) < 1e-3
