"""What every preset test shares: the shop URL fixture's dialects and ``init --preset`` followed by what
``check`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from altcraft_sync.config import load_config
from cli.main import app
from connectors.shop_db import ShopSource
from tests.conftest import TOKEN
from tests.helpers import shop_url_for


@pytest.fixture(params=["sqlite", "mysql"])  # the platforms run on MySQL/MariaDB; SQLite where their SQL allows
def shop_url(request, tmp_path):
    return shop_url_for(request.param, tmp_path)


def init_and_check(preset: str, url: str, tmp_path: Path, emulator, table_prefix: str | None = None, **env: str):
    """``init --preset`` (with ``--table-prefix`` when given) into a fresh file, loaded with the test's URLs,
    then what ``check`` does: bind every stream, run each page query as a sync builds it, and check the
    status values."""
    path = tmp_path / "altcraft-sync.yaml"
    prefix = [] if table_prefix is None else ["--table-prefix", table_prefix]
    assert CliRunner().invoke(app, ["init", "--preset", preset, "--output", str(path), *prefix]).exit_code == 0
    cfg = load_config(path, environ={"SHOP_DB_URL": url, "ALTCRAFT_API_URL": emulator.url, "ALTCRAFT_TOKEN": TOKEN,
                                     "SYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db", **env})
    source = ShopSource(cfg)
    source.bind()
    source.probe_reads()
    source.check_values()
    source.close()
    return cfg


