from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.ground_truth.support import ConsoleProcess, console


@pytest.fixture(scope="module")
def console_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProcess]:
    """One real console for a module's scenarios; each scenario uses a service of its own."""
    with console(tmp_path_factory.mktemp("console")) as handle:
        yield handle
