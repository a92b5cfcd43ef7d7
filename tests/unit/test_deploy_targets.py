"""``tritonize deploy``: each target's assets for a small built repository, checked with the real validators
offline (docker-compose config, kubernetes-validate, promtool, the prometheus-operator and KServe checks of
tests/deploy_validators.py), and what the assets take from the configs and the options."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from debian import require
from deploy_validators import KUBERNETES, kserve_problems, prometheus_operator_problems

from tritonize.core import releases
from tritonize.deploy import monitoring
from tritonize.deploy.targets import kubernetes as k8s
from tritonize.deploy.targets.plan import STARTUP_BYTES_PER_S, Options, read_plan
from tritonize.generator.build import build
from tritonize.generator.config_spec import InstanceGroup
from tritonize.generator.request import ModelRequest

TOY = str(Path(__file__).parent / "toy_models.py")
CORE_OBJECTS = ("deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "pvc.yaml")


@pytest.fixture(scope="module")
def gpu_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPU model whose instance group lists devices 0 and 1, beside a CPU model."""
    repo = tmp_path_factory.mktemp("gpu") / "repo"
    build([ModelRequest("gpu", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("gpu", 1, gpus=(0, 1)),)),
           ModelRequest("cpu", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("cpu", 1),))], repo)
    return repo


