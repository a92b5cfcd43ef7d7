"""A real tritonserver on this machine, without Docker or a GPU: ``LocalTriton(repo)``.

The server is the one ``nvidia-pytriton==0.7.0`` ships (Triton 2.51, CPU, python backend only). A temporary
backend directory holds the python backend (symlinks: copies break the rpath) and the stand-ins
``onnxruntime`` and ``pytorch`` (``backends/<name>/model.py`` plus the python backend stub for this Python),
so the production repository loads as written. GPU repositories serve through ``configs/cpu.pbtxt`` when
there is no GPU (Triton's ``--model-config-name``).

    with LocalTriton("model_repository") as triton:
        print(triton.grpc_url, triton.models())
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tritonize.core import formats
from tritonize.core.errors import TritonizeError, UsageError
from tritonize.core.log import logger, progress
from tritonize.core.observability import TRITON_SUMMARY_FLAG
from tritonize.core.staging import remove_stale

CPU_CONFIG = "cpu"
_STANDIN_SHIM = Path(__file__).parent / "backends" / "model.py"  # one file serves every stand-in backend
_log = logger(__name__)


class ServerStartError(TritonizeError):
    """tritonserver did not start, or a model failed to load (the message carries Triton's reason)."""


@dataclass(frozen=True)
class ModelState:
    name: str
    version: str
    state: str  # READY | UNAVAILABLE | LOADING | UNLOADING
    reason: str


def _pytriton_server_dir() -> Path:
    try:
        import pytriton
    except ImportError:
        raise UsageError("local serving needs the pip tritonserver: pip install 'tritonize[server]' "
                         "(nvidia-pytriton==0.7.0, numpy<2)") from None
    return Path(pytriton.__file__).parent / "tritonserver"


def gpu_available() -> bool:
    """True when nvidia-smi lists at least one GPU."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def has_cpu_variants(repo: Path) -> bool:
    return any((model / "configs" / f"{CPU_CONFIG}.pbtxt").is_file() for model in repo.iterdir() if model.is_dir())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_port_free(host: str, port: int) -> None:
    """ServerStartError at once when ``port`` on ``host`` is taken: otherwise the readiness poll may reach the
    other server (and report its models), and tritonserver itself only fails after loading every model."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Triton does: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except PermissionError:
            raise ServerStartError(f"port {port} on {host}: permission denied (ports below 1024 need root)") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServerStartError(f"port {port} on {host} is already in use (another server?)") from None
            raise ServerStartError(f"port {port} on {host}: cannot listen there ({exc.strerror})") from None


def make_backend_dir(server_dir: Path, target: Path) -> Path:
    """``target/python`` → the shipped python backend (Triton refuses a backend library that is itself a
    symlink out of the directory); ``target/<stand-in>/``: model.py, the stub for this Python and the utils."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise UsageError(f"the pip tritonserver has no python backend stub for Python {version} ({stub})")
    shipped = server_dir / "backends" / "python"
    if not (shipped / stub.name).is_file():  # `backend: "python"` models need it there (PyTriton does the same)
        with contextlib.suppress(OSError):
            shutil.copy2(stub, shipped / stub.name)
    target.mkdir(parents=True)
    (target / "python").symlink_to(shipped, target_is_directory=True)
    for name in formats.BACKENDS:
        (target / name).mkdir()
        for source in (_STANDIN_SHIM, shipped / "triton_python_backend_utils.py", stub):
            (target / name / source.name).symlink_to(source)
    return target


def shadow_site(target: Path) -> Path:
    """A directory holding a link to every package of this environment, for the server to run in.

    The python backend's stub embeds libpython with the base interpreter's path (it ignores PYTHONPATH, and a
    model's code runs before anything of ours): a ``backend: "python"`` model's ``import numpy`` would get the
    base interpreter's numpy 2 (the 2.51 stub needs numpy<2: BYTES tensors crash it) instead of this
    environment's. The stub's path starts with '' -- its working directory -- so links there come first, as
    the NGC image's single environment has it."""
    target.mkdir()
    for site_dir in (Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()):
        for entry in site_dir.iterdir():
            link = target / entry.name
            if entry.suffix != ".pth" and entry.name != "__pycache__" and not link.exists():
                link.symlink_to(entry)
    return target


def _server_env() -> dict[str, str]:
    """The stub embeds libpython and ignores PYTHONPATH: pass our environment's directories explicitly."""
    env = dict(os.environ)
    env["TRITONIZE_SITE_DIRS"] = os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):  # the stub must load this Python's libpython
        libdir = str(sysconfig.get_config_var("LIBDIR"))
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    return env


def http_json(base_url: str, path: str, data: bytes | None = None) -> Any:
    """GET (or POST ``data``) a Triton HTTP endpoint; None when it does not answer 2xx."""
    request = urllib.request.Request(base_url + path, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
    return json.loads(body) if body else {}


def repository_index(base_url: str) -> list[ModelState]:
    index = http_json(base_url, "/v2/repository/index", b"{}") or []
    return sorted((ModelState(m["name"], m.get("version", ""), m.get("state", ""), m.get("reason", ""))
                   for m in index), key=lambda s: (s.name, s.version))


class LocalTriton:
    """Start tritonserver on ``repo``; ``with LocalTriton(repo) as t: ...`` stops it (and its stubs) on exit.

    ``native``: the output directory of ``shared/native/build.sh`` -- the same server binary with Triton's native
    onnxruntime and pytorch backends instead of the stand-ins, to prove the stand-ins behave like production.

    Ports default to free loopback ports. ``config_name="auto"`` selects ``configs/cpu.pbtxt`` variants when
    there is no GPU; ``None`` never does. ``strict`` makes start() fail when any model fails to load, with
    Triton's reason and the log; with ``strict=False`` the server keeps serving the models that loaded
    (``exit_on_error`` is then off) and ``models()`` tells which did not.
    """

    def __init__(
        self,
        repo: Path | str,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
        model_control_mode: str = "none",
        load_models: tuple[str, ...] = (),
        config_name: str | None = "auto",
        log_verbose: int = 0,
        log_file: Path | str | None = None,
        ready_timeout: float = 120.0,
        strict: bool = True,
        cache_size: int | None = None,
        extra_args: tuple[str, ...] = (),
        native: Path | str | None = None,
    ) -> None:
        self.repo = Path(repo).resolve()
        if not self.repo.is_dir():
            raise UsageError(f"repository: {repo} is not a directory")
        if model_control_mode not in ("none", "poll", "explicit"):
            raise UsageError(f"model_control_mode: got {model_control_mode!r}, expected none, poll or explicit")
        if load_models and model_control_mode != "explicit":
            raise UsageError(f"load_models (--load-model): got {list(load_models)}, expected model_control_mode "
                             f"explicit, not {model_control_mode!r} (Triton loads every model otherwise)")
        if not ready_timeout > 0:
            raise UsageError(f"ready_timeout (--timeout): got {ready_timeout}, expected seconds > 0")
        for field, port in (("http_port", http_port), ("grpc_port", grpc_port), ("metrics_port", metrics_port)):
            if not 0 <= port <= 65535:
                raise UsageError(f"{field}: got {port}, expected 1..65535 (or 0 for a free port)")
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.model_control_mode = model_control_mode
        self.load_models = load_models
        if config_name == "auto":
            config_name = CPU_CONFIG if not gpu_available() and has_cpu_variants(self.repo) else None
        self.config_name = config_name
        self.log_verbose = log_verbose
        self.log_path = Path(log_file) if log_file else None
        self.ready_timeout = ready_timeout
        self.strict = strict
        self.cache_size = cache_size
        self.extra_args = extra_args
        self.native = Path(native) if native is not None else None
        if self.native is not None and not (self.native / "bin" / "tritonserver").is_file():
            raise UsageError(f"native: {self.native} has no bin/tritonserver (build it with shared/native/build.sh)")
        self.process: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None

    # --- addresses ----------------------------------------------------------------------------------------
    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    # --- lifecycle ----------------------------------------------------------------------------------------
    def command(self, backend_dir: Path) -> list[str]:
        binary = (self.native or _pytriton_server_dir()) / "bin" / "tritonserver"
        cmd = [
            str(binary),
            f"--model-repository={self.repo}", f"--backend-directory={backend_dir}",
            f"--http-address={self.host}", f"--http-port={self.http_port}",
            f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
            f"--model-control-mode={self.model_control_mode}", f"--log-verbose={self.log_verbose}",
            f"--exit-on-error={'true' if self.strict else 'false'}", "--strict-readiness=true",
            TRITON_SUMMARY_FLAG,
        ]
        cmd += [f"--load-model={m}" for m in self.load_models]
        if self.config_name:
            cmd.append(f"--model-config-name={self.config_name}")
        if self.cache_size:
            cmd.append(f"--cache-config=local,size={self.cache_size}")
        return cmd + list(self.extra_args)

    def start(self) -> LocalTriton:
        for port in dict.fromkeys((self.http_port, self.grpc_port, self.metrics_port)):
            check_port_free(self.host, port)
        for leftover in remove_stale(self.repo):  # at the top level, Triton would try to load one as a model
            _log.info(f"removed {leftover}: a staging directory left by a killed build")
        self._tmp = Path(tempfile.mkdtemp(prefix="tritonize-server-"))
        try:
            backend_dir = self.native / "backends" if self.native else \
                make_backend_dir(_pytriton_server_dir(), self._tmp / "backends")
            if self.log_path is None:
                self.log_path = self._tmp / "tritonserver.log"
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(self.command(backend_dir), stdout=log, stderr=subprocess.STDOUT,
                                                env=_server_env(), start_new_session=True,
                                                cwd=shadow_site(self._tmp / "site"))
            with progress("starting tritonserver, loading models"):
                self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(self._failure(f"tritonserver exited with code {self.process.returncode}"))
            if http_json(self.http_url, "/v2/health/live") is not None:
                break
            time.sleep(0.2)
        else:
            raise ServerStartError(self._failure(f"tritonserver not live after {self.ready_timeout:.0f} s"))
        while time.monotonic() < deadline:
            states = self.models()
            if not any(s.state in ("LOADING", "UNLOADING") for s in states):
                failed = [s for s in states if s.state != "READY" and s.reason]
                if failed and self.strict:
                    raise ServerStartError(self._failure("; ".join(f"{s.name}: {s.reason}" for s in failed)))
                return
            time.sleep(0.2)
        raise ServerStartError(self._failure(f"models still loading after {self.ready_timeout:.0f} s"))

    def _failure(self, what: str) -> str:
        in_use = [line.split("] ", 1)[-1].strip().strip('"').strip() for line in self.log_text().splitlines()
                  if "failed to start" in line and "already in use" in line]
        if in_use:  # the cause first: Triton prints it after its whole option table
            return f"{in_use[0]} (another server?); {what} (log: {self.log_path})"
        failures = [line.split("] ", 1)[-1].strip().strip('"') for line in self.log_text().splitlines()
                    if "failed to load" in line and "version" in line]
        failures = list(dict.fromkeys(failures))
        detail = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
        detail = detail or self.log_tail()
        return f"{what}: {detail} (log: {self.log_path})"

    def stop(self) -> None:
        """Graceful shutdown (SIGINT, Triton unloads models and ends the stubs), then kill what is left."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):  # stubs share its process group
                os.killpg(process.pid, signal.SIGKILL)
        if self._tmp is not None:
            for made in ("backends", "site"):  # the log stays
                shutil.rmtree(self._tmp / made, ignore_errors=True)

    def __enter__(self) -> LocalTriton:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- introspection ------------------------------------------------------------------------------------
    def models(self) -> list[ModelState]:
        """The repository index: every model version Triton knows, its state and the failure reason."""
        return repository_index(self.http_url)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.is_file() else ""

    def log_tail(self, lines: int = 20) -> str:
        return " | ".join(self.log_text().strip().splitlines()[-lines:])
