"""Every test under tests/integration carries the ``integration`` marker (a conftest's ``pytestmark`` would not
apply), so ``pytest -m "not integration"`` runs the unit tests alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torchvision_cpu

torchvision_cpu.apply()  # before anything imports transformers or torchvision (see its docstring)

INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
