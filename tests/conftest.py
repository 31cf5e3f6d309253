"""Suite-wide collection rules.

Everything under tests/integration/ is marked `integration` by its directory (no module has to
remember the marker), so `pytest -m "not integration"` runs exactly the unit tests: no root, sshd
or tmux, in seconds. The fixtures that need a real sshd live in tests/integration/conftest.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).resolve().parent / "integration"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
