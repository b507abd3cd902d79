"""Shared fixtures. Prefect settings are fixed before anything imports prefect: a temporary PREFECT_HOME,
no analytics (no network here), and a startup timeout that fits a 2-core CI machine."""

from __future__ import annotations

import os
import tempfile

_PREFECT_HOME = tempfile.mkdtemp(prefix="altcraft-sync-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
for _var in ("ALTCRAFT_TOKEN", "ALTCRAFT_API_URL", "SHOP_DB_URL", "SYNC_STATE_URL", "ALTCRAFT_SYNC_CONFIG"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from altcraft_sync.config import AltcraftSettings  # noqa: E402
from connectors.altcraft import AltcraftClient, RateLimiter  # noqa: E402
from sandbox.emulator import AltcraftEmulator  # noqa: E402

TOKEN = "sandbox-test-token-5f1c9e"


@pytest.fixture
def emulator():
    """The emulator in strict mode: an import with an empty ``data`` is refused (docs/altcraft-api.md: required)."""
    emu = AltcraftEmulator(token=TOKEN, strict_data=True).start()
    yield emu
    emu.stop()


@pytest.fixture
def make_client(emulator):
    """A client factory against the running emulator; fast backoff so fault tests stay quick."""
    clients: list[AltcraftClient] = []

    def make(token: str = TOKEN, **overrides) -> AltcraftClient:
        values = {"api_url": emulator.url, "backoff_initial": 0.01, "backoff_max": 0.2,
                  "requests_per_second": 1000, **overrides}
        settings = AltcraftSettings(**values)
        client = AltcraftClient(settings, SecretStr(token), limiter=RateLimiter(settings.requests_per_second))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test server for the whole session (starting one costs ~20 s on 2 cores)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
