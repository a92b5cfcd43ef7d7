"""``tritonize deploy`` on the bundled example repository (built once, as the other integration tests do): every
target's assets pass the real validators, and its python-backend preprocessing steps get the derived image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml
from debian import require
from deploy_validators import KUBERNETES, kserve_problems, prometheus_operator_problems


def _deploy(repo: Path, target: str, out: Path) -> Path:
    done = subprocess.run([sys.executable, "-c", "from tritonize.cli import main; main()", "deploy", str(repo),
                           "--target", target, "--out", str(out / target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out / target


def test_example_repository_assets_validate(example_repo: Path, tmp_path: Path) -> None:
    compose = _deploy(example_repo, "compose", tmp_path)
    done = subprocess.run([require("docker-compose", "docker-compose"), "config"], cwd=compose, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    triton = yaml.safe_load(done.stdout)["services"]["triton"]
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 1  # kind = "gpu", count = 1
    # the preprocessing steps' requirements: what their requirements.txt list (tokenizers, pillow)
    wanted = sorted({line for req in example_repo.glob("*/requirements.txt") for line in req.read_text().split()})
    assert wanted and (compose / "triton" / "requirements.txt").read_text().split() == wanted
    promtool = require("promtool", "prometheus")
    for args in (("check", "config", "prometheus/prometheus.yml"), ("check", "rules", "prometheus/rules.yml")):
        done = subprocess.run([promtool, *args], cwd=compose, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    kube = _deploy(example_repo, "kubernetes", tmp_path)
    for name in ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "pvc.yaml"):
        kubernetes_validate.validate(yaml.safe_load((kube / name).read_text()), KUBERNETES, strict=True)
    for name in ("servicemonitor.yaml", "prometheusrule.yaml"):
        assert prometheus_operator_problems(yaml.safe_load((kube / name).read_text()), tmp_path) is None
    kserve = _deploy(example_repo, "kserve", tmp_path)
    assert kserve_problems(yaml.safe_load((kserve / "inferenceservice.yaml").read_text())) == []
