"""Issue 10, item 3: serving on a port another process holds fails at once, naming the port, with exit 1
(not after a readiness poll that reached the other server, and not as a usage error)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tritonize.deploy.local import LocalTriton, ServerStartError, free_port


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("which", ["http_port", "grpc_port", "metrics_port"])
def test_local_triton_refuses_a_port_in_use(toy_repo: Path, busy_port: int, which: str) -> None:
    start = time.monotonic()
    with pytest.raises(ServerStartError, match=rf"port {busy_port} on 127\.0\.0\.1 is already in use"):
        LocalTriton(toy_repo, **{which: busy_port}).start()
    assert time.monotonic() - start < 5


def test_serve_on_a_busy_port_exits_1_with_one_line(toy_repo: Path, busy_port: int) -> None:
    from tritonize.cli import main

    start = time.monotonic()
    result = CliRunner().invoke(main, ["serve", str(toy_repo), "--http-port", str(free_port()),
                                       "--grpc-port", str(busy_port), "--metrics-port", str(free_port())])
    assert time.monotonic() - start < 10
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {busy_port}" in lines[0] and "already in use" in lines[0]
