"""The ``altcraft-sync`` command line: the top layer. It imports the flows, the connectors and the sandbox;
nothing imports it back.

Every command that fails prints one line saying what is wrong and exits non-zero; no traceback reaches
the terminal for a known failure (config, database, token, lock, threshold).
"""

from __future__ import annotations

import os

# Prefect settings must be in place before prefect is imported (the CLI imports flows lazily).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
