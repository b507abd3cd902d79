"""A terminal run with no Prefect API configured runs in this process: no temporary Prefect server, the
same steps, the same record in the state database (issue 19's fixed cost of a nightly run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from altcraft_sync.config import load_config
from connectors.state import StateStore
from tests.conftest import TOKEN
from tests.helpers import build_shop, mapped_source, shop_config

ROOT = Path(__file__).parents[2]

SCRIPT = """
import sys, time
import click
started = time.perf_counter()
from cli.main import app
code = 0
try:
    result = app(sys.argv[1:], standalone_mode=False)
    code = result if isinstance(result, int) else 0
except click.exceptions.Exit as exit:
    code = exit.exit_code
finally:
    print("PREFECT_IMPORTED=%s SECONDS=%.2f" % ("prefect" in sys.modules, time.perf_counter() - started))
    print("UNUSED_MODULES=%s" % ",".join(sorted(m for m in ("sqlalchemy.dialects.postgresql", "sqlalchemy.dialects.mysql",
                                                          "adbc_driver_manager.dbapi", "pyarrow.dataset")
                                                if m in sys.modules)))
sys.exit(code)
"""


def _cli(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(home)  # no profile with an API: the run is local
    return subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_a_terminal_run_without_a_prefect_api_runs_in_process(tmp_path, emulator):
    url = f"sqlite:///{tmp_path}/shop.db"
    build_shop(url, orders=120)
    cfg_path = shop_config(tmp_path, url, emulator, TOKEN)
    first = _cli(["sync", "--config", str(cfg_path)], tmp_path / "prefect-home")
    # issue 27: the demo shop's planted invalid rows are this run's news: completed with warnings, exit 1
    assert first.returncode == 1, first.stdout + first.stderr
    assert "PREFECT_IMPORTED=False" in first.stdout and "ran in this process" in first.stdout
    # a SQLite shop and state: no other database's dialect, no DBAPI layer of ADBC (~40 ms and ~13 MB of start)
    assert "UNUSED_MODULES=\n" in first.stdout, first.stdout
    assert emulator.store.orders == mapped_source(cfg_path)["orders"]
    runs = StateStore(load_config(cfg_path).state).last_runs(5)
    assert runs[0]["status"] == "completed" and runs[0]["run_id"].startswith("local-")
    assert set(runs[0]["streams"]) == {"categories", "products", "skus", "orders"}

    requests = emulator.stats["api_requests"]
    started = time.monotonic()
    again = _cli(["sync", "--config", str(cfg_path)], tmp_path / "prefect-home")
    # nothing to send: one read that only Altcraft can answer (its token still works), nothing imported
    assert again.returncode == 0 and emulator.stats["api_requests"] == requests + 1, again.stdout + again.stderr
    assert emulator.stats["method:market/products/list"] == 1
    assert time.monotonic() - started < 15  # no temporary Prefect server (which alone takes 10-20 s)

    broken = _cli(["sync", "--config", str(cfg_path), "--stream", "nope"], tmp_path / "prefect-home")
    assert broken.returncode != 0 and "--stream nope: not configured" in broken.stdout + broken.stderr
    assert "Traceback" not in broken.stdout + broken.stderr
