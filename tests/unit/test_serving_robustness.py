"""Issue 10, items 5 and 16: a long benchmark keeps only the windows it reports; ``serve --docker`` binds
its ports to one host address (loopback by default), not to every interface."""

from __future__ import annotations

from pathlib import Path

import pytest

from tritonize.client.bench.loadgen import Record
from tritonize.client.bench.measure import _drop_old_records, _Window
from tritonize.deploy.docker import DEFAULT_IMAGE, run_kwargs


def _record(t: float) -> Record:
    return Record(start=t, end=t + 0.001, ok=True, send_us=1.0, recv_us=1.0, lag_us=0.0)


def test_only_the_last_four_windows_keep_their_records() -> None:
    windows: list[_Window] = []
    for n in range(50):
        windows.append(_Window([_record(n + i / 100) for i in range(100)], float(n), n + 1.0, {"n": n}))
        _drop_old_records(windows)
        assert sum(bool(w.records) for w in windows) <= 4
    assert [len(w.records) for w in windows[-4:]] == [100] * 4
    assert all(w.records == [] for w in windows[:-4])
    # what the result needs from older windows is kept: their boundaries and server counters
    assert [w.stats for w in windows] == [{"n": n} for n in range(50)]
    assert windows[0].start == 0.0 and windows[0].end == 1.0


def test_docker_ports_bind_loopback_by_default(tmp_path: Path) -> None:
    kwargs = run_kwargs(tmp_path, DEFAULT_IMAGE, http_port=9000, grpc_port=9001, metrics_port=9002)
    assert kwargs["ports"] == {"8000/tcp": ("127.0.0.1", 9000), "8001/tcp": ("127.0.0.1", 9001),
                               "8002/tcp": ("127.0.0.1", 9002)}


def test_docker_ports_bind_the_given_host(tmp_path: Path) -> None:
    kwargs = run_kwargs(tmp_path, DEFAULT_IMAGE, host="0.0.0.0")
    assert set(kwargs["ports"].values()) == {("0.0.0.0", 8000), ("0.0.0.0", 8001), ("0.0.0.0", 8002)}


def test_serve_docker_passes_host_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    import tritonize.deploy.docker as docker_mod
    from tritonize.cli import main

    seen: dict[str, object] = {}

    class Stop(Exception):
        pass

    class Containers:
        def run(self, **kwargs: object) -> None:
            seen.update(kwargs)
            raise Stop

    class Client:
        containers = Containers()

    monkeypatch.setattr(docker_mod, "docker_client", lambda: Client())
    result = CliRunner().invoke(main, ["serve", str(tmp_path), "--docker", DEFAULT_IMAGE, "--host", "10.1.2.3",
                                       "--http-port", "9100"])
    assert isinstance(result.exception, Stop), result.output
    assert seen["ports"]["8000/tcp"] == ("10.1.2.3", 9100)  # type: ignore[index]


def test_a_port_conflict_in_tritons_log_is_reported_first(tmp_path: Path) -> None:
    from tritonize.deploy.local import LocalTriton

    log = tmp_path / "tritonserver.log"
    log.write_text("| Option | Value |\n" * 30 + 'E1201 main.cc:245] "failed to start GRPC service: Unavailable - '
                   "Socket '127.0.0.1:8001' already in use \"\n")
    server = LocalTriton(tmp_path)
    server.log_path = log
    message = server._failure("tritonserver exited with code 1")
    assert message.startswith("failed to start GRPC service: Unavailable - Socket '127.0.0.1:8001' already in use")
    assert "Option" not in message