@pytest.fixture(scope="module")
def cpu_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CPU models only, and a python-backend step as the generator writes one (config + requirements.txt)."""
    repo = tmp_path_factory.mktemp("cpu") / "repo"
    build([ModelRequest("cpu", f"{TOY}:mlp", max_batch_size=8, version=1, formats=("onnx",),
                        instance_group=(InstanceGroup("cpu", 2),))], repo)
    step = repo / "text_preprocess"
    (step / "1").mkdir(parents=True)
    (step / "1" / "model.py").write_text("")
    (step / "config.pbtxt").write_text('name: "text_preprocess"\nbackend: "python"\nmax_batch_size: 8\n'
                                       'instance_group { kind: KIND_CPU count: 1 }\n')
    (step / "requirements.txt").write_text("tokenizers==0.22.1\npillow==11.3.0\n")
    return repo


def tritonize(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from tritonize.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True)


def deploy(repo: Path, target: str, *options: str) -> Path:
    """Run ``tritonize deploy`` from the repository's project folder; the asset folder it wrote."""
    done = tritonize("deploy", str(repo), "--target", target, "--force", *options, cwd=repo.parent)
    assert done.returncode == 0, done.stderr
    return repo.parent / "deploy" / target


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def promtool(*args: str) -> None:
    done = subprocess.run([require("promtool", "prometheus"), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the validators --------------------------------------------------------------------------------------


def test_compose_assets_validate(gpu_repo: Path) -> None:
    out = deploy(gpu_repo, "compose")
    # Debian's docker-compose 1.29.2 validates against the compose-spec schema it ships, and resolves paths
    compose = require("docker-compose", "docker-compose")
    done = subprocess.run([compose, "-f", "compose.yaml", "config"], cwd=out, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    triton = resolved["services"]["triton"]
    assert triton["image"] == releases.get().image
    assert {"--metrics-config=summary_latencies=true", "--strict-readiness=true"} <= set(triton["command"])
    assert triton["volumes"] == [f"{gpu_repo}:/models:ro"]  # the relative bind source, resolved
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2
    gateway = resolved["services"]["gateway"]
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert gateway["command"][:3] == ["tritonize", "gateway", "/models"] and "triton:8001" in gateway["command"]
    assert gateway["volumes"] == [f"{gpu_repo}:/models:ro"]
    assert 'tritonize[gateway]==' in (out / "gateway" / "Dockerfile").read_text()
    # the Prometheus files with Prometheus's own checker (it follows rule_files from prometheus.yml)
    promtool("check", "config", str(out / "prometheus" / "prometheus.yml"))
    promtool("check", "rules", str(out / "prometheus" / "rules.yml"))
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in load(out / "prometheus/prometheus.yml")["scrape_configs"]}
    assert jobs == {"triton": ["triton:8002"], "gateway": ["gateway:8080"]}
    assert json.loads((out / "grafana/dashboards/tritonize.json").read_text()) == monitoring.dashboard()
    datasource = load(out / "grafana/provisioning/datasources/prometheus.yaml")["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_kubernetes_assets_validate(gpu_repo: Path, tmp_path: Path) -> None:
    out = deploy(gpu_repo, "kubernetes", "--cpu", "4", "--memory", "16Gi", "--replicas", "2")
    for name in CORE_OBJECTS:
        kubernetes_validate.validate(load(out / name), KUBERNETES, strict=True)
    for name in ("servicemonitor.yaml", "prometheusrule.yaml"):
        assert prometheus_operator_problems(load(out / name), tmp_path) is None
    # the validator does refuse: a wrong type in a ServiceMonitor
    bad = load(out / "servicemonitor.yaml")
    bad["spec"]["endpoints"][0]["interval"] = 15
    assert "interval" in (prometheus_operator_problems(bad, tmp_path) or "")
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(load(out / "prometheusrule.yaml")["spec"]))
    promtool("check", "rules", str(rules))
    # the adapter's query, with the labels the adapter fills in, is valid PromQL
    query = k8s.adapter_query().replace("<<.LabelMatchers>>", 'namespace="default",pod=~"triton-.*"').replace(
        "<<.GroupBy>>", "pod")
    rules.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": [{"record": "q", "expr": query}]}]}))
    promtool("check", "rules", str(rules))
    deployment = load(out / "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"},
                                      "limits": {"memory": "16Gi", "nvidia.com/gpu": 2}}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsUser"] == 1000
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/dev/shm", "/models"}
    assert deployment["spec"]["replicas"] == 2
    hpa = load(out / "hpa.yaml")["spec"]
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == k8s.QUEUE_METRIC
    assert hpa["minReplicas"] == 2 and hpa["maxReplicas"] == 8
    adapter = load(out / "prometheus-adapter" / "values.yaml")["rules"]["custom"][0]
    assert adapter["name"]["as"] == k8s.QUEUE_METRIC


def test_kserve_asset_validates(gpu_repo: Path) -> None:
    out = deploy(gpu_repo, "kserve", "--triton-version", "25.01")
    isvc = load(out / "inferenceservice.yaml")
    assert kserve_problems(isvc) == []
    bad = json.loads(json.dumps(isvc))
    bad["spec"]["predictor"]["model"]["storageURI"] = "s3://x"  # KServe spells it storageUri
    assert kserve_problems(bad) == [".spec.predictor.model.storageURI: not a field of V1beta1ModelSpec"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "triton"} and model["runtime"] == "kserve-tritonserver"
    assert model["runtimeVersion"] == "25.01-py3"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert "--metrics-config=summary_latencies=true" in model["args"]


# --- what the assets take from the configs and options ------------------------------------------------------


def test_gpu_count_follows_the_configs(gpu_repo: Path, cpu_repo: Path) -> None:
    assert read_plan(gpu_repo, Options("kubernetes")).gpus == 2  # gpus: [0, 1]
    assert read_plan(gpu_repo, Options("kubernetes", gpus=3)).gpus == 3
    limits = load(deploy(cpu_repo, "kubernetes") / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in json.dumps(limits)
    triton = load(deploy(cpu_repo, "compose") / "compose.yaml")["services"]["triton"]
    assert "deploy" not in triton  # no GPU reservation
    assert "nvidia.com/gpu" not in (deploy(cpu_repo, "kserve") / "inferenceservice.yaml").read_text()


def test_python_backend_models_get_a_derived_image(cpu_repo: Path) -> None:
    out = deploy(cpu_repo, "compose", "--triton-version", "24.12")
    dockerfile = (out / "triton" / "Dockerfile").read_text()
    assert "FROM nvcr.io/nvidia/tritonserver:24.12-py3" in dockerfile
    assert (out / "triton" / "requirements.txt").read_text() == "pillow==11.3.0\ntokenizers==0.22.1\n"
    triton = load(out / "compose.yaml")["services"]["triton"]
    assert triton["build"] == {"context": "triton"} and triton["image"] == "tritonize-triton:24.12-py3"
    assert (deploy(cpu_repo, "kubernetes") / "image" / "Dockerfile").is_file()
    pushed = "registry.example.com/ml/triton:24.12-py3"
    container = load(deploy(cpu_repo, "kubernetes", "--image", pushed) / "deployment.yaml")["spec"]["template"][
        "spec"]["containers"][0]
    assert container["image"] == pushed


def test_object_store_uri_takes_credentials_from_a_secret(gpu_repo: Path) -> None:
    uri = "s3://models-bucket/triton"
    out = deploy(gpu_repo, "kubernetes", "--repository-uri", uri)
    container = load(out / "deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert f"--model-repository={uri}" in container["args"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert set(refs) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
    assert {r["name"] for r in refs.values()} == {"triton-storage"}
    assert "/models" not in {m["mountPath"] for m in container["volumeMounts"]} and not (out / "pvc.yaml").exists()
    kubernetes_validate.validate(load(out / "deployment.yaml"), KUBERNETES, strict=True)
    done = tritonize("deploy", str(gpu_repo), "--target", "kubernetes", "--repository-uri", uri, "--out",
                     str(gpu_repo.parent / "printed"), cwd=gpu_repo.parent)
    assert "kubectl create secret generic triton-storage --from-literal=AWS_ACCESS_KEY_ID=" in done.stdout
    gs = load(deploy(gpu_repo, "kubernetes", "--repository-uri", "gs://b/m") / "deployment.yaml")
    kubernetes_validate.validate(gs, KUBERNETES, strict=True)
    assert gs["spec"]["template"]["spec"]["volumes"][-1]["secret"]["secretName"] == "triton-storage"
    # compose: from the environment; docker-compose refuses to start without it
    out = deploy(gpu_repo, "compose", "--repository-uri", uri)
    compose = require("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run([compose, "config"], cwd=out, capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "AWS_" in done.stderr
    env.update(AWS_ACCESS_KEY_ID="id", AWS_SECRET_ACCESS_KEY="key", AWS_DEFAULT_REGION="eu-west-1")
    done = subprocess.run([compose, "config"], cwd=out, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    triton = yaml.safe_load(done.stdout)["services"]["triton"]
    assert triton["environment"]["AWS_SECRET_ACCESS_KEY"] == "key" and "volumes" not in triton
    isvc = load(deploy(gpu_repo, "kserve", "--repository-uri", uri) / "inferenceservice.yaml")
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == uri
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "triton-storage"


def test_startup_probe_grows_with_the_repository(gpu_repo: Path, tmp_path: Path) -> None:
    big = tmp_path / "repo"
    shutil.copytree(gpu_repo, big)
    with (big / "gpu_onnx" / "padding.bin").open("wb") as f:  # sparse: 2 GiB on paper
        f.truncate(2 << 30)
    small, large = read_plan(gpu_repo, Options("kubernetes")), read_plan(big, Options("kubernetes"))
    assert large.startup_failures > small.startup_failures
    assert large.startup_seconds >= large.repo_bytes / STARTUP_BYTES_PER_S


@pytest.mark.parametrize(("args", "field"), [
    (("--target", "helm"), "--target"),
    (("--target", "kubernetes", "--replicas", "0"), "--replicas"),
    (("--target", "kubernetes", "--repository-uri", "ftp://host/models"), "--repository-uri"),
    (("--target", "compose", "--gpus", "1"), "--gpus"),  # the configs list GPUs 0 and 1
    (("--target", "kubernetes", "--memory", "lots"), "--memory"),
    (("--target", "kserve", "--image", "registry.example.com/triton:1"), "--image"),
])
def test_bad_option_is_one_line_and_writes_nothing(gpu_repo: Path, tmp_path: Path, args: tuple[str, ...],
                                                   field: str) -> None:
    done = tritonize("deploy", str(gpu_repo), *args, "--out", str(tmp_path / "assets"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {field}: got ") and len(done.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_rerun_refuses_without_force_and_same_inputs_give_same_bytes(gpu_repo: Path, tmp_path: Path) -> None:
    for target in ("compose", "kubernetes", "kserve"):
        out = tmp_path / target
        args = ("deploy", str(gpu_repo), "--target", target, "--out", str(out), "--repository-uri", "s3://b/m")
        assert tritonize(*args, cwd=tmp_path).returncode == 0
        first = tree(out)
        done = tritonize(*args, cwd=tmp_path)
        assert done.returncode == 2 and "--force" in done.stderr and tree(out) == first
        assert tritonize(*args, "--force", cwd=tmp_path).returncode == 0
        assert tree(out) == first  # another process, same bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compose", "kserve", "kubernetes"]  # no staging left
