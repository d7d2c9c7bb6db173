"""Session-wide real llama.cpp servers with the bundled models (imported by the tests that need them)."""
from __future__ import annotations

import pytest

from hivemind.collect import local_server


@pytest.fixture(scope="session")
def local_servers():
    models = (local_server.SMOLLM2, local_server.GEMMA3, local_server.SMOLLM2_SECOND)
    started = local_server.start_missing(models)  # reuses servers a developer already has up
    yield models
    local_server.stop_all(started)
